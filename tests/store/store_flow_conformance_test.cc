// Flow control in the claim, on every store (docs/flow-control.md): fair claiming across group
// keys, rate limits, and limits held for each group on its own.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ergon/job_runner.h"
#include "store/handled_types.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

JobInsertParams job(TimePoint now, std::string_view type = "t", std::string_view group = {},
                    int priority = 0) {
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = type;
  p.job_data = "{}";
  p.created_at = now;
  p.run_at = now;
  p.queue = "default";
  p.priority = priority;
  p.group_key = group;
  return p;
}

void complete(Store& store, const std::vector<JobRecord>& jobs, std::string_view worker,
              TimePoint now) {
  for (const auto& r : jobs) {
    JobFinishParams f;
    f.id = r.id;
    f.attempt = r.attempt;
    f.worker_id = worker;
    f.status = JobStatus::kCompleted;
    f.now = now;
    ASSERT_TRUE(store.job_finish(f));
  }
}

std::map<std::string, int> by_group(const std::vector<JobRecord>& jobs) {
  std::map<std::string, int> n;
  for (const auto& r : jobs) ++n[r.group_key.value_or("-")];
  return n;
}

TEST_P(StoreConformance, TheGroupKeyIsStoredAndReadBack) {
  auto p = job(clock_.now(), "t", "tenant-7");
  store_->job_insert(p);
  std::vector<JobInsertParams> bulk{job(clock_.now(), "t", "tenant-8"), job(clock_.now())};
  store_->job_insert_many(bulk);
  EXPECT_EQ(store_->job_get(p.id)->group_key, "tenant-7");
  EXPECT_EQ(store_->job_get(bulk[0].id)->group_key, "tenant-8");
  EXPECT_FALSE(store_->job_get(bulk[1].id)->group_key);
  EXPECT_EQ(store_->job_claim({"w", 10, clock_.now()}).size(), 3u);
}

// The case: one group holds 10 000 pending jobs, another enqueues 10 after them. The
// second group's jobs start in the next claims, long before the backlog is drained.
TEST_P(StoreConformance, AGroupsBacklogDoesNotHoldBackAnotherGroupsJobs) {
  std::vector<JobInsertParams> backlog;
  for (int i = 0; i < 10000; ++i) backlog.push_back(job(clock_.now(), "t", "big"));
  store_->job_insert_many(backlog);
  clock_.advance(std::chrono::seconds(1));
  for (int i = 0; i < 10; ++i) store_->job_insert(job(clock_.now(), "t", "small"));
  // A worker with 4 free slots: round-robin gives the small group half of each claim.
  int small = 0, claims = 0;
  while (small < 10) {
    auto got = store_->job_claim({"w", 4, clock_.now()});
    ASSERT_EQ(got.size(), 4u);
    small += by_group(got)["small"];
    ++claims;
  }
  EXPECT_EQ(claims, 5);  // 2 + 2 + 2 + 2 + 2: 20 jobs claimed, 9 990 of the backlog still wait
  auto counts = store_->job_counts(clock_.now());
  std::int64_t pending = 0;
  for (const auto& c : counts) {
    if (c.status == JobStatus::kPending) pending += c.count;
  }
  EXPECT_EQ(pending, 9990);
}

