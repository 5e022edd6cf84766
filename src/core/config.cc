#include "ergon/config.h"

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ergon/error.h"

namespace ergon {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::kConfig, where + ": " + what);
}

void check_keys(const json& obj, const std::string& where, const std::set<std::string>& known) {
  if (!obj.is_object()) bad(where, "must be a JSON object");
  for (const auto& [key, value] : obj.items()) {
    if (!known.count(key)) bad(where, "unknown key '" + key + "'");
  }
}

Duration get_timespan(const json& obj, const std::string& where, const char* key,
                      Duration fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_string()) bad(where + "." + key, "must be a string like \"00:01:00\"");
  try {
    return parse_timespan(it->get<std::string>());
  } catch (const Error& e) {
    bad(where + "." + key, e.what());
  }
}

int get_int(const json& obj, const std::string& where, const char* key, int fallback, int min,
            int max) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_number_integer()) bad(where + "." + key, "must be an integer");
  auto v = it->get<long long>();
  if (v < min || v > max) {
    bad(where + "." + key,
        "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<int>(v);
}

bool get_bool(const json& obj, const std::string& where, const char* key, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_boolean()) bad(where + "." + key, "must be true or false");
  return it->get<bool>();
}

std::string get_string(const json& obj, const std::string& where, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_string()) bad(where + "." + key, "must be a string");
  return it->get<std::string>();
}

WorkerOptions parse_worker(const json& j) {
  const std::string w = "JobsWorker";
  check_keys(j, w,
             {"MaxConcurrentJobs",
              "PollingInterval",
              "ScheduledJobsCheckInterval",
              "OrphanedJobsCheckInterval",
              "OrphanedJobThreshold",
              "ShutdownTimeout",
              "RetryBaseDelay",
              "RetryMaxDelay",
              "DefaultMaxAttempts",
              "ProgressInterval",
              "WorkerName",
              "RunScheduler",
              "MisfireGracePeriod",
              "HeartbeatInterval",
              "PoisonJobRescues",
              "TimeoutGracePeriod",
              "CompletedJobsRetention",
              "FailedJobsRetention",
              "CancelledJobsRetention",
              "PruneInterval",
              "Queues"});
  WorkerOptions o;
  o.max_concurrent_jobs = get_int(j, w, "MaxConcurrentJobs", 0, 0, 10000);
  o.polling_interval = get_timespan(j, w, "PollingInterval", o.polling_interval);
  o.scheduled_jobs_check_interval =
      get_timespan(j, w, "ScheduledJobsCheckInterval", o.scheduled_jobs_check_interval);
  o.orphaned_jobs_check_interval =
      get_timespan(j, w, "OrphanedJobsCheckInterval", o.orphaned_jobs_check_interval);
  o.orphaned_job_threshold = get_timespan(j, w, "OrphanedJobThreshold", o.orphaned_job_threshold);
  o.shutdown_timeout = get_timespan(j, w, "ShutdownTimeout", o.shutdown_timeout);
  o.retry_base_delay = get_timespan(j, w, "RetryBaseDelay", o.retry_base_delay);
  o.retry_max_delay = get_timespan(j, w, "RetryMaxDelay", o.retry_max_delay);
  o.default_max_attempts = get_int(j, w, "DefaultMaxAttempts", 10, 1, 1000000);
  o.progress_interval = get_timespan(j, w, "ProgressInterval", o.progress_interval);
  o.worker_name = get_string(j, w, "WorkerName");
  o.run_scheduler = get_bool(j, w, "RunScheduler", o.run_scheduler);
  o.misfire_grace = get_timespan(j, w, "MisfireGracePeriod", o.misfire_grace);
  o.heartbeat_interval = get_timespan(j, w, "HeartbeatInterval", o.heartbeat_interval);
  o.poison_job_rescues = get_int(j, w, "PoisonJobRescues", o.poison_job_rescues, 1, 1000);
  o.timeout_grace = get_timespan(j, w, "TimeoutGracePeriod", o.timeout_grace);
  o.completed_jobs_retention =
      get_timespan(j, w, "CompletedJobsRetention", o.completed_jobs_retention);
  o.failed_jobs_retention = get_timespan(j, w, "FailedJobsRetention", o.failed_jobs_retention);
  o.cancelled_jobs_retention =
      get_timespan(j, w, "CancelledJobsRetention", o.cancelled_jobs_retention);
  o.prune_interval = get_timespan(j, w, "PruneInterval", o.prune_interval);
  if (auto q = j.find("Queues"); q != j.end()) {
    if (!q->is_array()) bad(w + ".Queues", "must be an array of queue names");
    for (const auto& name : *q) {
      if (!name.is_string() || name.get<std::string>().empty() ||
          name.get<std::string>().size() > 100) {
        bad(w + ".Queues", "each queue name must be a string of 1 to 100 bytes");
      }
      o.queues.push_back(name.get<std::string>());
    }
  }
  if (o.heartbeat_interval.count() == 0) bad(w + ".HeartbeatInterval", "must be greater than zero");
  if (o.heartbeat_interval >= o.orphaned_job_threshold) {
    bad(w + ".HeartbeatInterval", "must be shorter than OrphanedJobThreshold");
  }
  if (o.polling_interval.count() == 0) bad(w + ".PollingInterval", "must be greater than zero");
  return o;
}

