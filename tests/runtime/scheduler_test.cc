// Recurring jobs on each store (SQLite; PostgreSQL with ERGON_TEST_POSTGRES_URL), with a
// FakeClock: DST, exactly-once per slot across schedulers, misfire and overlap policies,
// update by name.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "ergon/ergon.h"
#include "store/store.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

struct Report {
  static constexpr std::string_view kJobType = "report";
  std::string kind;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Report, kind)

TimePoint utc(int y, int mo, int d, int h, int mi = 0) {
  return time_point_cast<TimePoint::duration>(sys_days{year{y} / mo / d} + hours{h} + minutes{mi});
}

class SchedulerTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make(dir_);
    if (!backend_) return;  // skipped
    store_ = backend_->open(clock_);
    runner_ = std::make_unique<JobRunner>(store_);
  }

  std::size_t run_once(Duration grace = 1min) {
    runtime::Scheduler s(*store_, {1min, grace});
    return s.run_once();
  }
  // Moves the clock to the schedule's next_run_time and fires; returns that slot.
  TimePoint fire_next(const std::string& name) {
    TimePoint next = runner_->get_scheduled_job(name)->next_run_time;
    clock_.set(next);
    EXPECT_EQ(run_once(), 1u) << format_timestamp(next);
    return next;
  }
  std::size_t jobs(const std::string& type = "report") {
    return runner_->list_jobs({.job_type = type, .limit = 10000}).size();
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};         // 2026-03-01T12:00:00Z
  std::unique_ptr<TestBackend> backend_;  // outlives every store of the test
  std::shared_ptr<Store> store_;
  std::unique_ptr<JobRunner> runner_;
};

INSTANTIATE_TEST_SUITE_P(Stores, SchedulerTest, every_backend(), backend_name);

// The lag hook (metrics): told the slot's lateness when this scheduler fires it, and only then.
TEST_P(SchedulerTest, OnFireReportsTheLagOfEachFiredSlot) {
  runner_->add_or_update_scheduled_job(Report{"hourly"}, "0 * * * *");
  std::vector<std::pair<std::string, Duration>> fired;
  runtime::SchedulerOptions o{1min, 1min};
  o.on_fire = [&](std::string_view name, Duration lag) { fired.emplace_back(name, lag); };
  runtime::Scheduler s(*store_, o);
  clock_.set(utc(2026, 3, 1, 13) + 1500ms);
  EXPECT_EQ(s.run_once(), 1u);
  EXPECT_EQ(s.run_once(), 0u);  // nothing due: no report
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].first, "report");
  EXPECT_EQ(fired[0].second, Duration(1500ms));
}

TEST_P(SchedulerTest, AddOrUpdateIsKeyedByName) {
  EXPECT_EQ(runner_->add_or_update_scheduled_job(Report{"daily"}, "0 3 * * *"), "report");
  auto s = runner_->get_scheduled_job("report");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->next_run_time, utc(2026, 3, 2, 3));
  EXPECT_EQ(s->job_type, "report");
  EXPECT_EQ(s->time_zone, "UTC");
  EXPECT_FALSE(s->last_run_time);

  // Same expression, new payload, a day later: the pending slot is kept, the payload updated.
  clock_.advance(24h);
  runner_->add_or_update_scheduled_job(Report{"daily v2"}, "0 3 * * *");
  s = runner_->get_scheduled_job("report");
  EXPECT_EQ(s->next_run_time, utc(2026, 3, 2, 3));
  EXPECT_EQ(s->job_data, R"({"kind":"daily v2"})");

  // New expression: due at its first slot after now.
  runner_->add_or_update_scheduled_job(Report{"daily v2"}, "0 18 * * *",
                                       {.time_zone = "Europe/Berlin"});
  s = runner_->get_scheduled_job("report");
  EXPECT_EQ(s->next_run_time, utc(2026, 3, 2, 17));  // 18:00 CET
  EXPECT_EQ(s->time_zone, "Europe/Berlin");
  EXPECT_EQ(runner_->list_scheduled_jobs().size(), 1u);

  // An operator's disable survives the application re-registering the schedule.
  EXPECT_TRUE(runner_->set_scheduled_job_enabled("report", false));
  runner_->add_or_update_scheduled_job(Report{"daily v3"}, "0 18 * * *",
                                       {.time_zone = "Europe/Berlin"});
  EXPECT_FALSE(runner_->get_scheduled_job("report")->is_enabled);

  // A second schedule of the same type under another name.
  runner_->add_or_update_scheduled_job(Report{"hourly"}, "@hourly", {.name = "report-hourly"});
  EXPECT_EQ(runner_->list_scheduled_jobs().size(), 2u);
  EXPECT_TRUE(runner_->remove_scheduled_job("report-hourly"));
  EXPECT_FALSE(runner_->remove_scheduled_job("report-hourly"));
}

