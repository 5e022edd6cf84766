// Conformance: what a job keeps of its history (migration 11) on every backend: the result of
// its completion, a row in job_attempts for each attempt that ended other than by completing
// (stored with the outcome, or by a rescue) and deleted with the job, the completed attempt read
// from the job's own row, its tags (and the tag filter) and its meta; and an
// upgrade of a database that an older build left, with jobs in it.
#include <nlohmann/json.hpp>

#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

// A job due now, with these tags and meta (none by default).
JobInsertParams job(TimePoint now, std::span<const std::string> tags = {},
                    std::string_view meta = {}) {
  JobInsertParams p{.id = JobId::generate(now), .job_type = "t", .job_data = R"({"n":1})"};
  p.created_at = p.run_at = now;
  p.queue = "default";
  p.tags = tags;
  p.meta = meta;
  return p;
}

JobRescueParams rescue_at(TimePoint now) {
  JobRescueParams r;
  r.now = now;
  r.stale_before = now - 30s;
  return r;
}

// JSON text parsed and written again (compact, keys sorted): PostgreSQL's jsonb reads back
// compact, SQLite the text as written, and both compare so.
std::string canonical(const std::string& json) { return nlohmann::json::parse(json).dump(); }

void expect_attempt(const AttemptRecord& a, const JobId& job, int attempt, int lease,
                    std::string_view worker, TimePoint started, TimePoint finished,
                    AttemptOutcome outcome, std::optional<std::string> error = std::nullopt) {
  EXPECT_EQ(a.job_id, job);
  EXPECT_EQ(a.attempt, attempt);
  EXPECT_EQ(a.lease, lease);
  EXPECT_EQ(a.worker_id, worker);
  EXPECT_EQ(a.started_at, started);
  EXPECT_EQ(a.finished_at, finished);
  EXPECT_EQ(a.outcome, outcome) << to_string(a.outcome);
  EXPECT_EQ(a.error_message, error);
}

// Every field of `got` is `want`'s.
void expect_same_job(const JobRecord& got, const JobRecord& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.job_type, want.job_type);
  EXPECT_EQ(got.job_data, want.job_data);
  EXPECT_EQ(got.status, want.status);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.started_at, want.started_at);
  EXPECT_EQ(got.completed_at, want.completed_at);
  EXPECT_EQ(got.error_message, want.error_message);
  EXPECT_EQ(got.progress_message, want.progress_message);
  EXPECT_EQ(got.progress_percent, want.progress_percent);
  EXPECT_EQ(got.queue, want.queue);
  EXPECT_EQ(got.priority, want.priority);
  EXPECT_EQ(got.run_at, want.run_at);
  EXPECT_EQ(got.attempt, want.attempt);
  EXPECT_EQ(got.max_attempts, want.max_attempts);
  EXPECT_EQ(got.worker_id, want.worker_id);
  EXPECT_EQ(got.heartbeat_at, want.heartbeat_at);
  EXPECT_EQ(got.timeout, want.timeout);
  EXPECT_EQ(got.cancel_requested, want.cancel_requested);
  EXPECT_EQ(got.rescue_count, want.rescue_count);
  EXPECT_EQ(got.unique_key, want.unique_key);
  EXPECT_EQ(got.group_key, want.group_key);
  EXPECT_EQ(got.lease, want.lease);
  EXPECT_EQ(got.result, want.result);
  EXPECT_EQ(got.tags, want.tags);
  EXPECT_EQ(got.meta, want.meta);
}

