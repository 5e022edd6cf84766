// The worker against each store (SQLite; PostgreSQL with ERGON_TEST_POSTGRES_URL), with a
// FakeClock for everything time-dependent and the worker's on_event hook (through
// EventCounter) instead of sleeps.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <tuple>

#include "ergon/ergon.h"
#include "store/store.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Work {
  static constexpr std::string_view kJobType = "work";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Work, n)

class WorkerTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  WorkerTest() {
    options_.max_concurrent_jobs = 4;
    // Long enough that a test passing proves the in-process wake-up, not the poll.
    options_.polling_interval = 1h;
    options_.retry_base_delay = 10s;
    options_.on_event = [this](const JobEvent& e) { counter(e.kind).add(); };
  }
  void SetUp() override {
    backend_ = GetParam().make(dir_);
    if (backend_) store_ = backend_->open(clock_);
  }

  EventCounter& counter(Kind k) { return events_[static_cast<int>(k)]; }
  bool wait_for(Kind k, int n) { return counter(k).wait_for(n); }

  std::unique_ptr<JobsWorker> make_worker() {
    return std::make_unique<JobsWorker>(store_, std::move(handlers_), options_);
  }

  // Work's handler counts itself in inside_, then waits until the test opens gate_.
  void add_blocking_handler() {
    handlers_.add<Work>([this](const Work&, JobContext&) {
      inside_.add();
      gate_.wait();
    });
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::unique_ptr<TestBackend> backend_;  // outlives every store of the test
  std::shared_ptr<Store> store_;
  HandlerRegistry handlers_;
  WorkerOptions options_;
  EventCounter events_[9];  // one per JobEvent::Kind
  Gate gate_;
  EventCounter inside_;
};

INSTANTIATE_TEST_SUITE_P(Stores, WorkerTest, every_backend(), backend_name);

TEST_P(WorkerTest, RunsAJobEnqueuedInProcessAtOnce) {
  handlers_.add<Work>([](const Work&, JobContext& ctx) { ctx.report_progress("done", 100); });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{1});
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kCompleted);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_EQ(r->completed_at, clock_.now());
  EXPECT_EQ(r->progress_message, "done");
  EXPECT_EQ(r->progress_percent, 100);
  EXPECT_EQ(r->worker_id, worker->worker_id());
  worker->stop();
}

// A handler that throws Snooze runs again after the delay, and the snooze uses no attempt.
TEST_P(WorkerTest, ASnoozedJobRunsAgainLaterWithoutUsingAnAttempt) {
  std::atomic<int> runs{0};
  handlers_.add<Work>(
      [&](const Work&, JobContext&) {
        if (runs++ == 0) throw Snooze(30s);
      },
      JobTypeOptions{.max_attempts = 1});
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{});
  ASSERT_TRUE(wait_for(Kind::kSnoozed, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->run_at, clock_.now() + 30s);
  EXPECT_EQ(r->attempt, 0);       // the attempt it used is given back
  EXPECT_FALSE(r->max_attempts);  // and the limit is left as it was (the handler's)
  clock_.advance(30s);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.get_job(id)->status, JobStatus::kCompleted);
  EXPECT_EQ(runs, 2);
  worker->stop();
}

// A paused queue starts nothing on any worker; resuming wakes this process's workers.
TEST_P(WorkerTest, APausedQueueStartsNothingUntilResumed) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  JobRunner runner(store_);
  runner.pause_queue("reports");
  JobId id = runner.start_job(Work{}, {.queue = "reports"});
  auto worker = make_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  EXPECT_EQ(runner.get_job(id)->status, JobStatus::kPending);
  worker->start();
  runner.resume_queue("reports");
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.get_job(id)->status, JobStatus::kCompleted);
  worker->stop();
}

// A worker configured with queues takes jobs from those only.
TEST_P(WorkerTest, AWorkerServesOnlyItsQueues) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  options_.queues = {"mail"};
  JobRunner runner(store_);
  JobId other = runner.start_job(Work{1}, {.queue = "bills"});
  JobId mine = runner.start_job(Work{2}, {.queue = "mail"});
  auto worker = make_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 1u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.get_job(mine)->status, JobStatus::kCompleted);
  EXPECT_EQ(runner.get_job(other)->status, JobStatus::kPending);
  worker->stop();
}

