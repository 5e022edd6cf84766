// The worker's services one at a time, each driven by its run_once() on the test's thread, on
// a real SQLite file and a FakeClock: no service thread runs, so nothing needs waiting for. The
// messaging services get an in-memory JobQueue.
#include <gtest/gtest.h>

#include <algorithm>

#include "ergon/ergon.h"
#include "runtime/claims.h"
#include "runtime/completer.h"
#include "runtime/consumer.h"
#include "runtime/executor.h"
#include "runtime/heartbeat.h"
#include "runtime/job_slots.h"
#include "runtime/maintenance.h"
#include "runtime/producer.h"
#include "runtime/pruner.h"
#include "runtime/registration.h"
#include "runtime/relay.h"
#include "runtime/rescuer.h"
#include "store/store.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Work {
  static constexpr std::string_view kJobType = "work";
  int n = 0;  // < 0: the handler throws
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Work, n)

constexpr char kWorker[] = "services-test:1:abcdef";

// Messages in memory: what was published, removed and postponed, and an inbox to receive.
class FakeQueue final : public messaging::JobQueue {
 public:
  void prepare() override {}
  void publish(const JobId& id, Duration delay) override { published.emplace_back(id, delay); }
  std::vector<messaging::JobMessage> receive(int max) override {
    std::vector<messaging::JobMessage> out;
    while (!inbox.empty() && static_cast<int>(out.size()) < max) {
      out.push_back(inbox.front());
      inbox.erase(inbox.begin());
    }
    return out;
  }
  void remove(const messaging::JobMessage& m) override { removed.push_back(m.message_id); }
  void postpone(messaging::JobMessage& m, Duration delay) override {
    postponed.emplace_back(m.message_id, delay);
    m.receipt += "+";
  }
  [[nodiscard]] Duration visibility_timeout() const override { return 30s; }
  void put(const JobId& id, const std::string& message_id) {
    inbox.push_back({id, message_id, "receipt", 1});
  }

  std::vector<std::pair<JobId, Duration>> published;
  std::vector<messaging::JobMessage> inbox;
  std::vector<std::string> removed;
  std::vector<std::pair<std::string, Duration>> postponed;
};

class WorkerServicesTest : public ::testing::Test {
 protected:
  WorkerServicesTest() {
    store_ = open_store(sqlite_url(dir_), {.clock = &clock_});
    handlers_.add<Work>([this](const Work& w, JobContext&) {
      ran_.push_back(w.n);
      if (w.n < 0) throw std::runtime_error("boom");
    });
    options_.max_concurrent_jobs = 2;
    options_.polling_interval = 1h;
    options_.heartbeat_interval = 5s;
    options_.orphaned_job_threshold = 30s;
    options_.retry_base_delay = 10s;
  }

  // One worker's services, from options_; none is started.
  void build() {
    policy_ = std::make_unique<runtime::ClaimPolicy>(kWorker, options_, handlers_);
    runtime::SlotOptions slot_options{options_.max_concurrent_jobs, options_.prefetch_jobs, {}};
    for (const auto& t : policy_->targets()) slot_options.target_limits.push_back(t.max_held);
    slots_ = std::make_unique<runtime::JobSlots>(slot_options);
    registration_ = std::make_unique<runtime::Registration>(options_.heartbeat_interval,
                                                            options_.polling_interval);
    completer_ = std::make_unique<runtime::Completer>(*store_, kWorker, *slots_, events_, &queue_);
    executor_ = std::make_unique<runtime::Executor>(
        *store_, kWorker, handlers_, *slots_, *completer_, events_,
        runtime::ExecutorOptions{options_.max_concurrent_jobs, options_.progress_interval,
                                 options_.retry_base_delay, options_.retry_max_delay});
    producer_ = std::make_unique<runtime::Producer>(*store_, *policy_, *slots_, *registration_,
                                                    runtime::ProducerOptions{});
    runtime::RescuerOptions rescue{options_.orphaned_job_threshold, 10, 3};
    heartbeat_ = std::make_unique<runtime::Heartbeat>(
        *store_, kWorker, *slots_, *registration_, *completer_,
        runtime::HeartbeatOptions{rescue, "", std::nullopt, false});
    rescuer_ = std::make_unique<runtime::Rescuer>(*store_, kWorker, events_, rescue);
    pruner_ = std::make_unique<runtime::Pruner>(*store_, kWorker, runtime::PrunerOptions{1h});
    outbox_check_ = std::make_unique<runtime::OutboxCheck>(
        *store_, kWorker, runtime::OutboxCheckOptions{options_.orphaned_job_threshold, false});
    runtime::MaintenanceOptions m;
    m.orphaned_jobs_check_interval = 1h;
    m.timeout_grace = 5s;
    maintenance_ = std::make_unique<runtime::Maintenance>(
        *store_, kWorker, *slots_, *registration_, *completer_,
        runtime::MaintenanceDuties{*heartbeat_, *rescuer_, *pruner_, *outbox_check_}, &queue_, m);
  }

