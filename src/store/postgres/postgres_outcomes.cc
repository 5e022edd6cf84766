// store/postgres/postgres_outcomes.cc — what becomes of a claimed job: its outcome (one, a
// batch, or inside the caller's transaction), progress, heartbeats, the rescue of orphans,
// cancellation and the pruning of finished jobs.
#include <algorithm>
#include <unordered_set>

#include "ergon/error.h"
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// The fence "this job is still Running" of the statements that address one attempt by id (an
// outcome, a progress report). Written so that no partial index on Running rows matches it:
// with a plain `status = 'Running'` next to `worker_id = $n`, a generic plan trusts statistics
// that may have been taken when few jobs ran (estimate: one row) and reads jobs_running_idx,
// every Running row of the worker (1,000 and more with a local queue), to change one job.
// `status || ''` can use no index, so the job is found by id (jobs_pkey), whatever the
// statistics say (PostgresStoreTest.OutcomesFindTheirJobByIdWhateverTheStatistics). A batch of
// completions keeps the plain form (kFinishCompletedMany).
constexpr std::string_view kRunning = R"sql((status || '') = 'Running')sql";

// A job moving from Running back to Pending (retry, release, rescue) whose unique key was
// taken meanwhile by a new Pending job (possible when the key is held only while Pending)
// gives the key up, or the unique index would refuse the move. @ROW@ names the updated row. A
// concurrent insert can still slip in between; the move then fails with a unique violation and
// its caller's retry finds the new job and gives the key up.
constexpr std::string_view kUniqueGiveUp = R"sql(CASE
    WHEN @ROW@.unique_key IS NOT NULL AND NOT @ROW@.unique_while_running AND EXISTS (
        SELECT 1 FROM @SCHEMA@.jobs o
        WHERE o.unique_key = @ROW@.unique_key AND o.status = 'Pending' AND o.id <> @ROW@.id)
    THEN NULL ELSE @ROW@.unique_key END)sql";

// The outcome. The WHERE clause is the fence: only the claim (lease) that holds the job may
// move it on. $2 says whether the state is final (completed_at = now) or Pending again (due at
// $4; the worker and lease are cleared); $12 is the result. A completion clears the error an
// earlier attempt left (its row in job_attempts keeps it). In the same statement, when $13
// names the attempt's outcome (writes_attempt_row: not a completion), the attempt's row: the
// attempt as claimed (before a release gave it back), the lease, the worker, when it started, and
// $5, the error it ended with. A lease is one claim, and only the outcome that moves the job off it
// writes its row, so the row is new: no ON CONFLICT, whose speculative insertion cost the burn-down
// with history about a tenth of its rate. @END@ selects from `upd`, the moved row (none: fenced
// out).
constexpr std::string_view kFinish = R"sql(
WITH upd AS (
UPDATE @SCHEMA@.jobs
SET status = $1,
    completed_at = CASE WHEN $2::boolean THEN @AT@ ELSE NULL END,
    run_at = CASE WHEN $2::boolean THEN run_at ELSE coalesce(@RUN_AT@, run_at) END,
    worker_id = CASE WHEN $2::boolean THEN worker_id ELSE NULL END,
    heartbeat_at = CASE WHEN $2::boolean THEN heartbeat_at ELSE NULL END,
    error_message = CASE WHEN $1::varchar = 'Completed' THEN NULL
                         ELSE coalesce($5::varchar, error_message) END,
    attempt = attempt - $6::integer,
    progress_message = coalesce($7::varchar, progress_message),
    progress_percent = coalesce($8::integer, progress_percent),
    unique_key = CASE WHEN $2::boolean THEN unique_key ELSE @GIVE_UP_KEY@ END,
    result = $12::jsonb
WHERE id = $9::uuid AND lease = $10::integer AND worker_id = $11 AND @RUNNING@
RETURNING id, attempt + $6::integer AS attempt, started_at, run_at),
att AS (
INSERT INTO @SCHEMA@.job_attempts (@ATTEMPT_COLUMNS@)
SELECT id, attempt, $10::integer, $11, coalesce(started_at, @AT@), @AT@, $13::varchar, $5::varchar
FROM upd WHERE $13::varchar IS NOT NULL)
@END@)sql";

// Whether a JobRunner::wait of some process listens for finished jobs ($n: the store's
// finish_channel, which its listening connection also takes as application_name). An
// uncorrelated sub-select: evaluated once per statement (an InitPlan), reading the server's
// table of sessions, whose application_name every role may see. Only then is pg_notify called:
// a notifying transaction holds a lock that serializes the commits of all notifying
// transactions of the cluster (the notification queue keeps commit order), so completions must
// not notify when nobody listens. A waiter that connects between this check and the commit is
// not told: its wait polls (JobRunner::wait).
constexpr std::string_view kWaited =
    R"sql((SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $@N@)))sql";

