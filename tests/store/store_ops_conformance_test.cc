// Conformance tests of the operators' actions (ergon jobs/stats/purge/audit, the dashboard):
// listing with every filter and keyset pages, retry, delete, their bulk forms, counts,
// throughput and the audit log. Every backend runs them (see store_conformance.h).
#include <set>

#include "ergon/job_runner.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

JobInsertParams job(TimePoint now, std::string_view type = "t", std::string_view data = "{}") {
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = type;
  p.job_data = data;
  p.created_at = now;
  p.run_at = now;
  p.queue = "default";
  return p;
}

TEST_P(StoreOps, ListHonoursEveryFilterAndMatchingNothingIsEmpty) {
  auto a = job(clock_.now(), "mail", R"({"to":"ann"})");
  a.queue = "q1";
  store_->job_insert(a);
  clock_.advance(1s);
  const TimePoint middle = clock_.now();
  auto b = job(clock_.now(), "bill");
  b.queue = "q2";
  finished(b, JobStatus::kFailed, "card declined");
  clock_.advance(1s);
  auto c = job(clock_.now(), "mail", R"({"to":"bob"})");
  c.queue = "q2";
  store_->job_insert(c);

  EXPECT_EQ(ids({}), (std::vector<JobId>{c.id, b.id, a.id}));
  EXPECT_EQ(ids({.status = JobStatus::kFailed}), std::vector<JobId>{b.id});
  EXPECT_EQ(ids({.job_type = "mail"}), (std::vector<JobId>{c.id, a.id}));
  EXPECT_EQ(ids({.queue = "q2"}), (std::vector<JobId>{c.id, b.id}));
  EXPECT_EQ(ids({.created_after = middle}), (std::vector<JobId>{c.id, b.id}));
  EXPECT_EQ(ids({.created_before = middle}), std::vector<JobId>{a.id});
  EXPECT_EQ(ids({.created_after = middle, .created_before = middle + 1s}),
            std::vector<JobId>{b.id});
  EXPECT_EQ(ids({.text = "bob"}), std::vector<JobId>{c.id});
  EXPECT_EQ(ids({.text = "declined"}), std::vector<JobId>{b.id});  // error_message
  EXPECT_EQ(ids({.job_type = "mail", .queue = "q2", .text = "bob"}), std::vector<JobId>{c.id});
  EXPECT_EQ(ids({.before_id = b.id}), std::vector<JobId>{a.id});

  EXPECT_TRUE(ids({.job_type = "nope"}).empty());
  EXPECT_TRUE(ids({.queue = "nope"}).empty());
  EXPECT_TRUE(ids({.status = JobStatus::kCancelled}).empty());
  EXPECT_TRUE(ids({.created_after = clock_.now() + 1s}).empty());
  EXPECT_TRUE(ids({.text = "carol"}).empty());
  EXPECT_TRUE(ids({.job_type = "bill", .queue = "q1"}).empty());
  EXPECT_TRUE(ids({.before_id = a.id}).empty());
}

TEST_P(StoreOps, ListPagesWithBeforeIdAcrossThreePages) {
  std::vector<JobId> inserted;
  for (int i = 0; i < 7; ++i) {
    auto p = job(clock_.now(), i % 2 ? "odd" : "even");
    store_->job_insert(p);
    inserted.insert(inserted.begin(), p.id);  // newest first
    clock_.advance(1ms);
  }
  std::vector<JobId> seen;
  std::vector<std::size_t> sizes;
  JobFilter f{.limit = 3};
  for (;;) {
    auto page = store_->job_list(f);
    if (page.empty()) break;
    sizes.push_back(page.size());
    for (const auto& r : page) seen.push_back(r.id);
    f.before_id = page.back().id;
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 1}));
  EXPECT_EQ(seen, inserted);

  // Paging with a filter: the even jobs (4 of them) in pages of 2.
  JobFilter even{.job_type = "even", .limit = 2};
  auto p1 = store_->job_list(even);
  ASSERT_EQ(p1.size(), 2u);
  even.before_id = p1.back().id;
  auto p2 = store_->job_list(even);
  ASSERT_EQ(p2.size(), 2u);
  even.before_id = p2.back().id;
  EXPECT_TRUE(store_->job_list(even).empty());
  EXPECT_EQ(p2.back().id, inserted.back());
}

