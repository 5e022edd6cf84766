// /metrics during a run of a real worker on SQLite: the counters fed by the worker's events
// move, the histogram counts attempts, and the store gauges follow the queue.
#include "ergon/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <sstream>

#include "ergon/dashboard.h"
#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Step {
  static constexpr std::string_view kJobType = "step";
  bool fail = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Step, fail)

// "name{labels} value" lines of the text format, by "name{labels}"; comments skipped.
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

TEST(DashboardMetricsTest, CountersMoveDuringAWorkersRun) {
  TempDir dir;
  auto store = open_store(sqlite_url(dir));
  auto metrics = std::make_shared<JobMetrics>();
  EventCounter completed, failed, started;
  HandlerRegistry handlers;
  handlers.add<Step>(
      [](const Step& s, JobContext& ctx) {
        ctx.report_progress("working", 50);
        if (s.fail) throw std::runtime_error("step failed");
      },
      JobTypeOptions{.max_attempts = 1});
  WorkerOptions wo;
  wo.max_concurrent_jobs = 2;
  wo.polling_interval = 50ms;
  wo.on_event = metrics_observer(metrics, [&](const JobEvent& e) {
    if (e.kind == Kind::kCompleted) completed.add();
    if (e.kind == Kind::kFailed) failed.add();
    if (e.kind == Kind::kStarted) started.add();
  });
  JobsWorker worker(store, std::move(handlers), wo);
  Dashboard dashboard(store, {.port = 0, .metrics = metrics});
  dashboard.start();
  httplib::Client client("127.0.0.1", dashboard.port());
  auto scrape = [&] {
    auto r = client.Get("/metrics");
    EXPECT_TRUE(r);
    EXPECT_EQ(r ? r->status : 0, 200);
    return parse_metrics(r ? r->body : "");
  };

  JobRunner runner(store);
  for (int i = 0; i < 3; ++i) runner.start_job(Step{});
  metrics->record_enqueued("step", "default", 3);
  auto before = scrape();
  EXPECT_EQ(value(before, R"(ergon_queue_jobs{queue="default",status="Pending"})"), 3);
  EXPECT_EQ(value(before, R"(ergon_jobs_enqueued_total{job_type="step",queue="default"})"), 3);
  EXPECT_EQ(value(before, "ergon_store_up"), 1);

  worker.start();
  ASSERT_TRUE(completed.wait_for(3));
  auto middle = scrape();
  // The worker may not set JobEvent::queue yet: find the counters by job type.
  auto by_type = [](const std::map<std::string, double>& m, const std::string& name) {
    double sum = 0;
    for (const auto& [k, v] : m) {
      if (k.rfind(name + "{", 0) == 0 && k.find("job_type=\"step\"") != std::string::npos) sum += v;
    }
    return sum;
  };
  EXPECT_EQ(by_type(middle, "ergon_jobs_started_total"), 3);
  EXPECT_EQ(by_type(middle, "ergon_jobs_completed_total"), 3);
  EXPECT_EQ(by_type(middle, "ergon_job_run_seconds_count"), 3);
  EXPECT_EQ(by_type(middle, "ergon_jobs_failed_total"), 0);

  runner.start_job(Step{.fail = true});
  runner.start_job(Step{});
  ASSERT_TRUE(failed.wait_for(1));
  ASSERT_TRUE(completed.wait_for(4));
  auto after = scrape();
  EXPECT_EQ(by_type(after, "ergon_jobs_started_total"), 5);
  EXPECT_EQ(by_type(after, "ergon_jobs_completed_total"), 4);
  EXPECT_EQ(by_type(after, "ergon_jobs_failed_total"), 1);
  EXPECT_EQ(by_type(after, "ergon_job_run_seconds_count"), 5);
  EXPECT_EQ(value(after, R"(ergon_queue_jobs{queue="default",status="Pending"})"), 0);
  EXPECT_GE(value(after, "ergon_workers_alive"), 1);
  worker.stop();
  dashboard.stop();
}

TEST(DashboardMetricsTest, RescuesAndSchedulerLagAreCounted) {
  JobMetrics m;
  m.on_event({.kind = Kind::kRescued, .attempt = 4});
  m.record_scheduler_lag(250ms);
  auto parsed = parse_metrics(m.scrape(nullptr));
  EXPECT_EQ(value(parsed, "ergon_jobs_rescued_total"), 4);
  EXPECT_EQ(value(parsed, "ergon_scheduler_lag_seconds_count"), 1);
  EXPECT_DOUBLE_EQ(value(parsed, "ergon_scheduler_lag_seconds_sum"), 0.25);
}

}  // namespace
}  // namespace ergon::testing