// How many handlers of each queue run at once, as the handlers themselves count.
class QueueConcurrency {
 public:
  void enter(const std::string& queue) {
    std::lock_guard lock(mu_);
    int n = ++now_[queue];
    most_[queue] = std::max(most_[queue], n);
  }
  void leave(const std::string& queue) {
    std::lock_guard lock(mu_);
    --now_[queue];
  }
  int most(const std::string& queue) {
    std::lock_guard lock(mu_);
    return most_[queue];
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> now_, most_;
};

// Work{n}: n < 100 are enqueued in "mail", the others in "bills" (handlers know their queue
// from their job only).
std::string queue_of(const Work& w) { return w.n < 100 ? "mail" : "bills"; }

// WorkerOptions::queue_limits: at most two mail jobs at once, while bills fill the other slots;
// and as mail jobs finish, the next ones are claimed at once, not at the next poll.
TEST_P(WorkerTest, AQueueLimitCapsItsQueueWhileOtherQueuesFillTheRestOfThePool) {
  options_.max_concurrent_jobs = 8;
  options_.queues = {"mail", "bills"};
  options_.queue_limits = {{"mail", 2}};
  Gate gate;
  EventCounter inside;
  QueueConcurrency running;
  handlers_.add<Work>([&](const Work& w, JobContext&) {
    running.enter(queue_of(w));
    inside.add();
    gate.wait();
    running.leave(queue_of(w));
  });
  JobRunner runner(store_);
  // Mail first: a claim in (priority, run_at, id) order would take eight of them.
  for (int i = 0; i < 10; ++i) runner.start_job(Work{i}, {.queue = "mail"});
  for (int i = 0; i < 10; ++i) runner.start_job(Work{100 + i}, {.queue = "bills"});
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(inside.wait_for(8));
  auto running_in = [&](const char* queue) {
    return runner.list_jobs({.status = JobStatus::kRunning, .queue = queue, .limit = 50}).size();
  };
  EXPECT_EQ(running_in("mail"), 2u);
  EXPECT_EQ(running_in("bills"), 6u);
  EXPECT_EQ(worker->running_jobs(), 8u);
  gate.open();
  // The polling interval is an hour and the clock stands still: every mail job after the
  // first two is claimed because a mail job finished.
  ASSERT_TRUE(wait_for(Kind::kCompleted, 20));
  EXPECT_EQ(running.most("mail"), 2);
  worker->stop();
}

// A worker whose every queue has a limit claims nothing beyond them, and nothing from a queue
// it does not serve (its claims never go out without a queue filter).
TEST_P(WorkerTest, AWorkerWhoseQueuesAllHaveLimitsTakesOneJobAtATime) {
  options_.queues = {"mail"};
  options_.queue_limits = {{"mail", 1}};
  QueueConcurrency running;
  handlers_.add<Work>([&](const Work& w, JobContext&) {
    running.enter(queue_of(w));
    running.leave(queue_of(w));
  });
  JobRunner runner(store_);
  JobId other = runner.start_job(Work{100}, {.queue = "bills"});
  for (int i = 0; i < 3; ++i) runner.start_job(Work{i}, {.queue = "mail"});
  auto worker = make_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 1u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(worker->TEST_claim_once(), 1u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 2));
  worker->start();  // the producer takes the last one
  ASSERT_TRUE(wait_for(Kind::kCompleted, 3));
  worker->stop();
  EXPECT_EQ(running.most("mail"), 1);
  EXPECT_EQ(runner.get_job(other)->status, JobStatus::kPending);
}

TEST_P(WorkerTest, ALimitOfZeroTakesNothingFromThatQueue) {
  options_.queues = {"mail", "bills"};
  options_.queue_limits = {{"mail", 0}};
  handlers_.add<Work>([](const Work&, JobContext&) {});
  JobRunner runner(store_);
  for (int i = 0; i < 2; ++i) runner.start_job(Work{i}, {.queue = "mail"});
  for (int i = 0; i < 2; ++i) runner.start_job(Work{100 + i}, {.queue = "bills"});
  auto worker = make_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 2u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 2));
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kPending, .queue = "mail"}).size(), 2u);
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kCompleted, .queue = "bills"}).size(), 2u);
  worker->stop();
}

