// Conformance: heartbeats, orphan rescue, fencing after rescue, poison jobs, cancellation,
// pruning and the worker registry — for every backend.
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

JobRecord claimed_job(Store& store, Clock& clock, std::string_view worker = "w1",
                      std::optional<int> max_attempts = {}) {
  JobInsertParams p;
  p.id = JobId::generate(clock.now());
  p.job_type = "t";
  p.job_data = "{}";
  p.created_at = p.run_at = clock.now();
  p.queue = "default";
  p.max_attempts = max_attempts;
  store.job_insert(p);
  auto c = store.job_claim({worker, 1, clock.now()});
  EXPECT_EQ(c.size(), 1u);
  return c.at(0);
}

JobRescueParams rescue_at(Clock& clock, Duration threshold = 30s) {
  JobRescueParams r;
  r.now = clock.now();
  r.stale_before = clock.now() - threshold;
  r.default_max_attempts = 10;
  r.poison_limit = 3;
  return r;
}

TEST_P(StoreConformance, ALongJobWithFreshHeartbeatsIsNeverRescued) {
  JobRecord r = claimed_job(*store_, clock_);
  for (int i = 0; i < 20; ++i) {  // ten minutes of running, far past the 30 s threshold
    clock_.advance(30s);
    auto held = store_->job_heartbeat("w1", clock_.now());
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].id, r.id);
    EXPECT_EQ(held[0].attempt, 1);
    EXPECT_EQ(store_->job_rescue(rescue_at(clock_)), 0);
  }
  EXPECT_EQ(store_->job_get(r.id)->status, JobStatus::kRunning);
}

TEST_P(StoreConformance, AStaleJobIsRescuedOnceAndItsZombieIsFencedOut) {
  JobRecord r = claimed_job(*store_, clock_);
  clock_.advance(31s);
  EXPECT_EQ(store_->job_rescue(rescue_at(clock_)), 1);
  EXPECT_EQ(store_->job_rescue(rescue_at(clock_)), 0);  // once
  auto after = store_->job_get(r.id);
  EXPECT_EQ(after->status, JobStatus::kPending);
  EXPECT_EQ(after->rescue_count, 1);
  EXPECT_FALSE(after->worker_id);
  EXPECT_NE(after->error_message->find("orphaned: worker w1"), std::string::npos);

  auto again = store_->job_claim({"w2", 1, clock_.now()});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2);
  // The zombie (w1, attempt 1) comes back: it holds nothing, writes nothing.
  EXPECT_TRUE(store_->job_heartbeat("w1", clock_.now()).empty());
  EXPECT_FALSE(store_->job_progress_update({r.id, 1, "w1", "zombie", 99}));
  JobFinishParams late;
  late.id = r.id;
  late.attempt = 1;
  late.worker_id = "w1";
  late.status = JobStatus::kCompleted;
  late.now = clock_.now();
  EXPECT_FALSE(store_->job_finish(late));
  EXPECT_EQ(store_->job_get(r.id)->status, JobStatus::kRunning);
  EXPECT_EQ(store_->job_get(r.id)->worker_id, "w2");
}

TEST_P(StoreConformance, AnOrphanWithoutAttemptsLeftFails) {
  JobRecord r = claimed_job(*store_, clock_, "w1", 1);
  clock_.advance(31s);
  EXPECT_EQ(store_->job_rescue(rescue_at(clock_)), 1);
  auto after = store_->job_get(r.id);
  EXPECT_EQ(after->status, JobStatus::kFailed);
  EXPECT_TRUE(after->completed_at);
  EXPECT_NE(after->error_message->find("orphaned"), std::string::npos);
}

TEST_P(StoreConformance, AJobThatKeepsKillingItsWorkerIsQuarantined) {
  JobRecord r = claimed_job(*store_, clock_);
  for (int i = 1; i <= 3; ++i) {
    if (i > 1) {
      ASSERT_EQ(store_->job_claim({"w1", 1, clock_.now()}).size(), 1u);
    }
    clock_.advance(31s);
    ASSERT_EQ(store_->job_rescue(rescue_at(clock_)), 1);
  }
  auto after = store_->job_get(r.id);
  EXPECT_EQ(after->status, JobStatus::kFailed);
  EXPECT_EQ(after->rescue_count, 3);
  EXPECT_NE(after->error_message->find("quarantined"), std::string::npos) << *after->error_message;
}

TEST_P(StoreConformance, ReleasingAGoneWorkersJobsIsImmediate) {
  JobRecord mine = claimed_job(*store_, clock_, "gone");
  JobRecord other = claimed_job(*store_, clock_, "alive");
  EXPECT_EQ(store_->job_release_worker("gone", rescue_at(clock_)), 1);
  EXPECT_EQ(store_->job_get(mine.id)->status, JobStatus::kPending);
  EXPECT_EQ(store_->job_get(other.id)->status, JobStatus::kRunning);
}

