#include "store_conformance.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

JobInsertParams job(TimePoint now, std::string_view type = "t", int priority = 0,
                    Duration delay = Duration::zero()) {
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = type;
  p.job_data = R"({"n":1})";
  p.created_at = now;
  p.run_at = now + delay;
  p.queue = "default";
  p.priority = priority;
  return p;
}

JobFinishParams outcome(const JobRecord& r, std::string_view worker, JobStatus status,
                        TimePoint now) {
  JobFinishParams f;
  f.id = r.id;
  f.attempt = r.attempt;
  f.worker_id = worker;
  f.status = status;
  f.now = now;
  f.run_at = now;
  return f;
}

TEST_P(StoreConformance, InsertedJobIsPendingWithTheOriginalColumns) {
  auto p = job(clock_.now(), "send_email");
  store_->job_insert(p);
  auto r = store_->job_get(p.id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, p.id);
  EXPECT_EQ(r->job_type, "send_email");
  EXPECT_EQ(r->job_data, R"({"n":1})");
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->created_at, clock_.now());
  EXPECT_FALSE(r->started_at);
  EXPECT_FALSE(r->completed_at);
  EXPECT_FALSE(r->error_message);
  EXPECT_FALSE(r->progress_message);
  EXPECT_FALSE(r->progress_percent);
  EXPECT_EQ(r->attempt, 0);
  EXPECT_FALSE(store_->job_get(JobId::generate(clock_.now())));
}

TEST_P(StoreConformance, TimestampsKeepMicroseconds) {
  clock_.advance(123457us);
  auto p = job(clock_.now());
  store_->job_insert(p);
  EXPECT_EQ(store_->job_get(p.id)->created_at, clock_.now());
}

TEST_P(StoreConformance, ClaimTakesDueJobsInPriorityThenDueOrder) {
  auto late = job(clock_.now(), "t", 0, -1s);
  auto early = job(clock_.now(), "t", 0, -2s);
  auto urgent = job(clock_.now(), "t", -5);
  auto future = job(clock_.now(), "t", -10, 1h);
  for (auto* p : {&late, &early, &urgent, &future}) store_->job_insert(*p);

  auto claimed = store_->job_claim({"w1", 10, clock_.now()});
  ASSERT_EQ(claimed.size(), 3u);
  EXPECT_EQ(claimed[0].id, urgent.id);
  EXPECT_EQ(claimed[1].id, early.id);
  EXPECT_EQ(claimed[2].id, late.id);
  for (const auto& r : claimed) {
    EXPECT_EQ(r.status, JobStatus::kRunning);
    EXPECT_EQ(r.attempt, 1);
    EXPECT_EQ(r.worker_id, "w1");
    EXPECT_EQ(r.started_at, clock_.now());
  }
  EXPECT_TRUE(store_->job_claim({"w2", 10, clock_.now()}).empty());  // not due yet
  clock_.advance(1h);
  auto later = store_->job_claim({"w2", 10, clock_.now()});
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].id, future.id);
}

TEST_P(StoreConformance, ClaimRespectsTheLimit) {
  for (int i = 0; i < 5; ++i) store_->job_insert(job(clock_.now()));
  EXPECT_EQ(store_->job_claim({"w", 2, clock_.now()}).size(), 2u);
  EXPECT_EQ(store_->job_claim({"w", 0, clock_.now()}).size(), 0u);
  EXPECT_EQ(store_->job_claim({"w", 10, clock_.now()}).size(), 3u);
}

TEST_P(StoreConformance, FinishIsFencedByAttemptAndWorker) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  auto r = store_->job_claim({"w1", 1, clock_.now()}).at(0);

  auto stale = outcome(r, "w1", JobStatus::kCompleted, clock_.now());
  stale.attempt = r.attempt - 1;
  EXPECT_FALSE(store_->job_finish(stale));
  EXPECT_FALSE(store_->job_finish(outcome(r, "w2", JobStatus::kCompleted, clock_.now())));
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kRunning);

  clock_.advance(5s);
  auto done = outcome(r, "w1", JobStatus::kCompleted, clock_.now());
  done.progress_message = "done";
  done.progress_percent = 100;
  EXPECT_TRUE(store_->job_finish(done));
  auto after = store_->job_get(p.id);
  EXPECT_EQ(after->status, JobStatus::kCompleted);
  EXPECT_EQ(after->completed_at, clock_.now());
  EXPECT_EQ(after->progress_message, "done");
  EXPECT_EQ(after->progress_percent, 100);
  // A second outcome for the same attempt (a duplicate delivery) changes nothing.
  EXPECT_FALSE(store_->job_finish(outcome(r, "w1", JobStatus::kFailed, clock_.now())));
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kCompleted);
}