CommandHandlerConfig parse_handler(const std::string& type, const json& j) {
  const std::string w = "Handlers." + type;
  check_keys(j, w, {"command", "timeout", "env", "workingDirectory", "maxAttempts"});
  CommandHandlerConfig h;
  auto cmd = j.find("command");
  if (cmd == j.end()) bad(w, "missing \"command\"");
  if (cmd->is_string()) {
    h.command.push_back(cmd->get<std::string>());
  } else if (cmd->is_array()) {
    for (const auto& a : *cmd) {
      if (!a.is_string()) bad(w + ".command", "must be an array of strings");
      h.command.push_back(a.get<std::string>());
    }
  } else {
    bad(w + ".command", "must be an array of strings");
  }
  if (h.command.empty() || h.command[0].empty()) bad(w + ".command", "must not be empty");
  if (j.contains("timeout")) {
    h.timeout = get_timespan(j, w, "timeout", Duration{});
    if (h.timeout->count() == 0) bad(w + ".timeout", "must be greater than zero");
  }
  if (auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) bad(w + ".env", "must be an object of strings");
    for (const auto& [k, v] : env->items()) {
      if (!v.is_string()) bad(w + ".env." + k, "must be a string");
      if (k.empty() || k.find('=') != std::string::npos) bad(w + ".env", "bad name '" + k + "'");
      h.env[k] = v.get<std::string>();
    }
  }
  h.working_directory = get_string(j, w, "workingDirectory");
  if (j.contains("maxAttempts")) h.max_attempts = get_int(j, w, "maxAttempts", 1, 1, 1000000);
  return h;
}

}  // namespace

Duration parse_timespan(std::string_view text) {
  // .NET TimeSpan's invariant format: [-][d.]hh:mm:ss[.fffffff]. Negative spans make no
  // sense for intervals, so they are refused.
  auto fail = [&]() -> Duration {
    throw Error(ErrorCode::kConfig, "'" + std::string(text) +
                                        "' is not a duration; expected hh:mm:ss, "
                                        "hh:mm:ss.fff or d.hh:mm:ss");
  };
  std::string_view s = text;
  auto read_int = [&](long long& out, std::size_t max_digits) {
    std::size_t n = 0;
    while (n < s.size() && n < max_digits + 1 && std::isdigit(static_cast<unsigned char>(s[n]))) {
      ++n;
    }
    if (n == 0 || n > max_digits) return false;
    std::from_chars(s.data(), s.data() + n, out);
    s.remove_prefix(n);
    return true;
  };
  long long days = 0, h = 0, m = 0, sec = 0, frac_us = 0;
  long long first = 0;
  if (!read_int(first, 8)) return fail();
  if (!s.empty() && s[0] == '.') {
    days = first;
    s.remove_prefix(1);
    if (!read_int(h, 2)) return fail();
  } else {
    h = first;
  }
  if (s.empty() || s[0] != ':') return fail();
  s.remove_prefix(1);
  if (!read_int(m, 2) || s.empty() || s[0] != ':') return fail();
  s.remove_prefix(1);
  if (!read_int(sec, 2)) return fail();
  if (!s.empty()) {
    if (s[0] != '.') return fail();
    s.remove_prefix(1);
    int digits = 0;
    while (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
      if (digits < 6) frac_us = frac_us * 10 + (s[0] - '0');
      ++digits;
      s.remove_prefix(1);
    }
    if (digits == 0 || digits > 7 || !s.empty()) return fail();
    for (int i = digits; i < 6; ++i) frac_us *= 10;
  }
  if (h > 23 || m > 59 || sec > 59) return fail();
  using namespace std::chrono;
  return duration_cast<Duration>(hours(days * 24 + h) + minutes(m) + seconds(sec)) +
         microseconds(frac_us);
}