  JobId enqueue(int n, const JobOptions& o = {}) { return JobRunner(store_).start_job(Work{n}, o); }
  JobRecord job(const JobId& id) { return *store_->job_get(id); }
  int events(Kind k) const {
    return static_cast<int>(
        std::count_if(seen_.begin(), seen_.end(), [&](const auto& e) { return e.first == k; }));
  }
  int running() {
    auto jobs = store_->job_list({});
    return static_cast<int>(std::count_if(jobs.begin(), jobs.end(), [](const JobRecord& j) {
      return j.status == JobStatus::kRunning;
    }));
  }
  // Runs every job of the local queue, then stores their outcomes.
  void run_all() {
    while (executor_->run_once()) {
    }
    completer_->run_once();
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::shared_ptr<Store> store_;
  HandlerRegistry handlers_;
  WorkerOptions options_;
  std::vector<int> ran_;
  std::vector<std::pair<Kind, JobId>> seen_;
  runtime::Events events_{[this](const JobEvent& e) { seen_.emplace_back(e.kind, e.id); }};
  FakeQueue queue_;
  std::unique_ptr<runtime::ClaimPolicy> policy_;
  std::unique_ptr<runtime::JobSlots> slots_;
  std::unique_ptr<runtime::Registration> registration_;
  std::unique_ptr<runtime::Completer> completer_;
  std::unique_ptr<runtime::Executor> executor_;
  std::unique_ptr<runtime::Producer> producer_;
  std::unique_ptr<runtime::Heartbeat> heartbeat_;
  std::unique_ptr<runtime::Rescuer> rescuer_;
  std::unique_ptr<runtime::Pruner> pruner_;
  std::unique_ptr<runtime::OutboxCheck> outbox_check_;
  std::unique_ptr<runtime::Maintenance> maintenance_;
};

TEST_F(WorkerServicesTest, TheProducerClaimsAtMostTheFreeSlots) {
  for (int i = 0; i < 5; ++i) enqueue(i);
  build();
  EXPECT_EQ(producer_->run_once(), 2u);
  EXPECT_EQ(slots_->size(), 2u);
  EXPECT_EQ(running(), 2);
  EXPECT_EQ(producer_->run_once(), 0u);  // saturated: nothing more
  // Handlers that return free their slots at once, before their outcomes are stored.
  EXPECT_TRUE(executor_->run_once());
  EXPECT_TRUE(executor_->run_once());
  EXPECT_EQ(producer_->run_once(), 2u);
  EXPECT_EQ(completer_->run_once(), 2u);
  EXPECT_EQ(events(Kind::kCompleted), 2);
}

// Outcomes that wait for the completer free their slots only up to max_concurrent_jobs +
// prefetch_jobs of them: a store that stopped taking outcomes stops the claims too.
TEST_F(WorkerServicesTest, OutcomesWaitingBeyondTheCapacityCountAgainstTheSlots) {
  options_.max_concurrent_jobs = 1;
  for (int i = 0; i < 4; ++i) enqueue(i);
  build();
  EXPECT_EQ(producer_->run_once(), 1u);
  EXPECT_TRUE(executor_->run_once());  // one outcome waits: within the capacity
  EXPECT_EQ(producer_->run_once(), 1u);
  EXPECT_TRUE(executor_->run_once());  // two wait: one past the capacity
  EXPECT_EQ(slots_->room(), 0);
  EXPECT_EQ(producer_->run_once(), 0u);
  EXPECT_EQ(completer_->run_once(), 2u);  // stored: the slot is free again
  EXPECT_EQ(producer_->run_once(), 1u);
}

// With a local queue, claims top it up in batches once half of it has drained, not one job at
// a time while the executor has work waiting.
TEST_F(WorkerServicesTest, PrefetchedJobsFillALocalQueueInBatches) {
  options_.max_concurrent_jobs = 1;
  options_.prefetch_jobs = 4;
  for (int i = 0; i < 8; ++i) enqueue(i);
  build();
  EXPECT_EQ(producer_->run_once(), 5u);
  EXPECT_EQ(running(), 5);
  EXPECT_TRUE(executor_->run_once());
  EXPECT_EQ(producer_->run_once(), 0u);  // one place free
  EXPECT_TRUE(executor_->run_once());
  EXPECT_EQ(producer_->run_once(), 2u);  // two: half of the local queue
}

TEST_F(WorkerServicesTest, AQueueLimitCapsItsQueueWithinOneRound) {
  options_.max_concurrent_jobs = 4;
  options_.queues = {"mail", "bills"};
  options_.queue_limits = {{"mail", 1}};
  for (int i = 0; i < 3; ++i) enqueue(i, {.queue = "mail"});
  for (int i = 0; i < 3; ++i) enqueue(10 + i, {.queue = "bills"});
  build();
  EXPECT_EQ(producer_->run_once(), 4u);  // one from mail, three from bills
  run_all();
  std::sort(ran_.begin(), ran_.end());
  EXPECT_EQ(ran_, (std::vector<int>{0, 10, 11, 12}));
}

// The registry row rides on a claim once it is half a heartbeat_interval old (polling is slow
// here); without claims the heartbeat renews it a heartbeat_interval after the last renewal.
TEST_F(WorkerServicesTest, TheRegistryRowRidesOnClaimsAndTheHeartbeatCoversTheRest) {
  build();
  TimePoint start = clock_.now();
  heartbeat_->recover_at_start(start);
  auto row = [&] { return JobRunner(store_).list_workers().at(0).heartbeat_at; };
  ASSERT_EQ(row(), start);
  clock_.advance(2s);
  producer_->run_once();
  EXPECT_EQ(row(), start);
  clock_.advance(1s);
  producer_->run_once();
  EXPECT_EQ(row(), start + 3s);
  clock_.advance(4s);
  EXPECT_TRUE(heartbeat_->run_once(clock_.now(), false));
  EXPECT_EQ(row(), start + 3s);  // 4 s after the claim's renewal: not due
  clock_.advance(1s);
  EXPECT_TRUE(heartbeat_->run_once(clock_.now(), false));
  EXPECT_EQ(row(), start + 8s);
}

// Group commit: the outcomes waiting go in one call, and the one the store refuses (its job is
// no longer this attempt's) is reported as fenced. Nothing is reported before it is stored.
TEST_F(WorkerServicesTest, TheCompleterStoresABatchAndReportsTheFencedOutcome) {
  options_.max_concurrent_jobs = 3;
  for (int i = 0; i < 3; ++i) enqueue(i);
  build();
  ASSERT_EQ(producer_->run_once(), 3u);
  JobRecord first = store_->job_list({}).at(0);
  ASSERT_EQ(first.status, JobStatus::kRunning);
  // The first job is given back behind this attempt's back (as a stop of another process or an
  // operator might): its outcome will be refused.
  ASSERT_TRUE(store_->job_finish(runtime::finish_params(runtime::released(first.run_at), first.id,
                                                        first.lease, kWorker, clock_.now())));
  while (executor_->run_once()) {
  }
  EXPECT_EQ(events(Kind::kStarted), 3);
  EXPECT_EQ(events(Kind::kCompleted), 0);  // not stored yet
  EXPECT_EQ(slots_->size(), 3u);           // still held (and heartbeated) until stored
  EXPECT_EQ(completer_->run_once(), 3u);
  EXPECT_EQ(events(Kind::kCompleted), 2);
  EXPECT_EQ(events(Kind::kFenced), 1);
  EXPECT_NE(std::find(seen_.begin(), seen_.end(), std::pair(Kind::kFenced, first.id)), seen_.end());
  EXPECT_EQ(slots_->size(), 0u);
  EXPECT_EQ(job(first.id).status, JobStatus::kPending);
  EXPECT_EQ(running(), 0);
}

TEST_F(WorkerServicesTest, TheExecutorRetriesAThrowAtBackoff) {
  JobId id = enqueue(-1);
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  run_all();
  JobRecord r = job(id);
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.error_message, "std::runtime_error: boom");
  EXPECT_GE(r.run_at, clock_.now() + 5s);  // attempt 1 at a 10 s base: 5 to 10 s
  EXPECT_LE(r.run_at, clock_.now() + 10s);
  EXPECT_EQ(events(Kind::kRetryScheduled), 1);
}