// % and _ are LIKE's wildcards; the text filter is a plain substring and must not treat them so.
TEST_P(StoreOps, ListTextMatchesPercentAndUnderscoreLiterally) {
  auto sale = job(clock_.now(), "t", R"({"code":"50%_off"})");
  auto plain = job(clock_.now(), "t", R"({"code":"50xyoff"})");
  auto under = job(clock_.now(), "t", R"({"code":"a_b"})");
  for (auto* p : {&sale, &plain, &under}) store_->job_insert(*p);
  EXPECT_EQ(ids({.text = "%_"}), std::vector<JobId>{sale.id});
  EXPECT_EQ(ids({.text = "50%"}), std::vector<JobId>{sale.id});
  EXPECT_EQ(ids({.text = "_"}).size(), 2u);
  EXPECT_EQ(ids({.text = "a_b"}), std::vector<JobId>{under.id});
  EXPECT_TRUE(ids({.text = "%x%"}).empty());
  EXPECT_TRUE(ids({.text = "OFF"}).empty());  // case-sensitive
}

TEST_P(StoreOps, BadLimitsAreRejected) {
  for (int limit : {0, -1, 10001}) {
    try {
      (void)store_->job_list({.limit = limit});
      ADD_FAILURE() << "limit " << limit << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
    EXPECT_THROW((void)store_->audit_list(limit), Error);
  }
  EXPECT_EQ(store_->job_list({.limit = 10000}).size(), 0u);
}

TEST_P(StoreOps, RetryTakesOnlyFailedOrCancelledJobsBackToPending) {
  auto failed = job(clock_.now());
  failed.max_attempts = 1;
  auto f = finished(failed, JobStatus::kFailed, "boom");
  ASSERT_EQ(f.attempt, 1);
  auto cancelled = job(clock_.now());
  store_->job_insert(cancelled);
  ASSERT_EQ(store_->job_cancel(cancelled.id, clock_.now()), CancelResult::kCancelled);
  auto completed = job(clock_.now());
  finished(completed, JobStatus::kCompleted);
  auto pending = job(clock_.now());
  store_->job_insert(pending);
  auto run = running(job(clock_.now()));

  clock_.advance(1min);
  std::vector<TimePoint> woken;
  int sub = store_->notifier().subscribe([&](TimePoint t) { woken.push_back(t); });
  EXPECT_TRUE(store_->job_retry(failed.id, clock_.now()));
  store_->notifier().unsubscribe(sub);
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0], clock_.now());

  auto r = store_->job_get(failed.id);
  EXPECT_EQ(r->status, JobStatus::kPending);
  EXPECT_EQ(r->run_at, clock_.now());
  EXPECT_EQ(r->attempt, 1);             // history kept
  EXPECT_EQ(r->error_message, "boom");  // likewise
  EXPECT_EQ(r->max_attempts, 2);        // used up: one more
  EXPECT_FALSE(r->completed_at);
  EXPECT_FALSE(r->worker_id);
  EXPECT_TRUE(store_->job_retry(cancelled.id, clock_.now()));
  EXPECT_EQ(store_->job_get(cancelled.id)->status, JobStatus::kPending);

  EXPECT_FALSE(store_->job_retry(failed.id, clock_.now()));  // Pending now
  EXPECT_FALSE(store_->job_retry(completed.id, clock_.now()));
  EXPECT_FALSE(store_->job_retry(pending.id, clock_.now()));
  EXPECT_FALSE(store_->job_retry(run.id, clock_.now()));
  EXPECT_FALSE(store_->job_retry(JobId::generate(clock_.now()), clock_.now()));
  EXPECT_EQ(store_->job_get(completed.id)->status, JobStatus::kCompleted);
  EXPECT_EQ(store_->job_get(run.id)->status, JobStatus::kRunning);

  auto again = store_->job_claim_id({"w2", 1, clock_.now()}, failed.id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempt, 2);
}

TEST_P(StoreOps, ARetryWritesAnOutboxRowLikeAnyJobThatBecomesPending) {
  auto p = job(clock_.now());
  finished(p, JobStatus::kFailed);
  store_->outbox_enable();
  ASSERT_TRUE(store_->job_retry(p.id, clock_.now()));
  auto rows = store_->outbox_peek(10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].job_id, p.id);
  store_->outbox_disable();
}

