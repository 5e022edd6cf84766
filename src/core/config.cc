#include "ergon/config.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ergon/error.h"
#include "store/store.h"

extern char** environ;  // POSIX

namespace ergon {
namespace {

// The most a configuration file may hold; a larger one (or a device that never ends) is refused.
constexpr std::size_t kMaxConfigBytes = 1024 * 1024;

using nlohmann::json;

// The type of each key, for the checks and for reading environment overrides (which arrive as
// strings and are converted to the key's own type before the file's rules check them).
enum class Kind { kInt, kBool, kTimeSpan, kString, kStringList, kObject };
struct Key {
  const char* name;
  Kind kind;
};

constexpr Key kTopKeys[] = {{"Database", Kind::kString}, {"JobsWorker", Kind::kObject},
                            {"Handlers", Kind::kObject}, {"Messaging", Kind::kObject},
                            {"Logging", Kind::kObject},  {"Dashboard", Kind::kObject},
                            {"Limits", Kind::kObject}};
constexpr Key kLimitKeys[] = {{"MaxRunning", Kind::kInt},
                              {"RateLimit", Kind::kInt},
                              {"RatePeriod", Kind::kTimeSpan},
                              {"PerGroup", Kind::kBool}};
constexpr Key kLoggingKeys[] = {{"Format", Kind::kString}, {"Level", Kind::kString}};
constexpr Key kDashboardKeys[] = {
    {"Listen", Kind::kString}, {"Token", Kind::kString}, {"ReadOnly", Kind::kBool}};
constexpr Key kWorkerKeys[] = {{"MaxConcurrentJobs", Kind::kInt},
                               {"PrefetchJobs", Kind::kInt},
                               {"PollingInterval", Kind::kTimeSpan},
                               {"ScheduledJobsCheckInterval", Kind::kTimeSpan},
                               {"OrphanedJobsCheckInterval", Kind::kTimeSpan},
                               {"OrphanedJobThreshold", Kind::kTimeSpan},
                               {"ShutdownTimeout", Kind::kTimeSpan},
                               {"RetryBaseDelay", Kind::kTimeSpan},
                               {"RetryMaxDelay", Kind::kTimeSpan},
                               {"DefaultMaxAttempts", Kind::kInt},
                               {"ProgressInterval", Kind::kTimeSpan},
                               {"WorkerName", Kind::kString},
                               {"RunScheduler", Kind::kBool},
                               {"ClaimUnhandledTypes", Kind::kBool},
                               {"MisfireGracePeriod", Kind::kTimeSpan},
                               {"HeartbeatInterval", Kind::kTimeSpan},
                               {"PoisonJobRescues", Kind::kInt},
                               {"TimeoutGracePeriod", Kind::kTimeSpan},
                               {"CompletedJobsRetention", Kind::kTimeSpan},
                               {"FailedJobsRetention", Kind::kTimeSpan},
                               {"CancelledJobsRetention", Kind::kTimeSpan},
                               {"PruneInterval", Kind::kTimeSpan},
                               {"Queues", Kind::kStringList},
                               {"QueueLimits", Kind::kObject},
                               {"Messaging", Kind::kObject}};
constexpr Key kMessagingKeys[] = {
    {"Transport", Kind::kString},      {"ConnectionString", Kind::kString},
    {"QueueName", Kind::kString},      {"Relay", Kind::kBool},
    {"Consume", Kind::kBool},          {"VisibilityTimeout", Kind::kTimeSpan},
    {"MaxDeliveries", Kind::kInt},     {"ReceiveInterval", Kind::kTimeSpan},
    {"RelayInterval", Kind::kTimeSpan}};
constexpr Key kHandlerKeys[] = {{"command", Kind::kStringList},
                                {"timeout", Kind::kTimeSpan},
                                {"env", Kind::kObject},
                                {"workingDirectory", Kind::kString},
                                {"maxAttempts", Kind::kInt}};

template <std::size_t N>
const Key* find_key(const Key (&keys)[N], std::string_view name, bool any_case) {
  for (const Key& k : keys) {
    if (name == k.name) return &k;
    if (any_case && name.size() == std::strlen(k.name) &&
        strncasecmp(name.data(), k.name, name.size()) == 0) {
      return &k;
    }
  }
  return nullptr;
}

// Reads one configuration, collecting every error (with the key's path) instead of stopping
// at the first: `ergon config check` lists them all. A bad value reads as its default, so the
// checks after it still run.
class Reader {
 public:
  // The key paths set by environment variables, and the variables that set them.
  std::map<std::string, std::string> from_env;
  std::vector<std::string> errors;

