// ergon enqueue TYPE [JSON] — start a job; prints its id.
#include <iostream>

#include "common.h"

namespace ergon::cli {

void register_enqueue(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("enqueue", "start a job; prints the new job's id");
  struct Args {
    std::string type;
    std::string data = "{}";
    std::string delay;
    std::string run_at;
    int max_attempts = 0;
    std::string queue = "default";
    int priority = 0;
    int count = 1;
    std::string unique_key;
    bool unique_while_running = false;
    std::string unique_period;
    std::string group_key;
    std::vector<std::string> tags;
    std::string meta;
    bool wait = false;
    std::string timeout;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("type", args->type, "job type")->required();
  cmd->add_option("json", args->data, "job data as JSON (default {})");
  cmd->add_option("--delay", args->delay, "run after this long (90s, 5m, hh:mm:ss)");
  cmd->add_option("--run-at", args->run_at, "run at this ISO-8601 instant");
  cmd->add_option("--max-attempts", args->max_attempts, "attempts before the job fails")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--queue", args->queue, "queue name");
  cmd->add_option("--priority", args->priority, "lower runs first (default 0)");
  cmd->add_option("--count", args->count, "enqueue this many copies in one transaction")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--unique-key", args->unique_key,
                  "while a job with this key is pending, print its id instead of adding one");
  cmd->add_flag("--unique-while-running", args->unique_while_running,
                "with --unique-key: also while that job runs");
  cmd->add_option("--unique-period", args->unique_period,
                  "with --unique-key: at most one job with the key per this period (1h, 1d)");
  cmd->add_option("--group", args->group_key,
                  "group key (a tenant, an account): claimed round-robin across groups");
  add_tag_meta_options(cmd, args->tags, args->meta, "the job");
  cmd->add_flag("--wait", args->wait, "wait for the job to end and print its result");
  cmd->add_option("--timeout", args->timeout, "with --wait: give up after this long (default 1h)");
  cmd->callback([&g, args] {
    if (args->wait && args->count != 1) {
      throw CLI::ValidationError("--wait", "waits for one job: not with --count");
    }
    if (!args->wait && !args->timeout.empty()) {
      throw CLI::ValidationError("--timeout", "goes with --wait");
    }
    const Duration timeout = args->timeout.empty() ? Duration(std::chrono::hours(1))
                                                   : parse_cli_duration(args->timeout, "--timeout");
    JobOptions o;
    o.tags = args->tags;
    o.meta = args->meta;
    o.queue = args->queue;
    o.priority = args->priority;
    o.unique_key = args->unique_key;
    o.unique_while_running = args->unique_while_running;
    if (!args->unique_period.empty()) {
      o.unique_period = parse_cli_duration(args->unique_period, "--unique-period");
      if (args->unique_key.empty()) {
        throw CLI::ValidationError("--unique-period", "needs --unique-key");
      }
      if (*o.unique_period < std::chrono::milliseconds(1) ||
          *o.unique_period > std::chrono::hours(24 * 366)) {
        throw CLI::ValidationError("--unique-period", "must be 1ms to 366d");
      }
    }
    o.group_key = args->group_key;
    if (args->max_attempts > 0) o.max_attempts = args->max_attempts;
    if (!args->delay.empty() && !args->run_at.empty()) {
      throw CLI::ValidationError("--delay and --run-at", "give one of them, not both");
    }
    if (!args->delay.empty()) {
      o.delay = parse_cli_duration(args->delay, "--delay");
      if (saturating_add(Clock::system().now(), *o.delay) > kLatestRunTime) {
        throw CLI::ValidationError("--delay", run_time_range_error(args->delay + " from now"));
      }
    }
    if (!args->run_at.empty()) {
      auto t = parse_wide_timestamp(args->run_at);
      if (!t) {
        throw CLI::ValidationError("--run-at", "'" + args->run_at +
                                                   "' is not an ISO-8601 instant, e.g. "
                                                   "2026-12-01T08:00:00Z");
      }
      auto run_at = to_time_point(*t);
      if (!run_at || *run_at < kEarliestRunTime || *run_at > kLatestRunTime) {
        throw CLI::ValidationError("--run-at", run_time_range_error(args->run_at));
      }
      o.run_at = *run_at;
    }
    if (!nlohmann::json::accept(args->data)) {
      throw Error(ErrorCode::kInvalidArgument, "job data is not valid JSON: " + args->data);
    }
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    if (args->count == 1) {
      JobId id = runner.start_job_raw(args->type, args->data, o);
      audit(store, "enqueue", id.to_string(), args->type);
      if (!args->wait) {
        std::cout << id.to_string() << "\n";
        return;
      }
      // The id on stderr: stdout is the result alone.
      std::cerr << id.to_string() << "\n";
      int status = wait_and_print(store, id, timeout);
      if (status != kExitOk) throw CLI::RuntimeError(status);
      return;
    }
    std::vector<std::string> data(static_cast<std::size_t>(args->count), args->data);
    auto ids = runner.start_jobs_raw(args->type, data, o);
    audit(store, "enqueue", args->type, std::to_string(ids.size()) + " jobs");
    for (const auto& id : ids) std::cout << id.to_string() << "\n";
  });
}

}  // namespace ergon::cli