// Jobs waiting in the local queue (prefetch_jobs) are held: they count towards the limit.
TEST_P(WorkerTest, PrefetchedJobsCountTowardsTheirQueuesLimit) {
  options_.max_concurrent_jobs = 1;
  options_.prefetch_jobs = 4;
  options_.queues = {"mail"};
  options_.queue_limits = {{"mail", 2}};
  add_blocking_handler();
  JobRunner runner(store_);
  for (int i = 0; i < 5; ++i) runner.start_job(Work{i}, {.queue = "mail"});
  auto worker = make_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 2u);  // five places in slots and local queue, two allowed
  ASSERT_TRUE(inside_.wait_for(1));
  EXPECT_EQ(worker->running_jobs(), 2u);  // one runs, one waits in the local queue
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kRunning}).size(), 2u);
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 2));
  EXPECT_EQ(worker->TEST_claim_once(), 2u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 4));
  EXPECT_EQ(worker->TEST_claim_once(), 1u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 5));
  worker->stop();
}

// A queue at its limit does not keep the producer from the other queues: it claims them when
// woken in process and when it polls, while the limited queue waits for its own room.
TEST_P(WorkerTest, OtherQueuesAreStillClaimedWhileALimitedQueueIsFull) {
  options_.queues = {"mail", "bills"};
  options_.queue_limits = {{"mail", 1}};
  Gate gate;
  EventCounter inside;
  handlers_.add<Work>([&](const Work& w, JobContext&) {
    if (queue_of(w) != "mail") return;
    inside.add();
    gate.wait();
  });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId first = runner.start_job(Work{1}, {.queue = "mail"});
  ASSERT_TRUE(inside.wait_for(1));
  JobId second = runner.start_job(Work{2}, {.queue = "mail"});
  runner.start_job(Work{100}, {.queue = "bills"});  // wakes the worker: claimed at once
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  // Enqueued by another process (its own store, whose enqueues do not wake this worker in
  // process; on PostgreSQL its pg_notify may): found by the next poll at the latest. The poll
  // is due a polling interval after the producer went idle, which may come just after this
  // advance: then the next advance finds it.
  auto other_store = backend_->open(clock_);
  JobRunner(other_store).start_job(Work{101}, {.queue = "bills"});
  bool polled = false;
  for (int i = 0; i < 5 && !polled; ++i) {
    clock_.advance(options_.polling_interval);
    polled = counter(Kind::kCompleted).wait_for(2, 5s);
  }
  ASSERT_TRUE(polled);
  EXPECT_EQ(runner.get_job(first)->status, JobStatus::kRunning);
  EXPECT_EQ(runner.get_job(second)->status, JobStatus::kPending);
  gate.open();  // the first mail job ends; the second is claimed at once
  ASSERT_TRUE(wait_for(Kind::kCompleted, 4));
  EXPECT_EQ(counter(Kind::kStarted).count(), 4);
  worker->stop();
}

TEST_P(WorkerTest, RetriesWithBackoffThenFails) {
  handlers_.add<Work>([](const Work&, JobContext&) { throw std::runtime_error("boom"); },
                      JobTypeOptions{.max_attempts = 3});
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{});

  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_EQ(r->error_message, "std::runtime_error: boom");
  // Attempt 1 waits base/2..base (equal jitter).
  EXPECT_GE(r->run_at - clock_.now(), 5s);
  EXPECT_LE(r->run_at - clock_.now(), 10s);

  clock_.advance(10s);  // the producer sleeps until the retry is due, then claims it
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 2));
  r = runner.get_job(id);
  EXPECT_EQ(r->attempt, 2);
  EXPECT_GE(r->run_at - clock_.now(), 10s);
  EXPECT_LE(r->run_at - clock_.now(), 20s);

  clock_.advance(20s);
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kFailed);
  EXPECT_EQ(r->attempt, 3);
  EXPECT_EQ(r->error_message, "std::runtime_error: boom");
  EXPECT_TRUE(r->completed_at);
  worker->stop();
}