std::string format_timespan(Duration d) {
  using namespace std::chrono;
  long long us = d.count();
  std::string sign = us < 0 ? "-" : "";
  if (us < 0) us = -us;
  long long days = us / 86'400'000'000LL;
  us %= 86'400'000'000LL;
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%s%s%02lld:%02lld:%02lld", sign.c_str(),
                        days ? (std::to_string(days) + ".").c_str() : "", us / 3'600'000'000LL,
                        us / 60'000'000 % 60, us / 1'000'000 % 60);
  std::string out(buf, static_cast<std::size_t>(n));
  if (long long frac = us % 1'000'000) {
    char f[16];
    std::snprintf(f, sizeof f, ".%06lld", frac);
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  return out;
}

MessagingOptions parse_messaging(const json& j) {
  const std::string w = "Messaging";
  check_keys(j, w,
             {"Transport", "ConnectionString", "QueueName", "Relay", "Consume", "VisibilityTimeout",
              "MaxDeliveries", "ReceiveInterval", "RelayInterval"});
  MessagingOptions m;
  if (j.contains("Transport")) m.transport = get_string(j, w, "Transport");
  if (m.transport != "AzureStorageQueues") {
    bad(w + ".Transport", "unknown transport '" + m.transport + "' (known: AzureStorageQueues)");
  }
  m.connection_string = get_string(j, w, "ConnectionString");
  if (m.connection_string.empty()) bad(w + ".ConnectionString", "is required");
  if (j.contains("QueueName")) m.queue_name = get_string(j, w, "QueueName");
  m.relay = get_bool(j, w, "Relay", m.relay);
  m.consume = get_bool(j, w, "Consume", m.consume);
  m.visibility_timeout = get_timespan(j, w, "VisibilityTimeout", m.visibility_timeout);
  if (m.visibility_timeout < std::chrono::seconds(1) ||
      m.visibility_timeout > std::chrono::hours(24 * 7)) {
    bad(w + ".VisibilityTimeout", "must be between 00:00:01 and 7.00:00:00");
  }
  m.max_deliveries = get_int(j, w, "MaxDeliveries", m.max_deliveries, 1, 1000);
  m.receive_interval = get_timespan(j, w, "ReceiveInterval", m.receive_interval);
  m.relay_interval = get_timespan(j, w, "RelayInterval", m.relay_interval);
  if (m.receive_interval.count() == 0) bad(w + ".ReceiveInterval", "must be greater than zero");
  if (m.relay_interval.count() == 0) bad(w + ".RelayInterval", "must be greater than zero");
  return m;
}

Config parse_config(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(ErrorCode::kConfig, "configuration is not valid JSON");
  check_keys(j, "configuration", {"Database", "JobsWorker", "Handlers", "Messaging"});
  Config c;
  if (j.contains("Database")) {
    c.database = get_string(j, "configuration", "Database");
    if (c.database->empty()) bad("Database", "must not be empty");
  }
  if (auto w = j.find("JobsWorker"); w != j.end()) c.worker = parse_worker(*w);
  if (auto m = j.find("Messaging"); m != j.end()) c.worker.messaging = parse_messaging(*m);
  if (auto h = j.find("Handlers"); h != j.end()) {
    if (!h->is_object()) bad("Handlers", "must be an object keyed by job type");
    for (const auto& [type, spec] : h->items()) {
      if (type.empty()) bad("Handlers", "a job type name is empty");
      c.handlers.emplace(type, parse_handler(type, spec));
    }
  }
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kConfig, "cannot read configuration file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return parse_config(ss.str());
  } catch (const Error& e) {
    throw Error(ErrorCode::kConfig, path + ": " + e.what());
  }
}

}  // namespace ergon