// The worker's completer: many outcomes, one transaction, each fenced as job_finish is.
TEST_P(StoreConformance, FinishManyStoresEachOutcomeAsFinishWould) {
  std::vector<JobInsertParams> in;
  for (int i = 0; i < 6; ++i) {
    in.push_back(job(clock_.now()));
    store_->job_insert(in.back());
  }
  auto claimed = store_->job_claim({"w1", 10, clock_.now()});
  ASSERT_EQ(claimed.size(), 6u);
  clock_.advance(2s);
  TimePoint t = clock_.now();
  std::vector<JobFinishParams> batch;
  batch.push_back(outcome(claimed[0], "w1", JobStatus::kCompleted, t));  // plain
  auto stale = outcome(claimed[1], "w1", JobStatus::kCompleted, t);
  stale.attempt = 0;  // fenced out
  batch.push_back(stale);
  auto with_progress = outcome(claimed[2], "w1", JobStatus::kCompleted, t + 1ms);
  with_progress.progress_message = "all done";
  with_progress.progress_percent = 100;
  batch.push_back(with_progress);
  auto retry = outcome(claimed[3], "w1", JobStatus::kPending, t);
  retry.run_at = t + 30s;
  retry.error_message = "boom";
  batch.push_back(retry);
  auto failed = outcome(claimed[4], "w1", JobStatus::kFailed, t);
  failed.error_message = "bad input";
  batch.push_back(failed);
  batch.push_back(outcome(claimed[5], "w2", JobStatus::kCompleted, t));        // not w2's job
  batch.push_back(outcome(claimed[5], "w1", JobStatus::kCompleted, t + 2ms));  // plain, too

  std::vector<TimePoint> woken;
  int sub = store_->notifier().subscribe([&](TimePoint due) { woken.push_back(due); });
  auto result = store_->job_finish_many(batch);
  store_->notifier().unsubscribe(sub);
  EXPECT_EQ(result, (std::vector<bool>{true, false, true, true, true, false, true}));
  EXPECT_EQ(woken, std::vector<TimePoint>{t + 30s});  // the retry, once

  auto r0 = store_->job_get(in[0].id);
  EXPECT_EQ(r0->status, JobStatus::kCompleted);
  EXPECT_EQ(r0->completed_at, t);
  EXPECT_EQ(store_->job_get(in[1].id)->status, JobStatus::kRunning);
  auto r2 = store_->job_get(in[2].id);
  EXPECT_EQ(r2->status, JobStatus::kCompleted);
  EXPECT_EQ(r2->progress_message, "all done");
  EXPECT_EQ(r2->completed_at, t + 1ms);
  auto r3 = store_->job_get(in[3].id);
  EXPECT_EQ(r3->status, JobStatus::kPending);
  EXPECT_EQ(r3->run_at, t + 30s);
  EXPECT_EQ(r3->error_message, "boom");
  EXPECT_EQ(store_->job_get(in[4].id)->status, JobStatus::kFailed);
  auto r5 = store_->job_get(in[5].id);
  EXPECT_EQ(r5->status, JobStatus::kCompleted);
  EXPECT_EQ(r5->completed_at, t + 2ms);
  // Delivered twice (a completer that retries a batch whose commit reply was lost): every
  // outcome is now fenced out and nothing changes.
  auto again = store_->job_finish_many(batch);
  EXPECT_EQ(again, std::vector<bool>(batch.size(), false));
  EXPECT_TRUE(store_->job_finish_many({}).empty());
}