// A cancel reaches the worker through its heartbeat; a job still waiting never starts.
TEST_F(WorkerServicesTest, AJobCancelledWhileItWaitsNeverStarts) {
  JobId id = enqueue(1);
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  EXPECT_EQ(JobRunner(store_).cancel(id), CancelOutcome::kRequested);
  EXPECT_TRUE(heartbeat_->run_once(clock_.now(), true));
  run_all();
  EXPECT_TRUE(ran_.empty());
  EXPECT_EQ(job(id).status, JobStatus::kCancelled);
  EXPECT_EQ(job(id).error_message, "cancelled before it started");
  EXPECT_EQ(events(Kind::kCancelled), 1);
}

TEST_F(WorkerServicesTest, TheHeartbeatGivesBackAJobClaimedButNeverReceived) {
  enqueue(1);
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  JobId phantom = enqueue(2);
  ASSERT_EQ(store_->job_claim({kWorker, 1, clock_.now()}).size(), 1u);  // reply lost
  EXPECT_TRUE(heartbeat_->run_once(clock_.now(), true));
  EXPECT_EQ(events(Kind::kReleased), 1);
  JobRecord r = job(phantom);
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.attempt, 0);
}

// A job rescued elsewhere is no longer this worker's: its handler is told to stop, and a job
// that had not started yet is dropped without a write.
TEST_F(WorkerServicesTest, TheHeartbeatStopsAJobRescuedElsewhere) {
  JobId id = enqueue(1);
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  JobRescueParams r;
  r.now = clock_.now();
  r.stale_before = clock_.now() + 1s;
  ASSERT_EQ(store_->job_rescue(r), 1);
  EXPECT_TRUE(heartbeat_->run_once(clock_.now(), true));
  bool stopped = false;
  slots_->visit([&](const runtime::SlotKey&, runtime::Slot& s) {
    stopped = s.lost && s.stop.stop_requested();
  });
  EXPECT_TRUE(stopped);
  run_all();
  EXPECT_TRUE(ran_.empty());
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(slots_->size(), 0u);
  EXPECT_EQ(job(id).status, JobStatus::kPending);
}