TEST_P(StoreOps, TheOutboxStateSaysWhetherItsTriggersAreOnAndHowManyRowsWait) {
  EXPECT_EQ(store_->outbox_state().enabled, false);
  store_->outbox_enable();
  store_->job_insert(job(clock_.now()));
  store_->job_insert(job(clock_.now()));
  OutboxState on = store_->outbox_state();
  EXPECT_TRUE(on.enabled);
  EXPECT_EQ(on.rows, 2);
  store_->outbox_disable();
  OutboxState off = store_->outbox_state();
  EXPECT_FALSE(off.enabled);
  EXPECT_EQ(off.rows, 0);
  store_->job_insert(job(clock_.now()));
  EXPECT_EQ(store_->outbox_state().rows, 0);
}

JobInsertParams unique_job(TimePoint now, std::string_view key) {
  auto p = job(now);
  p.unique_key = key;
  return p;
}

// A Failed job whose unique key another Pending job now holds is not retried (it would make two
// Pending jobs with one key); it can be once the key is free.
TEST_P(StoreOps, RetrySkipsAJobWhoseUniqueKeyIsHeldByAnother) {
  auto a = unique_job(clock_.now(), "k");
  finished(a, JobStatus::kFailed);
  auto b = unique_job(clock_.now(), "k");
  ASSERT_EQ(store_->job_insert(b), b.id);
  EXPECT_FALSE(store_->job_retry(a.id, clock_.now()));
  EXPECT_EQ(store_->job_get(a.id)->status, JobStatus::kFailed);
  EXPECT_EQ(store_->job_retry_matching({.status = JobStatus::kFailed}, clock_.now()), 0);
  EXPECT_EQ(store_->job_get(a.id)->status, JobStatus::kFailed);

  ASSERT_EQ(store_->job_cancel(b.id, clock_.now()), CancelResult::kCancelled);
  EXPECT_TRUE(store_->job_retry(a.id, clock_.now()));
  EXPECT_EQ(store_->job_get(a.id)->unique_key, "k");
  EXPECT_EQ(store_->job_insert(unique_job(clock_.now(), "k")), a.id);
  EXPECT_FALSE(store_->job_retry(b.id, clock_.now()));  // a holds it now
}

TEST_P(StoreOps, RetryMatchingRetriesEveryQualifyingMatchOnceWithOneWakeUp) {
  std::vector<JobId> mail;
  for (int i = 0; i < 3; ++i)
    mail.push_back(finished(job(clock_.now(), "mail"), JobStatus::kFailed).id);
  auto bill = finished(job(clock_.now(), "bill"), JobStatus::kFailed);
  auto done = finished(job(clock_.now(), "mail"), JobStatus::kCompleted);
  auto run = running(job(clock_.now(), "mail"));
  // Two failed jobs with one unique key: only the newer one can be Pending.
  auto k1 = finished(unique_job(clock_.now(), "k"), JobStatus::kFailed);
  clock_.advance(1ms);
  auto k2 = finished(unique_job(clock_.now(), "k"), JobStatus::kFailed);

  int wakes = 0;
  int sub = store_->notifier().subscribe([&](TimePoint) { ++wakes; });
  EXPECT_EQ(store_->job_retry_matching({.job_type = "nope"}, clock_.now()), 0);
  EXPECT_EQ(wakes, 0);
  EXPECT_EQ(store_->job_retry_matching({.job_type = "mail"}, clock_.now()), 3);
  EXPECT_EQ(wakes, 1);
  store_->notifier().unsubscribe(sub);
  for (const auto& id : mail) EXPECT_EQ(store_->job_get(id)->status, JobStatus::kPending);
  EXPECT_EQ(store_->job_get(bill.id)->status, JobStatus::kFailed);
  EXPECT_EQ(store_->job_get(done.id)->status, JobStatus::kCompleted);
  EXPECT_EQ(store_->job_get(run.id)->status, JobStatus::kRunning);

  EXPECT_EQ(store_->job_retry_matching({.status = JobStatus::kFailed, .limit = 1}, clock_.now()),
            2);  // bill and k2; limit is ignored
  EXPECT_EQ(store_->job_get(k2.id)->status, JobStatus::kPending);
  EXPECT_EQ(store_->job_get(k1.id)->status, JobStatus::kFailed);
  EXPECT_EQ(store_->job_get(bill.id)->status, JobStatus::kPending);
}