// Ungrouped jobs are one more group; priority still comes first.
TEST_P(StoreConformance, FairClaimingRanksWithinGroupsAfterPriority) {
  for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now(), "t", "a"));
  for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now(), "t", "b"));
  for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now()));
  store_->job_insert(job(clock_.now(), "t", "c", /*priority=*/5));  // least urgent
  auto first = store_->job_claim({"w", 3, clock_.now()});
  EXPECT_EQ(by_group(first), (std::map<std::string, int>{{"-", 1}, {"a", 1}, {"b", 1}}));
  auto next = store_->job_claim({"w", 6, clock_.now()});
  EXPECT_EQ(by_group(next), (std::map<std::string, int>{{"-", 2}, {"a", 2}, {"b", 2}}));
  auto last = store_->job_claim({"w", 6, clock_.now()});
  EXPECT_EQ(by_group(last), (std::map<std::string, int>{{"c", 1}}));
  // Paused queues and queue filters hold for grouped jobs too.
  auto q = job(clock_.now(), "t", "a");
  q.queue = "other";
  store_->job_insert(q);
  std::vector<std::string> only_default{"default"};
  EXPECT_TRUE(store_->job_claim({"w", 5, clock_.now(), only_default}).empty());
  store_->queue_set_paused("other", true, clock_.now());
  EXPECT_TRUE(store_->job_claim({"w", 5, clock_.now()}).empty());
  store_->queue_set_paused("other", false, clock_.now());
  EXPECT_EQ(store_->job_claim({"w", 5, clock_.now()}).size(), 1u);
}

// A store may claim more simply while no grouped job is Pending (PostgreSQL does); grouped
// jobs that appear after such a claim are claimed fairly by the very next claim.
TEST_P(StoreConformance, GroupedJobsThatAppearAfterAnUngroupedClaimAreClaimedFairly) {
  store_->job_insert(job(clock_.now()));
  EXPECT_EQ(store_->job_claim({"w", 5, clock_.now()}).size(), 1u);
  EXPECT_TRUE(store_->job_claim({"w", 5, clock_.now(), {}, true}).empty());
  for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now()));
  for (int i = 0; i < 2; ++i) store_->job_insert(job(clock_.now(), "t", "a"));
  for (int i = 0; i < 2; ++i) store_->job_insert(job(clock_.now(), "t", "b"));
  auto got = store_->job_claim({"w", 6, clock_.now(), {}, true});
  EXPECT_EQ(by_group(got), (std::map<std::string, int>{{"-", 2}, {"a", 2}, {"b", 2}}));
  EXPECT_EQ(store_->job_claim({"w", 6, clock_.now()}).size(), 1u);
  EXPECT_TRUE(store_->job_claim({"w", 6, clock_.now()}).empty());
}

// At most 3 started in any 10 s, counted over a sliding window of the store's clock.
TEST_P(StoreConformance, ARateLimitCapsStartsPerPeriod) {
  for (int i = 0; i < 10; ++i) store_->job_insert(job(clock_.now(), "api"));
  store_->job_insert(job(clock_.now(), "other"));
  store_->limit_set({.job_type = "api", .rate_limit = 3, .rate_period = std::chrono::seconds(10)},
                    clock_.now());
  auto a = store_->job_claim({"w", 20, clock_.now()});
  EXPECT_EQ(a.size(), 4u);  // 3 of "api" and the unlimited one
  complete(*store_, a, "w", clock_.now());
  // Finishing does not give the rate back: starts count, not running jobs.
  clock_.advance(std::chrono::seconds(5));
  EXPECT_TRUE(store_->job_claim({"w", 20, clock_.now()}).empty());
  clock_.advance(std::chrono::milliseconds(4999));
  EXPECT_TRUE(store_->job_claim({"w", 20, clock_.now()}).empty());
  clock_.advance(std::chrono::milliseconds(1));  // the first starts are 10 s old
  auto b = store_->job_claim({"w", 2, clock_.now()});
  EXPECT_EQ(b.size(), 2u);
  clock_.advance(std::chrono::seconds(1));
  auto d = store_->job_claim({"w", 20, clock_.now()});
  EXPECT_EQ(d.size(), 1u);  // 3 in the last 10 s
  // A retried job starts again and counts again.
  JobFinishParams retry;
  retry.id = b[0].id;
  retry.attempt = b[0].attempt;
  retry.worker_id = "w";
  retry.status = JobStatus::kPending;
  retry.now = clock_.now();
  retry.keep_run_at = true;  // first in line again
  ASSERT_TRUE(store_->job_finish(retry));
  clock_.advance(std::chrono::seconds(10));
  auto c = store_->job_claim({"w", 20, clock_.now()});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].id, b[0].id);
  EXPECT_EQ(c[0].attempt, 2);
  auto limits = store_->limit_list();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_FALSE(limits[0].max_running);
  EXPECT_EQ(limits[0].rate_limit, 3);
  EXPECT_EQ(limits[0].rate_period, std::chrono::seconds(10));
  EXPECT_EQ(limits[0].running, 5);  // b[1], d and c
  // Both limits at once: the tighter one binds.
  complete(*store_, {b[1], d[0], c[0], c[1], c[2]}, "w", clock_.now());
  store_->limit_set({.job_type = "api",
                     .max_running = 1,
                     .rate_limit = 100,
                     .rate_period = std::chrono::seconds(1)},
                    clock_.now());
  EXPECT_EQ(store_->job_claim({"w", 20, clock_.now()}).size(), 1u);  // max_running
  store_->limit_set({.job_type = "api",
                     .max_running = 10,
                     .rate_limit = 1,
                     .rate_period = std::chrono::seconds(1)},
                    clock_.now());
  EXPECT_TRUE(store_->job_claim({"w", 20, clock_.now()}).empty());  // the start above counts
  clock_.advance(std::chrono::seconds(1));
  EXPECT_EQ(store_->job_claim({"w", 20, clock_.now()}).size(), 1u);
}

