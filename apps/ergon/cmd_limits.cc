// ergon limits list|set|remove — cluster-wide concurrency limits per job type
// (docs/flow-control.md).
#include <iostream>

#include "common.h"

namespace ergon::cli {

void register_limits(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("limits", "list, set and remove concurrency limits per job type");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "every limit, with how many of the type run now");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    JobRunner runner(open_existing(database_url(g)));
    auto limits = runner.list_concurrency_limits();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& l : limits) {
        out.push_back(
            {{"job_type", l.job_type}, {"max_running", l.max_running}, {"running", l.running}});
      }
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::printf("%-40s %12s %10s\n", "JOB TYPE", "MAX RUNNING", "RUNNING");
    for (const auto& l : limits) {
      std::printf("%-40s %12d %10lld\n", l.job_type.c_str(), l.max_running,
                  static_cast<long long>(l.running));
    }
  });

  auto type = std::make_shared<std::string>();
  auto max = std::make_shared<int>(0);
  auto* set = cmd->add_subcommand(
      "set", "at most MAX jobs of JOB_TYPE run at once, on all workers together (0: none)");
  set->add_option("job_type", *type, "job type")->required();
  set->add_option("max", *max, "jobs of the type running at once")
      ->required()
      ->check(CLI::NonNegativeNumber);
  set->callback([&g, type, max] {
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    runner.set_concurrency_limit(*type, *max);
    audit(store, "limit.set", *type, std::to_string(*max));
    std::cout << "at most " << *max << " job(s) of type " << *type << " run at once\n";
  });

  auto removed = std::make_shared<std::string>();
  auto* remove = cmd->add_subcommand("remove", "remove the limit of JOB_TYPE");
  remove->add_option("job_type", *removed, "job type")->required();
  remove->callback([&g, removed] {
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    runner.set_concurrency_limit(*removed, std::nullopt);
    audit(store, "limit.remove", *removed);
    std::cout << "no concurrency limit for job type " << *removed << "\n";
  });
}

}  // namespace ergon::cli