// A final state: the row, if moved, and a notification on the finish channel ($14) when a
// process waits for finished jobs.
constexpr std::string_view kFinishEnd =
    "SELECT CASE WHEN @WAITED@ THEN pg_notify($14, '') END FROM upd";

// A job that is Pending again (retry, release) wakes the workers of every process, like an
// insert: one notification in the same statement, delivered on commit.
constexpr std::string_view kFinishRetryEnd = "SELECT pg_notify($14, @PAYLOAD@) FROM upd";

// job_finish_many: the plain completions of a batch (no error, progress or attempts to give
// back; the common case) in one statement over arrays, so a batch of a hundred costs one round
// trip instead of a hundred. A completion writes no attempt row (writes_attempt_row). The same
// fence as kFinish, per row. $1: ids (uuid[]), $2: leases (integer[]), $3: the worker, $4:
// results (jsonb[]), $5: the finish channel (as kFinishEnd; pg_notify is called per row, and
// PostgreSQL keeps one of a transaction's equal notifications), $6 (injected clock only): each
// outcome's time (timestamptz[]). Its fence is the plain `status = 'Running'`, not kRunning: for a
// batch, reading the Running rows once and hashing them costs about a third of one look-up by id
// per job.
constexpr std::string_view kFinishCompletedMany = R"sql(
UPDATE @SCHEMA@.jobs AS j
SET status = 'Completed', completed_at = @AT@, result = f.result, error_message = NULL
FROM @OUTCOMES@
WHERE j.id = f.id AND j.lease = f.lease AND j.worker_id = $3 AND j.status = 'Running'
RETURNING j.id::text, CASE WHEN @WAITED@ THEN pg_notify($5, '') END)sql";

// Shared by the rescuer and startup recovery ($1 default max_attempts, $2 poison limit, $3
// stale_before or worker id, $4 limit, $5 now). An orphan goes back to Pending, unless its
// attempts are used up or it has now been rescued poison-limit times (a job that keeps killing
// its worker): then it is Failed, with the reason in error_message. Either way the rescue is
// counted and the job leaves the worker that lost it; run_at is kept, so the orphan (due long
// ago) goes back to its old place in the queue, not behind everything enqueued since. The rows
// are picked with FOR UPDATE SKIP LOCKED: two rescuers never take the same orphan, and a row
// whose heartbeat or outcome was written meanwhile is re-checked and left alone. Each orphan's
// attempt gets its row, in the same statement: its worker as the pick found it (the update
// clears it), the reason as its error.
constexpr std::string_view kRescue = R"sql(
WITH res AS (
UPDATE @SCHEMA@.jobs AS j
SET status = CASE WHEN @GIVE_UP@ THEN 'Failed' ELSE 'Pending' END,
    completed_at = CASE WHEN @GIVE_UP@ THEN @NOW@ ELSE NULL END,
    error_message = CASE
        WHEN j.rescue_count + 1 >= $2::integer AND
             j.attempt < coalesce(j.max_attempts, $1::integer)
        THEN 'quarantined: the worker running it died ' || (j.rescue_count + 1) ||
             ' times (last: ' || coalesce(j.worker_id, '?') || ')'
        ELSE 'orphaned: worker ' || coalesce(j.worker_id, '?') || ' stopped heartbeating'
    END,
    rescue_count = j.rescue_count + 1, worker_id = NULL, heartbeat_at = NULL,
    unique_key = @GIVE_UP_KEY@
FROM (SELECT id, worker_id FROM @SCHEMA@.jobs WHERE status = 'Running' AND @ORPHANS@
      LIMIT $4 FOR UPDATE SKIP LOCKED) AS orphan
WHERE j.id = orphan.id
RETURNING j.id, j.attempt, j.lease, orphan.worker_id, j.started_at, j.error_message, j.status,
          j.run_at),
att AS (
INSERT INTO @SCHEMA@.job_attempts (@ATTEMPT_COLUMNS@)
SELECT id, attempt, lease, coalesce(worker_id, ''), coalesce(started_at, @NOW@), @NOW@, 'rescued',
       error_message
FROM res)
SELECT status, run_at FROM res)sql";

// The orphan is given up on: its attempts are used up, or its rescues reach the poison limit.
constexpr std::string_view kRescueGivesUp =
    R"sql(j.attempt >= coalesce(j.max_attempts, $1::integer) OR j.rescue_count + 1 >= $2::integer)sql";

