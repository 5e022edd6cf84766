// ergon jobs retry | delete — repair jobs: by id, or every job a filter matches.
//
//   ergon jobs retry ID...                                  Failed/Cancelled jobs run again
//   ergon jobs retry --status failed --type T --all-matching   every match (bulk)
//   ergon jobs delete ID...                                 any job that is not Running
//   ergon jobs delete --status completed --until 7d --all-matching
//
// Ids and a filter are exclusive; a filter acts only with --all-matching, so a forgotten id
// never turns into a bulk action. Every id is checked before anything changes. Each change is
// written to the audit log.
#include <iostream>

#include "common.h"

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

// Why a job was left alone, for the message.
std::string refusal(Verb verb, const JobRecord& r) {
  if (verb == Verb::kDelete) return "it is Running (cancel it first)";
  if (r.status == JobStatus::kFailed || r.status == JobStatus::kCancelled) {
    return "another job holds its unique key '" + r.unique_key.value_or("") + "'";
  }
  return "it is " + std::string(to_string(r.status)) +
         "; only Failed or Cancelled jobs are retried";
}

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
  if (verb == Verb::kDelete && a.all_matching && !filter_given(a.filter)) {
    throw CLI::ValidationError(name,
                               "delete --all-matching needs at least one filter (e.g. --status "
                               "completed); it would delete every job");
  }
  std::vector<JobId> ids;
  for (const auto& text : a.ids) ids.push_back(parse_job_id_arg(text));
  JobFilter filter = make_filter(a.filter, Clock::system().now());

  auto store = open_existing(database_url(g));
  JobRunner runner(store);
  if (a.all_matching) {
    int n = verb == Verb::kRetry ? runner.retry_jobs(filter) : runner.delete_jobs(filter);
    audit(store, name, describe(filter), std::to_string(n) + " jobs");
    if (a.json) {
      std::cout << nlohmann::json{{"action", name}, {"filter", describe(filter)}, {done, n}}.dump()
                << "\n";
    } else {
      std::cout << done << " " << n << (n == 1 ? " job" : " jobs") << " (" << describe(filter)
                << ")\n";
    }
    if (n == 0) throw Error(ErrorCode::kNotFound, "no job matched " + describe(filter));
    return;
  }
  // One by one: report each; the exit status is the worst outcome.
  int status = kExitOk;
  nlohmann::json results = nlohmann::json::array();
  for (const auto& id : ids) {
    std::string outcome;
    bool changed = false;
    try {
      changed = verb == Verb::kRetry ? runner.retry_job(id) : runner.delete_job(id);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
      outcome = "not found";
      status = std::max(status, kExitNotFound);
      std::cerr << "ergon: no job with id " << id.to_string() << "\n";
    }
    if (changed) {
      audit(store, name, id.to_string());
      outcome = done;
      if (!a.json) std::cout << id.to_string() << " " << done << "\n";
    } else if (auto r = runner.get_job(id); outcome.empty() && r) {
      outcome = "refused";
      status = std::max(status, kExitError);
      std::cerr << "ergon: " << id.to_string() << " not " << done << ": " << refusal(verb, *r)
                << "\n";
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