TEST_P(StoreConformance, RetryReturnsTheJobToPendingUntilItsRunAt) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  auto r = store_->job_claim({"w1", 1, clock_.now()}).at(0);
  auto retry = outcome(r, "w1", JobStatus::kPending, clock_.now());
  retry.run_at = clock_.now() + 30s;
  retry.error_message = "boom";
  ASSERT_TRUE(store_->job_finish(retry));
  auto after = store_->job_get(p.id);
  EXPECT_EQ(after->status, JobStatus::kPending);
  EXPECT_EQ(after->error_message, "boom");
  EXPECT_EQ(after->run_at, clock_.now() + 30s);
  EXPECT_FALSE(after->worker_id);
  EXPECT_FALSE(after->completed_at);

  EXPECT_TRUE(store_->job_claim({"w1", 1, clock_.now() + 29s}).empty());
  auto again = store_->job_claim({"w2", 1, clock_.now() + 30s});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_FALSE(again[0].progress_message);  // each attempt starts without progress
}

TEST_P(StoreConformance, AReleaseKeepsTheRowsOwnRunAt) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  clock_.advance(5s);
  auto r = store_->job_claim({"w1", 1, clock_.now()}).at(0);
  auto release = outcome(r, "w1", JobStatus::kPending, clock_.now());
  release.run_at = clock_.now() + 1h;  // ignored: keep_run_at
  release.keep_run_at = true;
  ASSERT_TRUE(store_->job_finish(release));
  EXPECT_EQ(store_->job_get(p.id)->run_at, p.run_at);
}

// The messaging consumer's claim: one job by id, on the claim's own conditions.
TEST_P(StoreConformance, ClaimByIdTakesOnlyADuePendingJob) {
  auto due = job(clock_.now());
  auto later = job(clock_.now(), "t", 0, 1min);
  store_->job_insert(due);
  store_->job_insert(later);
  EXPECT_FALSE(store_->job_claim_id({"w1", 1, clock_.now()}, later.id));
  EXPECT_FALSE(store_->job_claim_id({"w1", 1, clock_.now()}, JobId::generate(clock_.now())));
  auto r = store_->job_claim_id({"w1", 1, clock_.now()}, due.id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, JobStatus::kRunning);
  EXPECT_EQ(r->attempt, 1);
  EXPECT_EQ(r->worker_id, "w1");
  EXPECT_FALSE(store_->job_claim_id({"w2", 1, clock_.now()}, due.id));  // a duplicate message
  EXPECT_TRUE(store_->job_claim_id({"w2", 1, clock_.now() + 1min}, later.id));
}

// The outbox: nothing until enabled; then a row whenever a job becomes Pending (insert, bulk
// insert, retry), in the job's own transaction, and none for other changes.
TEST_P(StoreConformance, TheOutboxRecordsJobsThatBecomeDueOnceEnabled) {
  store_->job_insert(job(clock_.now()));
  EXPECT_TRUE(store_->outbox_peek(10).empty());
  store_->outbox_enable();
  store_->outbox_enable();  // idempotent
  auto a = job(clock_.now(), "t", 0, 10s);
  store_->job_insert(a);
  store_->job_insert_many({job(clock_.now()), job(clock_.now())});
  auto rows = store_->outbox_peek(10);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].job_id, a.id);
  EXPECT_EQ(rows[0].due_at, a.run_at);
  EXPECT_LT(rows[0].id, rows[1].id);
  store_->outbox_remove({rows[0].id, rows[1].id, rows[2].id});
  EXPECT_TRUE(store_->outbox_peek(10).empty());

  auto r = store_->job_claim({"w1", 1, clock_.now() + 10s}).at(0);  // the oldest due: no row
  EXPECT_TRUE(store_->outbox_peek(10).empty());
  auto retry = outcome(r, "w1", JobStatus::kPending, clock_.now());
  retry.run_at = clock_.now() + 30s;
  ASSERT_TRUE(store_->job_finish(retry));
  rows = store_->outbox_peek(10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].job_id, r.id);
  EXPECT_EQ(rows[0].due_at, clock_.now() + 30s);

  store_->outbox_disable();
  EXPECT_TRUE(store_->outbox_peek(10).empty());
  store_->job_insert(job(clock_.now()));
  EXPECT_TRUE(store_->outbox_peek(10).empty());
}

