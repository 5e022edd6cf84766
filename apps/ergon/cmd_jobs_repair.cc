// ergon jobs retry | delete — repair jobs: by id, or every job a filter matches.
//
//   ergon jobs retry ID...                                  Failed/Cancelled jobs run again
//   ergon jobs retry --status failed --type T --all-matching   every match (bulk)
//   ergon jobs delete ID...                                 any job that is not Running
//   ergon jobs delete --status completed --until 7d --all-matching
//
// Ids and a filter are exclusive; a filter acts only with --all-matching, and --all-matching
// only with a filter, so that neither a forgotten id nor a forgotten filter turns into "every
// job". Every id is checked before anything changes. Each change is written to the audit log.
#include <iostream>

#include "common.h"
#include "ops/jobs.h"

namespace ergon::cli {
namespace {

struct RepairArgs {
  std::vector<std::string> ids;
  FilterArgs filter;
  bool all_matching = false;
  bool json = false;
};

bool filter_given(const FilterArgs& f) {
  return !(f.status.empty() && f.type.empty() && f.queue.empty() && f.since.empty() &&
           f.until.empty() && f.text.empty() && f.before.empty());
}

enum class Verb { kRetry, kDelete };

void run(Globals& g, const RepairArgs& a, Verb verb) {
  const char* name = verb == Verb::kRetry ? "retry" : "delete";
  const char* done = verb == Verb::kRetry ? "retried" : "deleted";
  // Check the whole command line before opening anything.
  if (!a.ids.empty() && (filter_given(a.filter) || a.all_matching)) {
    throw CLI::ValidationError(name, "give job ids or a filter with --all-matching, not both");
  }
  if (a.ids.empty() && !a.all_matching) {
    throw CLI::ValidationError(name, filter_given(a.filter)
                                         ? "a filter acts on every matching job: add "
                                           "--all-matching to mean it"
                                         : "give job ids, or a filter with --all-matching");
  }
  if (a.all_matching && !filter_given(a.filter)) {
    throw CLI::ValidationError(name, std::string(name) +
                                         " --all-matching needs at least one filter (e.g. "
                                         "--status " +
                                         (verb == Verb::kRetry ? "failed" : "completed") +
                                         "); it would " + name + " every job");
  }
  std::vector<JobId> ids;
  for (const auto& text : a.ids) ids.push_back(parse_job_id_arg(text));
  JobFilter filter = make_filter(a.filter, Clock::system().now());

  ops::Jobs jobs(open_existing(database_url(g)));
  if (a.all_matching) {
    auto change = verb == Verb::kRetry ? jobs.retry_matching(filter, cli_actor())
                                       : jobs.delete_matching(filter, cli_actor());
    require_audited(change.audited);
    const int n = change.count;
    if (a.json) {
      std::cout << nlohmann::json{{"action", name}, {"filter", change.filter}, {done, n}}.dump()
                << "\n";
    } else {
      std::cout << done << " " << n << (n == 1 ? " job" : " jobs") << " (" << change.filter
                << ")\n";
    }
    if (n == 0) throw Error(ErrorCode::kNotFound, "no job matched " + change.filter);
    return;
  }
  // One by one: report each; the exit status is the worst outcome.
  int status = kExitOk;
  nlohmann::json results = nlohmann::json::array();
  for (const auto& id : ids) {
    auto change =
        verb == Verb::kRetry ? jobs.retry_job(id, cli_actor()) : jobs.delete_job(id, cli_actor());
    std::string outcome;
    switch (change.change) {
      case ops::Change::kDone:
        require_audited(change.audited);
        outcome = done;
        if (!a.json) std::cout << id.to_string() << " " << done << "\n";
        break;
      case ops::Change::kNotFound:
        outcome = "not found";
        status = std::max(status, kExitNotFound);
        std::cerr << "ergon: no job with id " << id.to_string() << "\n";
        break;
      case ops::Change::kRefused:
        outcome = "refused";
        status = std::max(status, kExitError);
        std::cerr << "ergon: " << id.to_string() << " not " << done << ": "
                  << printable(change.refusal) << "\n";
        break;
    }
    results.push_back({{"id", id.to_string()}, {"outcome", outcome}});
  }
  if (a.json) std::cout << results.dump(2) << "\n";
  if (status != kExitOk) throw CLI::RuntimeError(status);
}

void add(CLI::App* jobs, Globals& g, Verb verb) {
  auto a = std::make_shared<RepairArgs>();
  auto* cmd = jobs->add_subcommand(
      verb == Verb::kRetry ? "retry" : "delete",
      verb == Verb::kRetry
          ? "run Failed or Cancelled jobs again (by id, or every match with --all-matching)"
          : "delete jobs that are not Running (by id, or every match with --all-matching)");
  cmd->add_option("ids", a->ids, "job ids");
  add_filter_options(cmd, a->filter);
  cmd->add_flag("--all-matching", a->all_matching, "act on every job the filter matches");
  cmd->add_flag("--json", a->json, "print the outcome as JSON");
  cmd->callback([&g, a, verb] { run(g, *a, verb); });
}

}  // namespace

void register_jobs_repair(CLI::App* jobs, Globals& g) {
  add(jobs, g, Verb::kRetry);
  add(jobs, g, Verb::kDelete);
}

}  // namespace ergon::cli