// The test plays the executor whose handler ignores its stop token: maintenance fires the
// token at the timeout and fails the attempt without the handler after the grace.
TEST_F(WorkerServicesTest, MaintenanceFailsAnAttemptThatIgnoresItsTimeout) {
  JobId id = enqueue(1, {.max_attempts = 1, .timeout = 10s});
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  auto next = slots_->next(false);
  ASSERT_TRUE(next);
  auto ctx =
      std::make_shared<runtime::AttemptContext>(*store_, next->job, kWorker, 1, next->stop, 250ms);
  slots_->started({id, next->job.lease}, ctx, clock_.now());
  maintenance_->run_once();
  EXPECT_FALSE(ctx->stop_requested());
  clock_.advance(10s);
  maintenance_->run_once();
  EXPECT_TRUE(ctx->stop_requested());
  EXPECT_EQ(job(id).status, JobStatus::kRunning);
  clock_.advance(5s);
  maintenance_->run_once();
  JobRecord r = job(id);
  EXPECT_EQ(r.status, JobStatus::kFailed);
  EXPECT_EQ(r.error_message, "timed out after 00:00:10 and did not stop within the grace period");
  EXPECT_EQ(events(Kind::kFailed), 1);
}

TEST_F(WorkerServicesTest, TheRescuerReturnsOrphansUnlessHeldOff) {
  JobId id = enqueue(1);
  ASSERT_EQ(store_->job_claim({"vanished", 1, clock_.now()}).size(), 1u);
  build();
  clock_.advance(31s);
  rescuer_->hold_until(clock_.now() + 1s);  // a heartbeat of ours failed a moment ago
  rescuer_->run_once(clock_.now());
  EXPECT_EQ(job(id).status, JobStatus::kRunning);
  clock_.advance(1s);
  rescuer_->run_once(clock_.now());
  EXPECT_EQ(job(id).status, JobStatus::kPending);
  EXPECT_EQ(job(id).rescue_count, 1);
  EXPECT_EQ(events(Kind::kRescued), 1);
}