// --- flow control (docs/flow-control.md) ---

JobInsertParams unique_job(TimePoint now, std::string_view key, bool while_running = false) {
  auto p = job(now);
  p.unique_key = key;
  p.unique_while_running = while_running;
  return p;
}

TEST_P(StoreConformance, AUniqueKeyIsHeldWhilePendingOnly) {
  auto a = unique_job(clock_.now(), "k");
  EXPECT_EQ(store_->job_insert(a), a.id);
  auto dup = unique_job(clock_.now(), "k");
  EXPECT_EQ(store_->job_insert(dup), a.id);  // the holder's id; nothing inserted
  EXPECT_FALSE(store_->job_get(dup.id));
  auto other = unique_job(clock_.now(), "other");
  EXPECT_EQ(store_->job_insert(other), other.id);

  auto ra = store_->job_claim_id({"w1", 1, clock_.now()}, a.id);
  ASSERT_TRUE(ra);
  auto b = unique_job(clock_.now(), "k");  // a runs: the key is free again
  EXPECT_EQ(store_->job_insert(b), b.id);
  // a fails and goes back to Pending while b holds the key: a gives the key up.
  auto retry = outcome(*ra, "w1", JobStatus::kPending, clock_.now());
  ASSERT_TRUE(store_->job_finish(retry));
  EXPECT_EQ(store_->job_get(a.id)->status, JobStatus::kPending);
  EXPECT_FALSE(store_->job_get(a.id)->unique_key);
  EXPECT_EQ(store_->job_get(b.id)->unique_key, "k");
  EXPECT_EQ(store_->job_insert(unique_job(clock_.now(), "k")), b.id);
}

TEST_P(StoreConformance, AUniqueKeyCanBeHeldWhileRunningToo) {
  auto a = unique_job(clock_.now(), "k", true);
  ASSERT_EQ(store_->job_insert(a), a.id);
  auto ra = store_->job_claim({"w1", 1, clock_.now()}).at(0);
  EXPECT_EQ(store_->job_insert(unique_job(clock_.now(), "k", true)), a.id);
  EXPECT_EQ(store_->job_insert(unique_job(clock_.now(), "k")), a.id);
  ASSERT_TRUE(store_->job_finish(outcome(ra, "w1", JobStatus::kCompleted, clock_.now())));
  auto b = unique_job(clock_.now(), "k", true);
  EXPECT_EQ(store_->job_insert(b), b.id);  // finished jobs hold nothing
}

TEST_P(StoreConformance, PausedQueuesStartNothingAndWorkersServeTheirQueues) {
  auto mail = job(clock_.now());
  mail.queue = "mail";
  auto bills = job(clock_.now());
  bills.queue = "bills";
  store_->job_insert(mail);
  store_->job_insert(bills);
  store_->queue_set_paused("mail", true, clock_.now());
  std::vector<std::string> only_mail{"mail"};
  EXPECT_TRUE(store_->job_claim({"w1", 10, clock_.now(), only_mail}).empty());
  EXPECT_FALSE(store_->job_claim_id({"w1", 1, clock_.now()}, mail.id));
  auto got = store_->job_claim({"w1", 10, clock_.now()});  // every queue: bills only
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, bills.id);

  auto queues = store_->queue_list();
  ASSERT_EQ(queues.size(), 2u);
  EXPECT_EQ(queues[0].name, "bills");
  EXPECT_FALSE(queues[0].paused);
  EXPECT_EQ(queues[0].running, 1);
  EXPECT_EQ(queues[1].name, "mail");
  EXPECT_TRUE(queues[1].paused);
  EXPECT_EQ(queues[1].pending, 1);

  store_->queue_set_paused("mail", false, clock_.now());
  std::vector<std::string> only_bills{"bills"};
  EXPECT_TRUE(store_->job_claim({"w2", 10, clock_.now(), only_bills}).empty());
  got = store_->job_claim({"w2", 10, clock_.now(), only_mail});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, mail.id);
}

