// ergon workers list — the registered worker processes and what they run.
#include <iostream>

#include "common.h"
#include "ops/render.h"
#include "ops/workers.h"

namespace ergon::cli {

void register_workers(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("workers", "inspect worker processes");
  cmd->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list registered workers and their running jobs");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    auto workers = ops::Workers(open_for_reading(database_url(g))).list();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& w : workers) out.push_back(ops::worker_to_json(w));
      print_json(out);
      return;
    }
    // The name as well as the id: two live workers may share a name (replicas of one config).
    std::printf("%-40s %-20s %-20s %7s  %-20s  %-20s  %s\n", "ID", "NAME", "HOST", "PID", "STARTED",
                "HEARTBEAT", "RUNNING");
    for (const auto& v : workers) {
      const WorkerRecord& w = v.worker;
      std::printf("%-40s %-20s %-20s %7d  %-20s  %-20s  %zu\n", printable(w.id).c_str(),
                  printable(w.name).c_str(), printable(w.host).c_str(), w.pid,
                  short_time(w.started_at).c_str(), short_time(w.heartbeat_at).c_str(),
                  v.running.size());
    }
  });
}

}  // namespace ergon::cli
