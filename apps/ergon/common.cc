#include "common.h"

#include <cstdlib>
#include <iostream>

#include "ergon/time_range.h"
#include "ops/filter.h"
#include "store/store.h"  // truncate_utf8

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

// A value from the command line that ops refused, as CLI11 reports a bad option (exit 2).
template <class F>
auto as_usage_error(F&& f) {
  try {
    return f();
  } catch (const ops::FieldError& e) {
    throw CLI::ValidationError(e.name(), e.detail());
  }
}

}  // namespace

Duration parse_cli_duration(const std::string& text, const std::string& option) {
  if (auto d = as_usage_error([&] { return ops::parse_duration(text, option); })) return *d;
  throw CLI::ValidationError(option, "'" + text +
                                         "' is not a duration; use e.g. 250ms, 90s, 5m, 2h, "
                                         "1d or hh:mm:ss");
}

JobId parse_job_id_arg(const std::string& text, const std::string& what) {
  return as_usage_error([&] { return ops::parse_job_id(text, what); });
}

JobStatus parse_status_arg(const std::string& text, const std::string& option) {
  return as_usage_error([&] { return ops::parse_status(text, option); });
}

void add_filter_options(CLI::App* cmd, FilterArgs& a) {
  cmd->add_option("--status", a.status, "Pending, Running, Completed, Failed or Cancelled");
  cmd->add_option("--type", a.type, "job type");
  cmd->add_option("--queue", a.queue, "queue");
  cmd->add_option("--since", a.since, "created at or after: ISO-8601, or a duration ago (2h)");
  cmd->add_option("--until", a.until, "created before: ISO-8601, or a duration ago");
  cmd->add_option("--text", a.text, "job_data or error_message contains this (case-sensitive)");
  cmd->add_option("--before", a.before, "only jobs older than this id (the next page)");
  cmd->add_option("--tag", a.tag, "jobs that carry this tag");
}

JobFilter make_filter(const FilterArgs& a, TimePoint now) {
  const ops::FilterText text{.status = a.status,
                             .type = a.type,
                             .queue = a.queue,
                             .created_after = a.since,
                             .created_before = a.until,
                             .text = a.text,
                             .before_id = a.before,
                             .tag = a.tag};
  static constexpr ops::FilterNames kOptions{.status = "--status",
                                             .type = "--type",
                                             .queue = "--queue",
                                             .created_after = "--since",
                                             .created_before = "--until",
                                             .text = "--text",
                                             .before_id = "--before",
                                             .tag = "--tag"};
  return as_usage_error([&] { return ops::parse_filter(text, kOptions, now); });
}

std::string cli_actor() {
  const char* user = std::getenv("USER");
  return user && *user ? "cli:" + std::string(user) : "cli";
}

void require_audited(const ops::Audited& audited) {
  if (audited.error) std::rethrow_exception(audited.error);
}

void audit(const std::shared_ptr<Store>& store, std::string_view action, std::string_view target,
           std::string_view detail) {
  require_audited(ops::AuditLog(store).record(cli_actor(), action, target, detail));
}

std::string short_time(TimePoint t) {
  std::string s = format_timestamp(t);  // 2026-11-28T19:20:11.123456Z
  return s.substr(0, 10) + " " + s.substr(11, 8) + "Z";
}

std::string cut(std::string s, std::size_t n) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  s = printable(s);
  return s.size() <= n ? s : truncate_utf8(s, n - 3) + "...";
}

void add_tag_meta_options(CLI::App* cmd, std::vector<std::string>& tags, std::string& meta,
                          const std::string& whose) {
  cmd->add_option("--tag", tags, "a tag to find " + whose + " by (repeat for more)");
  cmd->add_option("--meta", meta, "metadata of " + whose + ", a JSON object");
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
