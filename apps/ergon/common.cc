#include "common.h"

#include <cstdlib>

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

Duration parse_cli_duration(const std::string& text) {
  if (text.find(':') != std::string::npos) {
    try {
      return parse_timespan(text);
    } catch (const Error& e) {
      throw CLI::ValidationError("duration", e.what());
    }
  }
  std::size_t used = 0;
  long long n = -1;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = used ? text.substr(used) : "";
  using namespace std::chrono;
  if (n >= 0 && used > 0) {
    if (unit == "ms") return duration_cast<Duration>(milliseconds(n));
    if (unit == "s") return duration_cast<Duration>(seconds(n));
    if (unit == "m") return duration_cast<Duration>(minutes(n));
    if (unit == "h") return duration_cast<Duration>(hours(n));
    if (unit == "d") return duration_cast<Duration>(hours(24 * n));
  }
  throw CLI::ValidationError("duration", "'" + text +
                                             "' is not a duration; use e.g. 250ms, 90s, 5m, 2h, "
                                             "1d or hh:mm:ss");
}

std::string short_time(TimePoint t) {
  std::string s = format_timestamp(t);  // 2026-11-28T19:20:11.123456Z
  return s.substr(0, 10) + " " + s.substr(11, 8) + "Z";
}

}  // namespace ergon::cli
