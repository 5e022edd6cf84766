// ergon jobs wait ID — wait for a job to end and print its result; also `enqueue --wait`.
#include <cstdio>
#include <iostream>

#include "common.h"
#include "ops/render.h"

namespace ergon::cli {

int wait_and_print(const std::shared_ptr<Store>& store, const JobId& id, Duration timeout) {
  JobRunner runner(store);
  std::optional<JobRecord> job = runner.wait(id, timeout);
  if (!job) {
    std::optional<JobRecord> now = runner.get_job(id);
    std::cerr << "ergon: job " << id.to_string() << " is still "
              << (now ? std::string(to_string(now->status)) : std::string("gone")) << " after "
              << format_timespan(timeout) << "\n";
    return kExitTimedOut;
  }
  if (job->status == JobStatus::kCompleted) {
    // The result alone on stdout, for a script to read: `null` when the job returned nothing.
    print_json(job->result ? ops::job_to_json(*job)["result"] : nlohmann::json(nullptr));
    return kExitOk;
  }
  std::cerr << "ergon: job " << id.to_string() << " " << to_string(job->status);
  if (job->error_message) std::cerr << ": " << printable(*job->error_message);
  std::cerr << "\n";
  return kExitError;
}

void register_jobs_wait(CLI::App* jobs, Globals& g) {
  struct Args {
    std::string id;
    std::string timeout = "1h";
  };
  auto a = std::make_shared<Args>();
  auto* cmd = jobs->add_subcommand("wait", "wait for a job to end and print its result");
  cmd->add_option("id", a->id, "job id")->required();
  cmd->add_option("--timeout", a->timeout, "give up after this long (default 1h)");
  cmd->callback([&g, a] {
    JobId id = parse_job_id_arg(a->id);
    Duration timeout = parse_cli_duration(a->timeout, "--timeout");
    int status = wait_and_print(open_for_reading(database_url(g)), id, timeout);
    if (status != kExitOk) throw CLI::RuntimeError(status);
  });
}

}  // namespace ergon::cli