TEST_P(StoreOps, DeleteNeverTakesARunningJob) {
  auto pending = job(clock_.now());
  store_->job_insert(pending);
  auto done = job(clock_.now());
  finished(done, JobStatus::kCompleted);
  auto run = running(job(clock_.now()));
  EXPECT_TRUE(store_->job_delete(pending.id));
  EXPECT_TRUE(store_->job_delete(done.id));
  EXPECT_FALSE(store_->job_delete(run.id));
  EXPECT_FALSE(store_->job_delete(pending.id));  // gone already
  EXPECT_FALSE(store_->job_delete(JobId::generate(clock_.now())));
  EXPECT_FALSE(store_->job_get(pending.id));
  EXPECT_FALSE(store_->job_get(done.id));
  EXPECT_EQ(store_->job_get(run.id)->status, JobStatus::kRunning);
}

TEST_P(StoreOps, DeleteMatchingSkipsRunningJobsAndHonoursTheFilter) {
  auto a = job(clock_.now(), "a");
  finished(a, JobStatus::kCompleted);
  clock_.advance(1ms);
  auto b = job(clock_.now(), "a");
  finished(b, JobStatus::kFailed);
  clock_.advance(1ms);
  auto c = job(clock_.now(), "b");
  store_->job_insert(c);
  auto run = running(job(clock_.now(), "a"));
  EXPECT_EQ(store_->job_delete_matching({.job_type = "none"}), 0);
  EXPECT_EQ(store_->job_delete_matching({.status = JobStatus::kRunning}), 0);
  EXPECT_EQ(store_->job_delete_matching({.job_type = "a", .before_id = b.id}), 1);  // a
  EXPECT_FALSE(store_->job_get(a.id));
  EXPECT_EQ(store_->job_delete_matching({.job_type = "a"}), 1);  // b; run stays
  EXPECT_EQ(store_->job_get(run.id)->status, JobStatus::kRunning);
  EXPECT_TRUE(store_->job_get(c.id));
  EXPECT_EQ(store_->job_delete_matching({}), 1);  // c
  EXPECT_EQ(store_->job_list({}).size(), 1u);
}

TEST_P(StoreOps, CountsPerQueueAndStatusWithTheOldestDuePendingJob) {
  EXPECT_TRUE(store_->job_counts(clock_.now()).empty());
  auto old = job(clock_.now());
  store_->job_insert(old);
  clock_.advance(10s);
  store_->job_insert(job(clock_.now()));
  auto later = job(clock_.now());
  later.run_at = clock_.now() + 1h;  // not due: not the oldest due
  store_->job_insert(later);
  auto mail = job(clock_.now());
  mail.queue = "mail";
  finished(mail, JobStatus::kFailed);

  auto counts = store_->job_counts(clock_.now());
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].queue, "default");
  EXPECT_EQ(counts[0].status, JobStatus::kPending);
  EXPECT_EQ(counts[0].count, 3);
  EXPECT_EQ(counts[0].oldest_due_run_at, old.run_at);
  EXPECT_EQ(counts[1].queue, "mail");
  EXPECT_EQ(counts[1].status, JobStatus::kFailed);
  EXPECT_EQ(counts[1].count, 1);
  EXPECT_FALSE(counts[1].oldest_due_run_at);
}

