// commands/command_handler.h — a job type handled by an external command (from the config's
// "Handlers" section), as a HandlerRegistry invoker.
//
// The job's job_data goes to the command's stdin; ERGON_JOB_ID, ERGON_JOB_TYPE and
// ERGON_ATTEMPT are set in its environment; stdout lines "progress <percent> <message>" become
// progress reports; exit 0 is success, anything else a failed attempt whose error_message holds
// the exit status and the tail of stderr. A timeout kills the process group. When the worker
// asks the attempt to stop, the process group gets SIGTERM, then SIGKILL. Every process the
// command starts ends with its attempt, and with its worker process (command_supervisor.h).
#pragma once

#include "commands/cli_config.h"
#include "ergon/job.h"

namespace ergon::commands {

// The failure of a command's attempt; its what() is the one-line description.
class CommandFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

HandlerRegistry::Invoker make_command_invoker(CommandHandlerConfig config);

// Registers every handler of `config` in `registry`.
void add_command_handlers(HandlerRegistry& registry, const CliConfig& config);

}  // namespace ergon::commands
