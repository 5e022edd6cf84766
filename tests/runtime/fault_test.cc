// Fault tolerance in the worker, on each store (SQLite; PostgreSQL with
// ERGON_TEST_POSTGRES_URL), with a FakeClock: a zombie is told to stop, startup recovery,
// timeouts, cancellation, the worker's own rescuer and pruner.
#include <gtest/gtest.h>
#include <spawn.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>

#include "ergon/ergon.h"
#include "runtime/worker_identity.h"
#include "store/store.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Task {
  static constexpr std::string_view kJobType = "task";
  int mode = 0;  // 0: cooperative (waits for its stop token), 1: stubborn (waits for the gate)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Task, mode)

class FaultTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  FaultTest() {
    options_.polling_interval = 1h;
    options_.heartbeat_interval = 5s;
    options_.orphaned_job_threshold = 30s;
    options_.orphaned_jobs_check_interval = 1h;
    options_.retry_base_delay = 1h;
    options_.run_scheduler = false;
    options_.on_event = [this](const JobEvent& e) { events_[static_cast<int>(e.kind)].add(); };
    handlers_.add<Task>([this](const Task& t, JobContext& ctx) {
      started_.add();
      if (t.mode == 0) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait(lock, ctx.stop_token(), [] { return false; });
        ctx.throw_if_stop_requested();
      } else {
        gate_.wait();
      }
    });
  }
  ~FaultTest() override { gate_.open(); }
  void SetUp() override {
    backend_ = GetParam().make(dir_);
    if (backend_) store_ = backend_->open(clock_);
  }

  std::unique_ptr<JobsWorker> start_worker() {
    auto w = std::make_unique<JobsWorker>(store_, handlers_, options_);
    w->start();
    return w;
  }
  bool wait_for(Kind k, int n) { return events_[static_cast<int>(k)].wait_for(n); }
  JobRecord job(const JobId& id) { return *store_->job_get(id); }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::unique_ptr<TestBackend> backend_;  // outlives every store of the test
  std::shared_ptr<Store> store_;
  HandlerRegistry handlers_;
  WorkerOptions options_;
  EventCounter events_[9];  // one per JobEvent::Kind
  EventCounter started_;
  Gate gate_;
};

INSTANTIATE_TEST_SUITE_P(Stores, FaultTest, every_backend(), backend_name);

// A worker whose job was rescued elsewhere (its lease lapsed) learns it at its next heartbeat:
// its handler is told to stop and its late outcome is refused.
TEST_P(FaultTest, AZombieIsToldToStopAndItsOutcomeIsRefused) {
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Task{0});
  ASSERT_TRUE(started_.wait_for(1));
  // Another worker's rescuer decides the job is orphaned (as if this worker had paused).
  JobRescueParams r;
  r.now = clock_.now();
  r.stale_before = clock_.now() + 1s;
  ASSERT_EQ(store_->job_rescue(r), 1);
  // The rescued job is due again and this very worker claims it as attempt 2 (a second slot
  // for the same job while attempt 1's handler is still running).
  ASSERT_TRUE(started_.wait_for(2));
  clock_.advance(5s);  // the next heartbeat finds attempt 1 gone and fires its stop token
  ASSERT_TRUE(wait_for(Kind::kFenced, 1));  // attempt 1's outcome is refused
  EXPECT_EQ(job(id).attempt, 2);
  EXPECT_EQ(job(id).status, JobStatus::kRunning);
  EXPECT_EQ(job(id).rescue_count, 1);
  worker->stop();  // attempt 2 is cooperative: it is released
  EXPECT_EQ(job(id).status, JobStatus::kPending);
}

TEST_P(FaultTest, HeartbeatsKeepALongJobAlive) {
  options_.orphaned_jobs_check_interval = 10s;
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Task{1});
  ASSERT_TRUE(started_.wait_for(1));
  JobRescueParams r;
  for (int i = 0; i < 12; ++i) {  // one minute, twice the threshold
    clock_.advance(5s);
    // Wait (bounded) for this tick's heartbeat before judging staleness.
    ASSERT_TRUE(eventually([&] { return job(id).heartbeat_at == clock_.now(); }));
    r.now = clock_.now();
    r.stale_before = clock_.now() - options_.orphaned_job_threshold;
    ASSERT_EQ(store_->job_rescue(r), 0);
  }
  EXPECT_EQ(job(id).status, JobStatus::kRunning);
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
}