TEST_P(StoreOps, ThroughputCountsFinishedJobsPerBucketIncludingEmptyOnes) {
  const TimePoint since = clock_.now();
  clock_.advance(10s);
  finished(job(clock_.now()), JobStatus::kCompleted);
  clock_.advance(60s);  // 70s
  finished(job(clock_.now()), JobStatus::kFailed);
  clock_.advance(110s);  // 180s: the fourth bucket
  finished(job(clock_.now()), JobStatus::kCompleted);
  finished(job(clock_.now()), JobStatus::kCompleted);
  finished(job(clock_.now()), JobStatus::kCancelled);  // neither
  clock_.advance(5s);

  auto b = store_->job_throughput(since, 1min);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].start, since);
  EXPECT_EQ(b[3].start, since + 3min);
  EXPECT_EQ(std::make_pair(b[0].completed, b[0].failed),
            std::make_pair(std::int64_t{1}, std::int64_t{0}));
  EXPECT_EQ(std::make_pair(b[1].completed, b[1].failed),
            std::make_pair(std::int64_t{0}, std::int64_t{1}));
  EXPECT_EQ(std::make_pair(b[2].completed, b[2].failed),
            std::make_pair(std::int64_t{0}, std::int64_t{0}));
  EXPECT_EQ(std::make_pair(b[3].completed, b[3].failed),
            std::make_pair(std::int64_t{2}, std::int64_t{0}));

  auto later = store_->job_throughput(since + 3min, 1min);  // older jobs left out
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].completed, 2);
  EXPECT_TRUE(store_->job_throughput(clock_.now() + 1s, 1min).empty());
  EXPECT_THROW((void)store_->job_throughput(since, Duration::zero()), Error);
  EXPECT_THROW((void)store_->job_throughput(since - 24h, 1ms), Error);  // too many buckets
}

TEST_P(StoreOps, TheAuditLogListsNewestFirst) {
  EXPECT_TRUE(store_->audit_list(10).empty());
  for (int i = 0; i < 3; ++i) {
    store_->audit_insert({.at = clock_.now(),
                          .actor = "cli:ann",
                          .action = "retry",
                          .target = "job " + std::to_string(i),
                          .detail = "it's 100% \"fine\""});
    clock_.advance(1s);
  }
  auto all = store_->audit_list(10);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].target, "job 2");
  EXPECT_EQ(all[2].target, "job 0");
  EXPECT_GT(all[0].id, all[1].id);
  EXPECT_EQ(all[0].at, clock_.now() - 1s);
  EXPECT_EQ(all[0].actor, "cli:ann");
  EXPECT_EQ(all[0].action, "retry");
  EXPECT_EQ(all[0].detail, "it's 100% \"fine\"");
  EXPECT_EQ(store_->audit_list(2).size(), 2u);
}

// The operators' actions as an application calls them: unknown ids are kNotFound, a job in
// the wrong state is false, and every action leaves the others alone.
TEST_P(StoreOps, RunnerRetriesDeletesCountsPurgesAndAudits) {
  JobRunner runner(store_);
  JobId unknown = JobId::generate(clock_.now());
  EXPECT_THROW(runner.retry_job(unknown), Error);
  EXPECT_THROW(runner.delete_job(unknown), Error);

  JobId a = runner.start_job_raw("t", "{}");
  JobId b = runner.start_job_raw("t", "{}", {.queue = "mail"});
  EXPECT_FALSE(runner.retry_job(a));  // Pending
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);
  EXPECT_TRUE(runner.retry_job(a));
  EXPECT_EQ(runner.get_job(a)->status, JobStatus::kPending);
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);

  auto counts = runner.job_counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].queue, "default");
  EXPECT_EQ(counts[0].status, JobStatus::kCancelled);
  EXPECT_EQ(counts[1].queue, "mail");
  EXPECT_EQ(counts[1].oldest_due_run_at, clock_.now());

  EXPECT_EQ(runner.retry_jobs({.status = JobStatus::kCancelled}), 1);
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);
  EXPECT_THROW(runner.purge_jobs(JobStatus::kPending, 1h), Error);
  EXPECT_THROW(runner.purge_jobs(JobStatus::kCancelled, 1h, 0), Error);
  EXPECT_EQ(runner.purge_jobs(JobStatus::kCancelled, 1h), 0);
  clock_.advance(2h);
  EXPECT_EQ(runner.purge_jobs(JobStatus::kCancelled, 1h, 1), 1);
  EXPECT_FALSE(runner.get_job(a));
  EXPECT_EQ(runner.delete_jobs({.queue = "mail"}), 1);
  EXPECT_FALSE(runner.get_job(b));

  runner.audit("app:test", "retry", a.to_string(), "by hand");
  auto log = runner.list_audit();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].actor, "app:test");
  EXPECT_EQ(log[0].at, clock_.now());
  EXPECT_THROW((void)runner.list_audit(0), Error);
}

}  // namespace

}  // namespace ergon::testing