// Queue names are data, never SQL or array syntax.
TEST_P(StoreConformance, AConcurrencyLimitCapsRunningJobsOfItsTypeAcrossClaimers) {
  std::vector<JobInsertParams> limited, free;
  for (int i = 0; i < 5; ++i) {
    limited.push_back(job(clock_.now(), "scarce"));
    store_->job_insert(limited.back());
  }
  for (int i = 0; i < 3; ++i) {
    free.push_back(job(clock_.now(), "plenty"));
    store_->job_insert(free.back());
  }
  store_->limit_set({.job_type = "scarce", .max_running = 2}, clock_.now());
  auto count = [](const std::vector<JobRecord>& v, std::string_view type) {
    return std::count_if(v.begin(), v.end(),
                         [&](const JobRecord& r) { return r.job_type == type; });
  };
  auto a = store_->job_claim({"w1", 10, clock_.now()});
  EXPECT_EQ(count(a, "plenty"), 3);
  EXPECT_EQ(count(a, "scarce"), 2);
  // Another claimer finds the type at its limit.
  EXPECT_TRUE(store_->job_claim({"w2", 10, clock_.now()}).empty());
  EXPECT_FALSE(store_->job_claim_id({"w2", 1, clock_.now()}, limited[4].id));  // nor by id
  auto limits = store_->limit_list();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0].job_type, "scarce");
  EXPECT_EQ(limits[0].max_running, 2);
  EXPECT_EQ(limits[0].running, 2);

  // One finishes: one more may start.
  auto first_scarce =
      *std::find_if(a.begin(), a.end(), [](const JobRecord& r) { return r.job_type == "scarce"; });
  ASSERT_TRUE(store_->job_finish(outcome(first_scarce, "w1", JobStatus::kCompleted, clock_.now())));
  auto b = store_->job_claim({"w2", 10, clock_.now()});
  EXPECT_EQ(count(b, "scarce"), 1);
  // Zero holds the type back entirely; raising the limit lets it go on at once.
  store_->limit_set({.job_type = "scarce", .max_running = 0}, clock_.now());
  for (const auto& r : b) {
    ASSERT_TRUE(store_->job_finish(outcome(r, "w2", JobStatus::kCompleted, clock_.now())));
  }
  EXPECT_TRUE(store_->job_claim({"w2", 10, clock_.now()}).empty());
  store_->limit_set({.job_type = "scarce", .max_running = 10}, clock_.now());
  EXPECT_EQ(store_->job_claim({"w2", 10, clock_.now()}).size(), 2u);  // the last two
  // Removed: the type is claimed like any other.
  store_->limit_remove("scarce", clock_.now());
  EXPECT_TRUE(store_->limit_list().empty());
  EXPECT_TRUE(store_->job_claim({"w3", 10, clock_.now()}).empty());  // all claimed already
  auto refused = [&](TypeLimit l) {
    EXPECT_THROW(store_->limit_set(l, clock_.now()), Error) << l.job_type;
  };
  refused({.job_type = "scarce", .max_running = -1});
  refused({.job_type = "", .max_running = 1});
  refused({.job_type = std::string(201, 'x'), .max_running = 1});
  refused({.job_type = "scarce"});  // neither limit
  refused({.job_type = "scarce", .rate_limit = -1, .rate_period = std::chrono::seconds(1)});
  refused({.job_type = "scarce", .rate_limit = 1});  // no period
  refused({.job_type = "scarce", .rate_limit = 1, .rate_period = std::chrono::days(32)});
  EXPECT_TRUE(store_->limit_list().empty());  // nothing half-written
}

TEST_P(StoreConformance, QueueNamesWithQuotesAndCommasAreJustNames) {
  auto odd = job(clock_.now());
  odd.queue = R"(a,"b\c'})";
  store_->job_insert(odd);
  std::vector<std::string> queues{std::string(odd.queue)};
  store_->queue_set_paused(odd.queue, true, clock_.now());
  EXPECT_TRUE(store_->job_claim({"w1", 10, clock_.now(), queues}).empty());
  store_->queue_set_paused(odd.queue, false, clock_.now());
  EXPECT_EQ(store_->job_claim({"w1", 10, clock_.now(), queues}).size(), 1u);
}

