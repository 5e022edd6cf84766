// The dashboard on a real SQLite database with a worker running, for the browser test
// (browser_test.js): seeds jobs, starts a worker and a dashboard on 127.0.0.1 (a free port),
// and prints what the test needs, one "KEY value" line each:
//   URL http://127.0.0.1:PORT/
//   FAILED_JOB <id>     failed with an HTML-looking error; succeeds when retried
//   PROGRESS_JOB <id>   running, at 10%; each "advance" line on stdin moves it 10% further
//   READY
// End of stdin stops everything. Time is driven by the test (stdin), never by sleeps.
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <stop_token>

#include "ergon/dashboard.h"
#include "ergon/ergon.h"
#include "ergon/metrics.h"

namespace {

using namespace std::chrono_literals;

const std::string kEvil = "<img src=x onerror=alert(1)>";

std::mutex mu;
std::condition_variable_any cv;
int advances = 0;          // "advance" lines read; guarded by mu
bool failed_once = false;  // guarded by mu
int progress_at = 0;       // last percent reported; guarded by mu
int failures = 0;          // guarded by mu

void wait_until(const std::function<bool()>& done) {
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, 60s, done)) {
    std::cerr << "e2e_server: timed out waiting for the worker\n";
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dashboard_e2e_server sqlite:PATH\n";
    return 2;
  }
  auto store = ergon::open_store(argv[1]);
  ergon::JobRunner runner(store);
  ergon::HandlerRegistry handlers;
  handlers.add_raw("send-email", [](std::string_view, ergon::JobContext& ctx) {
    ctx.report_progress("sent", 100);
  });
  handlers.add_raw("charge-card",
                   [](std::string_view, ergon::JobContext& ctx) {
                     std::lock_guard lock(mu);
                     if (!failed_once) {
                       failed_once = true;
                       ++failures;
                       cv.notify_all();
                       throw ergon::NonRetryableError(kEvil + " card declined");
                     }
                     ctx.set_result({{"charged", 1042}, {"note", kEvil}});
                   },
                   {.max_attempts = 1});
  handlers.add_raw("encode-video", [](std::string_view, ergon::JobContext& ctx) {
    for (int p = 10; p <= 100; p += 10) {
      ctx.report_progress("encoding segment " + std::to_string(p / 10) + " of 10", p);
      std::unique_lock lock(mu);
      progress_at = p;
      cv.notify_all();
      if (p == 100) break;
      const int need = p / 10;  // the n-th advance moves past n*10 %
      if (!cv.wait(lock, ctx.stop_token(), [&] { return advances >= need; })) return;
    }
  });

  // History for the pages to show: finished mail in two queues, a delayed job, a schedule.
  for (int i = 0; i < 8; ++i) {
    runner.start_job_raw(
        "send-email",
        R"({"to":"user)" + std::to_string(i) + R"(@example.com","template":"welcome"})",
        {.queue = i % 3 == 0 ? "emails-bulk" : "emails"});
  }
  runner.start_job_raw("send-email", R"({"to":"later@example.com"})",
                       {.delay = std::chrono::duration_cast<ergon::Duration>(1h)});
  runner.add_or_update_scheduled_job_raw(
      "send-email", R"({"to":"ops@example.com","template":"digest"})", "0 7 * * 1-5",
      {.name = "weekday-digest", .time_zone = "Europe/Berlin"});
  const ergon::JobId failed = runner.start_job_raw(
      "charge-card", R"({"order":1042,"note":")" + kEvil + R"("})", {.queue = "payments"});

  auto metrics = std::make_shared<ergon::JobMetrics>();
  ergon::WorkerOptions wo;
  wo.max_concurrent_jobs = 4;
  wo.polling_interval = 100ms;
  wo.progress_interval = 50ms;
  wo.heartbeat_interval = 1s;
  wo.worker_name = "e2e-worker";
  wo.on_event = ergon::metrics_observer(metrics);
  ergon::JobsWorker worker(store, std::move(handlers), wo);
  worker.start();
  wait_until([] { return failures >= 1; });

  const ergon::JobId progress =
      runner.start_job_raw("encode-video", R"({"file":"talk.mp4"})", {.queue = "media"});
  wait_until([] { return progress_at >= 10; });

  ergon::Dashboard dashboard(store, {.port = 0, .metrics = metrics});
  dashboard.start();
  std::cout << "URL " << dashboard.url() << "\nFAILED_JOB " << failed.to_string()
            << "\nPROGRESS_JOB " << progress.to_string() << "\nREADY" << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "advance") {
      std::lock_guard lock(mu);
      ++advances;
      cv.notify_all();
    }
  }
  dashboard.stop();
  worker.stop();
  return 0;
}