// A claim can commit although its reply never arrives (the connection died after COMMIT): the
// database then says the worker holds a job it knows nothing of. Its heartbeat, which renews
// every job held in its name, must not keep such a job Running forever: it gives it back
// without using an attempt, and the job runs.
TEST_P(FaultTest, AJobClaimedInTheWorkersNameButNeverReceivedIsGivenBack) {
  options_.max_concurrent_jobs = 1;
  auto worker = start_worker();
  JobRunner runner(store_);
  runner.start_job(Task{1});
  ASSERT_TRUE(started_.wait_for(1));  // the worker is full: it claims nothing more
  JobId phantom = runner.start_job(Task{1});
  ASSERT_EQ(store_->job_claim({worker->worker_id(), 1, clock_.now()}).size(), 1u);
  clock_.advance(5s);  // the next heartbeat
  ASSERT_TRUE(wait_for(Kind::kReleased, 1));
  JobRecord j = job(phantom);
  EXPECT_EQ(j.status, JobStatus::kPending);
  EXPECT_FALSE(j.worker_id.has_value());
  EXPECT_EQ(j.attempt, 0);       // the attempt is given back
  EXPECT_FALSE(j.max_attempts);  // and the limit left as it was
  gate_.open();                  // the first job ends, the slot frees, the phantom job runs
  ASSERT_TRUE(wait_for(Kind::kCompleted, 2));
  EXPECT_EQ(job(phantom).status, JobStatus::kCompleted);
  EXPECT_EQ(started_.count(), 2);
  worker->stop();
}

TEST_P(FaultTest, TheWorkersRescuerReturnsOrphans) {
  // A job claimed by a worker that vanished without a trace (no row in `workers`).
  JobRunner(store_).start_job(Task{1});
  ASSERT_EQ(store_->job_claim({"vanished", 1, clock_.now()}).size(), 1u);
  clock_.advance(31s);
  options_.orphaned_jobs_check_interval = 10s;
  auto worker = start_worker();  // the rescuer runs at start
  ASSERT_TRUE(wait_for(Kind::kRescued, 1));
  ASSERT_TRUE(started_.wait_for(1));  // and this worker runs it
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
}

// The same worker restarted after a SIGKILL: its predecessor's process is provably gone (this
// boot and PID namespace, its pid now another process's), so its jobs come back at once.
TEST_P(FaultTest, StartupRecoveryReturnsTheJobsOfAProvablyDeadPredecessorWithTheSameName) {
  if (runtime::this_process().process_start == 0) GTEST_SKIP() << "no /proc of this namespace";
  options_.worker_name = "resizer-1";
  JobId id = JobRunner(store_).start_job(Task{1});
  WorkerRecord old = runtime::this_process();
  old.id = "resizer-1:old";
  old.name = "resizer-1";
  old.process_start += 1;  // the pid was reused
  old.started_at = old.heartbeat_at = clock_.now();
  store_->worker_register(old);
  ASSERT_EQ(store_->job_claim({"resizer-1:old", 1, clock_.now()}).size(), 1u);
  auto worker = start_worker();  // no waiting for OrphanedJobThreshold
  ASSERT_TRUE(started_.wait_for(1));
  EXPECT_EQ(job(id).attempt, 2);
  auto workers = JobRunner(store_).list_workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].id, worker->worker_id());
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
  EXPECT_TRUE(JobRunner(store_).list_workers().empty());
}

