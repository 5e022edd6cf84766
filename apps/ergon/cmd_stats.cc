// ergon stats — jobs per queue and status, how long the oldest due job has waited, how many
// workers are alive, and the job types no live worker handles: the numbers an operator looks
// at first.
#include <iostream>
#include <map>

#include "common.h"
#include "ops/render.h"
#include "ops/stats.h"

namespace ergon::cli {

void register_stats(CLI::App& app, Globals& g) {
  struct Args {
    std::string alive_within = "1m";
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("stats", "jobs per queue and status, queue age, live workers");
  cmd->add_option("--alive-within", a->alive_within,
                  "a worker is alive if it heartbeated within this (default 1m)");
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([&g, a] {
    Duration alive_within = parse_cli_duration(a->alive_within, "--alive-within");
    ops::Stats stats(open_for_reading(database_url(g)));
    const TimePoint now = stats.now();
    auto counts = stats.job_counts(now);
    const ops::WorkerCounts workers = stats.workers(now, alive_within);
    auto unhandled = stats.unhandled_types(now, alive_within);
    OutboxState outbox = stats.outbox();

    struct Row {
      std::map<JobStatus, std::int64_t> n;
      std::optional<Duration> oldest_due;  // how long the oldest due Pending job has waited
    };
    std::map<std::string, Row> rows;
    for (const auto& c : counts) {
      Row& r = rows[c.queue];
      r.n[c.status] = c.count;
      if (c.oldest_due_run_at) {
        r.oldest_due = std::max(Duration::zero(), elapsed(*c.oldest_due_run_at, now));
      }
    }
    constexpr JobStatus kStatuses[] = {JobStatus::kPending, JobStatus::kRunning,
                                       JobStatus::kCompleted, JobStatus::kFailed,
                                       JobStatus::kCancelled};
    auto seconds = [](Duration d) { return std::chrono::duration<double>(d).count(); };
    if (a->json) {
      nlohmann::json queues = nlohmann::json::array();
      for (const auto& [name, r] : rows) {
        nlohmann::json q = {{"queue", ops::text_json(name)}};
        for (JobStatus s : kStatuses) {
          auto it = r.n.find(s);
          std::string key(to_string(s));
          for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          q[key] = it == r.n.end() ? 0 : it->second;
        }
        q["oldest_due_pending_age_seconds"] =
            r.oldest_due ? nlohmann::json(seconds(*r.oldest_due)) : nlohmann::json(nullptr);
        queues.push_back(std::move(q));
      }
      nlohmann::json waiting = nlohmann::json::array();
      for (const auto& u : unhandled) {
        waiting.push_back({{"job_type", ops::text_json(u.job_type)}, {"pending", u.pending}});
      }
      nlohmann::json out = {
          {"at", format_timestamp(now)},
          {"queues", queues},
          {"workers", {{"registered", workers.registered}, {"alive", workers.alive}}},
          {"unhandled_types", waiting},
          {"outbox", {{"enabled", outbox.enabled}, {"rows", outbox.rows}}}};
      print_json(out);
      return;
    }
    std::printf("%-24s %9s %9s %10s %9s %10s  %s\n", "QUEUE", "PENDING", "RUNNING", "COMPLETED",
                "FAILED", "CANCELLED", "OLDEST DUE");
    for (const auto& [name, r] : rows) {
      auto n = [&](JobStatus s) {
        auto it = r.n.find(s);
        return static_cast<long long>(it == r.n.end() ? 0 : it->second);
      };
      char age[32] = "-";
      if (r.oldest_due) std::snprintf(age, sizeof age, "%.0fs", seconds(*r.oldest_due));
      std::printf("%-24s %9lld %9lld %10lld %9lld %10lld  %s\n", printable(name).c_str(),
                  n(JobStatus::kPending), n(JobStatus::kRunning), n(JobStatus::kCompleted),
                  n(JobStatus::kFailed), n(JobStatus::kCancelled), age);
    }
    std::printf("workers: %zu registered, %d alive (heartbeat within %s)\n", workers.registered,
                workers.alive, a->alive_within.c_str());
    std::printf("messaging outbox: %lld row(s), triggers %s\n", static_cast<long long>(outbox.rows),
                outbox.enabled ? "on" : "off");
    for (const auto& u : unhandled) {
      std::printf("no live worker handles job type %s: %lld pending\n",
                  printable(u.job_type).c_str(), static_cast<long long>(u.pending));
    }
  });
}

}  // namespace ergon::cli