TEST_P(SchedulerTest, BadExpressionsAndZonesAreRefusedAndNothingIsStored) {
  for (auto [expr, zone] : {std::pair{"61 * * * *", "UTC"},
                            {"* * * *", "UTC"},
                            {"0 3 * * *", "Mars/Olympus_Mons"},
                            {"", "UTC"}}) {
    try {
      runner_->add_or_update_scheduled_job(Report{}, expr, {.time_zone = zone});
      ADD_FAILURE() << expr << " " << zone;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("schedule 'report'"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(runner_->add_or_update_scheduled_job(Report{}, "0 * * * *", {.misfire_limit = 0}),
               Error);
  EXPECT_TRUE(runner_->list_scheduled_jobs().empty());
}

TEST_P(SchedulerTest, FiresEachSlotOnceAndKeepsTheTableTrue) {
  runner_->add_or_update_scheduled_job(Report{}, "*/5 * * * *");
  EXPECT_EQ(run_once(), 0u);  // 12:00 itself is not after 12:00
  TimePoint slot = fire_next("report");
  EXPECT_EQ(slot, utc(2026, 3, 1, 12, 5));
  EXPECT_EQ(run_once(), 0u);  // the same slot again: nothing
  auto s = runner_->get_scheduled_job("report");
  EXPECT_EQ(s->last_run_time, slot);
  EXPECT_EQ(s->next_run_time, utc(2026, 3, 1, 12, 10));
  ASSERT_TRUE(s->last_job_id);
  auto job = runner_->get_job(*s->last_job_id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_type, "report");
  EXPECT_EQ(job->status, JobStatus::kPending);
}

// Every job a schedule starts, at its slots or triggered, carries the schedule's tags and
// meta, and the tag filter finds it; registered again without them, its next job has none.
TEST_P(SchedulerTest, FiredJobsCarryTheSchedulesTagsAndMeta) {
  const std::vector<std::string> tags = {"reports", "customer:42"};
  runner_->add_or_update_scheduled_job(
      Report{"hourly"}, "0 * * * *",
      {.misfire = MisfirePolicy::kRunAll, .tags = tags, .meta = R"({"owner": "ops"})"});
  clock_.set(utc(2026, 3, 1, 15, 1));  // the slots of 13:00, 14:00 and 15:00 have passed
  EXPECT_EQ(run_once(), 3u);
  const JobId triggered = runner_->trigger_scheduled_job("report");
  JobFilter f;
  f.tag = "customer:42";
  auto tagged = runner_->list_jobs(f);
  ASSERT_EQ(tagged.size(), 4u);
  EXPECT_EQ(std::count_if(tagged.begin(), tagged.end(),
                          [&](const JobRecord& j) { return j.id == triggered; }),
            1);
  for (const JobRecord& j : tagged) {
    EXPECT_EQ(j.tags, tags);
    ASSERT_TRUE(j.meta);
    EXPECT_EQ(nlohmann::json::parse(*j.meta), nlohmann::json({{"owner", "ops"}}));
  }

  runner_->add_or_update_scheduled_job(Report{"hourly"}, "0 * * * *");
  fire_next("report");
  EXPECT_EQ(runner_->list_jobs(f).size(), 4u);
  auto untagged = runner_->get_job(*runner_->get_scheduled_job("report")->last_job_id);
  EXPECT_TRUE(untagged->tags.empty());
  EXPECT_FALSE(untagged->meta);
}

TEST_P(SchedulerTest, DisabledSchedulesDoNotFire) {
  runner_->add_or_update_scheduled_job(Report{}, "*/5 * * * *");
  runner_->set_scheduled_job_enabled("report", false);
  clock_.advance(10min);
  EXPECT_EQ(run_once(), 0u);
  runner_->set_scheduled_job_enabled("report", true);
  EXPECT_EQ(run_once(), 1u);  // the missed slot, once (default misfire policy)
}

// Several schedulers, each with its own connection, run at the same instants: each slot
// produces exactly one job.
TEST_P(SchedulerTest, ConcurrentSchedulersFireEachSlotExactlyOnce) {
  runner_->add_or_update_scheduled_job(Report{}, "* * * * *");
  std::vector<std::shared_ptr<Store>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(backend_->open(clock_));
  for (int slot = 1; slot <= 25; ++slot) {
    clock_.advance(1min);
    std::vector<std::thread> threads;
    for (auto& st : stores) {
      threads.emplace_back([&st] {
        runtime::Scheduler s(*st, {});
        s.run_once();
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(jobs(), static_cast<std::size_t>(slot));
  }
}

// The same with separate processes on one database.
TEST_P(SchedulerTest, SchedulersInSeveralProcessesFireEachSlotExactlyOnce) {
  runner_->add_or_update_scheduled_job(Report{}, "* * * * *");
  for (int slot = 1; slot <= 8; ++slot) {
    clock_.advance(1min);
    std::string at = format_timestamp(clock_.now());
    std::vector<std::thread> procs;
    std::vector<ProcessResult> results(3);
    for (int p = 0; p < 3; ++p) {
      procs.emplace_back([&, p] {
        results[p] = run_process({STORE_HELPER, "fire", backend_->url(), at});
      });
    }
    for (auto& t : procs) t.join();
    int fired = 0;
    for (auto& r : results) {
      ASSERT_EQ(r.status, 0) << r.err;
      fired += std::stoi(r.out);
    }
    EXPECT_EQ(fired, 1) << at;
    ASSERT_EQ(jobs(), static_cast<std::size_t>(slot));
  }
}

TEST_P(SchedulerTest, SpringForwardFiresTheSkippedTimeOnceWhenTheGapEnds) {
  // New York skips 02:00-03:00 on 2026-03-08; Berlin on 2026-03-29.
  clock_.set(utc(2026, 3, 7, 12));
  runner_->add_or_update_scheduled_job(Report{}, "30 2 * * *",
                                       {.name = "ny", .time_zone = "America/New_York"});
  EXPECT_EQ(fire_next("ny"), utc(2026, 3, 8, 7, 0));   // 03:00 EDT, when the gap ends
  EXPECT_EQ(fire_next("ny"), utc(2026, 3, 9, 6, 30));  // 02:30 EDT
  ASSERT_TRUE(runner_->remove_scheduled_job("ny"));
  clock_.set(utc(2026, 3, 28, 12));
  runner_->add_or_update_scheduled_job(Report{}, "30 2 * * *",
                                       {.name = "berlin", .time_zone = "Europe/Berlin"});
  EXPECT_EQ(fire_next("berlin"), utc(2026, 3, 29, 1, 0));   // 03:00 CEST
  EXPECT_EQ(fire_next("berlin"), utc(2026, 3, 30, 0, 30));  // 02:30 CEST
}

TEST_P(SchedulerTest, FallBackRunsFixedTimesOnceAndIntervalsInBothPasses) {
  // New York repeats 01:00-02:00 on 2026-11-01 (EDT, then EST).
  clock_.set(utc(2026, 10, 31, 12));
  runner_->add_or_update_scheduled_job(Report{}, "30 1 * * *",
                                       {.name = "fixed", .time_zone = "America/New_York"});
  EXPECT_EQ(fire_next("fixed"), utc(2026, 11, 1, 5, 30));  // 01:30 EDT only
  EXPECT_EQ(fire_next("fixed"), utc(2026, 11, 2, 6, 30));  // next day, 01:30 EST

  clock_.set(utc(2026, 11, 1, 4, 45));  // 00:45 EDT
  runner_->add_or_update_scheduled_job(Report{}, "*/30 1 * * *",
                                       {.name = "interval", .time_zone = "America/New_York"});
  EXPECT_EQ(fire_next("interval"), utc(2026, 11, 1, 5, 0));   // 01:00 EDT
  EXPECT_EQ(fire_next("interval"), utc(2026, 11, 1, 5, 30));  // 01:30 EDT
  EXPECT_EQ(fire_next("interval"), utc(2026, 11, 1, 6, 0));   // 01:00 EST
  EXPECT_EQ(fire_next("interval"), utc(2026, 11, 1, 6, 30));  // 01:30 EST
  EXPECT_EQ(fire_next("interval"), utc(2026, 11, 2, 6, 0));   // next day
}

class MisfireTest : public SchedulerTest {
 protected:
  // An hourly schedule whose slots 13:00 .. 17:00 pass while no scheduler runs; the clock
  // stops at 17:30.
  void outage(MisfirePolicy policy, int limit = 10) {
    runner_->add_or_update_scheduled_job(Report{}, "0 * * * *",
                                         {.misfire = policy, .misfire_limit = limit});
    clock_.set(utc(2026, 3, 1, 17, 30));
  }
  void expect_next_is_18() {
    auto s = runner_->get_scheduled_job("report");
    EXPECT_EQ(s->next_run_time, utc(2026, 3, 1, 18));
    EXPECT_EQ(s->last_run_time, utc(2026, 3, 1, 17));
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, MisfireTest, every_backend(), backend_name);

TEST_P(MisfireTest, RunOnceRunsOneJobForAllMissedSlots) {
  outage(MisfirePolicy::kRunOnce);
  EXPECT_EQ(run_once(), 1u);
  expect_next_is_18();
}

TEST_P(MisfireTest, SkipRunsNothingForMissedSlots) {
  outage(MisfirePolicy::kSkip);
  EXPECT_EQ(run_once(), 0u);
  expect_next_is_18();
  // A slot seen in time still runs.
  clock_.set(utc(2026, 3, 1, 18) + 20s);
  EXPECT_EQ(run_once(), 1u);
}

TEST_P(MisfireTest, RunAllRunsEveryMissedSlotUpToTheLimit) {
  outage(MisfirePolicy::kRunAll);
  EXPECT_EQ(run_once(), 5u);  // 13:00, 14:00, 15:00, 16:00, 17:00
  expect_next_is_18();
}

TEST_P(MisfireTest, RunAllIsBounded) {
  outage(MisfirePolicy::kRunAll, 3);
  EXPECT_EQ(run_once(), 3u);  // the three most recent
  expect_next_is_18();
}

TEST_P(SchedulerTest, OverlapSkipWaitsForThePreviousRun) {
  runner_->add_or_update_scheduled_job(Report{}, "*/5 * * * *", {.overlap = OverlapPolicy::kSkip});
  fire_next("report");
  JobId first = *runner_->get_scheduled_job("report")->last_job_id;
  clock_.set(runner_->get_scheduled_job("report")->next_run_time);
  EXPECT_EQ(run_once(), 0u);  // first is still Pending: the slot is skipped, not postponed
  EXPECT_EQ(runner_->get_scheduled_job("report")->next_run_time, utc(2026, 3, 1, 12, 15));

  auto claimed = store_->job_claim({"w", 10, clock_.now()});
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed[0].id, first);
  JobFinishParams done;
  done.id = first;
  done.attempt = 1;
  done.worker_id = "w";
  done.status = JobStatus::kCompleted;
  done.now = clock_.now();
  ASSERT_TRUE(store_->job_finish(done));
  fire_next("report");  // the previous run is finished: this slot runs
  EXPECT_EQ(jobs(), 2u);
}

TEST_P(SchedulerTest, TriggerNowEnqueuesWithoutMovingTheSchedule) {
  runner_->add_or_update_scheduled_job(Report{"x"}, "0 3 * * *", {.max_attempts = 2});
  TimePoint next = runner_->get_scheduled_job("report")->next_run_time;
  JobId id = runner_->trigger_scheduled_job("report");
  auto job = runner_->get_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_data, R"({"kind":"x"})");
  EXPECT_EQ(job->max_attempts, 2);
  EXPECT_EQ(runner_->get_scheduled_job("report")->next_run_time, next);
  try {
    runner_->trigger_scheduled_job("nope");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

// The worker's scheduler sleeps until the next slot and fires it when the clock gets there.
TEST_P(SchedulerTest, WorkerFiresSlotsAtTheirTime) {
  EventCounter completed;
  HandlerRegistry handlers;
  handlers.add<Report>([](const Report&, JobContext&) {});
  WorkerOptions o;
  o.polling_interval = 1h;
  o.scheduled_jobs_check_interval = 1h;
  o.on_event = [&](const JobEvent& e) {
    if (e.kind == JobEvent::Kind::kCompleted) completed.add();
  };
  JobsWorker worker(store_, std::move(handlers), o);
  worker.start();
  runner_->add_or_update_scheduled_job(Report{}, "* * * * *");  // wakes the scheduler
  clock_.advance(1min);
  ASSERT_TRUE(completed.wait_for(1));
  clock_.advance(1min);
  ASSERT_TRUE(completed.wait_for(2));
  worker.stop();
  EXPECT_EQ(jobs(), 2u);
}

}  // namespace
}  // namespace ergon::testing