TEST_F(WorkerServicesTest, ThePrunerDeletesFinishedJobsPastTheirRetention) {
  JobId id = enqueue(1);
  build();
  ASSERT_EQ(producer_->run_once(), 1u);
  run_all();
  clock_.advance(59min);
  pruner_->run_once(clock_.now());
  EXPECT_TRUE(store_->job_get(id));
  clock_.advance(2min);
  pruner_->run_once(clock_.now());
  EXPECT_FALSE(store_->job_get(id));
}

TEST_F(WorkerServicesTest, TheRelayPublishesTheOutboxAndRemovesWhatItPublished) {
  store_->outbox_enable();
  JobId now = enqueue(1);
  JobId later = enqueue(2, {.delay = 1min});
  runtime::Relay relay(*store_, kWorker, queue_, {});
  EXPECT_EQ(relay.run_once(), 2u);
  ASSERT_EQ(queue_.published.size(), 2u);
  EXPECT_EQ(queue_.published[0], std::pair(now, Duration::zero()));
  EXPECT_EQ(queue_.published[1], std::pair(later, Duration(1min)));
  EXPECT_TRUE(store_->outbox_peek(10).empty());
  EXPECT_EQ(relay.run_once(), 0u);
}

TEST_F(WorkerServicesTest, TheOutboxIsDroppedWhenNoLiveWorkerRelays) {
  store_->outbox_enable();
  enqueue(1);
  runtime::OutboxCheck relaying(*store_, kWorker, {30s, true});
  relaying.run_once(clock_.now());
  EXPECT_TRUE(store_->outbox_state().enabled);
  build();
  outbox_check_->run_once(clock_.now());
  EXPECT_FALSE(store_->outbox_state().enabled);
  EXPECT_EQ(store_->outbox_state().rows, 0);
}

// A message's job is claimed and runs; its message is removed once the outcome is stored. A
// message for a job not due yet is hidden until it is; one for a finished job is removed.
TEST_F(WorkerServicesTest, TheConsumerClaimsTheJobsItsMessagesName) {
  JobId due = enqueue(1);
  JobId later = enqueue(2, {.delay = 1min});
  JobId done = enqueue(3);
  options_.max_concurrent_jobs = 4;
  build();
  auto other = store_->job_claim_id({"other", 1, clock_.now()}, done);
  ASSERT_TRUE(other);
  ASSERT_TRUE(store_->job_finish(
      runtime::finish_params(runtime::Outcome{}, done, other->lease, "other", clock_.now())));
  queue_.put(due, "m-due");
  queue_.put(later, "m-later");
  queue_.put(done, "m-done");
  runtime::Consumer consumer(*store_, *policy_, *slots_, queue_, {});
  EXPECT_EQ(consumer.run_once(), 3u);
  EXPECT_EQ(slots_->size(), 1u);
  EXPECT_EQ(queue_.postponed, (std::vector<std::pair<std::string, Duration>>{{"m-later", 1min}}));
  EXPECT_EQ(queue_.removed, std::vector<std::string>{"m-done"});
  run_all();
  EXPECT_EQ(job(due).status, JobStatus::kCompleted);
  EXPECT_EQ(queue_.removed, (std::vector<std::string>{"m-done", "m-due"}));
  EXPECT_EQ(job(later).status, JobStatus::kPending);
}

}  // namespace
}  // namespace ergon::testing