// $1-$12 of the finish statements (bind_finish, store/params.h), then the attempt's outcome
// ($13); then $14, the channel: the store's (a retry's) or its finish channel (a final state).
PgParams finish_params(const JobFinishParams& p) {
  PgParams params;
  bind_finish(params, p);
  bind_value(params, writes_attempt_row(p) ? p.attempt_outcome : std::nullopt);
  return params;
}

PgParams rescue_params(const JobRescueParams& p) {
  PgParams params;
  params.integer(static_cast<std::int64_t>(p.default_max_attempts))
      .integer(static_cast<std::int64_t>(p.poison_limit));
  return params;
}

}  // namespace

OutcomeStatements::OutcomeStatements(const SqlContext& sql) {
  const std::string attempt_columns = columns(kAttemptColumns);
  // `base`: the time the outcome is stored at; `end`: what it returns.
  auto finish_sql = [&](std::string_view base, std::string_view end) {
    return sql.text(kFinish, {{"@END@", end},
                              {"@AT@", sql.time(base, 3, 3)},
                              {"@RUN_AT@", sql.time(base, 4, 3)},
                              {"@GIVE_UP_KEY@", kUniqueGiveUp},
                              {"@ROW@", "jobs"},
                              {"@RUNNING@", kRunning},
                              {"@PAYLOAD@", kRunAtPayload},
                              {"@WAITED@", kWaited},
                              {"@N@", "14"},
                              {"@ATTEMPT_COLUMNS@", attempt_columns}});
  };
  finish = {"ergon_job_finish", finish_sql("now()", kFinishEnd)};
  finish_retry = {"ergon_job_finish_retry", finish_sql("now()", kFinishRetryEnd)};
  // On the caller's connection (transactional completion), for the reason given at the
  // transactional insert (postgres_enqueue.cc): now() would be the start of the caller's
  // transaction.
  finish_tx = finish_sql("clock_timestamp()", kFinishEnd);
  finish_retry_tx = finish_sql("clock_timestamp()", kFinishRetryEnd);
  finish_completed_many = sql.statement(
      "ergon_job_finish_completed_many", kFinishCompletedMany,
      {{"@AT@", sql.db_clock ? "now()" : "f.at"},
       {"@OUTCOMES@", sql.db_clock ? "unnest($1::uuid[], $2::integer[], $4::jsonb[]) "
                                     "AS f(id, lease, result)"
                                   : "unnest($1::uuid[], $2::integer[], $4::jsonb[], "
                                     "$6::timestamptz[]) AS f(id, lease, result, at)"},
       {"@WAITED@", kWaited},
       {"@N@", "5"}});
  // Only the progress columns, and only of the attempt that reports: a progress write can
  // never change a job's status, so it can never leave a job stuck.
  progress = sql.statement("ergon_job_progress", R"sql(
UPDATE @SCHEMA@.jobs SET progress_message = $1, progress_percent = $2::integer
WHERE id = $3::uuid AND lease = $4::integer AND worker_id = $5 AND @RUNNING@)sql",
                           {{"@RUNNING@", kRunning}});
  // Fault tolerance. The statements that take a caller's `now` get it as their last
  // parameter, which the database clock leaves out (as the claim does).
  // One statement renews every job this worker holds, and tells it which ones it still holds
  // (a rescued job is missing: its handler must stop) and which were asked to cancel.
  heartbeat = sql.statement("ergon_job_heartbeat", R"sql(
UPDATE @SCHEMA@.jobs SET heartbeat_at = @NOW@ WHERE worker_id = $1 AND status = 'Running'
RETURNING id, lease, cancel_requested)sql",
                            {{"@NOW@", sql.now(2)}});
  auto rescue_sql = [&](std::string_view orphans) {
    return sql.text(kRescue, {{"@GIVE_UP@", kRescueGivesUp},
                              {"@NOW@", sql.now(5)},
                              {"@GIVE_UP_KEY@", kUniqueGiveUp},
                              {"@ROW@", "j"},
                              {"@ORPHANS@", orphans},
                              {"@ATTEMPT_COLUMNS@", attempt_columns}});
  };
  rescue = {"ergon_job_rescue", rescue_sql(sql.heartbeat_stale(3, 5))};
  release_worker = {"ergon_job_release_worker", rescue_sql("worker_id = $3")};
  cancel_pending = sql.statement("ergon_job_cancel_pending", R"sql(
UPDATE @SCHEMA@.jobs SET status = 'Cancelled', completed_at = @NOW@
WHERE id = $1::uuid AND status = 'Pending')sql",
                                 {{"@NOW@", sql.now(2)}});
  cancel_running = sql.statement("ergon_job_cancel_running", R"sql(
UPDATE @SCHEMA@.jobs SET cancel_requested = true WHERE id = $1::uuid AND status = 'Running')sql");
  job_exists = sql.statement("ergon_job_exists", "SELECT 1 FROM @SCHEMA@.jobs WHERE id = $1::uuid");
  // Bounded: a large backlog of history is deleted in many short transactions. SKIP LOCKED:
  // two pruners split the work instead of queueing on the same rows.
  prune = sql.statement("ergon_job_prune", R"sql(
DELETE FROM @SCHEMA@.jobs
WHERE id IN (SELECT id FROM @SCHEMA@.jobs WHERE status = $1 AND completed_at < $2::timestamptz
             LIMIT $3 FOR UPDATE SKIP LOCKED))sql");
}