// With per_group, each group key has the limits on its own; ungrouped jobs form one group.
TEST_P(StoreConformance, APerGroupLimitHoldsForEachGroupOnItsOwn) {
  for (const char* g : {"a", "b", "c", ""}) {
    for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now(), "sync", g));
  }
  store_->limit_set({.job_type = "sync", .max_running = 1, .per_group = true}, clock_.now());
  auto a = store_->job_claim({"w", 20, clock_.now()});
  EXPECT_EQ(by_group(a), (std::map<std::string, int>{{"-", 1}, {"a", 1}, {"b", 1}, {"c", 1}}));
  EXPECT_TRUE(store_->job_claim({"w", 20, clock_.now()}).empty());
  // Group b's job finishes: only b may start another.
  auto b = *std::find_if(a.begin(), a.end(), [](const JobRecord& r) { return r.group_key == "b"; });
  complete(*store_, {b}, "w", clock_.now());
  EXPECT_EQ(by_group(store_->job_claim({"w", 20, clock_.now()})),
            (std::map<std::string, int>{{"b", 1}}));
  // A rate per group: 2 per minute each (no concurrency limit now). Each group has 2 jobs
  // left, b one.
  store_->limit_set({.job_type = "sync",
                     .rate_limit = 2,
                     .rate_period = std::chrono::minutes(1),
                     .per_group = true},
                    clock_.now());
  auto c = store_->job_claim({"w", 20, clock_.now()});
  EXPECT_EQ(by_group(c), (std::map<std::string, int>{{"-", 2}, {"a", 2}, {"b", 1}, {"c", 2}}));
  store_->job_insert(job(clock_.now(), "sync", "b"));
  store_->job_insert(job(clock_.now(), "sync", "a"));
  // b has one start in this minute left, a none.
  EXPECT_EQ(by_group(store_->job_claim({"w", 20, clock_.now()})),
            (std::map<std::string, int>{{"b", 1}}));
}

