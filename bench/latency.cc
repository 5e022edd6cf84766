// ergon-latency: enqueue-to-start latency into an idle worker.
//
//   ergon-latency --db URL [--jobs N] [--gap-ms MS]
//
// One worker waits with a 10 s polling interval, so only wake-ups can start a job quickly. The
// jobs are enqueued one at a time, each after the previous one started and a short gap (so the
// worker is idle again), through a second Store object: on PostgreSQL that is another pool of
// connections, and the wake-up travels through NOTIFY and the worker's LISTEN connection, as
// it would from another process. (On SQLite two stores in one process share no notifier, so
// there the enqueue goes through the worker's own store: the in-process wake-up.) Prints the
// latency percentiles as a table and as one JSON line.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ergon/ergon.h"

namespace {

struct Noop {
  static constexpr std::string_view kJobType = "bench_noop";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Noop, n)

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  int jobs = 200;
  int gap_ms = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) {
      url = argv[++i];
    } else if (a == "--jobs" && i + 1 < argc) {
      jobs = std::atoi(argv[++i]);
    } else if (a == "--gap-ms" && i + 1 < argc) {
      gap_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: ergon-latency --db URL [--jobs N] [--gap-ms MS]\n");
      return 2;
    }
  }
  if (url.empty() || jobs < 1 || gap_ms < 0) {
    std::fprintf(stderr, "usage: ergon-latency --db URL [--jobs N] [--gap-ms MS]\n");
    return 2;
  }
  try {
    auto worker_store = ergon::open_store(url);
    bool sqlite = url.starts_with("sqlite:");
    auto producer_store = sqlite ? worker_store : ergon::open_store(url);

    std::mutex mu;
    std::condition_variable cv;
    int started = 0;
    std::chrono::steady_clock::time_point started_at;
    ergon::HandlerRegistry handlers;
    handlers.add<Noop>([&](const Noop&, ergon::JobContext&) {
      auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(mu);
      started_at = now;
      ++started;
      cv.notify_all();
    });
    ergon::WorkerOptions o;
    o.max_concurrent_jobs = 4;
    o.polling_interval = std::chrono::seconds(10);
    o.run_scheduler = false;
    ergon::JobsWorker worker(worker_store, std::move(handlers), o);
    worker.start();
    ergon::JobRunner runner(producer_store);
    // Let the worker reach its idle wait (and, on PostgreSQL, its LISTEN) before measuring.
    runner.start_job(Noop{-1});
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return started == 1; });
    }

    std::vector<double> ms;
    for (int i = 0; i < jobs; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      auto t0 = std::chrono::steady_clock::now();
      runner.start_job(Noop{i});
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return started == i + 2; })) {
        std::fprintf(stderr, "ergon-latency: job %d did not start within 30 s\n", i);
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(started_at - t0).count());
    }
    worker.stop();

    double p50 = percentile(ms, 0.50), p90 = percentile(ms, 0.90), p99 = percentile(ms, 0.99);
    double max = *std::max_element(ms.begin(), ms.end());
    std::printf("enqueue-to-start latency into an idle worker (%s, %d jobs)\n",
                sqlite ? "sqlite, in-process wake-up" : "postgresql, LISTEN/NOTIFY", jobs);
    std::printf("  p50 %.3f ms   p90 %.3f ms   p99 %.3f ms   max %.3f ms\n", p50, p90, p99, max);
    std::printf(
        "{\"bench\":\"latency\",\"store\":\"%s\",\"jobs\":%d,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
        sqlite ? "sqlite" : "postgresql", jobs, p50, p90, p99, max);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ergon-latency: %s\n", e.what());
    return 1;
  }
  return 0;
}