TEST_P(StoreHistory, TheResultIsStoredWithTheCompletionAndNotWithARetry) {
  auto p = job(clock_.now());
  JobRecord r = running(p);
  auto retry = outcome(r, JobStatus::kPending, AttemptOutcome::kRetried);
  retry.result = R"({"partial":true})";  // only a completion stores one
  retry.error_message = "boom";
  ASSERT_TRUE(store_->job_finish(retry));
  EXPECT_FALSE(store_->job_get(p.id)->result);

  r = claim(p.id, "w1");
  auto done = outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  done.result = R"({"items": ["a", "b"], "total": 3})";
  ASSERT_TRUE(store_->job_finish(done));
  auto stored = store_->job_get(p.id);
  EXPECT_EQ(stored->status, JobStatus::kCompleted);
  EXPECT_EQ(canonical(*stored->result), R"({"items":["a","b"],"total":3})");
  EXPECT_EQ(store_->job_list({})[0].result, stored->result);

  // A completion without a result, and a failure with one, leave it NULL.
  auto q = job(clock_.now());
  finish(running(q), JobStatus::kCompleted, {});
  EXPECT_FALSE(store_->job_get(q.id)->result);
  auto s = job(clock_.now());
  auto failed = outcome(running(s), JobStatus::kFailed, AttemptOutcome::kFailed);
  failed.result = "42";
  ASSERT_TRUE(store_->job_finish(failed));
  EXPECT_FALSE(store_->job_get(s.id)->result);
}

TEST_P(StoreHistory, ACompletedAttemptIsListedFromItsJobsRow) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  clock_.advance(1s);
  const TimePoint started = clock_.now();
  JobRecord r = claim(p.id, "w1");
  EXPECT_TRUE(attempts(p.id).empty());  // running: no attempt yet
  clock_.advance(2s);
  finish(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  expect_attempt(only_attempt(p.id), p.id, 1, 1, "w1", started, clock_.now(),
                 AttemptOutcome::kCompleted);
  // Written nowhere but the job's row: the completion costs no insert.
  EXPECT_EQ(count("job_attempts"), "0");
  EXPECT_TRUE(attempts(JobId::generate(clock_.now())).empty());  // an unknown job

  // A database written before that rule holds the completed attempt's row too: listed once.
  ASSERT_TRUE(backend_->connect()->exec(
      "INSERT INTO job_attempts (job_id, lease, attempt, worker_id, started_at, finished_at, "
      "outcome) SELECT id, lease, attempt, worker_id, started_at, completed_at, 'completed' "
      "FROM jobs WHERE id = '" +
      p.id.to_string() + "'"));
  ASSERT_EQ(count("job_attempts"), "1");
  expect_attempt(only_attempt(p.id), p.id, 1, 1, "w1", started, clock_.now(),
                 AttemptOutcome::kCompleted);
}

TEST_P(StoreHistory, TwoRetriesAndACompletionLeaveThreeRowsInOrder) {
  auto p = job(clock_.now());
  store_->job_insert(p);
  std::vector<TimePoint> starts, ends;
  for (int i = 1; i <= 3; ++i) {
    clock_.advance(1s);
    starts.push_back(clock_.now());
    JobRecord r = claim(p.id, "w" + std::to_string(i));
    clock_.advance(500ms);
    ends.push_back(clock_.now());
    const bool last = i == 3;
    auto f = outcome(r, last ? JobStatus::kCompleted : JobStatus::kPending,
                     last ? AttemptOutcome::kCompleted : AttemptOutcome::kRetried);
    if (!last) f.error_message = "boom " + std::to_string(i);
    ASSERT_TRUE(store_->job_finish(f));
  }
  auto rows = attempts(p.id);
  ASSERT_EQ(rows.size(), 3u);
  expect_attempt(rows[0], p.id, 1, 1, "w1", starts[0], ends[0], AttemptOutcome::kRetried, "boom 1");
  expect_attempt(rows[1], p.id, 2, 2, "w2", starts[1], ends[1], AttemptOutcome::kRetried, "boom 2");
  expect_attempt(rows[2], p.id, 3, 3, "w3", starts[2], ends[2], AttemptOutcome::kCompleted);
  // The rows keep each attempt's error; the Completed job has none.
  EXPECT_FALSE(store_->job_get(p.id)->error_message);
}

