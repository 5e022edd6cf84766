// Recurring jobs in the store: what Scheduler (runtime/scheduler.h) relies on. An upsert keeps
// the pending slot while the expression is unchanged, schedule_fire checks next_run_time and
// advances it in one transaction (so of several schedulers racing for a slot exactly one fires
// it), an operator's disable survives the application re-registering the schedule, and a
// schedule keeps the tags and meta of the jobs it starts.
#include <nlohmann/json.hpp>
#include <thread>

#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

JobInsertParams job(TimePoint now, std::string_view type) {
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = type;
  p.job_data = R"({"n":1})";
  p.created_at = now;
  p.run_at = now;
  p.queue = "default";
  return p;
}

ScheduleRecord nightly(TimePoint next) {
  ScheduleRecord s;
  s.id = JobId::generate(next);
  s.name = "nightly";
  s.job_type = "report";
  s.job_data = R"({"kind":"daily"})";
  s.cron_expression = "0 3 * * *";
  s.time_zone = "Europe/Berlin";
  s.next_run_time = next;
  s.queue = "default";
  return s;
}

// Of several schedulers (stores with connections of their own) racing for one slot, exactly
// one fires it.
TEST_P(StoreConformance, SchedulesKeepTheirSlotAndEachSlotFiresExactlyOnce) {
  TimePoint slot = clock_.now() + 1h;
  store_->schedule_upsert({nightly(slot)});
  auto again = nightly(slot + 5h);  // re-registered after a restart: same expression
  again.job_data = R"({"kind":"nightly"})";
  store_->schedule_upsert({again});
  auto got = store_->schedule_get("nightly");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->next_run_time, slot);
  EXPECT_EQ(got->job_data, R"({"kind":"nightly"})");
  EXPECT_EQ(got->time_zone, "Europe/Berlin");
  EXPECT_TRUE(got->is_enabled);
  EXPECT_FALSE(got->last_job_id);
  EXPECT_EQ(store_->schedule_next_due(), slot);
  EXPECT_TRUE(store_->schedule_due(clock_.now(), 10).empty());
  ASSERT_EQ(store_->schedule_due(slot, 10).size(), 1u);

  constexpr int kRacers = 6;
  std::vector<std::shared_ptr<Store>> stores;
  for (int i = 0; i < kRacers; ++i) stores.push_back(reopen());
  std::vector<ScheduleFireResult> results(kRacers);
  std::vector<JobId> job_ids(kRacers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] {
      ScheduleFireParams f;
      f.name = "nightly";
      f.expected_next = slot;
      f.new_next = slot + 24h;
      f.last_run_time = slot;
      JobInsertParams j = job(slot, "report");
      job_ids[static_cast<std::size_t>(i)] = j.id;
      f.jobs.push_back(j);
      results[static_cast<std::size_t>(i)] = stores[static_cast<std::size_t>(i)]->schedule_fire(f);
    });
  }
  for (auto& t : threads) t.join();
  int fired = 0;
  JobId winner;
  for (int i = 0; i < kRacers; ++i) {
    if (results[static_cast<std::size_t>(i)] == ScheduleFireResult::kFired) {
      ++fired;
      winner = job_ids[static_cast<std::size_t>(i)];
    } else {
      EXPECT_EQ(results[static_cast<std::size_t>(i)], ScheduleFireResult::kLost);
    }
  }
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(store_->job_list({.job_type = "report", .limit = 100}).size(), 1u);
  got = store_->schedule_get("nightly");
  EXPECT_EQ(got->next_run_time, slot + 24h);
  EXPECT_EQ(got->last_run_time, slot);
  EXPECT_EQ(got->last_job_id, winner);

  // Overlap policy skip: the previous job is still Pending, so the next slot enqueues nothing.
  auto skip = nightly(slot);
  skip.overlap = OverlapPolicy::kSkip;
  store_->schedule_upsert({skip});
  ScheduleFireParams next;
  next.name = "nightly";
  next.expected_next = slot + 24h;
  next.new_next = slot + 48h;
  next.last_run_time = slot + 24h;
  next.skip_if_previous_running = true;
  next.jobs.push_back(job(slot + 24h, "report"));
  EXPECT_EQ(store_->schedule_fire(next), ScheduleFireResult::kSkippedOverlap);
  EXPECT_EQ(store_->job_list({.job_type = "report", .limit = 100}).size(), 1u);
  EXPECT_EQ(store_->schedule_get("nightly")->next_run_time, slot + 48h);

  // A changed expression takes the new slot; disabling hides it from the scheduler.
  auto changed = nightly(slot + 2h);
  changed.cron_expression = "0 5 * * *";
  store_->schedule_upsert({changed});
  EXPECT_EQ(store_->schedule_get("nightly")->next_run_time, slot + 2h);
  EXPECT_TRUE(store_->schedule_set_enabled("nightly", false));
  EXPECT_TRUE(store_->schedule_due(slot + 100h, 10).empty());
  EXPECT_FALSE(store_->schedule_next_due());
  store_->schedule_upsert({changed});  // re-registering does not re-enable it
  EXPECT_FALSE(store_->schedule_get("nightly")->is_enabled);
  EXPECT_EQ(store_->schedule_list().size(), 1u);
  EXPECT_TRUE(store_->schedule_remove("nightly"));
  EXPECT_FALSE(store_->schedule_remove("nightly"));
  EXPECT_FALSE(store_->schedule_set_enabled("nightly", true));
}