TEST_P(WorkerTest, PerJobMaxAttemptsWinsOverTheHandlers) {
  handlers_.add<Work>([](const Work&, JobContext&) { throw std::runtime_error("boom"); },
                      JobTypeOptions{.max_attempts = 5});
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{}, {.max_attempts = 1});
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  EXPECT_EQ(runner.get_job(id)->attempt, 1);
  EXPECT_EQ(counter(Kind::kRetryScheduled).count(), 0);
}

// Workers of different applications share a database: each claims only the types it has
// handlers for, and the others' jobs wait for them instead of failing here.
TEST_P(WorkerTest, AWorkerLeavesJobsOfTypesItHasNoHandlerForPending) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  JobRunner runner(store_);
  JobId other = runner.start_job_raw("another_apps_job", "{}");
  JobId mine = runner.start_job(Work{});
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->TEST_wait_quiet();
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  EXPECT_EQ(runner.get_job(mine)->status, JobStatus::kCompleted);
  auto r = runner.get_job(other);
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->attempt, 0);
  EXPECT_EQ(counter(Kind::kFailed).count(), 0);
  EXPECT_EQ(runner.unhandled_job_types(std::chrono::minutes(1)),
            (std::vector<JobTypeCount>{{"another_apps_job", 1}}));
  worker->stop();
}

// Messaging turned off: the triggers a relay installed would fill job_outbox forever. A worker
// that is no relay drops them when no live worker relays, and leaves them while one does.
TEST_P(WorkerTest, AWorkerDropsTheOutboxTriggersWhenNoLiveWorkerRelays) {
  JobRunner runner(store_);
  store_->outbox_enable();
  runner.start_job_raw("t", "{}");
  WorkerRecord relay;
  relay.id = relay.name = "relay";
  relay.host = "elsewhere";
  relay.pid = 1;
  relay.started_at = relay.heartbeat_at = clock_.now();
  relay.relay = true;
  store_->worker_register(relay);
  {
    auto worker = make_worker();
    worker->start();
    EXPECT_EQ(runner.outbox_state().enabled, true);  // the relay is alive
    worker->stop();
  }
  clock_.advance(options_.orphaned_job_threshold + 1s);
  auto worker = make_worker();
  worker->start();
  OutboxState state = runner.outbox_state();
  EXPECT_FALSE(state.enabled);
  EXPECT_EQ(state.rows, 0);
  worker->stop();
}

// WorkerOptions::claim_unhandled_types: a catch-all claims every type and fails the ones it
// cannot run.
TEST_P(WorkerTest, UnknownJobTypeFailsAtOnceWithAClearMessage) {
  options_.claim_unhandled_types = true;
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job_raw("nobody_handles_this", "{}");
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kFailed);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_EQ(r->error_message, "no handler is registered for job type 'nobody_handles_this'");
}

// Events are reported by the completer after the attempt's own strings are gone: their text
// must still be the job's (ASan catches a view into freed memory here).
TEST_P(WorkerTest, EventsCarryTheJobsTypeQueueAndErrorText) {
  std::mutex mu;
  std::vector<std::tuple<Kind, std::string, std::string, std::string>> seen;
  auto count = options_.on_event;
  options_.on_event = [&, count](const JobEvent& e) {
    {
      std::lock_guard lock(mu);
      seen.emplace_back(e.kind, std::string(e.job_type), std::string(e.error),
                        std::string(e.queue));
    }
    count(e);
  };
  options_.default_max_attempts = 1;
  handlers_.add<Work>([](const Work& w, JobContext&) {
    if (w.n == 1) throw std::runtime_error("boom " + std::string(300, 'x'));
  });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobOptions o;
  o.queue = "reports";
  runner.start_job(Work{1}, o);
  runner.start_job(Work{2}, o);
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
  std::lock_guard lock(mu);
  int checked = 0;
  for (const auto& [kind, type, error, queue] : seen) {
    EXPECT_EQ(type, "work");
    EXPECT_EQ(queue, "reports");
    if (kind == Kind::kFailed) {
      EXPECT_EQ(error, "std::runtime_error: boom " + std::string(300, 'x'));
      ++checked;
    }
    if (kind == Kind::kCompleted) ++checked;
  }
  EXPECT_EQ(checked, 2);
}