TEST_P(StoreHistory, FailedCancelledAndReleasedAttemptsLeaveTheirRows) {
  auto a = job(clock_.now());
  JobRecord r = running(a);
  auto failed = outcome(r, JobStatus::kFailed, AttemptOutcome::kFailed);
  failed.error_message = std::string("bad\0byte", 8);  // cleaned as the job's own message is
  ASSERT_TRUE(store_->job_finish(failed));
  const AttemptRecord row = only_attempt(a.id);
  EXPECT_EQ(row.outcome, AttemptOutcome::kFailed);
  EXPECT_EQ(row.error_message, store_->job_get(a.id)->error_message);

  auto b = job(clock_.now());
  r = running(b);
  ASSERT_EQ(store_->job_cancel(b.id, clock_.now()), CancelResult::kRequested);
  finish(r, JobStatus::kCancelled, AttemptOutcome::kCancelled);
  expect_attempt(only_attempt(b.id), b.id, 1, 1, "w1", r.started_at.value(), clock_.now(),
                 AttemptOutcome::kCancelled);

  // A release gives its attempt back; its row keeps the attempt as it ran.
  auto c = job(clock_.now());
  r = running(c);
  auto release = outcome(r, JobStatus::kPending, AttemptOutcome::kReleased);
  release.give_back_attempt = true;
  release.keep_run_at = true;
  ASSERT_TRUE(store_->job_finish(release));
  EXPECT_EQ(store_->job_get(c.id)->attempt, 0);
  expect_attempt(only_attempt(c.id), c.id, 1, 1, "w1", r.started_at.value(), clock_.now(),
                 AttemptOutcome::kReleased);
  // The next claim is attempt 1 again, on a new lease: a row of its own.
  r = claim(c.id, "w2");
  finish(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  const auto rows = attempts(c.id);
  ASSERT_EQ(rows.size(), 2u);
  expect_attempt(rows[1], c.id, 1, 2, "w2", r.started_at.value(), clock_.now(),
                 AttemptOutcome::kCompleted);
}

TEST_P(StoreHistory, NoRowWithoutAnOutcomeOrWhenFencedOut) {
  auto p = job(clock_.now());
  JobRecord r = running(p);
  auto stale = outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  stale.attempt = r.lease + 1;  // not the claim that holds it
  EXPECT_FALSE(store_->job_finish(stale));
  stale.attempt = r.lease;
  stale.worker_id = "w2";
  EXPECT_FALSE(store_->job_finish(stale));
  EXPECT_TRUE(attempts(p.id).empty());
  // A prefetched job given back before it started names no attempt: no row.
  auto unstarted = outcome(r, JobStatus::kPending, {});
  unstarted.give_back_attempt = true;
  unstarted.keep_run_at = true;
  ASSERT_TRUE(store_->job_finish(unstarted));
  EXPECT_TRUE(attempts(p.id).empty());
  // Finished: the same outcome again is fenced out too.
  r = claim(p.id, "w1");
  finish(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  EXPECT_FALSE(store_->job_finish(outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted)));
  EXPECT_EQ(attempts(p.id).size(), 1u);
  EXPECT_EQ(count("job_attempts"), "0");
}

TEST_P(StoreHistory, RescuedAttemptsLeaveRowsAndTheirZombiesNone) {
  auto p = job(clock_.now());
  JobRecord r = running(p);
  clock_.advance(31s);
  ASSERT_EQ(store_->job_rescue(rescue_at(clock_.now())), 1);
  const auto reason = store_->job_get(p.id)->error_message;
  EXPECT_NE(reason->find("orphaned: worker w1"), std::string::npos);
  expect_attempt(only_attempt(p.id), p.id, 1, 1, "w1", r.started_at.value(), clock_.now(),
                 AttemptOutcome::kRescued, reason);
  // The zombie's outcome is fenced out and writes nothing.
  EXPECT_FALSE(store_->job_finish(outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted)));
  EXPECT_EQ(attempts(p.id).size(), 1u);

  // Startup recovery of a worker known to be gone writes the same.
  r = claim(p.id, "gone");
  clock_.advance(1s);
  ASSERT_EQ(store_->job_release_worker("gone", rescue_at(clock_.now())), 1);
  auto rows = attempts(p.id);
  ASSERT_EQ(rows.size(), 2u);
  expect_attempt(rows[1], p.id, 2, 2, "gone", r.started_at.value(), clock_.now(),
                 AttemptOutcome::kRescued, store_->job_get(p.id)->error_message);

  // Quarantined at the poison limit: the row says why, as the job does.
  auto q = job(clock_.now());
  store_->job_insert(q);
  for (int i = 0; i < 3; ++i) {
    claim(q.id, "w1");
    clock_.advance(31s);
    ASSERT_EQ(store_->job_rescue(rescue_at(clock_.now())), 1);
  }
  auto poisoned = store_->job_get(q.id);
  EXPECT_EQ(poisoned->status, JobStatus::kFailed);
  rows = attempts(q.id);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].error_message, poisoned->error_message);
  EXPECT_NE(rows[2].error_message->find("quarantined"), std::string::npos);
  // Nothing Running, nothing to take back: no row.
  EXPECT_EQ(store_->job_rescue(rescue_at(clock_.now())), 0);
  EXPECT_EQ(attempts(q.id).size(), 3u);
}