TEST_P(StoreConformance, ErrorMessagesAreTruncated) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  auto r = store_->job_claim({"w", 1, clock_.now()}).at(0);
  auto fail = outcome(r, "w", JobStatus::kFailed, clock_.now());
  fail.error_message = std::string(10000, 'x');
  ASSERT_TRUE(store_->job_finish(fail));
  EXPECT_EQ(store_->job_get(p.id)->error_message->size(), kMaxErrorMessageBytes);
}

TEST_P(StoreConformance, ProgressTouchesOnlyTheRunningAttempt) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  auto r = store_->job_claim({"w", 1, clock_.now()}).at(0);
  EXPECT_TRUE(store_->job_progress_update({r.id, r.attempt, "w", "half", 50}));
  EXPECT_FALSE(store_->job_progress_update({r.id, r.attempt + 1, "w", "zombie", 70}));
  EXPECT_FALSE(store_->job_progress_update({r.id, r.attempt, "other", "zombie", 70}));
  EXPECT_TRUE(store_->job_progress_update({r.id, r.attempt, "w", "over", 250}));
  auto after = store_->job_get(p.id);
  EXPECT_EQ(after->status, JobStatus::kRunning);
  EXPECT_EQ(after->progress_message, "over");
  EXPECT_EQ(after->progress_percent, 100);  // clamped
  ASSERT_TRUE(store_->job_finish(outcome(r, "w", JobStatus::kCompleted, clock_.now())));
  EXPECT_FALSE(store_->job_progress_update({r.id, r.attempt, "w", "late", 10}));
  EXPECT_EQ(store_->job_get(p.id)->progress_message, "over");
}

TEST_P(StoreConformance, ListFiltersByStatusAndTypeNewestFirst) {
  auto a = job(clock_.now(), "a");
  clock_.advance(1ms);
  auto b = job(clock_.now(), "b");
  clock_.advance(1ms);
  auto c = job(clock_.now(), "a");
  for (auto* p : {&a, &b, &c}) store_->job_insert(*p);
  auto all = store_->job_list({});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, c.id);
  EXPECT_EQ(all[2].id, a.id);
  EXPECT_EQ(store_->job_list({.job_type = "a", .limit = 50}).size(), 2u);
  EXPECT_EQ(store_->job_list({.status = JobStatus::kRunning, .limit = 50}).size(), 0u);
  EXPECT_EQ(store_->job_list({.limit = 1}).size(), 1u);
  EXPECT_THROW(store_->job_list({.limit = 0}), Error);
}

TEST_P(StoreConformance, MigratingTwiceAppliesNothing) {
  EXPECT_TRUE(store_->schema_migrate().empty());
}

TEST_P(StoreConformance, BulkInsertIsAllOrNothingWithOneNotify) {
  std::vector<JobInsertParams> batch;
  for (int i = 0; i < 50; ++i)
    batch.push_back(job(clock_.now(), "bulk", 0, std::chrono::seconds(i)));
  int notifies = 0;
  int sub = store_->notifier().subscribe([&](TimePoint) { ++notifies; });
  store_->job_insert_many(batch);
  EXPECT_EQ(notifies, 1);
  EXPECT_EQ(store_->job_list({.job_type = "bulk", .limit = 100}).size(), 50u);
  // A duplicate id in the middle fails the whole batch: nothing of it is stored.
  std::vector<JobInsertParams> bad;
  for (int i = 0; i < 5; ++i) bad.push_back(job(clock_.now(), "bad"));
  bad.push_back(batch[0]);
  EXPECT_THROW(store_->job_insert_many(bad), Error);
  EXPECT_EQ(store_->job_list({.job_type = "bad", .limit = 100}).size(), 0u);
  EXPECT_EQ(notifies, 1);
  store_->notifier().unsubscribe(sub);
}

TEST_P(StoreConformance, InsertNotifiesWithTheDueTime) {
  std::vector<TimePoint> seen;
  int sub = store_->notifier().subscribe([&](TimePoint due) { seen.push_back(due); });
  store_->job_insert(job(clock_.now(), "t", 0, 10s));
  store_->notifier().unsubscribe(sub);
  store_->job_insert(job(clock_.now()));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], clock_.now() + 10s);
}

