#include "ergon/time_range.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <utility>

#include "ergon/error.h"
#include "ergon/options.h"

namespace ergon {
namespace {

using namespace std::chrono;
using Rep = TimePoint::rep;

// Nanoseconds (TimePoint's unit) per Duration unit: a whole number, checked at compile time.
constexpr Rep kPerDuration = [] {
  using R = std::ratio_divide<Duration::period, TimePoint::period>;
  static_assert(R::den == 1, "a Duration must be a whole number of TimePoint units");
  return static_cast<Rep>(R::num);
}();

constexpr Rep kTicksPerUnit = [] {
  using R = std::ratio_divide<Ticks::period, TimePoint::period>;
  static_assert(R::den == 1, "a tick must be a whole number of TimePoint units");
  return static_cast<Rep>(R::num);
}();

// d in TimePoint's unit, or nullopt when it does not fit.
std::optional<Rep> in_time_units(Duration d) {
  Rep out;
  if (__builtin_mul_overflow(static_cast<Rep>(d.count()), kPerDuration, &out)) return std::nullopt;
  return out;
}

}  // namespace

TimePoint saturating_add(TimePoint t, Duration d) noexcept {
  const bool up = d.count() >= 0;
  auto units = in_time_units(d);
  Rep sum;
  if (!units || __builtin_add_overflow(t.time_since_epoch().count(), *units, &sum)) {
    return up ? TimePoint::max() : TimePoint::min();
  }
  return TimePoint(TimePoint::duration(sum));
}

TimePoint saturating_sub(TimePoint t, Duration d) noexcept {
  // -Duration::min() does not exist; anything subtracted by it is past the upper end.
  return d == Duration::min() ? TimePoint::max() : saturating_add(t, -d);
}

Duration saturating_add(Duration a, Duration b) noexcept {
  Duration::rep sum;
  if (__builtin_add_overflow(a.count(), b.count(), &sum)) {
    return b.count() > 0 ? Duration::max() : Duration::min();
  }
  return Duration(sum);
}

Duration elapsed(TimePoint earlier, TimePoint later) noexcept {
  // Each side in whole Durations first: the difference of two of those always fits, while the
  // difference in nanoseconds of the range's two ends does not.
  auto whole = [](TimePoint t) { return duration_cast<Duration>(t.time_since_epoch()); };
  auto rest = [&](TimePoint t) { return t.time_since_epoch() - whole(t); };
  return whole(later) - whole(earlier) + duration_cast<Duration>(rest(later) - rest(earlier));
}

std::optional<TimePoint> to_time_point(WideTime t) noexcept {
  Rep units;
  if (__builtin_mul_overflow(t.time_since_epoch().count(), kTicksPerUnit, &units)) {
    return std::nullopt;
  }
  return TimePoint(TimePoint::duration(units));
}

TimePoint clamp_time(WideTime t) noexcept {
  if (auto tp = to_time_point(t)) return *tp;
  return t.time_since_epoch().count() < 0 ? TimePoint::min() : TimePoint::max();
}

WideTime to_wide(TimePoint t) noexcept { return floor<Ticks>(t); }

std::optional<WideTime> parse_wide_timestamp(std::string_view s) {
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > s.size()) return false;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!num(0, 4, y) || s.size() < 10 || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' ||
      !num(8, 2, d)) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  std::size_t pos = 10;
  std::int64_t ticks = 0;  // the fraction, in ticks
  int offset_minutes = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return std::nullopt;
    if (!num(pos + 1, 2, h) || s.size() < pos + 9 || s[pos + 3] != ':' || !num(pos + 4, 2, mi) ||
        s[pos + 6] != ':' || !num(pos + 7, 2, sec)) {
      return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
    pos += 9;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
      ++pos;
      int digits = 0;
      bool finer = false;  // a non-zero digit past the tick
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
        if (digits < 7) {
          ticks = ticks * 10 + (s[pos] - '0');
        } else if (s[pos] != '0') {
          finer = true;
        }
        ++digits;
        ++pos;
      }
      if (digits == 0) return std::nullopt;
      for (int i = digits; i < 7; ++i) ticks *= 10;
      if (finer) ++ticks;  // may reach a whole second: that is still exact
    }
    if (pos == s.size()) return std::nullopt;  // a time needs a zone: Z or an offset
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int sign = s[pos] == '-' ? -1 : 1;
      int oh, om;
      if (!num(pos + 1, 2, oh)) return std::nullopt;
      std::size_t mpos = pos + 3;
      if (mpos < s.size() && s[mpos] == ':') ++mpos;
      if (!num(mpos, 2, om) || oh > 23 || om > 59) return std::nullopt;
      offset_minutes = sign * (oh * 60 + om);
      pos = mpos + 2;
    } else {
      return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
  }
  return WideTime(sys_days{ymd}) + hours{h} + minutes{mi} + seconds{sec} + Ticks{ticks} -
         minutes{offset_minutes};
}

