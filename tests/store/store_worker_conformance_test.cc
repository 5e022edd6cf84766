// Worker identity on every backend: the registry keeps what proves a process dead, a worker
// with a fresh heartbeat is never recovered whatever its name, and a provably dead one is
// recovered at once (docs/reliability.md, "Worker identity").
#include <spawn.h>
#include <sys/wait.h>

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <utility>
#include <vector>

#include "ergon/ergon.h"
#include "runtime/worker_identity.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

struct Hold {
  static constexpr std::string_view kJobType = "hold";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Hold, n)

// Handlers that hold their job until the gate opens, counting starts and stop requests.
struct Holders {
  Gate gate;
  EventCounter started, stopped, completed, fenced;
  HandlerRegistry handlers;
  Holders() {
    handlers.add<Hold>([this](const Hold&, JobContext& ctx) {
      started.add();
      std::stop_callback on_stop(ctx.stop_token(), [this] { stopped.add(); });
      gate.wait();
    });
  }
  ~Holders() { gate.open(); }
  WorkerOptions options(const std::string& name) {
    WorkerOptions o;
    o.worker_name = name;
    o.polling_interval = 1h;
    o.heartbeat_interval = 5s;
    o.orphaned_job_threshold = 30s;
    o.orphaned_jobs_check_interval = 1h;
    o.run_scheduler = false;
    o.on_event = [this](const JobEvent& e) {
      if (e.kind == JobEvent::Kind::kCompleted) completed.add();
      if (e.kind == JobEvent::Kind::kFenced) fenced.add();
    };
    return o;
  }
};

// A registry row for a process of this host that is not running any more: this boot, this
// PID namespace, this very pid, but a process that started at another time (the pid was
// reused), as a worker killed by SIGKILL and replaced would leave.
WorkerRecord dead_here(const std::string& id, const std::string& name, TimePoint at) {
  WorkerRecord w = runtime::this_process();
  w.id = id;
  w.name = name;
  w.process_start += 1;
  w.started_at = at;
  w.heartbeat_at = at;
  return w;
}

// A pid that no process of this namespace has: a child that has exited and been reaped.
// Without its own identity (no /proc of its PID namespace) a worker can prove nothing.
bool identity_known() { return runtime::this_process().process_start != 0; }

int reaped_pid() {
  pid_t pid = 0;
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  EXPECT_EQ(posix_spawnp(&pid, "true", nullptr, nullptr, argv, nullptr), 0);
  waitpid(pid, nullptr, 0);
  return pid;
}

JobId claimed_by(const std::shared_ptr<Store>& store, const std::string& worker) {
  JobId id = JobRunner(store).start_job(Hold{});
  EXPECT_EQ(store->job_claim({worker, 1, store->clock().now()}).size(), 1u);
  return id;
}

// `w` is the only registered worker; it runs its held job to the end and stops.
void finish_as_the_only_worker(Store& store, Holders& h, JobsWorker& w) {
  auto list = store.worker_list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, w.worker_id());
  h.gate.open();
  EXPECT_TRUE(h.completed.wait_for(1));
  w.stop();
}

TEST_P(StoreConformance, TheWorkerRegistryKeepsTheProcessIdentity) {
  if (!identity_known()) GTEST_SKIP() << "no /proc of this PID namespace";
  WorkerRecord w = runtime::this_process();
  w.id = "w-1";
  w.name = "resizer";
  w.started_at = w.heartbeat_at = clock_.now();
  ASSERT_FALSE(w.boot_id.empty());
  ASSERT_NE(w.pid_namespace, 0);
  ASSERT_NE(w.process_start, 0);
  store_->worker_register(w);
  auto list = store_->worker_list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].boot_id, w.boot_id);
  EXPECT_EQ(list[0].pid_namespace, w.pid_namespace);
  EXPECT_EQ(list[0].process_start, w.process_start);
  EXPECT_FALSE(runtime::provably_dead(list[0], runtime::this_process()));
  EXPECT_TRUE(runtime::provably_dead(dead_here("w-2", "x", clock_.now()), w));
}