// The registry heartbeat rides on a claim (one query per idle poll); without claims the
// maintenance loop renews it every heartbeat_interval, counted from the last renewal.
TEST_P(FaultTest, TheRegistryHeartbeatRidesOnClaimsAndKeepsItsScheduleWithout) {
  auto worker = start_worker();  // polling every hour: no claim but the first and ours
  auto heartbeat_at = [&] { return JobRunner(store_).list_workers().at(0).heartbeat_at; };
  TimePoint registered = heartbeat_at();
  // Each claim of ours makes the producer look again too; its claim must read the clock
  // before the next advance, as ours did, or it renews at a time the test did not mean.
  worker->TEST_wait_quiet();
  clock_.advance(2s);
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  worker->TEST_wait_quiet();
  EXPECT_EQ(heartbeat_at(), registered);  // younger than half a heartbeat_interval: left
  clock_.advance(1s);
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  worker->TEST_wait_quiet();
  EXPECT_EQ(heartbeat_at(), registered + 3s);  // renewed; the maintenance loop was not due
  clock_.advance(4s);                          // +7s: 4 s after the claim's renewal
  clock_.advance(1s);                          // +8s: due
  EXPECT_TRUE(eventually([&] { return heartbeat_at() == registered + 8s; }));
  worker->stop();
}

TEST_P(FaultTest, StartupRecoveryReturnsTheJobsOfADeadProcessOfThisHost) {
  if (runtime::this_process().process_start == 0) GTEST_SKIP() << "no /proc of this namespace";
  // A pid that provably no longer exists: a child that has exited and been reaped.
  pid_t pid = 0;
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  ASSERT_EQ(posix_spawnp(&pid, "true", nullptr, nullptr, argv, nullptr), 0);
  waitpid(pid, nullptr, 0);
  JobId id = JobRunner(store_).start_job(Task{1});
  WorkerRecord dead = runtime::this_process();
  dead.id = dead.name = "dead";
  dead.pid = pid;
  dead.started_at = dead.heartbeat_at = clock_.now();
  store_->worker_register(dead);
  ASSERT_EQ(store_->job_claim({"dead", 1, clock_.now()}).size(), 1u);
  auto worker = start_worker();
  ASSERT_TRUE(started_.wait_for(1));
  EXPECT_EQ(job(id).attempt, 2);
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
}

// While the database refuses heartbeats, every try fails; the log says so for the first,
// then for every hundredth, and once when heartbeats recover, with the count.
TEST_P(FaultTest, HeartbeatFailuresAreLoggedOnceAndTheirRecoveryOnce) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("ergon", sink));
  auto lines = [&](std::string_view text) {
    auto all = sink->last_formatted();
    return std::count_if(all.begin(), all.end(),
                         [&](const std::string& l) { return l.find(text) != std::string::npos; });
  };
  // A trigger refuses every update of a job's heartbeat, in each backend's own dialect.
  auto app = backend_->connect();
  const bool sqlite = app->sqlite() != nullptr;
  auto worker = start_worker();
  JobRunner(store_).start_job(Task{1});
  ASSERT_TRUE(started_.wait_for(1));
  // The registry heartbeat still works (it shows each try); the jobs' heartbeat fails.
  ASSERT_TRUE(app->exec(sqlite ? "CREATE TRIGGER refuse BEFORE UPDATE OF heartbeat_at ON jobs "
                                 "BEGIN SELECT RAISE(ABORT, 'heartbeats refused'); END"
                               : "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql "
                                 "AS $$BEGIN RAISE EXCEPTION 'heartbeats refused'; END$$; "
                                 "CREATE TRIGGER refuse BEFORE UPDATE OF heartbeat_at ON jobs "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse()"))
      << app->last_error();
  // Each tick writes the registry's heartbeat, then the jobs': a tick's registry heartbeat
  // seen in the database says the jobs' heartbeat of the tick before has been tried. Six
  // ticks: five tries of the jobs' heartbeat are done when the trigger is dropped.
  auto registry = [&] { return JobRunner(store_).list_workers().at(0).heartbeat_at; };
  for (int i = 0; i < 6; ++i) {
    clock_.advance(5s);
    ASSERT_TRUE(eventually([&] { return registry() == clock_.now(); }));
  }
  ASSERT_TRUE(app->exec(sqlite ? "DROP TRIGGER refuse" : "DROP TRIGGER refuse ON jobs"))
      << app->last_error();
  clock_.advance(5s);
  // Five failed tries at least (the sixth tick's too, unless the trigger was gone by then).
  std::string recovered;
  EXPECT_TRUE(eventually([&] {
    for (const auto& l : sink->last_formatted()) {
      if (l.find("heartbeats recovered after ") != std::string::npos) recovered = l;
    }
    return !recovered.empty();
  }));
  auto at = recovered.find("after ");
  int tries = at == std::string::npos ? 0 : std::atoi(recovered.c_str() + at + 6);
  EXPECT_GE(tries, 5) << recovered;
  EXPECT_EQ(lines("heartbeats recovered"), 1);
  EXPECT_EQ(lines("heartbeats failed"), 1);
  gate_.open();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
  spdlog::set_default_logger(previous);
}

TEST_P(FaultTest, ATimeoutFiresTheStopTokenAndFailsTheAttempt) {
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Task{0}, {.max_attempts = 1, .timeout = 10s});
  ASSERT_TRUE(started_.wait_for(1));
  clock_.advance(10s);
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  auto r = job(id);
  EXPECT_EQ(r.status, JobStatus::kFailed);
  EXPECT_NE(r.error_message->find("timed out after 00:00:10"), std::string::npos)
      << *r.error_message;
  worker->stop();
}

