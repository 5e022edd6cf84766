// ergon/config.h — reading the JSON configuration file: the library's sections.
//
//   {
//     "Database": "sqlite:jobs.db",
//     "JobsWorker": {
//       "MaxConcurrentJobs": 8,
//       "PollingInterval": "00:00:01",
//       "ScheduledJobsCheckInterval": "00:01:00",
//       "OrphanedJobsCheckInterval": "00:05:00",
//       "OrphanedJobThreshold": "00:30:00",
//       "ShutdownTimeout": "00:00:30",
//       "RetryBaseDelay": "00:00:01", "RetryMaxDelay": "01:00:00",
//       "DefaultMaxAttempts": 10, "ProgressInterval": "00:00:00.250", "WorkerName": "resizer-1",
//       "PrefetchJobs": 0
//     },
//     "Messaging": {                         (optional; docs/messaging.md)
//       "Transport": "AzureStorageQueues", "ConnectionString": "UseDevelopmentStorage=true",
//       "QueueName": "ergon-jobs", "Relay": true, "Consume": true,
//       "VisibilityTimeout": "00:00:30", "MaxDeliveries": 5,
//       "ReceiveInterval": "00:00:00.200", "RelayInterval": "00:00:00.200"
//     }
//   }
//
// The `ergon` CLI reads the same file with sections of its own besides (Handlers, Limits,
// Logging, Dashboard: src/commands/cli_config.h); to this reader they are unknown keys.
//
// Durations are .NET TimeSpan strings as in the original appsettings.json: "hh:mm:ss",
// "hh:mm:ss.fff" or "d.hh:mm:ss". Unknown keys are errors (a typo must not be ignored), and
// every error names the key's path ("JobsWorker.Messaging.MaxDeliveries: expected an
// integer"); all of a file's errors are reported at once. The Messaging section may also sit
// inside JobsWorker.
//
// Environment overrides, named as .NET names them: JobsWorker__OrphanedJobThreshold=00:02:00,
// JobsWorker__Messaging__MaxDeliveries=3 (or Messaging__MaxDeliveries). They apply after the
// file; each value is read with its key's own type (lists: a JSON array or "a,b"); a bad value
// or an unknown key is an error naming the variable. docs/configuration.md lists every key.
//
// Values are plain aggregates; copy them freely.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ergon/options.h"

namespace ergon {

struct Config {
  std::optional<std::string> database{};  // a store URL
  WorkerOptions worker{};                 // "JobsWorker", with "Messaging" in worker.messaging
};

// Environment variables (name, value) that override configuration keys.
using ConfigEnvironment = std::vector<std::pair<std::string, std::string>>;
// The process's variables named JobsWorker__* or Messaging__* (any case).
ConfigEnvironment config_environment();

// Throw Error(kConfig) with the offending key (or variable) and value in the message; several
// errors come as "N errors:" and one indented line each.
Config parse_config(std::string_view json_text);  // no environment overrides
Config parse_config(std::string_view json_text, const ConfigEnvironment& env);
// The file (at most 1 MiB, one JSON document, no NUL byte), then config_environment().
Config load_config_file(const std::string& path);
Config load_config_file(const std::string& path, const ConfigEnvironment& env);

// The effective configuration as JSON text, in the file's shape, every key present (defaults
// included); secrets masked (a database URL's password, a connection string's AccountKey).
std::string config_to_json(const Config& config);

// "hh:mm:ss", "hh:mm:ss.fffffff", "d.hh:mm:ss[.f]"; negative spans and spans longer than
// .NET's TimeSpan.MaxValue (10675199.02:48:05.4775807) throw Error(kConfig).
Duration parse_timespan(std::string_view text);
// The inverse, for messages: "00:01:30", "1.00:00:00", "00:00:00.250".
std::string format_timespan(Duration d);

}  // namespace ergon
