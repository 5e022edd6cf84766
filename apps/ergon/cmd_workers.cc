// ergon workers list — the registered worker processes and what they run.
#include <iostream>

#include "common.h"

namespace ergon::cli {

void register_workers(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("workers", "inspect worker processes");
  cmd->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list registered workers and their running jobs");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    JobRunner runner(open_for_reading(database_url(g)));
    auto workers = runner.list_workers();
    auto running = runner.list_jobs({.status = JobStatus::kRunning, .limit = 10000});
    auto jobs_of = [&](const std::string& id) {
      std::vector<const JobRecord*> out;
      for (const auto& r : running) {
        if (r.worker_id == id) out.push_back(&r);
      }
      return out;
    };
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& w : workers) {
        nlohmann::json ids = nlohmann::json::array();
        for (const auto* r : jobs_of(w.id)) ids.push_back(r->id.to_string());
        out.push_back({{"id", w.id},
                       {"name", w.name},
                       {"host", w.host},
                       {"pid", w.pid},
                       {"boot_id", w.boot_id},
                       {"pid_namespace", w.pid_namespace},
                       {"process_start", w.process_start},
                       {"started_at", format_timestamp(w.started_at)},
                       {"heartbeat_at", format_timestamp(w.heartbeat_at)},
                       {"running_jobs", ids}});
      }
      print_json(out);
      return;
    }
    // The name as well as the id: two live workers may share a name (replicas of one config).
    std::printf("%-40s %-20s %-20s %7s  %-20s  %-20s  %s\n", "ID", "NAME", "HOST", "PID", "STARTED",
                "HEARTBEAT", "RUNNING");
    for (const auto& w : workers) {
      std::printf("%-40s %-20s %-20s %7d  %-20s  %-20s  %zu\n", printable(w.id).c_str(),
                  printable(w.name).c_str(), printable(w.host).c_str(), w.pid,
                  short_time(w.started_at).c_str(), short_time(w.heartbeat_at).c_str(),
                  jobs_of(w.id).size());
    }
  });
}

}  // namespace ergon::cli
