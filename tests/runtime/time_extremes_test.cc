// The time entry points at their extremes, on both stores (docs/reliability.md#time): each is
// driven with 0, +-1, the 1677/2262 edges, years 1 and 9999, the ends of int64 and .NET's
// TimeSpan.MaxValue, and the store is read afterwards (how many jobs in which status, their run
// times) to show that nothing was deleted, run early or rescued that should not have been. The
// CLI's flags are driven the same way by tests/cli/cli_time_test.cc.
#include <gtest/gtest.h>

#include <map>

#include "ergon/ergon.h"
#include "store/store.h"
#include "support/pg_test_db.h"
#include "support/test_support.h"
#ifdef ERGON_TEST_DASHBOARD
#include "dashboard/api.h"
#endif

namespace ergon::testing {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

struct Backend {
  std::string name;
  bool postgres;
};

class TimeExtremes : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam().postgres) {
      server_ = pg_test_server_url();
      if (server_.empty()) GTEST_SKIP() << kNoPostgres;
    }
    open_fresh();
  }
  // A new, empty database (SQLite file or PostgreSQL schema) in place of the current one.
  void open_fresh() {
    store_.reset();
    if (GetParam().postgres) {
      schemas_.push_back(pg_random_schema());
      store_ = open_store(pg_url_with(server_, "schema=" + schemas_.back()), {.clock = &clock_});
    } else {
      store_ = open_store(sqlite_url(dir_, "jobs" + std::to_string(++files_) + ".db"),
                          {.clock = &clock_});
    }
  }
  void TearDown() override {
    store_.reset();
    for (const auto& schema : schemas_) pg_drop_schema(server_, schema);
  }

  std::vector<JobRecord> all() {
    JobFilter f;
    f.limit = 10000;
    return store_->job_list(f);
  }
  std::map<JobStatus, int> counts() {
    std::map<JobStatus, int> out;
    for (const auto& j : all()) ++out[j.status];
    return out;
  }
  // A job of `type` that ended with `status` at `finished`, created at `created`.
  JobId finished(JobStatus status, TimePoint created, TimePoint finished,
                 const std::string& type = "t") {
    clock_.set(created);
    JobId id = JobRunner(store_).start_job_raw(type, "{}");
    clock_.set(finished);
    if (status == JobStatus::kCancelled) {
      EXPECT_EQ(store_->job_cancel(id, finished), CancelResult::kCancelled);
    } else {
      auto r = store_->job_claim_id({"w", 1, finished}, id);
      EXPECT_TRUE(r);
      JobFinishParams f;
      f.id = id;
      f.attempt = r->lease;  // the fencing token
      f.worker_id = "w";
      f.status = status;
      f.now = finished;
      EXPECT_TRUE(store_->job_finish(f));
    }
    clock_.set(now_);
    return id;
  }

  const TimePoint now_ = test_epoch();
  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::string server_;
  std::vector<std::string> schemas_;
  int files_ = 0;
  std::shared_ptr<Store> store_;
};

// Durations a C++ caller can pass (JobOptions holds microseconds), from zero to both ends.
std::vector<Duration> duration_extremes() {
  return {0us,
          1us,
          -1us,
          Duration::max(),
          Duration::min(),
          Duration::max() - 1us,
          Duration::min() + 1us,
          kMaxDuration,
          kMaxDuration + 1us,
          duration_cast<Duration>(days(106751)),
          duration_cast<Duration>(days(200000)),
          duration_cast<Duration>(nanoseconds::max()),
          duration_cast<Duration>(nanoseconds::min()),
          duration_cast<Duration>(milliseconds(std::numeric_limits<std::int32_t>::max())),
          elapsed(test_epoch(), kLatestRunTime),
          elapsed(test_epoch(), kLatestRunTime) + 1us};
}

