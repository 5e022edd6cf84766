#include "common.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>

#include "ergon/time_range.h"

namespace ergon::cli {

std::string database_url(const Globals& g, const std::optional<std::string>& fallback) {
  if (!g.db.empty()) return g.db;
  if (const char* env = std::getenv("ERGON_DATABASE_URL"); env && *env) return env;
  if (fallback) return *fallback;
  throw Error(ErrorCode::kInvalidArgument,
              "no database: pass --db sqlite:PATH or set ERGON_DATABASE_URL");
}

std::shared_ptr<Store> open_existing(const std::string& url) {
  StoreOptions o;
  o.create_if_missing = false;
  o.migrate = false;
  return open_store(url, o);
}

namespace {

// A duration with a unit, or a TimeSpan; nullopt when the text is not shaped like one. A
// negative one, or one longer than kMaxDuration, throws CLI::ValidationError naming `option`.
std::optional<Duration> cli_duration(const std::string& text, const std::string& option) {
  if (text.find(':') != std::string::npos) {
    try {
      return parse_timespan(text);
    } catch (const Error& e) {
      throw CLI::ValidationError(option, e.what());
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
  if (negative && n != 0) throw CLI::ValidationError(option, "'" + text + "' is negative");
  std::int64_t us = 0;
  if (ec == std::errc::result_out_of_range || __builtin_mul_overflow(n, u->second, &us) ||
      Duration(us) > kMaxDuration) {
    throw CLI::ValidationError(option, "'" + text + "' " + duration_too_long_error());
  }
  return Duration(us);
}

}  // namespace

Duration parse_cli_duration(const std::string& text, const std::string& option) {
  if (auto d = cli_duration(text, option)) return *d;
  throw CLI::ValidationError(option, "'" + text +
                                         "' is not a duration; use e.g. 250ms, 90s, 5m, 2h, "
                                         "1d or hh:mm:ss");
}

JobId parse_job_id_arg(const std::string& text, const std::string& what) {
  auto id = JobId::parse(text);
  if (!id) throw CLI::ValidationError(what, "not a job id: '" + text + "'");
  return *id;
}

JobStatus parse_status_arg(const std::string& text, const std::string& option) {
  auto s = parse_job_status(text);
  if (!s) {
    throw CLI::ValidationError(option, "'" + text +
                                           "' is not one of Pending, Running, Completed, Failed, "
                                           "Cancelled");
  }
  return *s;
}

void add_filter_options(CLI::App* cmd, FilterArgs& a) {
  cmd->add_option("--status", a.status, "Pending, Running, Completed, Failed or Cancelled");
  cmd->add_option("--type", a.type, "job type");
  cmd->add_option("--queue", a.queue, "queue");
  cmd->add_option("--since", a.since, "created at or after: ISO-8601, or a duration ago (2h)");
  cmd->add_option("--until", a.until, "created before: ISO-8601, or a duration ago");
  cmd->add_option("--text", a.text, "job_data or error_message contains this (case-sensitive)");
  cmd->add_option("--before", a.before, "only jobs older than this id (the next page)");
}

namespace {
// An instant or a duration back from `now` for a filter. One past TimePoint's range stops at
// its end, which selects what the words say: --since 2300 nothing, --until 2300 everything,
// --since 200000d everything.
TimePoint instant_arg(const std::string& text, const std::string& option, TimePoint now) {
  if (auto t = parse_wide_timestamp(text)) return clamp_time(*t);
  if (auto ago = cli_duration(text, option)) return saturating_sub(now, *ago);
  throw CLI::ValidationError(option, "'" + text +
                                         "' is neither an ISO-8601 instant nor a duration "
                                         "(e.g. 2026-11-28T08:00:00Z, 90s, 2h, 1d)");
}
}  // namespace

JobFilter make_filter(const FilterArgs& a, TimePoint now) {
  JobFilter f;
  if (!a.status.empty()) f.status = parse_status_arg(a.status);
  if (!a.type.empty()) f.job_type = a.type;
  if (!a.queue.empty()) f.queue = a.queue;
  if (!a.since.empty()) f.created_after = instant_arg(a.since, "--since", now);
  if (!a.until.empty()) f.created_before = instant_arg(a.until, "--until", now);
  if (!a.text.empty()) f.text = a.text;
  if (!a.before.empty()) f.before_id = parse_job_id_arg(a.before, "--before");
  return f;
}

std::string describe(const JobFilter& f) {
  std::string out;
  auto add = [&](const std::string& key, const std::string& value) {
    if (!out.empty()) out += ' ';
    out += key + "=" + value;
  };
  if (f.status) add("status", std::string(to_string(*f.status)));
  if (f.job_type) add("type", *f.job_type);
  if (f.queue) add("queue", *f.queue);
  if (f.created_after) add("since", format_timestamp(*f.created_after));
  if (f.created_before) add("until", format_timestamp(*f.created_before));
  if (f.text)
    add("text",
        nlohmann::json(*f.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (f.before_id) add("before", f.before_id->to_string());
  return out.empty() ? "all jobs" : out;
}

std::string cli_actor() {
  const char* user = std::getenv("USER");
  return user && *user ? "cli:" + std::string(user) : "cli";
}

void audit(const std::shared_ptr<Store>& store, std::string_view action, std::string_view target,
           std::string_view detail) {
  JobRunner(store).audit(cli_actor(), action, target, detail);
}

std::string short_time(TimePoint t) {
  std::string s = format_timestamp(t);  // 2026-11-28T19:20:11.123456Z
  return s.substr(0, 10) + " " + s.substr(11, 8) + "Z";
}

std::pair<std::string, int> parse_listen_address(const std::string& text,
                                                 const std::string& option) {
  std::size_t colon = text.rfind(':');
  auto bad = [&] {
    return CLI::ValidationError(option, "'" + text +
                                            "' is not ADDR:PORT (e.g. 127.0.0.1:8080, "
                                            "[::1]:8080, 0.0.0.0:8080)");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) throw bad();
  std::string addr = text.substr(0, colon);
  if (addr.front() == '[') {
    if (addr.back() != ']' || addr.size() < 3) throw bad();
    addr = addr.substr(1, addr.size() - 2);
  } else if (addr.find(':') != std::string::npos) {
    throw bad();  // a bare IPv6 address needs brackets
  }
  std::string port_text = text.substr(colon + 1);
  int port = -1;
  if (port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos) {
    port = std::stoi(port_text);
  }
  if (port < 0 || port > 65535) throw bad();
  return {addr, port};
}

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

std::shared_ptr<Store> open_for_reading(const std::string& url) {
  if (!url.starts_with("sqlite:")) return open_existing(url);
  return open_existing(url + (url.find('?') == std::string::npos ? "?" : "&") + "mode=ro");
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace ergon::cli
