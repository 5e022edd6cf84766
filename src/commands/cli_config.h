// commands/cli_config.h — the configuration file as the `ergon` CLI reads it: the library's
// sections (ergon/config.h: Database, JobsWorker, Messaging) and the CLI's own:
//
//   {
//     ...the library's sections...,
//     "Logging": { "Format": "json", "Level": "info" },          (optional)
//     "Dashboard": { "Listen": "127.0.0.1:8080", "Token": "", "ReadOnly": false },  (optional)
//     "Limits": { "resize": { "MaxRunning": 2, "RateLimit": 10, "RatePeriod": "00:00:01" } },
//     "Handlers": {
//       "resize": { "command": ["./resize.sh", "--fast"], "timeout": "00:05:00",
//                   "env": {"LANG": "C"}, "workingDirectory": "/srv", "maxAttempts": 3 }
//     }
//   }
//
// One pass over the file reads both, and one report lists every error of both (ergon/config.h's
// rules: unknown keys are errors, every error names its key's path). Environment overrides: the
// library's, and Handlers__TYPE__key, Handlers__TYPE__env__NAME, Logging__Key, Dashboard__Key
// (Limits has none). docs/configuration.md lists every key.
//
// Values are plain aggregates; copy them freely.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/config.h"
#include "ergon/logging.h"
#include "ergon/store.h"

namespace ergon::commands {

// A "Handlers" entry: the external command that handles a job type (command_handler.h).
struct CommandHandlerConfig {
  std::vector<std::string> command;  // argv; argv[0] is looked up in PATH if it has no '/'
  std::optional<Duration> timeout;   // the process group is killed when it runs longer
  std::map<std::string, std::string> env;
  std::string working_directory;
  std::optional<int> max_attempts;
};

// The "Dashboard" section: `ergon worker` serves the dashboard and /metrics next to the worker
// (docs/dashboard.md). Listen is "ADDR:PORT"; a Token is required off loopback.
struct DashboardConfig {
  std::string listen;
  std::string token;
  bool read_only = false;
};

// The library's configuration (database, worker) and the CLI's sections.
struct CliConfig : Config {
  LogOptions logging;                        // "Logging": {"Format": "json", "Level": "info"}
  std::optional<DashboardConfig> dashboard;  // "Dashboard": {"Listen": "127.0.0.1:8080"}
  std::map<std::string, CommandHandlerConfig> handlers;  // by job type
  // "Limits": {"TYPE": {"MaxRunning": 2, "RateLimit": 10, "RatePeriod": "00:00:01",
  // "PerGroup": false}}: cluster-wide limits per job type that `ergon worker` sets when it
  // starts (JobRunner::set_type_limit; docs/flow-control.md).
  std::vector<TypeLimit> limits;
};

// The process's variables named JobsWorker__*, Messaging__*, Handlers__*, Logging__* or
// Dashboard__* (any case).
ConfigEnvironment cli_config_environment();

// As parse_config and load_config_file (ergon/config.h), with the CLI's sections; the file is
// read with cli_config_environment() unless `env` is given.
CliConfig parse_cli_config(std::string_view json_text, const ConfigEnvironment& env = {});
CliConfig load_cli_config_file(const std::string& path);
CliConfig load_cli_config_file(const std::string& path, const ConfigEnvironment& env);

// As config_to_json, with the CLI's sections (the dashboard's Token masked).
std::string cli_config_to_json(const CliConfig& config);

}  // namespace ergon::commands
