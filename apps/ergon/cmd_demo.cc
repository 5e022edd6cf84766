// ergon demo — the embedded demo: a SQLite file, jobs that report progress (shown live), a
// flaky job that succeeds on its third attempt, a broken one that fails for good, a summary.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include "common.h"
#include "send_email_job.h"

namespace ergon::cli {
namespace {

struct ResizeImageJob {
  static constexpr std::string_view kJobType = "resize_image";
  std::string image;
  int width = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ResizeImageJob, image, width)

struct SyncInventoryJob {  // fails twice (a supplier API that is down), then succeeds
  static constexpr std::string_view kJobType = "sync_inventory";
  std::string supplier;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SyncInventoryJob, supplier)

struct ChargeCardJob {  // always fails: shows retries running out
  static constexpr std::string_view kJobType = "charge_card";
  std::string card;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeCardJob, card)

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::atomic<bool> g_interrupted{false};

std::string bar(int percent) {
  int filled = percent / 5;
  return "[" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(20 - filled), '.') + "]";
}

std::string line_for(const JobRecord& r) {
  char buf[256];
  std::string msg = r.progress_message.value_or("");
  if (r.status == JobStatus::kPending && r.attempt > 0) msg = "waiting to retry";
  std::snprintf(buf, sizeof buf, "%-15s %-9s try %d  %s %3d%%  %s", r.job_type.c_str(),
                std::string(to_string(r.status)).c_str(), r.attempt,
                bar(r.progress_percent.value_or(0)).c_str(), r.progress_percent.value_or(0),
                msg.substr(0, 40).c_str());
  return buf;
}

}  // namespace

void register_demo(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("demo", "run the embedded demo on a SQLite file");
  auto exit_when_done = std::make_shared<bool>(false);
  cmd->add_flag("--exit-when-done", *exit_when_done,
                "exit once every demo job has reached a final state");
  cmd->callback([&g, exit_when_done] {
    std::string url = database_url(g, std::string("sqlite:ergon-demo.db"));
    if (g.db.empty() && url == "sqlite:ergon-demo.db") {
      // The default demo file is the demo's own: start from scratch each time.
      for (const char* f : {"ergon-demo.db", "ergon-demo.db-wal", "ergon-demo.db-shm"}) {
        std::filesystem::remove(f);
      }
    }
    auto store = open_store(url);  // creates the file and the schema

    HandlerRegistry handlers;
    handlers.add<SendEmailJob>(std::make_shared<SendEmailJobHandler>(
        [](const SendEmailJob&) { pause_ms(1200); }));  // a slow SMTP server
    handlers.add<ResizeImageJob>([](const ResizeImageJob& job, JobContext& ctx) {
      for (int p = 0; p <= 100; p += 10) {
        ctx.report_progress("resizing " + job.image + " to " + std::to_string(job.width) + "px", p);
        ctx.throw_if_stop_requested();
        pause_ms(180);
      }
    });
    handlers.add<SyncInventoryJob>([](const SyncInventoryJob& job, JobContext& ctx) {
      ctx.report_progress("contacting " + job.supplier, 10);
      pause_ms(300);
      if (ctx.attempt() < 3) throw std::runtime_error(job.supplier + " API returned 503");
      ctx.report_progress("inventory synced", 100);
    });
    handlers.add<ChargeCardJob>(
        [](const ChargeCardJob&, JobContext& ctx) {
          ctx.report_progress("charging", 50);
          pause_ms(200);
          throw std::runtime_error("card declined");
        },
        JobTypeOptions{.max_attempts = 3});

    WorkerOptions options;
    options.max_concurrent_jobs = 4;
    options.retry_base_delay = std::chrono::milliseconds(500);
    options.retry_max_delay = std::chrono::seconds(5);
    options.shutdown_timeout = std::chrono::seconds(5);
    JobsWorker worker(store, std::move(handlers), options);

    JobRunner runner(store);
    std::vector<JobId> ids;
    ids.push_back(runner.start_job(
        SendEmailJob{"user@example.com", "Welcome!", "Thank you for registering!"}));
    ids.push_back(runner.start_job(ResizeImageJob{"beach.jpg", 1024}));
    ids.push_back(runner.start_job(ResizeImageJob{"mountain.png", 640}));
    ids.push_back(runner.start_job(SyncInventoryJob{"acme-supplies"}));
    ids.push_back(runner.start_job(ChargeCardJob{"4000-0000-0000-0002"}));
    ids.push_back(runner.start_job(SendEmailJob{"ops@example.com", "Daily report", "..."},
                                   JobOptions{.delay = std::chrono::seconds(2)}));

    std::cout << "Ergon demo: " << ids.size() << " jobs in " << url << ", worker "
              << worker.worker_id() << "\n\n";
    std::signal(SIGINT, [](int) { g_interrupted = true; });
    worker.start();

    bool tty = isatty(STDOUT_FILENO);
    std::map<JobId, std::string> shown;
    bool first = true;
    auto all_final = [&] {
      for (const auto& id : ids) {
        auto r = runner.get_job(id);
        if (!r || !is_final(r->status)) return false;
      }
      return true;
    };
    // The display reads the database, as any other process could: what you see is stored.
    while (!g_interrupted) {
      std::vector<std::string> lines;
      for (const auto& id : ids) lines.push_back(line_for(*runner.get_job(id)));
      if (tty) {
        if (!first) std::cout << "\x1b[" << lines.size() << "A";
        for (const auto& l : lines) std::cout << "\x1b[2K" << l << "\n";
      } else {
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (shown[ids[i]] != lines[i]) std::cout << lines[i] << "\n";
          shown[ids[i]] = lines[i];
        }
      }
      std::cout.flush();
      first = false;
      if (all_final()) {
        if (*exit_when_done) break;
        static bool hinted = false;
        if (!hinted) std::cout << "\nAll demo jobs finished; Ctrl-C to exit.\n";
        hinted = true;
      }
      pause_ms(100);
    }
    worker.stop();

    std::cout << "\nSummary\n";
    int completed = 0, failed = 0;
    for (const auto& id : ids) {
      auto r = *runner.get_job(id);
      completed += r.status == JobStatus::kCompleted;
      failed += r.status == JobStatus::kFailed;
      std::printf("  %s  %-15s %-9s after %d attempt%s%s%s\n", r.id.to_string().c_str(),
                  r.job_type.c_str(), std::string(to_string(r.status)).c_str(), r.attempt,
                  r.attempt == 1 ? "" : "s", r.error_message ? "  last error: " : "",
                  r.error_message.value_or("").c_str());
    }
    std::printf("\n%d completed, %d failed (as intended: charge_card always fails).\n", completed,
                failed);
    std::printf("Inspect them: ergon jobs list --db %s\n", url.c_str());
    if (*exit_when_done && !all_final()) throw Error(ErrorCode::kStore, "demo interrupted");
  });
}

}  // namespace ergon::cli
