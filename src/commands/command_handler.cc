#include "commands/command_handler.h"

#include "commands/command_process.h"
#include "ergon/config.h"

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
    if (r.outcome == CommandResult::Outcome::kStopped) throw JobStopped();
    // `fail` makes any end of the command final: the attempt fails without a retry.
    if (r.fail) {
      std::string why = r.fail->empty() ? r.describe() : *r.fail;
      throw NonRetryableError(r.ok() ? why : why + " (" + r.describe() + ")");
    }
    if (!r.ok()) throw CommandFailed(r.describe());
    if (r.snooze) {
      Duration delay;
      try {
        delay = parse_timespan(*r.snooze);
      } catch (const Error& e) {
        throw CommandFailed("the command's snooze line: " + std::string(e.what()));
      }
      throw Snooze(std::chrono::duration_cast<std::chrono::microseconds>(delay));
    }
    if (r.result) {
      try {
        ctx.set_result_json(*r.result);
      } catch (const Error& e) {
        throw CommandFailed("the command's result line: " + std::string(e.what()));
      }
    }
  };
}

void add_command_handlers(HandlerRegistry& registry, const CliConfig& config) {
  for (const auto& [type, handler] : config.handlers) {
    registry.add_raw(type, make_command_invoker(handler), JobTypeOptions{handler.max_attempts});
  }
}

}  // namespace ergon::commands