  void bad(const std::string& where, const std::string& what) {
    std::string msg = where + ": " + what;
    if (auto it = from_env.find(where); it != from_env.end()) {
      msg += " (set by environment variable " + it->second + ")";
    }
    errors.push_back(std::move(msg));
  }

  template <std::size_t N>
  bool check_keys(const json& obj, const std::string& where, const Key (&known)[N]) {
    if (!obj.is_object()) {
      bad(where, "must be a JSON object");
      return false;
    }
    for (const auto& [key, value] : obj.items()) {
      if (!find_key(known, key, false)) {
        bad(where.empty() ? key : where + "." + key, "unknown key '" + key + "'");
      }
    }
    return true;
  }

  Duration timespan(const json& obj, const std::string& where, const char* key, Duration fallback) {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    std::string path = where + "." + key;
    if (!it->is_string()) {
      bad(path, "expected a TimeSpan string like \"00:01:00\"");
      return fallback;
    }
    try {
      return parse_timespan(it->get<std::string>());
    } catch (const Error& e) {
      bad(path, e.what());
      return fallback;
    }
  }

  int integer(const json& obj, const std::string& where, const char* key, int fallback, int min,
              int max) {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    std::string path = where + "." + key;
    if (!it->is_number_integer()) {
      bad(path, "expected an integer");
      return fallback;
    }
    auto v = it->get<long long>();
    if (it->is_number_unsigned() && it->get<unsigned long long>() > 1'000'000'000ULL) v = max + 1LL;
    if (v < min || v > max) {
      bad(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return fallback;
    }
    return static_cast<int>(v);
  }

  bool boolean(const json& obj, const std::string& where, const char* key, bool fallback) {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    if (!it->is_boolean()) {
      bad(where + "." + key, "expected true or false");
      return fallback;
    }
    return it->get<bool>();
  }

  std::string string(const json& obj, const std::string& where, const char* key,
                     std::string fallback = {}) {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    if (!it->is_string()) {
      bad(where.empty() ? key : where + "." + key, "expected a string");
      return fallback;
    }
    return it->get<std::string>();
  }

  WorkerOptions worker(const json& j);
  void queue_limits(const json& j, const std::string& w, WorkerOptions& o);
  MessagingOptions messaging(const json& j, const std::string& w);
  CommandHandlerConfig handler(const std::string& type, const json& j);
  std::optional<TypeLimit> limit(const std::string& type, const json& j);
};

WorkerOptions Reader::worker(const json& j) {
  const std::string w = "JobsWorker";
  WorkerOptions o;
  if (!check_keys(j, w, kWorkerKeys)) return o;
  o.max_concurrent_jobs = integer(j, w, "MaxConcurrentJobs", 0, 0, 10000);
  o.prefetch_jobs = integer(j, w, "PrefetchJobs", 0, 0, 100000);
  o.polling_interval = timespan(j, w, "PollingInterval", o.polling_interval);
  o.scheduled_jobs_check_interval =
      timespan(j, w, "ScheduledJobsCheckInterval", o.scheduled_jobs_check_interval);
  o.orphaned_jobs_check_interval =
      timespan(j, w, "OrphanedJobsCheckInterval", o.orphaned_jobs_check_interval);
  o.orphaned_job_threshold = timespan(j, w, "OrphanedJobThreshold", o.orphaned_job_threshold);
  o.shutdown_timeout = timespan(j, w, "ShutdownTimeout", o.shutdown_timeout);
  o.retry_base_delay = timespan(j, w, "RetryBaseDelay", o.retry_base_delay);
  o.retry_max_delay = timespan(j, w, "RetryMaxDelay", o.retry_max_delay);
  o.default_max_attempts = integer(j, w, "DefaultMaxAttempts", 10, 1, 1000000);
  o.progress_interval = timespan(j, w, "ProgressInterval", o.progress_interval);
  o.worker_name = string(j, w, "WorkerName");
  o.run_scheduler = boolean(j, w, "RunScheduler", o.run_scheduler);
  o.claim_unhandled_types = boolean(j, w, "ClaimUnhandledTypes", o.claim_unhandled_types);
  o.misfire_grace = timespan(j, w, "MisfireGracePeriod", o.misfire_grace);
  o.heartbeat_interval = timespan(j, w, "HeartbeatInterval", o.heartbeat_interval);
  const bool threshold_only =
      j.contains("OrphanedJobThreshold") && !j.contains("HeartbeatInterval");
  o.poison_job_rescues = integer(j, w, "PoisonJobRescues", o.poison_job_rescues, 1, 1000);
  o.timeout_grace = timespan(j, w, "TimeoutGracePeriod", o.timeout_grace);
  o.completed_jobs_retention = timespan(j, w, "CompletedJobsRetention", o.completed_jobs_retention);
  o.failed_jobs_retention = timespan(j, w, "FailedJobsRetention", o.failed_jobs_retention);
  o.cancelled_jobs_retention = timespan(j, w, "CancelledJobsRetention", o.cancelled_jobs_retention);
  o.prune_interval = timespan(j, w, "PruneInterval", o.prune_interval);
  if (auto q = j.find("Queues"); q != j.end()) {
    if (!q->is_array()) {
      bad(w + ".Queues", "expected an array of queue names");
    } else {
      for (const auto& name : *q) {
        if (!name.is_string() || name.get<std::string>().empty() ||
            name.get<std::string>().size() > 100) {
          bad(w + ".Queues", "each queue name must be a string of 1 to 100 bytes");
          continue;
        }
        o.queues.push_back(name.get<std::string>());
      }
    }
  }
  queue_limits(j, w, o);
  if (threshold_only && o.orphaned_job_threshold.count() > 0) {
    // Whoever sets only the threshold gets heartbeats that fit it: at most the default, and at
    // most a third of the threshold, so a job misses two heartbeats before it is an orphan.
    o.heartbeat_interval = std::min(o.heartbeat_interval, o.orphaned_job_threshold / 3);
    if (o.heartbeat_interval.count() == 0) {
      bad(w + ".OrphanedJobThreshold", "must be at least 00:00:00.000003");
    }
  } else if (o.heartbeat_interval.count() == 0) {
    bad(w + ".HeartbeatInterval", "must be greater than zero");
  } else if (o.heartbeat_interval >= o.orphaned_job_threshold) {
    bad(w + ".HeartbeatInterval", "must be shorter than OrphanedJobThreshold");
  }
  if (o.polling_interval.count() == 0) bad(w + ".PollingInterval", "must be greater than zero");
  return o;
}

// "QueueLimits": {"mail": 2}. A worker with limits lists the queues it serves, the limited
// ones among them (WorkerOptions::queue_limits says why); the JobsWorker constructor checks it
// too, this names the keys.
void Reader::queue_limits(const json& j, const std::string& w, WorkerOptions& o) {
  auto l = j.find("QueueLimits");
  if (l == j.end()) return;
  const std::string where = w + ".QueueLimits";
  if (!l->is_object()) {
    bad(where, "expected an object of queue names and limits, like {\"mail\": 2}");
    return;
  }
  for (const auto& [queue, value] : l->items()) {
    if (queue.empty() || queue.size() > 100) {
      bad(where, "each queue name must be 1 to 100 bytes");
      continue;
    }
    std::size_t errors_before = errors.size();
    int max_held = integer(*l, where, queue.c_str(), 0, 0, 100000);
    if (errors.size() != errors_before) continue;
    o.queue_limits[queue] = max_held;
    if (o.queues.empty()) continue;  // reported once, below
    if (std::find(o.queues.begin(), o.queues.end(), queue) == o.queues.end()) {
      bad(where + "." + queue, "queue '" + queue + "' is not in " + w + ".Queues");
    }
  }
  if (!o.queue_limits.empty() && o.queues.empty()) {
    bad(where, "needs " + w +
                   ".Queues: list every queue this worker serves, the limited ones too (a worker "
                   "that serves every queue cannot keep a limit)");
  }
}

CommandHandlerConfig Reader::handler(const std::string& type, const json& j) {
  const std::string w = "Handlers." + type;
  CommandHandlerConfig h;
  if (!check_keys(j, w, kHandlerKeys)) return h;
  auto cmd = j.find("command");
  if (cmd == j.end()) {
    bad(w, "missing \"command\"");
  } else if (cmd->is_string()) {
    h.command.push_back(cmd->get<std::string>());
  } else if (cmd->is_array() &&
             std::all_of(cmd->begin(), cmd->end(), [](const json& a) { return a.is_string(); })) {
    for (const auto& a : *cmd) h.command.push_back(a.get<std::string>());
  } else {
    bad(w + ".command", "expected an array of strings");
  }
  if (cmd != j.end() && (h.command.empty() || h.command[0].empty()) &&
      (cmd->is_string() || cmd->is_array())) {
    bad(w + ".command", "must not be empty");
  }
  if (j.contains("timeout")) {
    h.timeout = timespan(j, w, "timeout", std::chrono::seconds(1));
    if (h.timeout->count() == 0) bad(w + ".timeout", "must be greater than zero");
  }
  if (auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) {
      bad(w + ".env", "expected an object of strings");
    } else {
      for (const auto& [k, v] : env->items()) {
        if (!v.is_string()) {
          bad(w + ".env." + k, "expected a string");
        } else if (k.empty() || k.find('=') != std::string::npos) {
          bad(w + ".env", "bad name '" + k + "'");
        } else {
          h.env[k] = v.get<std::string>();
        }
      }
    }
  }
  h.working_directory = string(j, w, "workingDirectory");
  if (j.contains("maxAttempts")) h.max_attempts = integer(j, w, "maxAttempts", 1, 1, 1000000);
  return h;
}

std::optional<TypeLimit> Reader::limit(const std::string& type, const json& j) {
  const std::string w = "Limits." + type;
  if (!check_keys(j, w, kLimitKeys)) return std::nullopt;
  std::size_t errors_before = errors.size();
  TypeLimit l;
  l.job_type = type;
  if (j.contains("MaxRunning")) l.max_running = integer(j, w, "MaxRunning", 0, 0, 1000000);
  if (j.contains("RateLimit")) {
    l.rate_limit = integer(j, w, "RateLimit", 0, 0, 1000000);
    if (!j.contains("RatePeriod")) bad(w, "RateLimit needs a RatePeriod");
  } else if (j.contains("RatePeriod")) {
    bad(w, "RatePeriod needs a RateLimit");
  }
  l.rate_period = timespan(j, w, "RatePeriod", Duration::zero());
  l.per_group = boolean(j, w, "PerGroup", false);
  if (errors.size() != errors_before) return std::nullopt;
  try {
    check_type_limit(l);
  } catch (const Error& e) {
    bad(w, e.what());
    return std::nullopt;
  }
  return l;
}

MessagingOptions Reader::messaging(const json& j, const std::string& w) {
  MessagingOptions m;
  if (!check_keys(j, w, kMessagingKeys)) return m;
  m.transport = string(j, w, "Transport", m.transport);
  if (m.transport != "AzureStorageQueues") {
    bad(w + ".Transport", "unknown transport '" + m.transport + "' (known: AzureStorageQueues)");
  }
  m.connection_string = string(j, w, "ConnectionString");
  if (m.connection_string.empty()) bad(w + ".ConnectionString", "is required");
  m.queue_name = string(j, w, "QueueName", m.queue_name);
  m.relay = boolean(j, w, "Relay", m.relay);
  m.consume = boolean(j, w, "Consume", m.consume);
  m.visibility_timeout = timespan(j, w, "VisibilityTimeout", m.visibility_timeout);
  if (m.visibility_timeout < std::chrono::seconds(1) ||
      m.visibility_timeout > std::chrono::hours(24 * 7)) {
    bad(w + ".VisibilityTimeout", "must be between 00:00:01 and 7.00:00:00");
  }
  m.max_deliveries = integer(j, w, "MaxDeliveries", m.max_deliveries, 1, 1000);
  m.receive_interval = timespan(j, w, "ReceiveInterval", m.receive_interval);
  m.relay_interval = timespan(j, w, "RelayInterval", m.relay_interval);
  if (m.receive_interval.count() == 0) bad(w + ".ReceiveInterval", "must be greater than zero");
  if (m.relay_interval.count() == 0) bad(w + ".RelayInterval", "must be greater than zero");
  return m;
}

std::vector<std::string> split_env_name(std::string_view name) {
  std::vector<std::string> out;
  for (;;) {
    auto at = name.find("__");
    out.emplace_back(name.substr(0, at));
    if (at == std::string_view::npos) return out;
    name.remove_prefix(at + 2);
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// An override's value in the key's own type. false (and an error naming the variable) when it
// cannot be one.
bool convert(const std::string& var, const std::string& value, Kind kind, json& out, Reader& r) {
  switch (kind) {
    case Kind::kInt: {
      long long v = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || end != value.data() + value.size()) {
        r.errors.push_back(var + "=" + value + ": expected an integer");
        return false;
      }
      out = v;
      return true;
    }
    case Kind::kBool:
      if (iequals(value, "true") || iequals(value, "false")) {
        out = iequals(value, "true");
        return true;
      }
      r.errors.push_back(var + "=" + value + ": expected true or false");
      return false;
    case Kind::kTimeSpan:
      try {
        (void)parse_timespan(value);
      } catch (const Error& e) {
        r.errors.push_back(var + "=" + value + ": " + e.what());
        return false;
      }
      out = value;
      return true;
    case Kind::kString:
      out = value;
      return true;
    case Kind::kStringList: {
      // A JSON array, or a comma-separated list ("mail,reports").
      if (!value.empty() && value.front() == '[') {
        out = json::parse(value, nullptr, false);
        if (out.is_discarded() || !out.is_array()) {
          r.errors.push_back(var + ": expected a JSON array of strings or a comma-separated list");
          return false;
        }
        return true;
      }
      out = json::array();
      std::string_view rest = value;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        out.push_back(std::string(item));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      return true;
    }
    case Kind::kObject:
      break;
  }
  r.errors.push_back(var + ": names a section, not a value");
  return false;
}

// The object at doc[key], created if missing; nullptr when the file holds something else there
// (the file's own check reports that).
json* section(json& doc, const std::string& key) {
  if (!doc.contains(key)) doc[key] = json::object();
  json& s = doc[key];
  return s.is_object() ? &s : nullptr;
}

// Applies JobsWorker__Key, JobsWorker__QueueLimits__QUEUE, JobsWorker__Messaging__Key (or
// Messaging__Key), Handlers__TYPE__key and Handlers__TYPE__env__NAME overrides to the file's
// document. Section and key names match in any case (as .NET's configuration does); job types
// and queue names as written.
void apply_overrides(json& doc, const ConfigEnvironment& env, Reader& r,
                     std::string& messaging_where) {
  for (const auto& [var, value] : env) {
    auto parts = split_env_name(var);
    auto unknown = [&, v = var](const std::string& what) { r.errors.push_back(v + ": " + what); };
    if (parts.size() < 2) {
      unknown("not a configuration key (expected Section__Key)");
      continue;
    }
    const Key* keys = nullptr;
    std::size_t nkeys = 0;
    json* target = nullptr;
    std::string path;
    std::string key_name;
    if (iequals(parts[0], "JobsWorker") && iequals(parts[1], "QueueLimits")) {
      // JobsWorker__QueueLimits__QUEUE=N; the queue as written, as job types under Handlers.
      if (parts.size() != 3) {
        unknown("expected JobsWorker__QueueLimits__QUEUE");
        continue;
      }
      json converted;
      if (!convert(var, value, Kind::kInt, converted, r)) continue;
      json* worker = section(doc, "JobsWorker");
      json* limits = worker ? section(*worker, "QueueLimits") : nullptr;
      if (limits) {
        (*limits)[parts[2]] = converted;
        r.from_env["JobsWorker.QueueLimits." + parts[2]] = var;
      }
      continue;
    }
    if (iequals(parts[0], "JobsWorker") && !(parts.size() >= 2 && iequals(parts[1], "Messaging"))) {
      if (parts.size() != 2) {
        unknown("expected JobsWorker__Key or JobsWorker__Messaging__Key");
        continue;
      }
      keys = kWorkerKeys;
      nkeys = std::size(kWorkerKeys);
      target = section(doc, "JobsWorker");
      path = "JobsWorker";
      key_name = parts[1];
    } else if (iequals(parts[0], "Messaging") || iequals(parts[0], "JobsWorker")) {
      bool nested = iequals(parts[0], "JobsWorker");
      if (parts.size() != (nested ? 3u : 2u)) {
        unknown("expected Messaging__Key or JobsWorker__Messaging__Key");
        continue;
      }
      keys = kMessagingKeys;
      nkeys = std::size(kMessagingKeys);
      target = section(doc, "Messaging");
      if (nested) messaging_where = "JobsWorker.Messaging";
      path = messaging_where;
      key_name = parts.back();
    } else if (iequals(parts[0], "Handlers")) {
      if (parts.size() == 4 && iequals(parts[2], "env")) {
        json* handlers = section(doc, "Handlers");
        json* h = handlers ? section(*handlers, parts[1]) : nullptr;
        json* e = h ? section(*h, "env") : nullptr;
        if (e) {
          (*e)[parts[3]] = value;
          r.from_env["Handlers." + parts[1] + ".env." + parts[3]] = var;
        }
        continue;
      }
      if (parts.size() != 3 || parts[1].empty()) {
        unknown("expected Handlers__TYPE__key or Handlers__TYPE__env__NAME");
        continue;
      }
      keys = kHandlerKeys;
      nkeys = std::size(kHandlerKeys);
      json* handlers = section(doc, "Handlers");
      target = handlers ? section(*handlers, parts[1]) : nullptr;
      path = "Handlers." + parts[1];
      key_name = parts[2];
    } else if (iequals(parts[0], "Logging") || iequals(parts[0], "Dashboard")) {
      bool logging = iequals(parts[0], "Logging");
      if (parts.size() != 2) {
        unknown(logging ? "expected Logging__Key" : "expected Dashboard__Key");
        continue;
      }
      keys = logging ? kLoggingKeys : kDashboardKeys;
      nkeys = logging ? std::size(kLoggingKeys) : std::size(kDashboardKeys);
      path = logging ? "Logging" : "Dashboard";
      target = section(doc, path);
      key_name = parts[1];
    } else {
      unknown("unknown section '" + parts[0] +
              "' (known: JobsWorker, Messaging, Handlers, Logging, Dashboard)");
      continue;
    }
    const Key* key = nullptr;
    for (std::size_t i = 0; i < nkeys; ++i) {
      if (iequals(key_name, keys[i].name)) key = &keys[i];
    }
    if (key == nullptr || key->kind == Kind::kObject) {
      unknown("unknown key '" + key_name + "' in " + path);
      continue;
    }
    json converted;
    if (!convert(var, value, key->kind, converted, r) || target == nullptr) continue;
    (*target)[key->name] = converted;
    r.from_env[path + "." + key->name] = var;
  }
}

[[noreturn]] void throw_all(const std::vector<std::string>& errors) {
  if (errors.size() == 1) throw Error(ErrorCode::kConfig, errors[0]);
  std::string msg = std::to_string(errors.size()) + " errors:";
  for (const auto& e : errors) msg += "\n  " + e;
  throw Error(ErrorCode::kConfig, msg);
}

}  // namespace

ConfigEnvironment config_environment() {
  ConfigEnvironment out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    auto first = name.find("__");
    if (first == std::string_view::npos) continue;
    std::string_view section_name = name.substr(0, first);
    if (iequals(section_name, "JobsWorker") || iequals(section_name, "Messaging") ||
        iequals(section_name, "Handlers") || iequals(section_name, "Logging") ||
        iequals(section_name, "Dashboard")) {
      out.emplace_back(std::string(name), std::string(entry.substr(eq + 1)));
    }
  }
  std::sort(out.begin(), out.end());  // a stable order for messages
  return out;
}

Config parse_config(std::string_view json_text) { return parse_config(json_text, {}); }

Config parse_config(std::string_view json_text, const ConfigEnvironment& env) {
  // The JSON reader stops at a NUL as at the end of the text: what follows would be ignored.
  if (auto nul = json_text.find('\0'); nul != std::string_view::npos) {
    throw Error(ErrorCode::kConfig,
                "configuration holds a NUL byte (at byte " + std::to_string(nul) + ")");
  }
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(ErrorCode::kConfig, "configuration is not valid JSON");
  Reader r;
  Config c;
  if (!j.is_object()) {
    r.bad("configuration", "must be a JSON object");
    throw_all(r.errors);
  }
  // Messaging may sit at the top (as before) or inside JobsWorker (as .NET nests it).
  std::string messaging_where = "Messaging";
  if (auto w = j.find("JobsWorker"); w != j.end() && w->is_object() && w->contains("Messaging")) {
    if (j.contains("Messaging")) {
      r.bad("JobsWorker.Messaging", "give the Messaging section once, here or at the top");
    } else {
      j["Messaging"] = (*w)["Messaging"];
      messaging_where = "JobsWorker.Messaging";
    }
    w->erase("Messaging");
  }
  apply_overrides(j, env, r, messaging_where);
  r.check_keys(j, "", kTopKeys);
  if (j.contains("Database")) {
    c.database = r.string(j, "", "Database");
    if (c.database->empty() && j["Database"].is_string()) r.bad("Database", "must not be empty");
  }
  if (auto w = j.find("JobsWorker"); w != j.end()) c.worker = r.worker(*w);
  if (auto m = j.find("Messaging"); m != j.end()) {
    c.worker.messaging = r.messaging(*m, messaging_where);
  }
  if (auto l = j.find("Logging"); l != j.end() && r.check_keys(*l, "Logging", kLoggingKeys)) {
    if (l->contains("Format")) {
      std::string f = r.string(*l, "Logging", "Format");
      if (auto format = parse_log_format(f)) {
        c.logging.format = *format;
      } else if ((*l)["Format"].is_string()) {
        r.bad("Logging.Format", "expected \"text\" or \"json\", got \"" + f + "\"");
      }
    }
    if (l->contains("Level")) {
      std::string level = r.string(*l, "Logging", "Level");
      if (is_log_level(level)) {
        c.logging.level = level;
      } else if ((*l)["Level"].is_string()) {
        r.bad(
            "Logging.Level",
            "expected trace, debug, info, warning, error, critical or off, got \"" + level + "\"");
      }
    }
  }
  if (auto d = j.find("Dashboard"); d != j.end() && r.check_keys(*d, "Dashboard", kDashboardKeys)) {
    DashboardConfig dc;
    dc.listen = r.string(*d, "Dashboard", "Listen");
    dc.token = r.string(*d, "Dashboard", "Token");
    dc.read_only = r.boolean(*d, "Dashboard", "ReadOnly", false);
    if (dc.listen.empty() && (*d)["Listen"].is_string()) {
      r.bad("Dashboard.Listen", "must not be empty (ADDR:PORT)");
    }
    c.dashboard = dc;
  }
  if (auto l = j.find("Limits"); l != j.end()) {
    if (!l->is_object()) {
      r.bad("Limits", "must be an object keyed by job type");
    } else {
      for (const auto& [type, spec] : l->items()) {
        if (auto limit = r.limit(type, spec)) c.limits.push_back(std::move(*limit));
      }
    }
  }
  if (auto h = j.find("Handlers"); h != j.end()) {
    if (!h->is_object()) {
      r.bad("Handlers", "must be an object keyed by job type");
    } else {
      for (const auto& [type, spec] : h->items()) {
        if (type.empty()) {
          r.bad("Handlers", "a job type name is empty");
          continue;
        }
        c.handlers.emplace(type, r.handler(type, spec));
      }
    }
  }
  if (!r.errors.empty()) throw_all(r.errors);
  return c;
}

Config load_config_file(const std::string& path) {
  return load_config_file(path, config_environment());
}

Config load_config_file(const std::string& path, const ConfigEnvironment& env) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw Error(ErrorCode::kConfig, "'" + path + "' is a directory, not a configuration file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kConfig, "cannot read configuration file '" + path + "'");
  // Read in bounded steps: a device such as /dev/zero never ends.
  std::string text;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) {
      throw Error(ErrorCode::kConfig, path + ": larger than " + std::to_string(kMaxConfigBytes) +
                                          " bytes, the most a configuration file may hold");
    }
  }
  if (in.bad()) throw Error(ErrorCode::kConfig, "cannot read configuration file '" + path + "'");
  try {
    return parse_config(text, env);
  } catch (const Error& e) {
    throw Error(ErrorCode::kConfig, path + ": " + e.what());
  }
}