// Several connections (processes, for PostgreSQL) claim a rate-limited type at once: exactly
// the rate's worth start in the period, however the claims interleave.
TEST_P(StoreConformance, ConcurrentClaimersNeverExceedARateLimit) {
  constexpr int kThreads = 6;
  constexpr int kRate = 25;
  std::vector<JobInsertParams> jobs;
  for (int i = 0; i < 200; ++i) jobs.push_back(job(clock_.now(), "api"));
  store_->job_insert_many(jobs);
  store_->limit_set({.job_type = "api", .rate_limit = kRate, .rate_period = std::chrono::hours(1)},
                    clock_.now());
  std::vector<std::shared_ptr<Store>> stores;
  for (int t = 0; t < kThreads; ++t) stores.push_back(reopen());
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string worker = "w" + std::to_string(t);
      for (int round = 0; round < 20; ++round) {
        auto batch = stores[t]->job_claim({worker, 3, clock_.now()});
        started += static_cast<int>(batch.size());
        complete(*stores[t], batch, worker, clock_.now());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(started.load(), kRate);
}

// A claimer keeps the list of limited types for a few seconds (store/limited_types.h), but a
// limit another process sets is honoured by its next claim, not only once the list is old:
// the claim also learns how many types are limited, and a changed number reloads the list.
TEST_P(StoreConformance, ALimitSetElsewhereIsClaimedUnderAtOnce) {
  store_->limit_set({.job_type = "mail", .max_running = 1}, clock_.now());
  EXPECT_TRUE(store_->job_claim({"w", 4, clock_.now()}).empty());  // the list is loaded: mail
  auto other = reopen();
  other->limit_set({.job_type = "api", .max_running = 1}, clock_.now());
  for (int i = 0; i < 3; ++i) store_->job_insert(job(clock_.now(), "api"));
  EXPECT_EQ(store_->job_claim({"w", 4, clock_.now()}).size(), 1u);
  EXPECT_TRUE(store_->job_claim({"w", 4, clock_.now()}).empty());
}

TEST_P(StoreConformance, RemovingALimitReleasesTheTypeAndForgetsItsStarts) {
  for (int i = 0; i < 4; ++i) store_->job_insert(job(clock_.now(), "api"));
  store_->limit_set({.job_type = "api", .rate_limit = 1, .rate_period = std::chrono::hours(1)},
                    clock_.now());
  EXPECT_EQ(store_->job_claim({"w", 20, clock_.now()}).size(), 1u);
  store_->limit_remove("api", clock_.now());
  EXPECT_EQ(store_->job_claim({"w", 1, clock_.now()}).size(), 1u);
  // Set again: the starts before it do not count.
  store_->limit_set({.job_type = "api", .rate_limit = 1, .rate_period = std::chrono::hours(1)},
                    clock_.now());
  EXPECT_EQ(store_->job_claim({"w", 20, clock_.now()}).size(), 1u);
}

// JobRunner::set_concurrency_limit changes only the concurrency limit of a type.
TEST_P(StoreConformance, SettingOnlyTheConcurrencyLimitKeepsTheRateLimit) {
  JobRunner runner(store_);
  runner.set_type_limit(
      {.job_type = "api", .rate_limit = 5, .rate_period = std::chrono::seconds(1)});
  runner.set_concurrency_limit("api", 2);
  auto limits = runner.list_type_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0].max_running, 2);
  EXPECT_EQ(limits[0].rate_limit, 5);
  runner.set_concurrency_limit("api", std::nullopt);
  limits = runner.list_type_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_FALSE(limits[0].max_running);
  EXPECT_EQ(limits[0].rate_period, std::chrono::seconds(1));
  runner.set_concurrency_limit("solo", 1);
  EXPECT_EQ(runner.list_type_limits().size(), 2u);
  runner.set_concurrency_limit("solo", std::nullopt);  // nothing left: the type is unlimited
  EXPECT_EQ(runner.list_type_limits().size(), 1u);
  EXPECT_THROW(runner.set_concurrency_limit("api", -1), Error);
  runner.remove_type_limit("api");
  EXPECT_TRUE(runner.list_type_limits().empty());
}