TEST_P(WorkerTest, UndecodableJobDataFailsAtOnce) {
  handlers_.add<Work>([](const Work&, JobContext&) { FAIL() << "must not run"; });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job_raw("work", R"({"n": "not a number"})");
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->status, JobStatus::kFailed);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_NE(r->error_message->find("does not decode as 'work'"), std::string::npos);
}

TEST_P(WorkerTest, NonRetryableErrorFailsAtOnce) {
  handlers_.add<Work>([](const Work&, JobContext&) { throw NonRetryableError("account closed"); });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{});
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  EXPECT_EQ(runner.get_job(id)->error_message, "ergon::NonRetryableError: account closed");
}

TEST_P(WorkerTest, NeverRunsMoreThanMaxConcurrentJobs) {
  options_.max_concurrent_jobs = 3;
  Gate gate;
  std::atomic<int> now_running{0}, most{0};
  EventCounter inside;
  handlers_.add<Work>([&](const Work&, JobContext&) {
    int n = ++now_running;
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
    inside.add();
    gate.wait();
    --now_running;
  });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  for (int i = 0; i < 10; ++i) runner.start_job(Work{i});
  ASSERT_TRUE(inside.wait_for(3));
  // Saturated: exactly three claimed, the rest still Pending in the database.
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kRunning, .limit = 50}).size(), 3u);
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kPending, .limit = 50}).size(), 7u);
  EXPECT_EQ(worker->running_jobs(), 3u);
  gate.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 10));
  EXPECT_EQ(most.load(), 3);
  worker->stop();
}

TEST_P(WorkerTest, DelayedJobRunsWhenItsTimeComes) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  auto worker = make_worker();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{}, {.delay = 1min});
  EXPECT_EQ(worker->TEST_claim_once(), 0u);  // not due
  clock_.advance(59s);
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  clock_.advance(1s);
  EXPECT_EQ(worker->TEST_claim_once(), 1u);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.get_job(id)->status, JobStatus::kCompleted);
}

TEST_P(WorkerTest, StartedWorkerWakesForADelayedJobOfThisProcess) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  runner.start_job(Work{}, {.delay = 30s});
  clock_.advance(30s);  // far less than the 1 h polling interval
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
}

TEST_P(WorkerTest, TransactionalEnqueueRunsAfterCommitAndNotify) {
  handlers_.add<Work>([](const Work&, JobContext&) {});
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  auto app = backend_->connect();
  ASSERT_TRUE(app->begin()) << app->last_error();
  JobId id = start_job_tx(runner, *app, Work{7});
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();
  app.reset();
  runner.notify();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.get_job(id)->status, JobStatus::kCompleted);
}

// The handler's own writes and the job's completion commit together, or not at all.
class TransactionalCompletionTest : public WorkerTest {
 protected:
  // The handler writes a row to an application table on its own connection and completes the
  // job in the same transaction; `finish` is COMMIT or ROLLBACK.
  void run_with(const char* finish) {
    ASSERT_TRUE(backend_->connect()->exec("CREATE TABLE invoices (n INTEGER)"));
    options_.retry_base_delay = 1h;
    handlers_.add<Work>([this, finish](const Work& w, JobContext& ctx) {
      ctx.report_progress("starting", 0);  // written at once, before the transaction
      auto db = backend_->connect();
      db->begin();
      db->exec("INSERT INTO invoices VALUES (" + std::to_string(w.n) + ")");
      // Held back by the throttle (the fake clock stands still), so it is written by the
      // completion itself, inside the transaction, not by the store's own connection (which
      // on SQLite would have to wait for this transaction's write lock).
      ctx.report_progress("invoiced", 100);
      complete_in_transaction(ctx, *db);
      db->exec(finish);
    });
    auto worker = make_worker();
    worker->start();
    id_ = JobRunner(store_).start_job(Work{42});
    Kind expected = std::string(finish) == "COMMIT" ? Kind::kCompleted : Kind::kRetryScheduled;
    ASSERT_TRUE(wait_for(expected, 1));
    worker->stop();
  }
  int invoices() { return std::stoi(backend_->connect()->value("SELECT count(*) FROM invoices")); }
  JobId id_;
};