TEST_P(StoreHistory, FinishManyWritesOneRowPerStoredOutcome) {
  std::vector<JobInsertParams> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(job(clock_.now()));
  std::vector<JobRecord> claimed;
  for (const auto& p : jobs) claimed.push_back(running(p));
  clock_.advance(1s);
  const TimePoint now = clock_.now();
  std::vector<JobFinishParams> batch;
  // Plain completions (one statement on PostgreSQL), with and without a result and a row.
  batch.push_back(outcome(claimed[0], JobStatus::kCompleted, AttemptOutcome::kCompleted));
  batch.back().result = R"(["x"])";
  batch.push_back(outcome(claimed[1], JobStatus::kCompleted, {}));
  batch.back().result = "7";
  // A retry with its error, a completion with progress, and a fenced-out outcome.
  batch.push_back(outcome(claimed[2], JobStatus::kPending, AttemptOutcome::kRetried));
  batch.back().error_message = "again";
  batch.push_back(outcome(claimed[3], JobStatus::kCompleted, AttemptOutcome::kCompleted));
  batch.back().progress_message = "done";
  batch.back().result = R"({"k":null})";
  batch.push_back(outcome(claimed[4], JobStatus::kCompleted, AttemptOutcome::kCompleted));
  batch.back().attempt += 1;
  EXPECT_EQ(store_->job_finish_many(batch), (std::vector<bool>{true, true, true, true, false}));

  expect_attempt(only_attempt(jobs[0].id), jobs[0].id, 1, 1, "w1", claimed[0].started_at.value(),
                 now, AttemptOutcome::kCompleted);
  EXPECT_EQ(store_->job_get(jobs[0].id)->result, R"(["x"])");
  EXPECT_EQ(attempts(jobs[1].id).size(), 1u);  // a Completed job's row is its last attempt
  EXPECT_EQ(store_->job_get(jobs[1].id)->result, "7");
  expect_attempt(only_attempt(jobs[2].id), jobs[2].id, 1, 1, "w1", claimed[2].started_at.value(),
                 now, AttemptOutcome::kRetried, "again");
  EXPECT_EQ(attempts(jobs[3].id).size(), 1u);
  EXPECT_EQ(store_->job_get(jobs[3].id)->result, R"({"k":null})");
  EXPECT_TRUE(attempts(jobs[4].id).empty());
  EXPECT_EQ(store_->job_get(jobs[4].id)->status, JobStatus::kRunning);
  EXPECT_EQ(count("job_attempts"), "1");  // the retry's
}