std::string format_wide_timestamp(WideTime t) {
  auto day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss<Ticks> hms{t - day};
  char buf[48];
  int y = int(ymd.year());
  const char* fmt =
      y >= 0 && y <= 9999 ? "%04d-%02u-%02uT%02d:%02d:%02d" : "%+05d-%02u-%02uT%02d:%02d:%02d";
  std::snprintf(buf, sizeof buf, fmt, y, unsigned(ymd.month()), unsigned(ymd.day()),
                int(hms.hours().count()), int(hms.minutes().count()), int(hms.seconds().count()));
  std::string out = buf;
  if (auto frac = hms.subseconds().count()) {
    std::snprintf(buf, sizeof buf, ".%07lld", static_cast<long long>(frac));
    std::string f = buf;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

std::string run_time_range_error(std::string_view value) {
  // Appended piece by piece: g++ 12 at -O3 warns falsely (stringop-overflow) on the chain of
  // operator+ that starts from a string literal.
  std::string out = "'";
  out += value;
  out += "' is outside the run times Ergon stores (";
  out += format_wide_timestamp(to_wide(kEarliestRunTime));
  out += " to ";
  out += format_wide_timestamp(to_wide(kLatestRunTime));
  out += ")";
  return out;
}

std::string duration_too_long_error() {
  return "is longer than the longest duration Ergon holds (.NET's TimeSpan.MaxValue, "
         "10675199.02:48:05.4775807)";
}

void check_run_time(TimePoint t, std::string_view what) {
  if (t < kEarliestRunTime || t > kLatestRunTime) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": " + run_time_range_error(format_wide_timestamp(to_wide(t))));
  }
}

void check_duration(Duration d, std::string_view what) {
  if (d.count() < 0) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " must not be negative");
  }
  if (d > kMaxDuration) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " " + duration_too_long_error());
  }
}

void check_durations(const WorkerOptions& o) {
  const std::pair<const char*, Duration> all[] = {
      {"polling_interval", o.polling_interval},
      {"scheduled_jobs_check_interval", o.scheduled_jobs_check_interval},
      {"orphaned_jobs_check_interval", o.orphaned_jobs_check_interval},
      {"orphaned_job_threshold", o.orphaned_job_threshold},
      {"shutdown_timeout", o.shutdown_timeout},
      {"retry_base_delay", o.retry_base_delay},
      {"retry_max_delay", o.retry_max_delay},
      {"progress_interval", o.progress_interval},
      {"heartbeat_interval", o.heartbeat_interval},
      {"timeout_grace", o.timeout_grace},
      {"completed_jobs_retention", o.completed_jobs_retention},
      {"failed_jobs_retention", o.failed_jobs_retention},
      {"cancelled_jobs_retention", o.cancelled_jobs_retention},
      {"prune_interval", o.prune_interval},
      {"misfire_grace", o.misfire_grace}};
  for (const auto& [name, d] : all) check_duration(d, name);
  if (o.messaging) {
    check_duration(o.messaging->visibility_timeout, "messaging.visibility_timeout");
    check_duration(o.messaging->receive_interval, "messaging.receive_interval");
    check_duration(o.messaging->relay_interval, "messaging.relay_interval");
  }
}

}  // namespace ergon