INSTANTIATE_TEST_SUITE_P(Stores, TransactionalCompletionTest, every_backend(), backend_name);

TEST_P(TransactionalCompletionTest, CommittedTogether) {
  run_with("COMMIT");
  auto r = JobRunner(store_).get_job(id_);
  EXPECT_EQ(r->status, JobStatus::kCompleted);
  EXPECT_EQ(r->progress_message, "invoiced");
  EXPECT_EQ(invoices(), 1);
  EXPECT_EQ(counter(Kind::kFenced).count(), 0);
}

TEST_P(TransactionalCompletionTest, RolledBackTogetherAndTheAttemptFails) {
  run_with("ROLLBACK");
  auto r = JobRunner(store_).get_job(id_);
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_NE(r->error_message->find("did not commit"), std::string::npos) << *r->error_message;
  EXPECT_EQ(invoices(), 0);
}

TEST_P(WorkerTest, CompletingInTransactionNeedsATransaction) {
  options_.retry_base_delay = 1h;
  handlers_.add<Work>([this](const Work&, JobContext& ctx) {
    auto db = backend_->connect();
    complete_in_transaction(ctx, *db);  // autocommit mode: refused
  });
  auto worker = make_worker();
  worker->start();
  JobId id = JobRunner(store_).start_job(Work{});
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 1));
  EXPECT_NE(JobRunner(store_).get_job(id)->error_message->find("open transaction"),
            std::string::npos);
}

TEST_P(WorkerTest, ProgressIsThrottledAndTheLastReportKept) {
  handlers_.add<Work>([](const Work&, JobContext& ctx) {
    // The fake clock does not move: only the first report is written while running, and the
    // last one goes out with the outcome.
    for (int p = 0; p <= 100; ++p) ctx.report_progress("step " + std::to_string(p), p);
  });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId id = runner.start_job(Work{});
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  auto r = runner.get_job(id);
  EXPECT_EQ(r->progress_message, "step 100");
  EXPECT_EQ(r->progress_percent, 100);
}

TEST_P(WorkerTest, GracefulStopReturnsUnfinishedJobsToPending) {
  options_.shutdown_timeout = 10s;
  Gate stubborn_gate;
  handlers_.add<Work>([&](const Work& w, JobContext& ctx) {
    if (w.n == 1) {  // cooperative: stops when asked
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, ctx.stop_token(), [] { return false; });
      ctx.throw_if_stop_requested();
    } else {  // stubborn: ignores the stop token
      stubborn_gate.wait();
    }
  });
  auto worker = make_worker();
  worker->start();
  JobRunner runner(store_);
  JobId cooperative = runner.start_job(Work{1});
  JobId stubborn = runner.start_job(Work{2});
  ASSERT_TRUE(wait_for(Kind::kStarted, 2));

  std::thread stopper([&] { worker->stop(); });
  ASSERT_TRUE(wait_for(Kind::kReleased, 1));  // the cooperative one, at once
  auto c = runner.get_job(cooperative);
  EXPECT_EQ(c->status, JobStatus::kPending);
  EXPECT_EQ(runner.get_job(stubborn)->status, JobStatus::kRunning);

  clock_.advance(10s);  // the grace period ends: the stubborn job is given back too
  ASSERT_TRUE(wait_for(Kind::kReleased, 2));
  auto s = runner.get_job(stubborn);
  EXPECT_EQ(s->status, JobStatus::kPending);
  EXPECT_FALSE(s->worker_id);
  for (const auto& r : {*c, *s}) {
    EXPECT_EQ(r.attempt, 0);       // the release gave its attempt back
    EXPECT_FALSE(r.max_attempts);  // and left the limit as it was
    EXPECT_FALSE(r.error_message);
  }

  stubborn_gate.open();  // the stubborn handler returns late: its outcome is refused
  stopper.join();
  EXPECT_EQ(counter(Kind::kFenced).count(), 1);
  EXPECT_EQ(counter(Kind::kCompleted).count(), 0);
  EXPECT_EQ(runner.get_job(stubborn)->status, JobStatus::kPending);

  // Another worker picks both up again.
  handlers_ = HandlerRegistry();
  handlers_.add<Work>([](const Work&, JobContext&) {});
  auto next = make_worker();
  next->start();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 2));
  EXPECT_EQ(runner.get_job(stubborn)->attempt, 1);  // the stop cost no attempt
  EXPECT_EQ(runner.get_job(stubborn)->lease, 2);    // but the fencing token moved on
  next->stop();
}