// Instants as text: the ends of TimePoint and of the stored range, years 1 and 9999.
const char* const kInstantTexts[] = {
    "0001-01-01T00:00:00Z",           "0001-01-01T00:00:00.0000001Z",
    "1677-09-21T00:12:43.145224191Z", "1677-09-21T00:12:43.145224192Z",
    "1677-09-21T00:12:43.145225Z",    "1677-12-31T23:59:59.999999Z",
    "1678-01-01T00:00:00Z",           "1970-01-01T00:00:00Z",
    "2026-03-01T11:00:00Z",           "2026-03-01T11:00:00.000001Z",
    "2026-03-01T12:00:00Z",           "2262-01-01T00:00:00Z",
    "2262-01-01T00:00:00.000001Z",    "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z", "2300-01-01T00:00:00Z",
    "9999-12-31T23:59:59.9999999Z"};

TEST_P(TimeExtremes, DelaysRunNeitherEarlyNorWrapped) {
  JobRunner runner(store_);
  int accepted = 0, due = 0;
  for (Duration d : duration_extremes()) {
    JobOptions o;
    o.delay = d;
    // elapsed() holds the distance exactly, where now_ + d would overflow.
    const bool valid = d >= 0us && d <= kMaxDuration && d <= elapsed(now_, kLatestRunTime);
    try {
      JobId id = runner.start_job_raw("t", "{}", o);
      ASSERT_TRUE(valid) << "accepted delay " << d.count();
      ++accepted;
      due += d == 0us ? 1 : 0;
      auto j = store_->job_get(id);
      ASSERT_TRUE(j);
      EXPECT_EQ(j->run_at, now_ + d) << d.count();
    } catch (const Error& e) {
      EXPECT_FALSE(valid) << "refused delay " << d.count() << ": " << e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(accepted, 4);  // 0, 1us, 2^31 ms, and up to the last run time and not past it
  EXPECT_EQ(counts()[JobStatus::kPending], accepted);
  // Only the job without a delay is due now.
  EXPECT_EQ(store_->job_claim({"w", 100, now_}).size(), static_cast<std::size_t>(due));
}

TEST_P(TimeExtremes, RunTimesOutsideTheStoredRangeAreRefusedAndTheRestReadBackExactly) {
  JobRunner runner(store_);
  std::vector<TimePoint> run_ats = {TimePoint::min(),
                                    TimePoint::max(),
                                    kEarliestRunTime,
                                    kEarliestRunTime - 1us,
                                    kLatestRunTime,
                                    kLatestRunTime + 1us,
                                    TimePoint{},
                                    now_,
                                    now_ + 1us,
                                    now_ - 1us,
                                    TimePoint::min() + 1ns,
                                    TimePoint::max() - 1ns};
  for (const char* text : kInstantTexts) run_ats.push_back(clamp_time(*parse_wide_timestamp(text)));
  int accepted = 0, due = 0;
  for (TimePoint t : run_ats) {
    JobOptions o;
    o.run_at = t;
    const bool valid = t >= kEarliestRunTime && t <= kLatestRunTime;
    try {
      JobId id = runner.start_job_raw("t", "{}", o);
      ASSERT_TRUE(valid) << format_timestamp(t);
      ++accepted;
      due += t <= now_ ? 1 : 0;
      EXPECT_EQ(store_->job_get(id)->run_at, floor<microseconds>(t)) << format_timestamp(t);
    } catch (const Error& e) {
      EXPECT_FALSE(valid) << format_timestamp(t) << ": " << e.what();
    }
  }
  EXPECT_EQ(counts()[JobStatus::kPending], accepted);
  EXPECT_EQ(store_->job_claim({"w", 100, now_}).size(), static_cast<std::size_t>(due));
}

TEST_P(TimeExtremes, PurgeDeletesOnlyWhatIsOlderThanTheSpan) {
  JobRunner runner(store_);
  const TimePoint finished_at[] = {now_ - days(400), now_ - 1h, now_};
  for (Duration older_than : duration_extremes()) {
    JobFilter everything;
    everything.status = JobStatus::kCompleted;
    runner.delete_jobs(everything);
    for (TimePoint f : finished_at) finished(JobStatus::kCompleted, f, f);
    int want = 0;
    for (TimePoint f : finished_at) want += elapsed(f, now_) > older_than ? 1 : 0;
    const bool valid = older_than >= 0us && older_than <= kMaxDuration;
    try {
      EXPECT_EQ(runner.purge_jobs(JobStatus::kCompleted, older_than, 1000), want)
          << older_than.count();
      EXPECT_TRUE(valid) << older_than.count();
    } catch (const Error& e) {
      EXPECT_FALSE(valid) << older_than.count() << ": " << e.what();
      want = 0;
    }
    EXPECT_EQ(counts()[JobStatus::kCompleted], 3 - want) << older_than.count();
  }
}

#ifdef ERGON_TEST_DASHBOARD
TEST_P(TimeExtremes, TheDashboardsBulkDeleteSelectsWhatItsFilterSays) {
  dashboard::Api api(store_);
  const TimePoint created_at[] = {now_ - 1h, now_};
  for (const char* key : {"created_after", "created_before"}) {
    for (const char* text : kInstantTexts) {
      JobFilter everything;
      everything.limit = 10000;
      everything.status = JobStatus::kFailed;
      JobRunner(store_).delete_jobs(everything);
      for (TimePoint c : created_at) finished(JobStatus::kFailed, c, now_);
      const WideTime bound = *parse_wide_timestamp(text);
      int want = 0;
      for (TimePoint c : created_at) {
        bool after = to_wide(c) >= bound;
        want += (std::string(key) == "created_after") == after ? 1 : 0;
      }
      nlohmann::json body = {{key, text}};
      auto out = api.bulk_action("delete", body.dump(), "test");
      EXPECT_EQ(out.value("count", -1), want) << key << " " << text << " " << out.dump();
      EXPECT_EQ(counts()[JobStatus::kFailed], 2 - want) << key << " " << text;
    }
  }
}
#endif

// The worker's pruner and rescuer with the values that mean "forever": driven by a FakeClock
// past a prune and a rescue round, proven to have run by a control job that a normal
// retention does delete.
struct Forever {
  const char* name;
  Duration value;
};

TEST_P(TimeExtremes, ForeverRetentionsPruneNothingAndAForeverThresholdRescuesNothing) {
  for (Forever f : {Forever{"TimeSpan.MaxValue", parse_timespan("10675199.02:48:05.4775807")},
                    Forever{"200000 days", parse_timespan("200000.00:00:00")},
                    Forever{"106751 days", duration_cast<Duration>(days(106751))}}) {
    SCOPED_TRACE(f.name);
    clock_.set(now_);
    open_fresh();
    finished(JobStatus::kCompleted, now_ - days(400), now_ - days(400));
    finished(JobStatus::kFailed, now_ - days(400), now_ - days(400));
    JobId control = finished(JobStatus::kCancelled, now_ - 2h, now_ - 2h);
    JobId running = JobRunner(store_).start_job_raw("elsewhere", "{}");
    ASSERT_TRUE(store_->job_claim_id({"healthy-worker", 1, now_}, running));

    WorkerOptions o;
    o.run_scheduler = false;
    o.polling_interval = 1h;
    o.completed_jobs_retention = f.value;
    o.failed_jobs_retention = f.value;
    o.cancelled_jobs_retention = 1h;
    o.orphaned_job_threshold = f.value;
    o.orphaned_jobs_check_interval = 10min;
    o.prune_interval = 10min;
    EventCounter rescued;
    o.on_event = [&](const JobEvent& e) {
      if (e.kind == JobEvent::Kind::kRescued) rescued.add();
    };
    JobsWorker worker(store_, HandlerRegistry(), o);
    worker.start();
    clock_.advance(11min);  // a prune round and a rescue round, in the same tick
    EXPECT_TRUE(eventually([&] { return !store_->job_get(control); }));
    worker.stop();
    auto c = counts();
    EXPECT_EQ(c[JobStatus::kCompleted], 1);
    EXPECT_EQ(c[JobStatus::kFailed], 1);
    auto r = store_->job_get(running);
    EXPECT_EQ(r->status, JobStatus::kRunning);
    EXPECT_EQ(r->attempt, 1);
    EXPECT_EQ(r->worker_id, std::optional<std::string>("healthy-worker"));
    EXPECT_EQ(rescued.count(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, TimeExtremes,
                         ::testing::Values(Backend{"sqlite", false}, Backend{"postgres", true}),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace ergon::testing
