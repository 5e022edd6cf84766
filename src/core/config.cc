#include "ergon/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/config_reader.h"
#include "ergon/error.h"

extern char** environ;  // POSIX

namespace ergon {
namespace config {
namespace {

// The most a configuration file may hold; a larger one (or a device that never ends) is refused.
constexpr std::size_t kMaxConfigBytes = 1024 * 1024;

constexpr Key kTopKeys[] = {
    {"Database", Kind::kString}, {"JobsWorker", Kind::kObject}, {"Messaging", Kind::kObject}};
// The sections environment variables may name, besides an extension's.
constexpr const char* kEnvSections[] = {"JobsWorker", "Messaging"};
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
                               {"MaxResultBytes", Kind::kInt},
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
// "QueueLimits": {"mail": 2}. A worker with limits lists the queues it serves, the limited
// ones among them (WorkerOptions::queue_limits says why); the JobsWorker constructor checks it
// too, this names the keys.
void read_queue_limits(Reader& r, const json& j, const std::string& w, WorkerOptions& o) {
  auto l = j.find("QueueLimits");
  if (l == j.end()) return;
  const std::string where = w + ".QueueLimits";
  if (!l->is_object()) {
    r.bad(where, "expected an object of queue names and limits, like {\"mail\": 2}");
    return;
  }
  for (const auto& [queue, value] : l->items()) {
    if (queue.empty() || queue.size() > 100) {
      r.bad(where, "each queue name must be 1 to 100 bytes");
      continue;
    }
    std::size_t errors_before = r.errors.size();
    int max_held = r.integer(*l, where, queue.c_str(), 0, 0, 100000);
    if (r.errors.size() != errors_before) continue;
    o.queue_limits[queue] = max_held;
    if (o.queues.empty()) continue;  // reported once, below
    if (std::find(o.queues.begin(), o.queues.end(), queue) == o.queues.end()) {
      r.bad(where + "." + queue, "queue '" + queue + "' is not in " + w + ".Queues");
    }
  }
  if (!o.queue_limits.empty() && o.queues.empty()) {
    r.bad(where, "needs " + w +
                     ".Queues: list every queue this worker serves, the limited ones too (a worker "
                     "that serves every queue cannot keep a limit)");
  }
}

WorkerOptions read_worker(Reader& r, const json& j) {
  const std::string w = "JobsWorker";
  WorkerOptions o;
  if (!r.check_keys(j, w, kWorkerKeys)) return o;
  o.max_concurrent_jobs = r.integer(j, w, "MaxConcurrentJobs", 0, 0, 10000);
  o.prefetch_jobs = r.integer(j, w, "PrefetchJobs", 0, 0, 100000);
  o.polling_interval = r.timespan(j, w, "PollingInterval", o.polling_interval);
  o.scheduled_jobs_check_interval =
      r.timespan(j, w, "ScheduledJobsCheckInterval", o.scheduled_jobs_check_interval);
  o.orphaned_jobs_check_interval =
      r.timespan(j, w, "OrphanedJobsCheckInterval", o.orphaned_jobs_check_interval);
  o.orphaned_job_threshold = r.timespan(j, w, "OrphanedJobThreshold", o.orphaned_job_threshold);
  o.shutdown_timeout = r.timespan(j, w, "ShutdownTimeout", o.shutdown_timeout);
  o.retry_base_delay = r.timespan(j, w, "RetryBaseDelay", o.retry_base_delay);
  o.retry_max_delay = r.timespan(j, w, "RetryMaxDelay", o.retry_max_delay);
  o.default_max_attempts = r.integer(j, w, "DefaultMaxAttempts", 10, 1, 1000000);
  o.progress_interval = r.timespan(j, w, "ProgressInterval", o.progress_interval);
  o.max_result_bytes = r.integer(j, w, "MaxResultBytes", o.max_result_bytes, 1, 64 << 20);
  o.worker_name = r.string(j, w, "WorkerName");
  o.run_scheduler = r.boolean(j, w, "RunScheduler", o.run_scheduler);
  o.claim_unhandled_types = r.boolean(j, w, "ClaimUnhandledTypes", o.claim_unhandled_types);
  o.misfire_grace = r.timespan(j, w, "MisfireGracePeriod", o.misfire_grace);
  o.heartbeat_interval = r.timespan(j, w, "HeartbeatInterval", o.heartbeat_interval);
  const bool threshold_only =
      j.contains("OrphanedJobThreshold") && !j.contains("HeartbeatInterval");
  o.poison_job_rescues = r.integer(j, w, "PoisonJobRescues", o.poison_job_rescues, 1, 1000);
  o.timeout_grace = r.timespan(j, w, "TimeoutGracePeriod", o.timeout_grace);
  o.completed_jobs_retention =
      r.timespan(j, w, "CompletedJobsRetention", o.completed_jobs_retention);
  o.failed_jobs_retention = r.timespan(j, w, "FailedJobsRetention", o.failed_jobs_retention);
  o.cancelled_jobs_retention =
      r.timespan(j, w, "CancelledJobsRetention", o.cancelled_jobs_retention);
  o.prune_interval = r.timespan(j, w, "PruneInterval", o.prune_interval);
  if (auto q = j.find("Queues"); q != j.end()) {
    if (!q->is_array()) {
      r.bad(w + ".Queues", "expected an array of queue names");
    } else {
      for (const auto& name : *q) {
        if (!name.is_string() || name.get<std::string>().empty() ||
            name.get<std::string>().size() > 100) {
          r.bad(w + ".Queues", "each queue name must be a string of 1 to 100 bytes");
          continue;
        }
        o.queues.push_back(name.get<std::string>());
      }
    }
  }
  read_queue_limits(r, j, w, o);
  if (threshold_only && o.orphaned_job_threshold.count() > 0) {
    // Whoever sets only the threshold gets heartbeats that fit it: at most the default, and at
    // most a third of the threshold, so a job misses two heartbeats before it is an orphan.
    o.heartbeat_interval = std::min(o.heartbeat_interval, o.orphaned_job_threshold / 3);
    if (o.heartbeat_interval.count() == 0) {
      r.bad(w + ".OrphanedJobThreshold", "must be at least 00:00:00.000003");
    }
  } else if (o.heartbeat_interval.count() == 0) {
    r.bad(w + ".HeartbeatInterval", "must be greater than zero");
  } else if (o.heartbeat_interval >= o.orphaned_job_threshold) {
    r.bad(w + ".HeartbeatInterval", "must be shorter than OrphanedJobThreshold");
  }
  if (o.polling_interval.count() == 0) r.bad(w + ".PollingInterval", "must be greater than zero");
  return o;
}

MessagingOptions read_messaging(Reader& r, const json& j, const std::string& w) {
  MessagingOptions m;
  if (!r.check_keys(j, w, kMessagingKeys)) return m;
  m.transport = r.string(j, w, "Transport", m.transport);
  if (m.transport != "AzureStorageQueues") {
    r.bad(w + ".Transport", "unknown transport '" + m.transport + "' (known: AzureStorageQueues)");
  }
  m.connection_string = r.string(j, w, "ConnectionString");
  if (m.connection_string.empty()) r.bad(w + ".ConnectionString", "is required");
  m.queue_name = r.string(j, w, "QueueName", m.queue_name);
  m.relay = r.boolean(j, w, "Relay", m.relay);
  m.consume = r.boolean(j, w, "Consume", m.consume);
  m.visibility_timeout = r.timespan(j, w, "VisibilityTimeout", m.visibility_timeout);
  if (m.visibility_timeout < std::chrono::seconds(1) ||
      m.visibility_timeout > std::chrono::hours(24 * 7)) {
    r.bad(w + ".VisibilityTimeout", "must be between 00:00:01 and 7.00:00:00");
  }
  m.max_deliveries = r.integer(j, w, "MaxDeliveries", m.max_deliveries, 1, 1000);
  m.receive_interval = r.timespan(j, w, "ReceiveInterval", m.receive_interval);
  m.relay_interval = r.timespan(j, w, "RelayInterval", m.relay_interval);
  if (m.receive_interval.count() == 0) r.bad(w + ".ReceiveInterval", "must be greater than zero");
  if (m.relay_interval.count() == 0) r.bad(w + ".RelayInterval", "must be greater than zero");
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

bool known_env_section(std::string_view name, Sections extra) {
  for (Sections list : {Sections(kEnvSections), extra}) {
    for (const char* s : list) {
      if (iequals(name, s)) return true;
    }
  }
  return false;
}

// Applies JobsWorker__Key, JobsWorker__QueueLimits__QUEUE and JobsWorker__Messaging__Key (or
// Messaging__Key) overrides to the file's document, and hands the variables of the extension's
// sections to it. Section and key names match in any case (as .NET's configuration does); queue
// names as written.
void apply_overrides(json& doc, const ConfigEnvironment& env, Reader& r,
                     std::string& messaging_where, Extension* extension) {
  for (const auto& [var, value] : env) {
    auto parts = split_env_name(var);
    auto unknown = [&, v = var](const std::string& what) { r.bad_variable(v, what); };
    if (parts.size() < 2) {
      unknown("not a configuration key (expected Section__Key)");
      continue;
    }
    if (iequals(parts[0], "JobsWorker") && iequals(parts[1], "QueueLimits")) {
      // JobsWorker__QueueLimits__QUEUE=N; the queue name as written.
      if (parts.size() != 3) {
        unknown("expected JobsWorker__QueueLimits__QUEUE");
        continue;
      }
      json converted;
      if (!r.convert(var, value, Kind::kInt, converted)) continue;
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
      r.override_key(var, value, kWorkerKeys, section(doc, "JobsWorker"), "JobsWorker", parts[1]);
    } else if (iequals(parts[0], "Messaging") || iequals(parts[0], "JobsWorker")) {
      bool nested = iequals(parts[0], "JobsWorker");
      if (parts.size() != (nested ? 3u : 2u)) {
        unknown("expected Messaging__Key or JobsWorker__Messaging__Key");
        continue;
      }
      if (nested) messaging_where = "JobsWorker.Messaging";
      r.override_key(var, value, kMessagingKeys, section(doc, "Messaging"), messaging_where,
                     parts.back());
    } else if (extension != nullptr && known_env_section(parts[0], extension->env_sections())) {
      extension->apply_override(r, doc, var, value, parts);
    } else {
      std::string known;
      for (const char* s : kEnvSections) known += (known.empty() ? "" : ", ") + std::string(s);
      if (extension != nullptr) {
        for (const char* s : extension->env_sections()) known += ", " + std::string(s);
      }
      unknown("unknown section '" + parts[0] + "' (known: " + known + ")");
    }
  }
}

[[noreturn]] void throw_all(const std::vector<std::string>& errors) {
  if (errors.size() == 1) throw Error(ErrorCode::kConfig, errors[0]);
  std::string msg = std::to_string(errors.size()) + " errors:";
  for (const auto& e : errors) msg += "\n  " + e;
  throw Error(ErrorCode::kConfig, msg);
}

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

ConfigEnvironment environment(Sections extra_sections) {
  ConfigEnvironment out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    auto first = name.find("__");
    if (first == std::string_view::npos) continue;
    if (known_env_section(name.substr(0, first), extra_sections)) {
      out.emplace_back(std::string(name), std::string(entry.substr(eq + 1)));
    }
  }
  std::sort(out.begin(), out.end());  // a stable order for messages
  return out;
}

Config parse(std::string_view json_text, const ConfigEnvironment& env, Extension* extension) {
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
  // Messaging may sit at the top level or inside JobsWorker (as .NET nests it).
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
  apply_overrides(j, env, r, messaging_where, extension);
  std::vector<Key> top(std::begin(kTopKeys), std::end(kTopKeys));
  if (extension != nullptr) {
    for (const Key& k : extension->sections()) top.push_back(k);
  }
  r.check_keys(j, "", top);
  if (j.contains("Database")) {
    c.database = r.string(j, "", "Database");
    if (c.database->empty() && j["Database"].is_string()) r.bad("Database", "must not be empty");
  }
  if (auto w = j.find("JobsWorker"); w != j.end()) c.worker = read_worker(r, *w);
  if (auto m = j.find("Messaging"); m != j.end()) {
    c.worker.messaging = read_messaging(r, *m, messaging_where);
  }
  if (extension != nullptr) extension->read(r, j);
  if (!r.errors.empty()) throw_all(r.errors);
  return c;
}

Config load_file(const std::string& path, const ConfigEnvironment& env, Extension* extension) {
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
    return parse(text, env, extension);
  } catch (const Error& e) {
    throw Error(ErrorCode::kConfig, path + ": " + e.what());
  }
}

json to_json(const Config& c) {
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
            {"MaxResultBytes", o.max_result_bytes},
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
  return out;
}

}  // namespace config

ConfigEnvironment config_environment() { return config::environment({}); }

Config parse_config(std::string_view json_text) { return parse_config(json_text, {}); }

Config parse_config(std::string_view json_text, const ConfigEnvironment& env) {
  return config::parse(json_text, env, nullptr);
}

Config load_config_file(const std::string& path) {
  return load_config_file(path, config_environment());
}

Config load_config_file(const std::string& path, const ConfigEnvironment& env) {
  return config::load_file(path, env, nullptr);
}

std::string config_to_json(const Config& config) { return config::to_json(config).dump(2); }

}  // namespace ergon