TEST_P(WorkerTest, PrefetchedJobsWaitInALocalQueueAndAStopGivesThemBackAtOnce) {
  options_.max_concurrent_jobs = 2;
  options_.prefetch_jobs = 3;
  add_blocking_handler();
  JobRunner runner(store_);
  for (int i = 0; i < 10; ++i) runner.start_job(Work{i});
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(inside_.wait_for(2));
  // One claim of slots plus local queue: two run, three wait, all five Running in the database.
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kRunning, .limit = 50}).size(), 5u);
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kPending, .limit = 50}).size(), 5u);
  EXPECT_EQ(worker->running_jobs(), 5u);
  EXPECT_EQ(counter(Kind::kStarted).count(), 2);

  std::thread stopper([&] { worker->stop(); });
  // The three that never started go back before the running handlers return.
  ASSERT_TRUE(wait_for(Kind::kReleased, 3));
  EXPECT_EQ(runner.list_jobs({.status = JobStatus::kPending, .limit = 50}).size(), 8u);
  for (const auto& r : runner.list_jobs({.status = JobStatus::kPending, .limit = 50})) {
    EXPECT_EQ(r.attempt, 0);       // never claimed, or the release gave its attempt back
    EXPECT_FALSE(r.max_attempts);  // and left the limit as it was
  }
  gate_.open();
  stopper.join();
  EXPECT_EQ(counter(Kind::kCompleted).count(), 2);
  EXPECT_EQ(counter(Kind::kStarted).count(), 2);
}

// A job cancelled while it waits in the local queue never starts: it is stored Cancelled.
TEST_P(WorkerTest, APrefetchedJobCancelledBeforeItStartsNeverRuns) {
  options_.max_concurrent_jobs = 1;
  options_.prefetch_jobs = 1;
  Gate gate;
  EventCounter inside;
  std::atomic<int> second_ran{0};
  handlers_.add<Work>([&](const Work& w, JobContext&) {
    if (w.n == 2) {
      ++second_ran;
      return;
    }
    inside.add();
    gate.wait();
  });
  JobRunner runner(store_);
  runner.start_job(Work{1});
  clock_.advance(1ms);  // claim order: run_at, then id
  JobId waiting = runner.start_job(Work{2});
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(inside.wait_for(1));
  ASSERT_EQ(runner.get_job(waiting)->status, JobStatus::kRunning);  // claimed, in the queue
  // The cancel reaches the worker through a heartbeat. Two cancels, each waited for until its
  // heartbeat is in the database: the second heartbeat ran after the first one had marked the
  // slot (one thread does both).
  for (int i = 0; i < 2; ++i) {
    clock_.advance(1s);
    EXPECT_EQ(runner.cancel(waiting), CancelOutcome::kRequested);
    TimePoint now = clock_.now();
    ASSERT_TRUE(eventually([&] { return runner.get_job(waiting)->heartbeat_at == now; }));
  }
  gate.open();
  ASSERT_TRUE(wait_for(Kind::kCancelled, 1));
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
  auto r = runner.get_job(waiting);
  EXPECT_EQ(r->status, JobStatus::kCancelled);
  EXPECT_EQ(r->error_message, "cancelled before it started");
  EXPECT_EQ(second_ran.load(), 0);
}

// What a worker checks before it uses its store: SQLite is enough.
class WorkerOptionsTest : public WorkerTest {};
INSTANTIATE_TEST_SUITE_P(Sqlite, WorkerOptionsTest, ::testing::Values(sqlite_backend()),
                         backend_name);

TEST_P(WorkerOptionsTest, StopWithoutStartAndTwiceIsHarmless) {
  auto worker = make_worker();
  worker->stop();
  worker->stop();
  EXPECT_THROW(worker->start(), Error);
}