// A batch of retries larger than any one statement of rows (SQLite cuts it into several), with
// completions among them and outcomes fenced out here and there: exactly the stored outcomes
// leave an attempt, and only the retries a row.
TEST_P(StoreHistory, ALargeBatchWritesARowForEveryStoredOutcome) {
  std::vector<JobRecord> claimed;
  for (int i = 0; i < 90; ++i) claimed.push_back(running(job(clock_.now())));
  clock_.advance(1s);
  std::vector<JobFinishParams> batch;
  std::vector<bool> stored;
  int retries = 0;
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    const bool retry = i % 5 != 0;
    batch.push_back(outcome(claimed[i], retry ? JobStatus::kPending : JobStatus::kCompleted,
                            retry ? AttemptOutcome::kRetried : AttemptOutcome::kCompleted));
    if (retry) batch.back().error_message = "again " + std::to_string(i);
    stored.push_back(i % 7 != 3);
    if (!stored.back()) batch.back().attempt += 1;
    if (stored.back() && retry) ++retries;
  }
  EXPECT_EQ(store_->job_finish_many(batch), stored);
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    const auto rows = attempts(claimed[i].id);
    ASSERT_EQ(rows.size(), stored[i] ? 1u : 0u) << i;
    if (stored[i] && i % 5 != 0) {
      EXPECT_EQ(rows[0].error_message, "again " + std::to_string(i));
    }
  }
  EXPECT_EQ(count("job_attempts"), std::to_string(retries));
}

TEST_P(StoreHistory, TheRowOfATransactionalCompletionCommitsAndRollsBackWithIt) {
  auto p = job(clock_.now());
  JobRecord r = running(p);
  auto app = backend_->connect();
  const auto done = outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  ASSERT_TRUE(app->begin());
  EXPECT_TRUE(job_finish_tx(*store_, *app, done));
  ASSERT_TRUE(app->exec("ROLLBACK")) << app->last_error();
  EXPECT_TRUE(attempts(p.id).empty());
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kRunning);

  ASSERT_TRUE(app->begin());
  EXPECT_TRUE(job_finish_tx(*store_, *app, done));
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();
  EXPECT_EQ(attempts(p.id).size(), 1u);
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kCompleted);
}