namespace {

// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db".
std::string mask_url_password(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto at = url.find('@', scheme + 3);
  if (at == std::string::npos) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

// AccountKey=...;SharedAccessSignature=... values hidden, the rest kept.
std::string mask_connection_string(const std::string& cs) {
  std::string out;
  std::string_view rest = cs;
  while (!rest.empty()) {
    auto semi = rest.find(';');
    std::string_view part = rest.substr(0, semi);
    auto eq = part.find('=');
    std::string_view key = part.substr(0, eq);
    if (!out.empty()) out += ';';
    if (eq != std::string_view::npos &&
        (iequals(key, "AccountKey") || iequals(key, "SharedAccessSignature"))) {
      out += std::string(key) + "=***";
    } else {
      out += part;
    }
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  }
  return out;
}

}  // namespace

std::string config_to_json(const Config& c) {
  const WorkerOptions& o = c.worker;
  auto ts = [](Duration d) { return format_timespan(d); };
  json w = {{"MaxConcurrentJobs", o.max_concurrent_jobs},
            {"PrefetchJobs", o.prefetch_jobs},
            {"PollingInterval", ts(o.polling_interval)},
            {"ScheduledJobsCheckInterval", ts(o.scheduled_jobs_check_interval)},
            {"OrphanedJobsCheckInterval", ts(o.orphaned_jobs_check_interval)},
            {"OrphanedJobThreshold", ts(o.orphaned_job_threshold)},
            {"ShutdownTimeout", ts(o.shutdown_timeout)},
            {"RetryBaseDelay", ts(o.retry_base_delay)},
            {"RetryMaxDelay", ts(o.retry_max_delay)},
            {"DefaultMaxAttempts", o.default_max_attempts},
            {"ProgressInterval", ts(o.progress_interval)},
            {"WorkerName", o.worker_name},
            {"RunScheduler", o.run_scheduler},
            {"ClaimUnhandledTypes", o.claim_unhandled_types},
            {"MisfireGracePeriod", ts(o.misfire_grace)},
            {"HeartbeatInterval", ts(o.heartbeat_interval)},
            {"PoisonJobRescues", o.poison_job_rescues},
            {"TimeoutGracePeriod", ts(o.timeout_grace)},
            {"CompletedJobsRetention", ts(o.completed_jobs_retention)},
            {"FailedJobsRetention", ts(o.failed_jobs_retention)},
            {"CancelledJobsRetention", ts(o.cancelled_jobs_retention)},
            {"PruneInterval", ts(o.prune_interval)},
            {"Queues", o.queues},
            {"QueueLimits", o.queue_limits}};
  // Unset optional keys are left out, so that the output reads back as a configuration.
  json out = {{"JobsWorker", w}};
  if (c.database) out["Database"] = mask_url_password(*c.database);
  if (o.messaging) {
    const MessagingOptions& m = *o.messaging;
    out["Messaging"] = {{"Transport", m.transport},
                        {"ConnectionString", mask_connection_string(m.connection_string)},
                        {"QueueName", m.queue_name},
                        {"Relay", m.relay},
                        {"Consume", m.consume},
                        {"VisibilityTimeout", ts(m.visibility_timeout)},
                        {"MaxDeliveries", m.max_deliveries},
                        {"ReceiveInterval", ts(m.receive_interval)},
                        {"RelayInterval", ts(m.relay_interval)}};
  }
  out["Logging"] = {{"Format", c.logging.format == LogFormat::kJson ? "json" : "text"},
                    {"Level", c.logging.level}};
  if (c.dashboard) {
    out["Dashboard"] = {{"Listen", c.dashboard->listen},
                        {"Token", c.dashboard->token.empty() ? "" : "***"},
                        {"ReadOnly", c.dashboard->read_only}};
  }
  if (!c.limits.empty()) {
    json limits = json::object();
    for (const auto& l : c.limits) {
      json lj = {{"PerGroup", l.per_group}};
      if (l.max_running) lj["MaxRunning"] = *l.max_running;
      if (l.rate_limit) {
        lj["RateLimit"] = *l.rate_limit;
        lj["RatePeriod"] = ts(l.rate_period);
      }
      limits[l.job_type] = lj;
    }
    out["Limits"] = limits;
  }
  json handlers = json::object();
  for (const auto& [type, h] : c.handlers) {
    json hj = {{"command", h.command}, {"env", h.env}, {"workingDirectory", h.working_directory}};
    if (h.timeout) hj["timeout"] = ts(*h.timeout);
    if (h.max_attempts) hj["maxAttempts"] = *h.max_attempts;
    handlers[type] = hj;
  }
  out["Handlers"] = handlers;
  return out.dump(2);
}

}  // namespace ergon