TEST_P(StoreConformance, PruningTheRegistryRemovesOnlyWorkersSilentForAThreshold) {
  store_->worker_register({"old", "a", "h", 1, clock_.now(), clock_.now()});
  clock_.advance(31s);
  store_->worker_register({"young", "b", "h", 2, clock_.now(), clock_.now()});
  EXPECT_EQ(store_->worker_prune(clock_.now() - 30s, clock_.now()), 1);
  auto list = store_->worker_list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, "young");
}

// Replicas started from one configuration: the second neither takes the first one's job nor
// its row; the first runs its job to the end, as attempt 1, never told to stop.
TEST_P(StoreConformance, ASecondLiveWorkerWithTheSameNameLeavesTheFirstAlone) {
  Holders h;
  JobsWorker first(store_, h.handlers, h.options("resizer-1"));
  first.start();
  JobId id = JobRunner(store_).start_job(Hold{});
  ASSERT_TRUE(h.started.wait_for(1));
  JobsWorker second(store_, h.handlers, h.options("resizer-1"));
  second.start();
  EXPECT_NE(second.worker_id(), first.worker_id());
  JobRecord j = *store_->job_get(id);
  EXPECT_EQ(j.status, JobStatus::kRunning);
  EXPECT_EQ(j.worker_id, first.worker_id());
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(j.rescue_count, 0);
  EXPECT_EQ(store_->worker_list().size(), 2u);
  clock_.advance(5s);  // a heartbeat of each: the first still holds its job
  EXPECT_TRUE(eventually([&] { return store_->job_get(id)->heartbeat_at == clock_.now(); }));
  h.gate.open();
  ASSERT_TRUE(h.completed.wait_for(1));
  j = *store_->job_get(id);
  EXPECT_EQ(j.status, JobStatus::kCompleted);
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(h.started.count(), 1);
  EXPECT_EQ(h.stopped.count(), 0);
  EXPECT_EQ(h.fenced.count(), 0);
  second.stop();
  first.stop();
}

// The same "host and dead pid" can belong to a live process elsewhere: another container
// with this host name (another PID namespace), this machine before a reboot or another
// machine (another boot id), or a worker that recorded no identity. While its heartbeat is
// fresh it keeps its job and its row; once it is older than the threshold, its job is
// rescued and its row forgotten.
TEST_P(StoreConformance, AWorkerNotProvablyDeadIsRecoveredOnlyWhenItsHeartbeatIsStale) {
  const WorkerRecord me = runtime::this_process();
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    WorkerRecord other = me;
    other.id = "other-" + std::to_string(variant);
    other.name = "resizer-1";
    other.pid = reaped_pid();
    if (variant == 0) other.pid_namespace += 1;
    if (variant == 1) other.boot_id = "00000000-0000-0000-0000-000000000000";
    if (variant == 2) other.boot_id.clear(), other.pid_namespace = 0, other.process_start = 0;
    other.started_at = other.heartbeat_at = clock_.now();
    store_->worker_register(other);
    JobId id = claimed_by(store_, other.id);

    Holders h;
    auto o = h.options("resizer-1");
    {
      JobsWorker w(store_, h.handlers, o);
      w.start();
      EXPECT_EQ(store_->job_get(id)->status, JobStatus::kRunning);
      EXPECT_EQ(store_->job_get(id)->worker_id, other.id);
      EXPECT_EQ(store_->worker_list().size(), 2u);
      w.stop();
    }
    clock_.advance(31s);  // its heartbeat is now older than the threshold
    o.orphaned_jobs_check_interval = 10s;
    JobsWorker w(store_, h.handlers, o);
    w.start();  // forgets it, and its rescuer (due at start) returns the job
    ASSERT_TRUE(h.started.wait_for(1));
    EXPECT_EQ(store_->job_get(id)->rescue_count, 1);
    finish_as_the_only_worker(*store_, h, w);
  }
}