// A unique key with a period: at most one job per key per period, whatever became of it.
TEST_P(StoreConformance, AUniqueKeyWithAPeriodHoldsAfterItsJobFinishes) {
  auto first = job(clock_.now(), "report");
  first.unique_key = "daily:42";
  first.unique_period = std::chrono::hours(1);
  ASSERT_EQ(store_->job_insert(first), first.id);
  auto claimed = store_->job_claim({"w", 1, clock_.now()});
  ASSERT_EQ(claimed.size(), 1u);
  complete(*store_, claimed, "w", clock_.now());
  clock_.advance(std::chrono::minutes(59));
  auto again = job(clock_.now(), "report");
  again.unique_key = "daily:42";  // with or without a period of its own
  EXPECT_EQ(store_->job_insert(again), first.id);
  again.unique_period = std::chrono::minutes(5);
  EXPECT_EQ(store_->job_insert(again), first.id);
  EXPECT_EQ(store_->job_list({}).size(), 1u);
  clock_.advance(std::chrono::minutes(1));  // the window is closed at its end
  auto next = job(clock_.now(), "report");
  next.unique_key = "daily:42";
  next.unique_period = std::chrono::hours(1);
  EXPECT_EQ(store_->job_insert(next), next.id);
  // While the new job is Pending, its key is held by it (and by its window).
  auto other = job(clock_.now(), "report");
  other.unique_key = "daily:42";
  EXPECT_EQ(store_->job_insert(other), next.id);
  // Other keys are unaffected.
  other.unique_key = "daily:43";
  EXPECT_EQ(store_->job_insert(other), other.id);
}

// Many connections enqueue one key with a period while another claims and completes whatever
// appears: exactly one job exists, since a completed job keeps its key for the period.
TEST_P(StoreConformance, AUniqueKeyWithAPeriodHoldsUnderConcurrentEnqueues) {
  constexpr int kThreads = 6;
  std::vector<std::shared_ptr<Store>> stores;
  for (int t = 0; t <= kThreads; ++t) stores.push_back(reopen());
  // The finisher claims after each enqueue, not in a spin: on SQLite a writer looping without
  // pause can keep the others from the write lock past their busy timeout (seen under TSan).
  std::mutex mu;
  std::condition_variable cv;
  int enqueued = 0;
  bool stop = false;
  std::vector<std::string> errors;
  auto record = [&](const std::exception& e) {
    std::lock_guard lock(mu);
    errors.emplace_back(e.what());
  };
  std::thread finisher([&] {
    try {
      for (int seen = 0;;) {
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stop || enqueued > seen; });
          if (enqueued == seen) break;  // stopped, and every enqueue was followed by a claim
          seen = enqueued;
        }
        auto got = stores[kThreads]->job_claim({"w", 10, clock_.now()});
        complete(*stores[kThreads], got, "w", clock_.now());
      }
    } catch (const std::exception& e) {
      record(e);
    }
  });
  std::vector<std::thread> threads;
  std::vector<std::set<JobId>> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < 20; ++i) {
          auto p = job(clock_.now(), "report");
          p.unique_key = "once-an-hour";
          p.unique_period = std::chrono::hours(1);
          seen[static_cast<std::size_t>(t)].insert(
              stores[static_cast<std::size_t>(t)]->job_insert(p));
          {
            std::lock_guard lock(mu);
            ++enqueued;
          }
          cv.notify_one();
        }
      } catch (const std::exception& e) {
        record(e);
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_one();
  finisher.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  std::set<JobId> all;
  for (const auto& s : seen) all.insert(s.begin(), s.end());
  EXPECT_EQ(all.size(), 1u);
  EXPECT_EQ(store_->job_list({}).size(), 1u);
  // The one job was claimed and completed, so only its window held the key.
  EXPECT_EQ(store_->job_list({})[0].status, JobStatus::kCompleted);
}

std::multiset<std::string> types_of(const std::vector<JobRecord>& jobs) {
  std::multiset<std::string> out;
  for (const auto& r : jobs) out.insert(r.job_type);
  return out;
}