// Several connections (as several workers would have) claim from one database at once: every
// job is handed out exactly once.
TEST_P(StoreConformance, ConcurrentClaimsNeverHandOutAJobTwice) {
  constexpr int kJobs = 400;
  constexpr int kThreads = 4;
  for (int i = 0; i < kJobs; ++i) store_->job_insert(job(clock_.now()));
  std::vector<std::shared_ptr<Store>> stores;
  for (int t = 0; t < kThreads; ++t) stores.push_back(reopen());
  std::vector<std::vector<JobId>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string worker = "w" + std::to_string(t);
      for (;;) {
        auto batch = stores[t]->job_claim({worker, 7, clock_.now()});
        if (batch.empty()) break;
        for (auto& r : batch) got[t].push_back(r.id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<JobId> unique;
  std::size_t total = 0;
  for (auto& g : got) {
    total += g.size();
    unique.insert(g.begin(), g.end());
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kJobs));
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kJobs));
}

// Several connections (processes, for PostgreSQL) claim a limited type at once: never more
// than the limit hold it. `held` counts a job from after its claim returned until before its
// outcome is stored, so it never exceeds what the database counts as Running.
TEST_P(StoreConformance, ConcurrentClaimersNeverExceedAConcurrencyLimit) {
  constexpr int kJobs = 300;
  constexpr int kThreads = 8;
  constexpr int kLimit = 3;
  for (int i = 0; i < kJobs; ++i) store_->job_insert(job(clock_.now(), "scarce"));
  store_->limit_set({.job_type = "scarce", .max_running = kLimit}, clock_.now());
  std::vector<std::shared_ptr<Store>> stores;
  for (int t = 0; t < kThreads; ++t) stores.push_back(reopen());
  std::atomic<int> held{0}, most{0}, done{0};
  // A claimer that found nothing waits for a job to finish rather than claiming again at once:
  // on SQLite, claimers looping without pause can keep a finishing one from the write lock
  // past its busy timeout (seen under TSan).
  std::mutex mu;
  std::condition_variable finished;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string worker = "w" + std::to_string(t);
      while (done.load() < kJobs) {
        int done_before = done.load();
        auto batch = stores[t]->job_claim({worker, 5, clock_.now()});
        if (batch.empty()) {
          std::unique_lock lock(mu);
          finished.wait_for(lock, std::chrono::seconds(1),
                            [&] { return done.load() != done_before; });
          continue;
        }
        int now_held = held += static_cast<int>(batch.size());
        int m = most.load();
        while (now_held > m && !most.compare_exchange_weak(m, now_held)) {
        }
        std::this_thread::yield();  // let the others try while these are held
        for (const auto& r : batch) {
          --held;
          if (!stores[t]->job_finish(outcome(r, worker, JobStatus::kCompleted, clock_.now()))) {
            ADD_FAILURE() << "fenced out";
          }
          {
            std::lock_guard lock(mu);
            ++done;
          }
          finished.notify_all();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), kJobs);
  EXPECT_LE(most.load(), kLimit);
  EXPECT_GE(most.load(), 1);
}

// The *_tx methods take the caller's own connection; one of the other database's kind is
// refused before anything is written, whatever the backend.
TEST_P(StoreConformance, NativeConnectionOfTheOtherDatabaseIsRefused) {
  const NativeConnection other = store_->backend() == "sqlite"
                                     ? NativeConnection(static_cast<pg_conn*>(nullptr))
                                     : NativeConnection(static_cast<sqlite3*>(nullptr));
  const auto p = job(clock_.now());
  try {
    (void)store_->job_insert_tx(other, p);
    ADD_FAILURE() << "job_insert_tx took a connection of the other database";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
  }
  JobFinishParams f;
  f.id = p.id;
  f.worker_id = "w";
  f.now = clock_.now();
  try {
    (void)store_->job_finish_tx(other, f);
    ADD_FAILURE() << "job_finish_tx took a connection of the other database";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
  }
  EXPECT_TRUE(store_->job_list({}).empty());
}

}  // namespace
}  // namespace ergon::testing
