// ergon-micro: Google Benchmark micro-benchmarks of the hot code paths, so that a regression
// shows up as a figure (docs/performance.md says how to run and compare them):
//   - the cron evaluator: parsing, and the next occurrence across zones and DST;
//   - JSON job encoding: a job struct to job_data and back, as start_job and the invoker do;
//   - the claim/complete path of the SQLite store on a real file: a claim of N jobs, and
//     their outcomes through job_finish_many (one transaction) or job_finish (one each).
// Nothing here is a test: it prints figures. Run a Release build.
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ergon/cron.h"
#include "ergon/ergon.h"
#include "store/store.h"

namespace {

using namespace std::chrono_literals;
using ergon::cron::CronExpression;
using ergon::cron::TimeZone;

// ---------------------------------------------------------------------------------- cron

void BM_CronParse(benchmark::State& state) {
  const char* exprs[] = {"*/5 * * * *", "0 9-17 * * MON-FRI", "30 2 L * *", "0 0 29 2 *"};
  std::size_t i = 0;
  for (auto _ : state) {
    auto e = CronExpression::parse(exprs[i++ % 4]);
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_CronParse);

// The next occurrence from successive instants (each iteration one minute later), in a zone.
void next_occurrences(benchmark::State& state, const char* expr, const char* zone) {
  auto e = CronExpression::parse(expr);
  TimeZone tz = TimeZone::load(zone);
  auto from = std::chrono::sys_seconds{std::chrono::seconds{1774746000}};  // 2026-03-29 01:00Z
  for (auto _ : state) {
    auto next = e.next(from, tz);
    benchmark::DoNotOptimize(next);
    from += 1min;
  }
}
BENCHMARK_CAPTURE(next_occurrences, every_5_min_utc, "*/5 * * * *", "UTC");
BENCHMARK_CAPTURE(next_occurrences, weekdays_9_to_17_berlin, "0 9-17 * * MON-FRI", "Europe/Berlin");
// 02:30 does not exist on the spring-forward day in Europe/Berlin: the DST rules run.
BENCHMARK_CAPTURE(next_occurrences, daily_0230_berlin_dst, "30 2 * * *", "Europe/Berlin");
BENCHMARK_CAPTURE(next_occurrences, leap_day_utc, "0 0 29 2 *", "UTC");

// ------------------------------------------------------------------------- JSON job encoding

struct SendEmail {
  static constexpr std::string_view kJobType = "send_email";
  std::string to;
  std::string subject;
  std::string body;
  int retries_left = 0;
  std::vector<std::string> tags;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SendEmail, to, subject, body, retries_left, tags)

SendEmail sample_email() {
  return {"someone@example.com",
          "Your report is ready",
          std::string(400, 'x'),
          3,
          {"report", "weekly"}};
}

void BM_JobEncode(benchmark::State& state) {
  SendEmail job = sample_email();
  for (auto _ : state) {
    std::string data = nlohmann::json(job).dump();  // what JobRunner::start_job stores
    benchmark::DoNotOptimize(data);
  }
}
BENCHMARK(BM_JobEncode);

void BM_JobDecode(benchmark::State& state) {
  std::string data = nlohmann::json(sample_email()).dump();
  for (auto _ : state) {
    auto job = ergon::HandlerRegistry::decode<SendEmail>(data);  // what the invoker runs
    benchmark::DoNotOptimize(job);
  }
}
BENCHMARK(BM_JobDecode);

// ------------------------------------------------------------------ claim / complete (SQLite)

// A store on a fresh file in the temporary directory. synchronous=off: the figure is the code
// path (SQL, binding, reading rows), not the disk's fsync, which ergon-bench measures.
class SqliteFixture {
 public:
  SqliteFixture() {
    dir_ = std::filesystem::temp_directory_path() / ("ergon-micro-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = ergon::open_store("sqlite:" + (dir_ / "micro.db").string() + "?synchronous=off");
  }
  ~SqliteFixture() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  ergon::Store& store() { return *store_; }

  void fill(int n) {
    std::vector<ergon::JobInsertParams> jobs(static_cast<std::size_t>(n));
    ergon::TimePoint now = store_->clock().now() - 1s;
    for (auto& p : jobs) {
      p.id = ergon::JobId::generate(now);
      p.job_type = "noop";
      p.job_data = R"({"n":0})";
      p.created_at = now;
      p.run_at = now;
      p.queue = "default";
    }
    store_->job_insert_many(jobs);
  }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<ergon::Store> store_;
};

// Claims state.range(0) jobs and completes them, batched or one by one; with `history`, every
// other job is retried instead, with its error (its attempt's row in job_attempts), and the
// others complete with a result (a completion's attempt is its job's own row).
void claim_complete(benchmark::State& state, bool batched, bool history = false) {
  SqliteFixture f;
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    f.fill(n);
    state.ResumeTiming();
    ergon::TimePoint now = f.store().clock().now();
    auto claimed = f.store().job_claim({"micro", n, now});
    std::vector<ergon::JobFinishParams> outcomes;
    outcomes.reserve(claimed.size());
    for (const auto& r : claimed) {
      ergon::JobFinishParams p;
      p.id = r.id;
      p.attempt = r.lease;  // the fencing token
      p.worker_id = "micro";
      p.status = ergon::JobStatus::kCompleted;
      p.now = now;
      if (history && outcomes.size() % 2 == 1) {
        p.status = ergon::JobStatus::kPending;
        p.run_at = now;
        p.attempt_outcome = ergon::AttemptOutcome::kRetried;
        p.error_message = "std::runtime_error: boom";
      } else if (history) {
        p.attempt_outcome = ergon::AttemptOutcome::kCompleted;
        p.result = R"({"ok":true})";
      }
      outcomes.push_back(p);
    }
    if (batched) {
      benchmark::DoNotOptimize(f.store().job_finish_many(outcomes));
    } else {
      for (const auto& p : outcomes) benchmark::DoNotOptimize(f.store().job_finish(p));
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK_CAPTURE(claim_complete, batched, true)->Arg(1)->Arg(100)->Arg(500);
BENCHMARK_CAPTURE(claim_complete, batched_history, true, true)->Arg(500);
BENCHMARK_CAPTURE(claim_complete, one_by_one, false)->Arg(1)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
