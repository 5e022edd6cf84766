// ergon purge — delete finished jobs of one status older than a duration, in batches (each its
// own short transaction, as the worker's pruner does), and record it in the audit log.
#include <iostream>

#include "common.h"
#include "ops/jobs.h"

namespace ergon::cli {

void register_purge(CLI::App& app, Globals& g) {
  struct Args {
    std::string status, older_than;
    int batch = 1000;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("purge", "delete finished jobs older than a duration");
  cmd->add_option("--status", a->status, "Completed, Failed or Cancelled")->required();
  cmd->add_option("--older-than", a->older_than,
                  "finished longer ago than this: 90s, 12h, 7d or hh:mm:ss")
      ->required();
  cmd->add_option("--batch", a->batch, "rows per transaction (1-10000, default 1000)")
      ->check(CLI::Range(1, 10000));
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([&g, a] {
    JobStatus status = parse_status_arg(a->status);
    if (!is_final(status)) {
      throw CLI::ValidationError("--status", "only Completed, Failed or Cancelled jobs are purged");
    }
    Duration age = parse_cli_duration(a->older_than, "--older-than");
    auto result = ops::Jobs(open_existing(database_url(g)))
                      .purge(status, age, a->batch, a->older_than, cli_actor());
    require_audited(result.audited);
    const std::int64_t total = result.purged;
    const TimePoint before = result.finished_before;
    if (a->json) {
      std::cout << nlohmann::json{{"status", to_string(status)},
                                  {"completed_before", format_timestamp(before)},
                                  {"purged", total}}
                       .dump(2)
                << "\n";
      return;
    }
    std::cout << "purged " << total << " " << to_string(status) << (total == 1 ? " job" : " jobs")
              << " finished before " << format_timestamp(before) << "\n";
  });
}

}  // namespace ergon::cli
