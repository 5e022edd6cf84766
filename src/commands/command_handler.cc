#include "commands/command_handler.h"

#include "commands/command_process.h"

namespace ergon::commands {

HandlerRegistry::Invoker make_command_invoker(CommandHandlerConfig config) {
  return [config = std::move(config)](std::string_view job_data, JobContext& ctx) {
    CommandSpec spec;
    spec.argv = config.command;
    spec.env = config.env;
    spec.env["ERGON_JOB_ID"] = ctx.job_id().to_string();
    spec.env["ERGON_JOB_TYPE"] = std::string(ctx.job_type());
    spec.env["ERGON_ATTEMPT"] = std::to_string(ctx.attempt());
    spec.working_directory = config.working_directory;
    if (config.timeout) {
      spec.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*config.timeout);
    }
    CommandResult r = run_command(
        spec, job_data,
        [&ctx](int percent, std::string_view message) { ctx.report_progress(message, percent); },
        ctx.stop_token());
    if (r.ok()) return;
    if (r.outcome == CommandResult::Outcome::kStopped) throw JobStopped();
    throw CommandFailed(r.describe());
  };
}

void add_command_handlers(HandlerRegistry& registry, const CliConfig& config) {
  for (const auto& [type, handler] : config.handlers) {
    registry.add_raw(type, make_command_invoker(handler), JobTypeOptions{handler.max_attempts});
  }
}

}  // namespace ergon::commands