// One outcome's statement on `conn` (a final state, or Pending again with its pg_notify);
// true if it moved the job.
bool PostgresStore::finish_on(PgConnection& conn, const JobFinishParams& p) {
  PgParams params = finish_params(p);
  if (is_final(p.status)) {
    params.text(finish_channel_);
    auto r = conn.run(sql_->outcomes.finish, params, Format::kText);
    return PQntuples(r.get()) == 1;
  }
  params.text(channel_);
  auto r = conn.run(sql_->outcomes.finish_retry, params, Format::kText);
  return PQntuples(r.get()) == 1;
}

bool PostgresStore::job_finish(const JobFinishParams& p) {
  bool changed;
  {
    auto conn = pool_.acquire();
    changed = finish_on(*conn, p);
  }
  if (changed && p.status == JobStatus::kPending) notifier().notify(p.run_at);
  return changed;
}

std::vector<bool> PostgresStore::job_finish_many(std::span<const JobFinishParams> batch) {
  std::vector<bool> out(batch.size(), false);
  if (batch.empty()) return out;
  // Plain completions of the first outcome's worker go in one statement; the rest (failures,
  // retries, releases, completions that carry progress) one statement each, in the same
  // transaction.
  auto plain = [&](const JobFinishParams& p) {
    return p.status == JobStatus::kCompleted && !p.error_message && !p.give_back_attempt &&
           !p.progress_message && !p.progress_percent && p.worker_id == batch.front().worker_id;
  };
  pq::PgArray ids, leases, results, times;
  std::size_t n_plain = 0;
  for (const auto& p : batch) {
    if (!plain(p)) continue;
    ++n_plain;
    ids.add(p.id.to_string());
    leases.add(std::to_string(p.attempt));
    if (p.result) {
      results.add(*p.result);
    } else {
      results.null();
    }
    times.add(format_timestamp(p.now));
  }
  std::optional<TimePoint> earliest;  // of the jobs that are Pending again
  {
    auto conn = pool_.acquire();
    // No nested loop for the batch's join of the outcomes with the Running rows: the planner,
    // trusting statistics taken while few jobs ran, estimates one Running row, and a nested
    // loop over that "one" row with the outcomes as its inner side compares every Running row
    // with every outcome. With 10M finished rows in the table it chose that plan: 766,000
    // comparisons and 200-270 ms for a batch of 500 at 1,532 Running, a tenth of the usual
    // rate. A hash join reads each side once. SET LOCAL ends with the transaction; the
    // statement runs nowhere else.
    transaction(
        *conn,
        [&] {
          if (n_plain > 0) {
            PgParams params;
            params.text(ids.str()).text(leases.str()).text(batch.front().worker_id);
            params.text(results.str()).text(finish_channel_);
            if (!database_clock_) params.text(times.str());
            auto r = conn->run(sql_->outcomes.finish_completed_many, params, Format::kText);
            std::unordered_set<std::string_view> done;
            for (int i = 0; i < PQntuples(r.get()); ++i) done.insert(PQgetvalue(r.get(), i, 0));
            for (std::size_t i = 0; i < batch.size(); ++i) {
              if (plain(batch[i])) out[i] = done.contains(batch[i].id.to_string());
            }
          }
          for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto& p = batch[i];
            if (plain(p)) continue;
            out[i] = finish_on(*conn, p);
            if (out[i] && p.status == JobStatus::kPending) {
              earliest = earliest ? std::min(*earliest, p.run_at) : p.run_at;
            }
          }
        },
        "BEGIN; SET LOCAL enable_nestloop = off");
  }
  if (earliest) notifier().notify(*earliest);
  return out;
}