// A worker claims only the types it has handlers for (WorkerOptions::claim_unhandled_types):
// in the plain claim, the fair one (grouped jobs), the per-type claim of limited types and the
// claim by id; jobs of other types stay Pending.
TEST_P(StoreConformance, AClaimTakesOnlyTheJobTypesItIsGiven) {
  store_->job_insert(job(clock_.now(), "a"));
  JobInsertParams b = job(clock_.now(), "b");
  store_->job_insert(b);
  store_->job_insert(job(clock_.now(), "c"));
  store_->job_insert(job(clock_.now(), "lim"));
  store_->job_insert(job(clock_.now(), "lim2"));
  store_->limit_set({.job_type = "lim", .max_running = 5}, clock_.now());
  store_->limit_set({.job_type = "lim2", .max_running = 5}, clock_.now());
  const std::vector<std::string> none;
  EXPECT_TRUE(store_->job_claim({"w", 10, clock_.now(), {}, false, none}).empty());
  const std::vector<std::string> a_lim = {"a", "lim"};
  EXPECT_EQ(types_of(store_->job_claim({"w", 10, clock_.now(), {}, false, a_lim})),
            (std::multiset<std::string>{"a", "lim"}));
  // Grouped jobs go through the fair claim.
  store_->job_insert(job(clock_.now(), "a", "g1"));
  store_->job_insert(job(clock_.now(), "b", "g1"));
  store_->job_insert(job(clock_.now(), "c", "g2"));
  EXPECT_EQ(types_of(store_->job_claim({"w", 10, clock_.now(), {}, false, a_lim})),
            (std::multiset<std::string>{"a"}));
  const std::vector<std::string> only_a = {"a"};
  EXPECT_FALSE(store_->job_claim_id({"w", 1, clock_.now(), {}, false, only_a}, b.id));
  EXPECT_EQ(store_->job_get(b.id)->status, JobStatus::kPending);
  const std::vector<std::string> only_b = {"b"};
  EXPECT_TRUE(store_->job_claim_id({"w", 1, clock_.now(), {}, false, only_b}, b.id));
  // Unset: every type, limited ones included.
  EXPECT_EQ(types_of(store_->job_claim({"w", 10, clock_.now()})),
            (std::multiset<std::string>{"b", "c", "c", "lim2"}));
}

TEST_P(StoreConformance, WorkersRegisterTheTypesTheyClaimAndUnhandledTypesAreCounted) {
  for (const char* type : {"a", "b", "b", "it's \"odd\""})
    store_->job_insert(job(clock_.now(), type));
  EXPECT_EQ(store_->job_pending_types(),
            (std::vector<JobTypeCount>{{"a", 1}, {"b", 2}, {"it's \"odd\"", 1}}));
  WorkerRecord w;
  w.id = "w1";
  w.name = "w1";
  w.host = "h";
  w.pid = 1;
  w.started_at = w.heartbeat_at = clock_.now();
  w.job_types = std::vector<std::string>{"a", "it's \"odd\""};
  store_->worker_register(w);
  auto listed = store_->worker_list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].job_types, w.job_types);
  const auto minute = std::chrono::minutes(1);
  EXPECT_EQ(unhandled_job_types_of(*store_, clock_.now(), minute),
            (std::vector<JobTypeCount>{{"b", 2}}));
  // A catch-all worker (every type) leaves nothing unhandled while it is alive.
  WorkerRecord all = w;
  all.id = all.name = "w2";
  all.job_types.reset();
  store_->worker_register(all);
  EXPECT_FALSE(store_->worker_list()[1].job_types.has_value());
  EXPECT_TRUE(unhandled_job_types_of(*store_, clock_.now(), minute).empty());
  // Workers that stopped heartbeating handle nothing.
  clock_.advance(2 * minute);
  store_->worker_heartbeat("w1", clock_.now());
  EXPECT_EQ(unhandled_job_types_of(*store_, clock_.now(), minute),
            (std::vector<JobTypeCount>{{"b", 2}}));
}

}  // namespace
}  // namespace ergon::testing