TEST_P(WorkerOptionsTest, RejectsBadOptions) {
  WorkerOptions bad;
  bad.polling_interval = Duration::zero();
  EXPECT_THROW(JobsWorker(store_, HandlerRegistry(), bad), Error);
  bad = WorkerOptions();
  bad.default_max_attempts = 0;
  EXPECT_THROW(JobsWorker(store_, HandlerRegistry(), bad), Error);
  bad = WorkerOptions();
  bad.prefetch_jobs = -1;
  EXPECT_THROW(JobsWorker(store_, HandlerRegistry(), bad), Error);
  EXPECT_THROW(JobsWorker(nullptr, HandlerRegistry(), WorkerOptions()), Error);
}

// A queue limit the worker cannot keep, or that names a queue it does not serve, is refused.
TEST_P(WorkerOptionsTest, RejectsQueueLimitsItCannotKeep) {
  auto error_of = [&](std::vector<std::string> queues, std::map<std::string, int> limits) {
    WorkerOptions o;
    o.queues = std::move(queues);
    o.queue_limits = std::move(limits);
    try {
      JobsWorker(store_, HandlerRegistry(), o);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({"mail"}, {{"mail", -1}}).find("must not be negative"), std::string::npos);
  // Serving every queue: the claim could not leave the limited queue out.
  EXPECT_NE(error_of({}, {{"mail", 2}}).find("queue_limits needs queues"), std::string::npos);
  EXPECT_NE(error_of({"bills"}, {{"mail", 2}}).find("'mail', which is not one of"),
            std::string::npos);
  EXPECT_EQ(error_of({"mail", "bills"}, {{"mail", 0}}), "no error");
}

TEST_P(WorkerOptionsTest, DefaultConcurrencyIsFiveTimesTheHardwareThreads) {
  options_.max_concurrent_jobs = 0;
  auto worker = make_worker();
  EXPECT_EQ(worker->max_concurrent_jobs(),
            5 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

// The process that runs JobsWorker::run_until_signal() in the test below: this test binary
// again, running only this test (which does nothing unless ERGON_TEST_SIGNAL_DIR is set). Its
// one job says "ready" on the FIFO once the worker runs, so its signals are blocked by then.
TEST(RunUntilSignalStandIn, Runs) {
  const char* dir = std::getenv("ERGON_TEST_SIGNAL_DIR");
  if (dir == nullptr) GTEST_SKIP() << "run by RunUntilSignal.StopsGracefullyOnSighup...";
  auto store = open_store("sqlite:" + std::string(dir) + "/jobs.db");
  HandlerRegistry handlers;
  handlers.add<Work>(
      [dir](const Work&, JobContext&) { std::ofstream(std::string(dir) + "/ready") << "ready\n"; });
  JobsWorker worker(store, std::move(handlers));
  JobRunner(store).start_job(Work{});
  worker.run_until_signal();
}

// SIGUSR1 and SIGPIPE do not kill an embedded worker, and SIGHUP stops it gracefully, as
// `ergon worker` (docs/cli.md): the process ends normally, its job Completed.
TEST(RunUntilSignal, StopsGracefullyOnSighupAndSurvivesSigusr1AndSigpipe) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir.path() / "ready").c_str(), 0600), 0);
  std::string env_dir = "ERGON_TEST_SIGNAL_DIR=" + dir.path().string();
  std::vector<char*> envp = {env_dir.data()};
  for (char** entry = environ; *entry != nullptr; ++entry) envp.push_back(*entry);
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execle("/proc/self/exe", "worker_test", "--gtest_filter=RunUntilSignalStandIn.Runs",
             static_cast<char*>(nullptr), envp.data());
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  std::string line;
  std::getline(std::ifstream(dir.path() / "ready"), line);
  ASSERT_EQ(line, "ready");
  for (const int sig : {SIGUSR1, SIGPIPE, SIGHUP}) ASSERT_EQ(::kill(pid, sig), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto jobs = open_store("sqlite:" + dir.path().string() + "/jobs.db")->job_list({});
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, JobStatus::kCompleted);
}

}  // namespace
}  // namespace ergon::testing