// What a schedule's jobs carry: its tags and meta, as stored by every read; registering it
// again replaces them, and without them it keeps none.
TEST_P(StoreConformance, SchedulesKeepTheTagsAndMetaOfTheirJobs) {
  auto s = nightly(clock_.now() + 1h);
  s.tags = {"reports", "été"};
  s.meta = R"({"owner": "ops", "n": [1, 2]})";
  store_->schedule_upsert({s});
  for (const ScheduleRecord& got : {*store_->schedule_get("nightly"), store_->schedule_list().at(0),
                                    store_->schedule_due(s.next_run_time, 10).at(0)}) {
    EXPECT_EQ(got.tags, s.tags);
    ASSERT_TRUE(got.meta);
    EXPECT_EQ(nlohmann::json::parse(*got.meta), nlohmann::json::parse(*s.meta));
  }
  s.tags = {"weekly"};
  s.meta.reset();
  store_->schedule_upsert({s});
  auto got = store_->schedule_get("nightly");
  EXPECT_EQ(got->tags, s.tags);
  EXPECT_FALSE(got->meta);
  s.tags.clear();
  store_->schedule_upsert({s});
  EXPECT_TRUE(store_->schedule_get("nightly")->tags.empty());
}

// A database an older build left (the migrations before 12) keeps every schedule and field
// through the upgrade; the new columns are empty, and the schedule takes tags and meta after.
TEST_P(StoreConformance, UpgradingFromTheSchemaBeforeScheduleTagsKeepsEverySchedule) {
  backend_->migrate_through(11, "old");
  {
    auto app = backend_->connect("old");
    ASSERT_TRUE(app->exec(R"sql(
INSERT INTO scheduled_jobs (id, name, job_type, job_data, cron_expression, next_run_time,
                            last_run_time, is_enabled, time_zone, with_seconds, misfire_policy,
                            misfire_limit, overlap_policy, queue, priority, max_attempts,
                            last_job_id)
VALUES ('01900000-0000-7000-8000-000000000001', 'nightly', 'report', '{"kind":"daily"}',
        '0 3 * * *', '2026-03-02T02:00:00.000000Z', '2026-03-01T02:00:00.000000Z', '0',
        'Europe/Berlin', '0', 'run_all', 3, 'skip', 'reports', 2, 4,
        '01900000-0000-7000-8000-000000000002');
)sql")) << app->last_error();
  }
  auto store = backend_->open(clock_, "old");  // migrates
  auto at = [](const char* text) { return parse_timestamp(text).value(); };
  auto got = store->schedule_get("nightly");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, *JobId::parse("01900000-0000-7000-8000-000000000001"));
  EXPECT_EQ(got->job_type, "report");
  EXPECT_EQ(nlohmann::json::parse(got->job_data), nlohmann::json({{"kind", "daily"}}));
  EXPECT_EQ(got->cron_expression, "0 3 * * *");
  EXPECT_EQ(got->next_run_time, at("2026-03-02T02:00:00Z"));
  EXPECT_EQ(got->last_run_time, at("2026-03-01T02:00:00Z"));
  EXPECT_FALSE(got->is_enabled);
  EXPECT_EQ(got->time_zone, "Europe/Berlin");
  EXPECT_EQ(got->misfire, MisfirePolicy::kRunAll);
  EXPECT_EQ(got->misfire_limit, 3);
  EXPECT_EQ(got->overlap, OverlapPolicy::kSkip);
  EXPECT_EQ(got->queue, "reports");
  EXPECT_EQ(got->priority, 2);
  EXPECT_EQ(got->max_attempts, 4);
  EXPECT_EQ(got->last_job_id, JobId::parse("01900000-0000-7000-8000-000000000002"));
  EXPECT_TRUE(got->tags.empty());
  EXPECT_FALSE(got->meta);

  got->tags = {"reports"};
  got->meta = R"({"k":1})";
  store->schedule_upsert({*got});
  got = store->schedule_get("nightly");
  EXPECT_EQ(got->tags, std::vector<std::string>{"reports"});
  EXPECT_EQ(nlohmann::json::parse(got->meta.value()), nlohmann::json({{"k", 1}}));
  EXPECT_EQ(got->next_run_time, at("2026-03-02T02:00:00Z"));  // same expression: slot kept
  EXPECT_TRUE(store->schema_migrate().empty());
}

}  // namespace
}  // namespace ergon::testing
