#include "ops/filter.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "ergon/config.h"  // parse_timespan
#include "ergon/time_range.h"
#include "store/store.h"  // kMaxJobTypeBytes, kMaxQueueBytes

namespace ergon::ops {
namespace {

// Longer search texts are refused rather than sent to a LIKE over every row.
constexpr std::size_t kMaxFilterTextBytes = 200;

std::string limited(std::string_view name, const std::string& value, std::size_t max) {
  if (value.size() > max) {
    throw FieldError(std::string(name), "must be 1 to " + std::to_string(max) + " bytes");
  }
  return value;
}

// An instant, unclamped (so that two instants past TimePoint's range still compare as given).
WideTime instant(std::string_view name, const std::string& text,
                 std::optional<TimePoint> ago_from) {
  if (auto t = parse_wide_timestamp(text)) return *t;
  if (!ago_from) {
    throw FieldError(std::string(name),
                     "must be an ISO-8601 time such as 2026-11-28T19:20:11Z, not '" + text + "'");
  }
  if (auto ago = parse_duration(text, name)) return to_wide(saturating_sub(*ago_from, *ago));
  throw FieldError(std::string(name), "'" + text +
                                          "' is neither an ISO-8601 instant nor a duration "
                                          "(e.g. 2026-11-28T08:00:00Z, 90s, 2h, 1d)");
}

}  // namespace

FieldError::FieldError(std::string name, std::string detail)
    : Error(ErrorCode::kInvalidArgument, name + ": " + detail),
      name_(std::move(name)),
      detail_(std::move(detail)) {}

JobStatus parse_status(std::string_view text, std::string_view name) {
  auto s = parse_job_status(text);
  if (!s) {
    throw FieldError(std::string(name), "'" + std::string(text) +
                                            "' is not one of Pending, Running, Completed, "
                                            "Failed, Cancelled");
  }
  return *s;
}

JobId parse_job_id(std::string_view text, std::string_view name) {
  auto id = JobId::parse(text);
  if (!id) throw FieldError(std::string(name), "not a job id: '" + std::string(text) + "'");
  return *id;
}

std::optional<Duration> parse_duration(std::string_view text, std::string_view name) {
  // Appended piece by piece: g++ 12 at -O3 warns falsely (stringop-overflow) on "'" + string.
  std::string quoted = "'";
  quoted += text;
  quoted += '\'';
  if (text.find(':') != std::string_view::npos) {
    try {
      return parse_timespan(text);
    } catch (const Error& e) {
      throw FieldError(std::string(name), e.what());
    }
  }
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (end == digits.data()) return std::nullopt;
  // Microseconds per unit; a count that overflows them is too long, whatever its sign.
  static constexpr std::pair<std::string_view, std::int64_t> kUnits[] = {{"ms", 1'000},
                                                                         {"s", 1'000'000},
                                                                         {"m", 60'000'000},
                                                                         {"h", 3'600'000'000},
                                                                         {"d", 86'400'000'000}};
  std::string_view unit(end, static_cast<std::size_t>(digits.data() + digits.size() - end));
  const auto* u = std::find_if(std::begin(kUnits), std::end(kUnits),
                               [&](const auto& k) { return k.first == unit; });
  if (u == std::end(kUnits)) return std::nullopt;
  if (negative && n != 0) throw FieldError(std::string(name), quoted + " is negative");
  std::int64_t us = 0;
  if (ec == std::errc::result_out_of_range || __builtin_mul_overflow(n, u->second, &us) ||
      Duration(us) > kMaxDuration) {
    throw FieldError(std::string(name), quoted + " " + duration_too_long_error());
  }
  return Duration(us);
}

JobFilter parse_filter(const FilterText& in, const FilterNames& names,
                       std::optional<TimePoint> ago_from) {
  JobFilter f;
  if (!in.status.empty()) f.status = parse_status(in.status, names.status);
  if (!in.type.empty()) f.job_type = limited(names.type, in.type, kMaxJobTypeBytes);
  if (!in.queue.empty()) f.queue = limited(names.queue, in.queue, kMaxQueueBytes);
  std::optional<WideTime> after, before;
  if (!in.created_after.empty()) {
    after = instant(names.created_after, in.created_after, ago_from);
    f.created_after = clamp_time(*after);
  }
  if (!in.created_before.empty()) {
    before = instant(names.created_before, in.created_before, ago_from);
    f.created_before = clamp_time(*before);
  }
  if (after && before && *after >= *before) {
    throw FieldError(std::string(names.created_after),
                     "must be earlier than " + std::string(names.created_before));
  }
  if (!in.text.empty()) f.text = limited(names.text, in.text, kMaxFilterTextBytes);
  if (!in.before_id.empty()) f.before_id = parse_job_id(in.before_id, names.before_id);
  if (!in.tag.empty()) f.tag = limited(names.tag, in.tag, kMaxTagBytes);
  return f;
}

bool has_condition(const JobFilter& f) {
  return f.status || f.job_type || f.queue || f.created_after || f.created_before || f.text ||
         f.tag || f.before_id;
}

std::string describe(const JobFilter& f) {
  std::string out;
  auto add = [&](std::string_view key, const std::string& value) {
    if (!out.empty()) out += ' ';
    out.append(key).append("=").append(value);
  };
  if (f.status) add("status", std::string(to_string(*f.status)));
  if (f.job_type) add("type", *f.job_type);
  if (f.queue) add("queue", *f.queue);
  if (f.created_after) add("created_after", format_timestamp(*f.created_after));
  if (f.created_before) add("created_before", format_timestamp(*f.created_before));
  // Quoted: no text can pass for another condition, and no byte of it is other than UTF-8.
  auto quoted = [](const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  if (f.text) add("text", quoted(*f.text));
  if (f.tag) add("tag", quoted(*f.tag));
  if (f.before_id) add("before_id", f.before_id->to_string());
  return out.empty() ? "all jobs" : out;
}

}  // namespace ergon::ops