bool PostgresStore::job_finish_tx(NativeConnection native, const JobFinishParams& p) {
  pg_conn* conn = native_handle<pg_conn>(native, backend());
  require_transaction(conn, "complete_in_transaction(conn)");
  PgParams params = finish_params(p);
  // No local notify: the outcome is invisible until the caller commits. A retry's
  // notification (and a final state's, when somebody waits) is queued in the caller's
  // transaction and reaches the listeners on commit.
  if (is_final(p.status)) {
    params.text(finish_channel_);
    auto r = exec_on_caller(conn, sql_->outcomes.finish_tx, params,
                            "completion on the caller's connection");
    return PQntuples(r.get()) == 1;
  }
  params.text(channel_);
  auto r = exec_on_caller(conn, sql_->outcomes.finish_retry_tx, params,
                          "completion on the caller's connection");
  return PQntuples(r.get()) == 1;
}

bool PostgresStore::job_progress_update(const JobProgressParams& p) {
  PgParams params;
  bind_progress(params, p);
  auto r = pooled_run(sql_->outcomes.progress, params, Format::kText);
  return std::string_view(PQcmdTuples(r.get())) == "1";
}

std::vector<HeldJob> PostgresStore::job_heartbeat(std::string_view worker_id, TimePoint now) {
  PgParams params;
  params.text(worker_id);
  if (!database_clock_) params.time(now);
  PgResult r = pooled_run(sql_->outcomes.heartbeat, params);
  std::vector<HeldJob> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.push_back(
        {pgbin::uuid(r.get(), i, 0), pgbin::int4(r.get(), i, 1), pgbin::boolean(r.get(), i, 2)});
  }
  return out;
}

int PostgresStore::rescue_run(const PgStatement& st, const PgParams& params, TimePoint now) {
  int n = 0;
  std::optional<TimePoint> due;  // stored run_at of a job that is Pending again
  {
    auto conn = pool_.acquire();
    auto r = conn->run(st, params);
    n = PQntuples(r.get());
    for (int i = 0; i < n; ++i) {
      if (pgbin::text(r.get(), i, 0) == "Pending") due = pgbin::timestamptz(r.get(), i, 1);
    }
    // The rows are committed already (one statement): tell the other processes' workers too.
    if (due) {
      conn->run(sql_->notify, PgParams().text(channel_).text(format_timestamp(*due)),
                Format::kText);
    }
  }
  if (n > 0) notifier().notify(now);
  return n;
}

int PostgresStore::job_rescue(const JobRescueParams& p) {
  PgParams params = rescue_params(p);
  // $5 (now) is always sent: on the database clock stale_before is taken relative to it.
  params.time(p.stale_before).integer(static_cast<std::int64_t>(p.limit)).time(p.now);
  return rescue_run(sql_->outcomes.rescue, params, p.now);
}

int PostgresStore::job_release_worker(std::string_view worker_id, const JobRescueParams& p) {
  PgParams params = rescue_params(p);
  params.text(worker_id).integer(static_cast<std::int64_t>(p.limit));
  if (!database_clock_) params.time(p.now);
  return rescue_run(sql_->outcomes.release_worker, params, p.now);
}

CancelResult PostgresStore::job_cancel(const JobId& id, TimePoint now) {
  auto conn = pool_.acquire();
  PgParams pending;
  pending.text(id.to_string());
  if (!database_clock_) pending.time(now);
  auto r = conn->run(sql_->outcomes.cancel_pending, pending, Format::kText);
  if (std::string_view(PQcmdTuples(r.get())) == "1") return CancelResult::kCancelled;
  // Not Pending (any more): a Running job is flagged for its worker, whose next heartbeat
  // reads the flag and fires the handler's stop token.
  r = conn->run(sql_->outcomes.cancel_running, PgParams().text(id.to_string()), Format::kText);
  if (std::string_view(PQcmdTuples(r.get())) == "1") return CancelResult::kRequested;
  r = conn->run(sql_->outcomes.job_exists, PgParams().text(id.to_string()), Format::kText);
  return PQntuples(r.get()) == 1 ? CancelResult::kAlreadyFinished : CancelResult::kNotFound;
}

int PostgresStore::job_prune(JobStatus status, TimePoint before, int limit) {
  if (!is_final(status)) {
    throw Error(ErrorCode::kInvalidArgument, "only finished jobs can be pruned");
  }
  auto r = pooled_run(
      sql_->outcomes.prune,
      PgParams().text(to_string(status)).time(before).integer(static_cast<std::int64_t>(limit)),
      Format::kText);
  return std::atoi(PQcmdTuples(r.get()));
}

}  // namespace ergon::postgres
