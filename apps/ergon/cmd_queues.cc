// ergon queues list|pause|resume — queues as the whole cluster sees them (docs/flow-control.md).
#include <iostream>

#include "common.h"
#include "ops/queues.h"
#include "ops/render.h"

namespace ergon::cli {

void register_queues(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("queues", "list, pause and resume queues (cluster-wide)");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "queues with jobs waiting or running, or paused");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    auto queues = ops::Queues(open_for_reading(database_url(g))).list();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& q : queues) out.push_back(ops::queue_to_json(q));
      print_json(out);
      return;
    }
    std::printf("%-30s %-8s %10s %10s\n", "QUEUE", "STATE", "PENDING", "RUNNING");
    for (const auto& q : queues) {
      std::printf("%-30s %-8s %10lld %10lld\n", printable(q.name).c_str(),
                  q.paused ? "paused" : "running", static_cast<long long>(q.pending),
                  static_cast<long long>(q.running));
    }
  });

  for (bool pause : {true, false}) {
    auto name = std::make_shared<std::string>();
    auto* sub = cmd->add_subcommand(pause ? "pause" : "resume",
                                    pause ? "start no more jobs from QUEUE, on any worker"
                                          : "let workers start jobs from QUEUE again");
    sub->add_option("queue", *name, "queue name")->required();
    sub->callback([&g, name, pause] {
      ops::Queues queues(open_existing(database_url(g)));
      require_audited(pause ? queues.pause(*name, cli_actor()) : queues.resume(*name, cli_actor()));
      std::cout << "queue " << *name << (pause ? " paused" : " resumed") << "\n";
    });
  }
}

}  // namespace ergon::cli