TEST_P(StoreConformance, CancellingPendingAndRunningJobs) {
  JobInsertParams p;
  p.id = JobId::generate(clock_.now());
  p.job_type = "t";
  p.job_data = "{}";
  p.created_at = p.run_at = clock_.now();
  p.queue = "default";
  store_->job_insert(p);
  EXPECT_EQ(store_->job_cancel(p.id, clock_.now()), CancelResult::kCancelled);
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kCancelled);
  EXPECT_TRUE(store_->job_claim({"w", 10, clock_.now()}).empty());  // never starts
  EXPECT_EQ(store_->job_cancel(p.id, clock_.now()), CancelResult::kAlreadyFinished);

  JobRecord r = claimed_job(*store_, clock_, "w");
  EXPECT_EQ(store_->job_cancel(r.id, clock_.now()), CancelResult::kRequested);
  auto held = store_->job_heartbeat("w", clock_.now());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(held[0].cancel_requested);
  EXPECT_EQ(store_->job_get(r.id)->status, JobStatus::kRunning);  // the worker decides when
  EXPECT_EQ(store_->job_cancel(JobId::generate(clock_.now()), clock_.now()),
            CancelResult::kNotFound);
}

TEST_P(StoreConformance, PruningDeletesOldFinishedJobsInBoundedBatches) {
  std::vector<JobId> old_ids;
  for (int i = 0; i < 5; ++i) {
    JobRecord r = claimed_job(*store_, clock_);
    JobFinishParams f;
    f.id = r.id;
    f.attempt = r.attempt;
    f.worker_id = "w1";
    f.status = JobStatus::kCompleted;
    f.now = clock_.now();
    ASSERT_TRUE(store_->job_finish(f));
    old_ids.push_back(r.id);
  }
  clock_.advance(48h);
  JobRecord young = claimed_job(*store_, clock_);  // Running: never pruned
  EXPECT_EQ(store_->job_prune(JobStatus::kCompleted, clock_.now() - 24h, 2), 2);
  EXPECT_EQ(store_->job_prune(JobStatus::kCompleted, clock_.now() - 24h, 2), 2);
  EXPECT_EQ(store_->job_prune(JobStatus::kCompleted, clock_.now() - 24h, 2), 1);
  EXPECT_EQ(store_->job_prune(JobStatus::kCompleted, clock_.now() - 24h, 2), 0);
  for (const auto& id : old_ids) EXPECT_FALSE(store_->job_get(id));
  EXPECT_TRUE(store_->job_get(young.id));
  EXPECT_THROW(store_->job_prune(JobStatus::kRunning, clock_.now(), 10), Error);
}

TEST_P(StoreConformance, WorkerRegistry) {
  WorkerRecord w{"w-1", "resizer", "host-a", 1234, clock_.now(), clock_.now()};
  store_->worker_register(w);
  clock_.advance(5s);
  store_->worker_heartbeat("w-1", clock_.now());
  auto list = store_->worker_list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "resizer");
  EXPECT_EQ(list[0].pid, 1234);
  EXPECT_EQ(list[0].heartbeat_at, clock_.now());
  store_->worker_remove("w-1");
  EXPECT_TRUE(store_->worker_list().empty());
}

// An idle worker's poll renews its registry heartbeat with the claim (one query per poll on
// PostgreSQL), whether or not the claim finds a job; a claim without renew_worker leaves it.
TEST_P(StoreConformance, AClaimCanRenewTheWorkersRegistryHeartbeat) {
  TimePoint registered = clock_.now();
  store_->worker_register({"w-1", "resizer", "host-a", 1234, registered, registered});
  clock_.advance(5s);
  EXPECT_TRUE(store_->job_claim({"w-1", 4, clock_.now()}).empty());
  EXPECT_EQ(store_->worker_list().at(0).heartbeat_at, registered);

  JobClaimParams renew{"w-1", 4, clock_.now()};
  renew.renew_worker = true;
  EXPECT_TRUE(store_->job_claim(renew).empty());
  EXPECT_EQ(store_->worker_list().at(0).heartbeat_at, clock_.now());

  JobInsertParams p;
  p.id = JobId::generate(clock_.now());
  p.job_type = "t";
  p.job_data = "{}";
  p.created_at = clock_.now();
  p.run_at = clock_.now();
  p.queue = "default";
  store_->job_insert(p);
  clock_.advance(5s);
  renew.now = clock_.now();
  auto claimed = store_->job_claim(renew);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, p.id);
  EXPECT_EQ(store_->worker_list().at(0).heartbeat_at, clock_.now());
}

}  // namespace
}  // namespace ergon::testing
