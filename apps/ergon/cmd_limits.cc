// ergon limits list|set|remove — cluster-wide concurrency and rate limits per job type
// (docs/flow-control.md).
#include <iostream>

#include "common.h"
#include "ops/limits.h"
#include "ops/render.h"

namespace ergon::cli {
namespace {

// "10/1s", "600/1h": a rate limit. Throws CLI::ValidationError naming --rate.
std::pair<int, Duration> parse_rate(const std::string& text) {
  auto slash = text.find('/');
  int n = -1;
  std::size_t used = 0;
  if (slash != std::string::npos) {
    try {
      n = std::stoi(text.substr(0, slash), &used);
    } catch (const std::exception&) {
      used = 0;
    }
  }
  if (slash == std::string::npos || used != slash || n < 0) {
    throw CLI::ValidationError("--rate", "'" + text +
                                             "' is not COUNT/PERIOD (e.g. 10/1s, 600/1h; COUNT "
                                             "at least 0)");
  }
  Duration period = parse_cli_duration(text.substr(slash + 1), "--rate");
  if (period < std::chrono::milliseconds(1) || period > std::chrono::hours(24 * 31)) {
    throw CLI::ValidationError("--rate", "the period must be 1ms to 31d");
  }
  return {n, period};
}

}  // namespace

void register_limits(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("limits", "list, set and remove limits per job type");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "every limit, with how many of the type run now");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    auto limits = ops::Limits(open_for_reading(database_url(g))).list();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& l : limits) out.push_back(ops::limit_to_json(l));
      print_json(out);
      return;
    }
    std::printf("%-40s %12s %14s %9s %10s\n", "JOB TYPE", "MAX RUNNING", "RATE", "PER GROUP",
                "RUNNING");
    for (const auto& l : limits) {
      std::printf("%-40s %12s %14s %9s %10lld\n", printable(l.job_type).c_str(),
                  ops::describe_max_running(l).c_str(), ops::describe_rate(l).c_str(),
                  l.per_group ? "yes" : "no", static_cast<long long>(l.running));
    }
  });

  struct SetArgs {
    std::string type;
    std::optional<int> max;
    std::string rate;
    bool per_group = false;
  };
  auto a = std::make_shared<SetArgs>();
  auto* set = cmd->add_subcommand(
      "set",
      "limit JOB_TYPE on all workers together: at most MAX running at once (0: none) and/or at "
      "most COUNT started per PERIOD (--rate); replaces the type's limits");
  set->add_option("job_type", a->type, "job type")->required();
  set->add_option("max", a->max, "jobs of the type running at once")->check(CLI::NonNegativeNumber);
  set->add_option("--rate", a->rate, "COUNT/PERIOD: at most COUNT started per PERIOD (10/1s)");
  set->add_flag("--per-group", a->per_group,
                "hold the limits for each group key (enqueue --group) on its own");
  set->callback([&g, a] {
    TypeLimit l;
    l.job_type = a->type;
    l.max_running = a->max;
    if (!a->rate.empty()) std::tie(l.rate_limit, l.rate_period) = parse_rate(a->rate);
    l.per_group = a->per_group;
    if (!l.max_running && !l.rate_limit) {
      throw CLI::ValidationError("limits set", "give MAX, --rate COUNT/PERIOD or both");
    }
    auto change = ops::Limits(open_existing(database_url(g))).set(l, cli_actor());
    require_audited(change.audited);
    std::cout << "job type " << l.job_type << ": " << change.description << "\n";
  });

  auto removed = std::make_shared<std::string>();
  auto* remove = cmd->add_subcommand("remove", "remove every limit of JOB_TYPE");
  remove->add_option("job_type", *removed, "job type")->required();
  remove->callback([&g, removed] {
    require_audited(ops::Limits(open_existing(database_url(g))).remove(*removed, cli_actor()));
    std::cout << "no limit for job type " << *removed << "\n";
  });
}

}  // namespace ergon::cli