TEST_P(FaultTest, AHandlerIgnoringItsTimeoutIsFailedAfterTheGrace) {
  options_.timeout_grace = 5s;
  handlers_ = HandlerRegistry();
  handlers_.add<Task>(
      [this](const Task&, JobContext&) {
        started_.add();
        gate_.wait();
      },
      JobTypeOptions{.timeout = 10s});  // the handler's timeout
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Task{1}, {.max_attempts = 1});
  ASSERT_TRUE(started_.wait_for(1));
  clock_.advance(10s);  // stop token fires; the handler ignores it
  clock_.advance(5s);   // grace over: failed without it
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  EXPECT_NE(job(id).error_message->find("did not stop within the grace period"), std::string::npos);
  gate_.open();  // the handler returns at last: refused
  ASSERT_TRUE(wait_for(Kind::kFenced, 1));
  EXPECT_EQ(job(id).status, JobStatus::kFailed);
  worker->stop();
}

TEST_P(FaultTest, CancellingARunningJobStopsItAndEndsCancelled) {
  auto worker = start_worker();
  JobRunner runner(store_);
  JobId id = runner.start_job(Task{0});
  ASSERT_TRUE(started_.wait_for(1));
  EXPECT_EQ(runner.cancel(id), CancelOutcome::kRequested);  // in-process: acted on at once
  ASSERT_TRUE(wait_for(Kind::kCancelled, 1));
  auto r = job(id);
  EXPECT_EQ(r.status, JobStatus::kCancelled);
  EXPECT_TRUE(r.completed_at);
  EXPECT_EQ(runner.cancel(id), CancelOutcome::kAlreadyFinished);
  worker->stop();
}

TEST_P(FaultTest, CancellingAPendingJobMeansItNeverStarts) {
  JobRunner runner(store_);
  JobId id = runner.start_job(Task{0});
  EXPECT_EQ(runner.cancel(id), CancelOutcome::kCancelled);
  auto worker = start_worker();
  EXPECT_EQ(worker->TEST_claim_once(), 0u);
  EXPECT_EQ(started_.count(), 0);
  EXPECT_EQ(job(id).status, JobStatus::kCancelled);
  EXPECT_THROW(runner.cancel(JobId::generate(clock_.now())), Error);
  worker->stop();
}

TEST_P(FaultTest, TheWorkerPrunesOldFinishedJobs) {
  handlers_ = HandlerRegistry();
  handlers_.add<Task>([](const Task&, JobContext&) {});
  options_.completed_jobs_retention = 1h;
  options_.prune_interval = 10min;
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Task{});
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  clock_.advance(61min);  // past the retention, and past a prune interval
  EXPECT_TRUE(eventually([&] { return !store_->job_get(id); }));
  worker->stop();
}

}  // namespace
}  // namespace ergon::testing