TEST_P(StoreHistory, AttemptRowsAndTagsGoWithTheirJob) {
  const std::vector<std::string> tags = {"a", "b"};
  // Retried once (a row in job_attempts), then completed.
  auto finished = [&](std::string queue) {
    auto p = job(clock_.now(), tags);
    p.queue = queue;
    JobRecord r = running(p);
    finish(r, JobStatus::kPending, AttemptOutcome::kRetried);
    r = claim(p.id, "w1");
    finish(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
    return p.id;
  };
  const JobId deleted = finished("default");
  const JobId kept = finished("default");
  const JobId matched = finished("bulk");
  clock_.advance(1h);
  const JobId pruned = finished("default");
  ASSERT_EQ(count("job_attempts"), "4");

  EXPECT_TRUE(store_->job_delete(deleted));
  EXPECT_TRUE(attempts(deleted).empty());
  JobFilter bulk;
  bulk.queue = "bulk";
  EXPECT_EQ(store_->job_delete_matching(bulk), 1);
  EXPECT_TRUE(attempts(matched).empty());
  EXPECT_EQ(store_->job_prune(JobStatus::kCompleted, clock_.now() - 30min, 100), 1);
  EXPECT_TRUE(attempts(kept).empty());
  EXPECT_EQ(attempts(pruned).size(), 2u);
  EXPECT_EQ(count("job_attempts"), "1");  // no orphan left behind
  // Whoever deletes a job, on whatever connection.
  const JobId by_hand = finished("default");
  ASSERT_EQ(count("job_attempts"), "2");
  ASSERT_TRUE(
      backend_->connect()->exec("DELETE FROM jobs WHERE id = '" + by_hand.to_string() + "'"));
  EXPECT_EQ(count("job_attempts"), "1");
  if (GetParam().name == "sqlite") {
    EXPECT_EQ(count("job_tags"), "2");  // the tag index's rows
  }
  JobFilter tagged;
  tagged.tag = "a";
  ASSERT_EQ(store_->job_list(tagged).size(), 1u);
  EXPECT_EQ(store_->job_list(tagged)[0].id, pruned);
}

TEST_P(StoreHistory, TagsAndMetaRoundTripThroughEveryInsert) {
  const std::vector<std::string> tags = {"vip", "tenant:7", "with \"quotes\", {braces} \\ NULL",
                                         "ünï"};
  const std::string meta = R"({"source":"api"})";
  auto single = job(clock_.now(), tags, meta);
  store_->job_insert(single);
  std::vector<JobInsertParams> many = {job(clock_.now(), tags, meta), job(clock_.now())};
  store_->job_insert_many(many);

  auto app = backend_->connect();
  auto in_tx = job(clock_.now(), tags, meta);
  ASSERT_TRUE(app->begin());
  if (app->sqlite() != nullptr) {
    store_->job_insert_tx(app->sqlite(), in_tx);
  } else {
    store_->job_insert_tx(app->postgres(), in_tx);
  }
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();

  ScheduleRecord s;
  s.id = JobId::generate(clock_.now());
  s.name = "tagged";
  s.job_type = "t";
  s.job_data = "{}";
  s.cron_expression = "* * * * *";
  s.time_zone = "UTC";
  s.next_run_time = clock_.now();
  s.queue = "default";
  store_->schedule_upsert({s});
  ScheduleFireParams fire;
  fire.name = "tagged";
  fire.expected_next = clock_.now();
  fire.new_next = clock_.now() + 1min;
  fire.last_run_time = clock_.now();
  fire.jobs.push_back(job(clock_.now(), tags, meta));
  ASSERT_EQ(store_->schedule_fire(fire), ScheduleFireResult::kFired);

  for (const JobId& id : {single.id, many[0].id, in_tx.id, fire.jobs[0].id}) {
    auto r = store_->job_get(id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->tags, tags);
    EXPECT_EQ(r->meta, meta);
  }
  auto untagged = store_->job_get(many[1].id);
  EXPECT_TRUE(untagged->tags.empty());
  EXPECT_FALSE(untagged->meta);
  EXPECT_FALSE(untagged->result);

  // Every read of a job returns them: the listing and the claim.
  for (const auto& r : store_->job_list({})) {
    EXPECT_EQ(r.tags, r.id == many[1].id ? std::vector<std::string>{} : tags);
  }
  auto claimed = store_->job_claim({"w1", 10, clock_.now()});
  ASSERT_EQ(claimed.size(), 5u);
  for (const auto& r : claimed) {
    EXPECT_EQ(r.meta, r.id == many[1].id ? std::nullopt : std::optional<std::string>(meta));
  }
}

TEST_P(StoreHistory, TheTagFilterFindsExactlyTheTaggedJobs) {
  const std::vector<std::string> a = {"a"}, ab = {"a", "b"}, b = {"b"}, longer = {"ab"},
                                 twice = {"a", "a"};
  std::vector<JobId> ids;
  for (const auto& tags : {a, ab, b, longer, {}, twice}) {
    auto p = job(clock_.now(), tags);
    store_->job_insert(p);
    ids.push_back(p.id);
    clock_.advance(1s);
  }
  auto listed = [&](JobFilter f) {
    std::vector<JobId> out;
    for (const auto& r : store_->job_list(f)) out.push_back(r.id);
    return out;
  };
  JobFilter f;
  f.tag = "a";
  EXPECT_EQ(listed(f), (std::vector<JobId>{ids[5], ids[1], ids[0]}));  // newest first
  f.tag = "b";
  EXPECT_EQ(listed(f), (std::vector<JobId>{ids[2], ids[1]}));
  f.tag = "A";
  EXPECT_TRUE(listed(f).empty());
  f.tag = "";
  EXPECT_TRUE(listed(f).empty());

  // With the other conditions, and page by page.
  f.tag = "a";
  f.limit = 1;
  EXPECT_EQ(listed(f), (std::vector<JobId>{ids[5]}));
  f.before_id = ids[5];
  EXPECT_EQ(listed(f), (std::vector<JobId>{ids[1]}));
  f.before_id = ids[1];
  EXPECT_EQ(listed(f), (std::vector<JobId>{ids[0]}));
  f.before_id = ids[0];
  EXPECT_TRUE(listed(f).empty());
  store_->job_claim_id({"w1", 1, clock_.now()}, ids[1]);
  JobFilter running;
  running.tag = "a";
  running.status = JobStatus::kRunning;
  EXPECT_EQ(listed(running), (std::vector<JobId>{ids[1]}));

  // The bulk actions take the same filter.
  JobFilter pending;
  pending.tag = "a";
  EXPECT_EQ(store_->job_delete_matching(pending), 2);  // not the Running one
  EXPECT_EQ(listed(pending), (std::vector<JobId>{ids[1]}));
  EXPECT_EQ(store_->job_list({}).size(), 4u);

  JobFilter bad;
  bad.tag = std::string("a\0b", 3);
  EXPECT_THROW(store_->job_list(bad), Error);
}

TEST_P(StoreHistory, AProgressReportWithoutAPercentStoresNull) {
  auto p = job(clock_.now());
  JobRecord r = running(p);
  ASSERT_TRUE(store_->job_progress_update({p.id, r.lease, "w1", "half", 50}));
  EXPECT_EQ(store_->job_get(p.id)->progress_percent, 50);
  ASSERT_TRUE(store_->job_progress_update({p.id, r.lease, "w1", "counting", std::nullopt}));
  auto stored = store_->job_get(p.id);
  EXPECT_EQ(stored->progress_message, "counting");
  EXPECT_FALSE(stored->progress_percent);
}

// A database an older build left (the migrations before 11), holding jobs in every state as
// that build wrote them, keeps every job and field through the upgrade; the new columns are
// empty, and the upgraded database works.
TEST_P(StoreHistory, UpgradingFromTheSchemaBeforeHistoryKeepsEveryJob) {
  backend_->migrate_through(10, "old");
  const std::string pending = "01900000-0000-7000-8000-000000000001";
  const std::string running = "01900000-0000-7000-8000-000000000002";
  const std::string completed = "01900000-0000-7000-8000-000000000003";
  {
    auto app = backend_->connect("old");
    ASSERT_TRUE(app->exec(R"sql(
INSERT INTO jobs (id, job_type, job_data, status, created_at, run_at, queue, priority,
                  max_attempts, timeout_ms, unique_key, unique_while_running, unique_until,
                  group_key)
VALUES ('01900000-0000-7000-8000-000000000001', 'mail', '{"to":"ann"}', 'Pending',
        '2026-03-01T11:00:00.000000Z', '2026-03-01T13:00:00.000000Z', 'q1', 5, 3, 60000,
        'key-1', '1', '2026-03-02T00:00:00.000000Z', 'tenant-1');
INSERT INTO jobs (id, job_type, job_data, status, created_at, started_at, run_at, attempt,
                  lease, worker_id, heartbeat_at, progress_message, progress_percent,
                  cancel_requested)
VALUES ('01900000-0000-7000-8000-000000000002', 'report', '{}', 'Running',
        '2026-03-01T11:00:00.000000Z', '2026-03-01T11:59:00.000000Z',
        '2026-03-01T11:00:00.000000Z', 2, 2, 'w1', '2026-03-01T11:59:30.000000Z', 'half', 50,
        '1');
INSERT INTO jobs (id, job_type, job_data, status, created_at, started_at, completed_at,
                  error_message, run_at, attempt, rescue_count)
VALUES ('01900000-0000-7000-8000-000000000003', 'mail', '[1,2]', 'Completed',
        '2026-03-01T10:00:00.000000Z', '2026-03-01T10:00:01.000000Z',
        '2026-03-01T10:00:02.000000Z', 'RuntimeError: once', '2026-03-01T10:00:00.000000Z', 2,
        1);
)sql")) << app->last_error();
  }
  auto store = backend_->open(clock_, "old");  // migrates
  auto at = [](const char* text) { return parse_timestamp(text).value(); };
  ASSERT_EQ(store->job_list({}).size(), 3u);
  const JobRecord p{.id = *JobId::parse(pending),
                    .job_type = "mail",
                    .job_data = R"({"to":"ann"})",
                    .status = JobStatus::kPending,
                    .created_at = at("2026-03-01T11:00:00Z"),
                    .queue = "q1",
                    .priority = 5,
                    .run_at = at("2026-03-01T13:00:00Z"),
                    .max_attempts = 3,
                    .timeout = 60s,
                    .unique_key = "key-1",
                    .group_key = "tenant-1"};
  const JobRecord r{.id = *JobId::parse(running),
                    .job_type = "report",
                    .job_data = "{}",
                    .status = JobStatus::kRunning,
                    .created_at = at("2026-03-01T11:00:00Z"),
                    .started_at = at("2026-03-01T11:59:00Z"),
                    .progress_message = "half",
                    .progress_percent = 50,
                    .queue = "default",
                    .run_at = at("2026-03-01T11:00:00Z"),
                    .attempt = 2,
                    .worker_id = "w1",
                    .heartbeat_at = at("2026-03-01T11:59:30Z"),
                    .cancel_requested = true,
                    .lease = 2};
  const JobRecord c{.id = *JobId::parse(completed),
                    .job_type = "mail",
                    .job_data = "[1,2]",
                    .status = JobStatus::kCompleted,
                    .created_at = at("2026-03-01T10:00:00Z"),
                    .started_at = at("2026-03-01T10:00:01Z"),
                    .completed_at = at("2026-03-01T10:00:02Z"),
                    .error_message = "RuntimeError: once",
                    .queue = "default",
                    .run_at = at("2026-03-01T10:00:00Z"),
                    .attempt = 2,
                    .rescue_count = 1};
  for (const JobRecord& want : {p, r, c}) {
    SCOPED_TRACE(want.id.to_string());
    auto got = store->job_get(want.id);
    ASSERT_TRUE(got);
    expect_same_job(*got, want);  // the new columns too: empty
    EXPECT_TRUE(store->job_attempt_list(want.id).empty());
  }

  // The job that was Running when the build changed finishes with its attempt's row.
  auto done = outcome(r, JobStatus::kCompleted, AttemptOutcome::kCompleted);
  done.result = "true";
  ASSERT_TRUE(store->job_finish(done));
  auto rows = store->job_attempt_list(r.id);
  ASSERT_EQ(rows.size(), 1u);
  expect_attempt(rows[0], r.id, 2, 2, "w1", at("2026-03-01T11:59:00Z"), clock_.now(),
                 AttemptOutcome::kCompleted);
  EXPECT_EQ(store->job_get(r.id)->result, "true");
  const std::vector<std::string> tags = {"new"};
  auto tagged = job(clock_.now(), tags);
  store->job_insert(tagged);
  JobFilter f;
  f.tag = "new";
  ASSERT_EQ(store->job_list(f).size(), 1u);
  EXPECT_EQ(store->job_list(f)[0].id, tagged.id);
  EXPECT_TRUE(store->schema_migrate().empty());
}

}  // namespace
}  // namespace ergon::testing