// A worker killed by SIGKILL and restarted: its predecessor's process is provably gone (this
// boot, this namespace, its pid reused or free), so its jobs come back at once, whatever its
// heartbeat, with the same name or another.
TEST_P(StoreConformance, ARestartedWorkerReturnsAProvablyDeadPredecessorsJobsAtOnce) {
  if (!identity_known()) GTEST_SKIP() << "no /proc of this PID namespace";
  for (const std::string name : {"resizer-1", "resizer-2"}) {
    SCOPED_TRACE(name);
    Holders h;
    store_->worker_register(dead_here("killed", "resizer-1", clock_.now()));
    JobId id = claimed_by(store_, "killed");
    JobsWorker w(store_, h.handlers, h.options(name));
    w.start();  // no waiting for OrphanedJobThreshold
    ASSERT_TRUE(h.started.wait_for(1));
    JobRecord j = *store_->job_get(id);
    EXPECT_EQ(j.worker_id, w.worker_id());
    EXPECT_EQ(j.rescue_count, 1);
    finish_as_the_only_worker(*store_, h, w);
  }
}

// A release (a graceful stop) gives back the attempt it used and leaves max_attempts alone;
// the lease, the fencing token, moves on with every claim, so the released claim's late
// writes are refused even when the same worker claims the job again.
TEST_P(StoreConformance, AReleaseGivesTheAttemptBackAndTheOldLeaseIsFencedOut) {
  JobId id = JobRunner(store_).start_job(Hold{}, {.max_attempts = 3});
  auto first = store_->job_claim({"w", 1, clock_.now()});
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attempt, 1);
  JobFinishParams release;
  release.id = id;
  release.attempt = first[0].lease;
  release.worker_id = "w";
  release.status = JobStatus::kPending;
  release.now = clock_.now();
  release.keep_run_at = true;
  release.give_back_attempt = true;
  ASSERT_TRUE(store_->job_finish(release));
  JobRecord j = *store_->job_get(id);
  EXPECT_EQ(j.status, JobStatus::kPending);
  EXPECT_EQ(j.attempt, 0);
  EXPECT_EQ(j.max_attempts, 3);

  auto second = store_->job_claim({"w", 1, clock_.now()});
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 1);
  EXPECT_GT(second[0].lease, first[0].lease);
  JobFinishParams late;
  late.id = id;
  late.attempt = first[0].lease;
  late.worker_id = "w";
  late.now = clock_.now();
  EXPECT_FALSE(store_->job_finish(late));
  EXPECT_FALSE(store_->job_progress_update({id, first[0].lease, "w", "late", 50}));
  auto held = store_->job_heartbeat("w", clock_.now());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].attempt, second[0].lease);
  late.attempt = second[0].lease;
  EXPECT_TRUE(store_->job_finish(late));
  j = *store_->job_get(id);
  EXPECT_EQ(j.status, JobStatus::kCompleted);
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(j.max_attempts, 3);
}

// What the handler and the operator see: a job whose worker stopped gracefully runs again as
// attempt 1 of 3, not 2 of 4.
TEST_P(StoreConformance, AGracefulStopNeitherUsesNorRewritesAttempts) {
  std::mutex mu;
  std::vector<std::pair<int, int>> seen;  // (attempt, max_attempts) per run
  EventCounter started, completed;
  HandlerRegistry handlers;
  handlers.add<Hold>([&](const Hold&, JobContext& ctx) {
    bool first;
    {
      std::lock_guard lock(mu);
      seen.emplace_back(ctx.attempt(), ctx.max_attempts());
      first = seen.size() == 1;
    }
    started.add();
    if (!first) return;
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, ctx.stop_token(), [] { return false; });
    ctx.throw_if_stop_requested();
  });
  WorkerOptions o;
  o.polling_interval = 1h;
  o.run_scheduler = false;
  o.on_event = [&](const JobEvent& e) {
    if (e.kind == JobEvent::Kind::kCompleted) completed.add();
  };
  JobId id = JobRunner(store_).start_job(Hold{}, {.max_attempts = 3});
  {
    JobsWorker w(store_, handlers, o);
    w.start();
    ASSERT_TRUE(started.wait_for(1));
    w.stop();
  }
  JobRecord j = *store_->job_get(id);
  EXPECT_EQ(j.status, JobStatus::kPending);
  EXPECT_EQ(j.attempt, 0);
  EXPECT_EQ(j.max_attempts, 3);
  JobsWorker w(store_, handlers, o);
  w.start();
  ASSERT_TRUE(completed.wait_for(1));
  w.stop();
  j = *store_->job_get(id);
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(j.max_attempts, 3);
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<std::pair<int, int>>{{1, 3}, {1, 3}}));
}

}  // namespace
}  // namespace ergon::testing
