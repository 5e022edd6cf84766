// ergon jobs list | show | cancel — inspect jobs (retry and delete: cmd_jobs_repair.cc).
#include <iostream>

#include "common.h"
#include "ops/jobs.h"
#include "ops/render.h"

namespace ergon::cli {
namespace {

// The attempt history as a table, oldest first.
void print_attempts(const std::vector<AttemptRecord>& attempts) {
  std::printf("\nattempts:\n");
  if (attempts.empty()) {
    std::printf("  none finished yet\n");
    return;
  }
  std::printf("  %3s  %-24s  %-20s  %10s  %-9s  %s\n", "#", "WORKER", "STARTED", "TOOK", "OUTCOME",
              "ERROR");
  for (const AttemptRecord& a : attempts) {
    const double took = std::chrono::duration<double>(a.finished_at - a.started_at).count();
    char took_text[32];
    std::snprintf(took_text, sizeof took_text, "%.3fs", took);
    std::printf("  %3d  %-24s  %-20s  %10s  %-9s  %s\n", a.attempt, cut(a.worker_id, 24).c_str(),
                short_time(a.started_at).c_str(), took_text,
                std::string(to_string(a.outcome)).c_str(),
                cut(a.error_message.value_or(""), 80).c_str());
  }
}

}  // namespace

void register_jobs(CLI::App& app, Globals& g) {
  auto* jobs = app.add_subcommand("jobs", "inspect and repair jobs");
  jobs->require_subcommand(1);

  struct ListArgs {
    FilterArgs filter;
    int limit = 50;
    bool json = false;
  };
  auto la = std::make_shared<ListArgs>();
  auto* list = jobs->add_subcommand("list", "list jobs, newest first");
  add_filter_options(list, la->filter);
  list->add_option("--limit", la->limit, "at most this many (1-10000)")
      ->check(CLI::Range(1, 10000));
  list->add_flag("--json", la->json, "print JSON");
  list->callback([&g, la] {
    JobFilter f = make_filter(la->filter, Clock::system().now());
    f.limit = la->limit;
    auto page = ops::Jobs(open_for_reading(database_url(g))).list(f);
    if (la->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : page.jobs) out.push_back(ops::job_to_json(r));
      print_json(out);
      return;
    }
    std::printf("%-36s  %-20s  %-9s  %7s  %8s  %-20s  %s\n", "ID", "TYPE", "STATUS", "ATTEMPT",
                "PROGRESS", "CREATED", "ERROR");
    for (const auto& r : page.jobs) {
      std::string progress = r.progress_percent ? std::to_string(*r.progress_percent) + "%" : "-";
      std::printf("%-36s  %-20s  %-9s  %7d  %8s  %-20s  %s\n", r.id.to_string().c_str(),
                  cut(r.job_type, 20).c_str(), std::string(to_string(r.status)).c_str(), r.attempt,
                  progress.c_str(), short_time(r.created_at).c_str(),
                  cut(r.error_message.value_or(""), 60).c_str());
    }
    // Say how to get the next page (stderr keeps stdout a table).
    if (page.next_before_id) {
      std::fprintf(stderr, "more: --before %s\n", page.next_before_id->to_string().c_str());
    }
  });

  auto cancel_id = std::make_shared<std::string>();
  auto* cancel = jobs->add_subcommand("cancel",
                                      "cancel a job (Pending: at once; Running: its "
                                      "worker stops it)");
  cancel->add_option("id", *cancel_id, "job id")->required();
  cancel->callback([&g, cancel_id] {
    JobId id = parse_job_id_arg(*cancel_id);
    auto change = ops::Jobs(open_existing(database_url(g))).cancel_job(id, cli_actor());
    require_audited(change.audited);
    switch (change.outcome) {
      case CancelOutcome::kCancelled:
        std::cout << "cancelled\n";
        break;
      case CancelOutcome::kRequested:
        std::cout << "cancellation requested; its worker stops it\n";
        break;
      case CancelOutcome::kAlreadyFinished:
        std::cout << "already finished; nothing changed\n";
        break;
    }
  });

  struct ShowArgs {
    std::string id;
    bool json = false;
  };
  auto sa = std::make_shared<ShowArgs>();
  auto* show = jobs->add_subcommand("show", "show one job");
  show->add_option("id", sa->id, "job id")->required();
  show->add_flag("--json", sa->json, "print JSON");
  show->callback([&g, sa] {
    JobId id = parse_job_id_arg(sa->id);
    ops::Jobs ops_jobs(open_for_reading(database_url(g)));
    auto r = ops_jobs.get(id);
    if (!r) throw Error(ErrorCode::kNotFound, "no job with id " + sa->id);
    const std::vector<AttemptRecord> attempts = ops_jobs.attempts(id);
    if (sa->json) {
      nlohmann::json out = ops::job_to_json(*r);
      out["attempts"] = ops::attempts_to_json(attempts);
      print_json(out);
      return;
    }
    // As stored: printable() shows each byte that is not UTF-8 as an escape.
    const nlohmann::json fields = ops::job_to_json(*r, ops::Text::kAsStored);
    for (const auto& [key, value] : fields.items()) {
      std::string v = value.is_string() ? value.get<std::string>()
                      : value.is_null()
                          ? "-"
                          : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      std::printf("%-17s %s\n", (key + ":").c_str(), printable(v, true).c_str());
    }
    print_attempts(attempts);
  });

  register_jobs_wait(jobs, g);

  register_jobs_repair(jobs, g);
}

}  // namespace ergon::cli
