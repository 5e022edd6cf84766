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

std::string dashboard_token_from_env() {
  const char* env = std::getenv("ERGON_DASHBOARD_TOKEN");
  return env ? env : "";
}

}  // namespace ergon::cli
