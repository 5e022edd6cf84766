// What happens to a claimed job on SQLite: its outcome, its progress and heartbeat, a rescue
// when its worker is gone, a cancel, and the pruning of finished jobs.
#include <algorithm>
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

// A job moving from Running back to Pending (retry, release, rescue) whose unique key was
// taken meanwhile by a new Pending job (possible when the key is held only while Pending)
// gives the key up, or the unique index would refuse the move.
constexpr std::string_view kUniqueGiveUp = R"sql(
  CASE WHEN unique_key IS NOT NULL AND unique_while_running = 0
            AND EXISTS (SELECT 1 FROM jobs o WHERE o.unique_key = jobs.unique_key
                        AND o.status = 'Pending' AND o.id <> jobs.id)
       THEN NULL ELSE unique_key END
)sql";

// Shared by the rescuer and startup recovery. An orphan goes back to Pending, unless its
// attempts are used up, or it has now been rescued poison_limit times (a job that keeps killing
// its worker): then it is Failed. Either way the rescue is counted, the reason
// (@RESCUE_REASON@) replaces error_message, and the job leaves the worker that lost it. run_at
// is kept: the orphan was due long ago and goes back to its old place in the queue, not behind
// everything enqueued since.
constexpr std::string_view kRescueSet = R"sql(
  status = CASE WHEN attempt >= coalesce(max_attempts, ?2) OR rescue_count + 1 >= ?3
                THEN 'Failed' ELSE 'Pending' END,
  completed_at = CASE WHEN attempt >= coalesce(max_attempts, ?2) OR rescue_count + 1 >= ?3
                      THEN ?1 ELSE NULL END,
  error_message = @RESCUE_REASON@,
  rescue_count = rescue_count + 1, worker_id = NULL, heartbeat_at = NULL,
  unique_key = @UNIQUE_GIVE_UP@
)sql";

// Why an orphan was taken back, from its row as the rescue found it.
constexpr std::string_view kRescueReason = R"sql(
  CASE WHEN rescue_count + 1 >= ?3 AND attempt < coalesce(max_attempts, ?2)
       THEN 'quarantined: the worker running it died ' || (rescue_count + 1) ||
            ' times (last: ' || coalesce(worker_id, '?') || ')'
       ELSE 'orphaned: worker ' || coalesce(worker_id, '?') || ' stopped heartbeating' END
)sql";

std::string outcome_sql(std::string_view sql) {
  return fill(sql, {{"UNIQUE_GIVE_UP", kUniqueGiveUp},
                    {"RESCUE_SET", kRescueSet},
                    {"RESCUE_REASON", kRescueReason}});
}

// The WHERE clause is the fence: only the claim (lease) that holds the job may move it on. A
// completion clears the error an earlier attempt left (its row in job_attempts keeps it).
const std::string kFinishSql = outcome_sql(R"sql(
  UPDATE jobs SET
    status = ?1,
    completed_at = CASE WHEN ?2 THEN ?3 ELSE NULL END,
    run_at = CASE WHEN ?2 THEN run_at ELSE coalesce(?4, run_at) END,
    worker_id = CASE WHEN ?2 THEN worker_id ELSE NULL END,
    heartbeat_at = CASE WHEN ?2 THEN heartbeat_at ELSE NULL END,
    error_message = CASE WHEN ?1 = 'Completed' THEN NULL ELSE coalesce(?5, error_message) END,
    attempt = attempt - ?6,
    progress_message = CASE WHEN ?7 IS NULL THEN progress_message ELSE ?7 END,
    progress_percent = coalesce(?8, progress_percent),
    unique_key = CASE WHEN ?2 THEN unique_key ELSE @UNIQUE_GIVE_UP@ END,
    result = ?12
  WHERE id = ?9 AND lease = ?10 AND worker_id = ?11 AND status = 'Running'
)sql");

// The attempts' rows of up to `n` outcomes, from their jobs' rows before the outcomes change
// them (the attempt as claimed, before a release gives it back; when it started), behind the
// outcomes' own fence, so that exactly the outcomes that are stored leave a row. (The
// outcome's UPDATE could return them instead, but RETURNING cost SQLite a quarter of the
// burn-down's rate, rows or not.) One statement for many rows: a batch pays for one, not one
// per outcome. A lease is one claim and so has one row, but a batch may hold one outcome twice
// (the second is fenced out): its row is written once. Per outcome six parameters
// (bind_attempt).
std::string attempts_sql(std::size_t n) {
  std::string rows;
  for (std::size_t i = 0; i < n; ++i)
    rows += i == 0 ? "(?, ?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?, ?)";
  return fill(R"sql(
    WITH o(now, outcome, error, id, lease, worker_id) AS (VALUES @ROWS@)
    INSERT INTO job_attempts (@ATTEMPT_COLUMNS@)
    SELECT j.id, j.attempt, j.lease, j.worker_id, coalesce(j.started_at, o.now), o.now,
           o.outcome, o.error
    FROM o JOIN jobs j ON j.id = o.id
    WHERE j.lease = o.lease AND j.worker_id = o.worker_id AND j.status = 'Running'
    ON CONFLICT DO NOTHING
  )sql",
              {{"ROWS", rows}});
}

// The statements' sizes: a batch is cut into as few of them as it takes, so that few shapes
// are ever prepared.
constexpr std::size_t kAttemptChunks[] = {64, 16, 4, 1};

const std::string kAttemptSql[] = {attempts_sql(64), attempts_sql(16), attempts_sql(4),
                                   attempts_sql(1)};

// One outcome's row in attempts_sql: its time, outcome and error, then the fence.
void bind_attempt(Binder& b, const JobFinishParams& p) {
  bind_values(b, p.now, *p.attempt_outcome, finish_error(p), p.id, p.attempt, p.worker_id);
}

// Stores one outcome on `db`: with `attempt` (the one-row attempts_sql; only for an outcome
// that writes one, writes_attempt_row) its attempt's row first, then the outcome, inside whatever
// transaction is open there (two statements that must commit together: the caller's concern). true
// if it moved the job.
bool finish_on(sqlite3* db, sqlite3_stmt* finish, sqlite3_stmt* attempt, const JobFinishParams& p) {
  if (attempt != nullptr) {
    Binder b(db, attempt);
    bind_attempt(b, p);
    b.run();
  }
  Binder b(db, finish);
  bind_finish(b, p);
  b.run();
  return sqlite3_changes(db) == 1;
}

}  // namespace

bool SqliteStore::finish_locked(const JobFinishParams& p) {
  return finish_on(db_, prepared(kFinishSql).get(),
                   writes_attempt_row(p) ? prepared(kAttemptSql[3]).get() : nullptr, p);
}

bool SqliteStore::job_finish(const JobFinishParams& p) {
  bool changed;
  {
    std::lock_guard lock(mu_);
    if (writes_attempt_row(p)) {
      // The outcome and the attempt's row: two statements, one commit.
      WriteTransaction tx(*this);
      changed = finish_locked(p);
      tx.commit();
    } else {
      changed = finish_locked(p);  // one autocommit statement
    }
  }
  // Listeners take their own locks; never call them under ours.
  if (changed && p.status == JobStatus::kPending) notifier().notify(p.run_at);
  return changed;
}

std::vector<bool> SqliteStore::job_finish_many(std::span<const JobFinishParams> batch) {
  std::vector<bool> out;
  if (batch.empty()) return out;
  out.reserve(batch.size());
  std::optional<TimePoint> earliest;  // of the jobs that are Pending again
  {
    std::lock_guard lock(mu_);
    // One write transaction, so one fsync for the whole batch (synchronous=full).
    WriteTransaction tx(*this);
    // The attempts' rows first, while the jobs are still as their claims left them.
    std::vector<const JobFinishParams*> rows;
    for (const auto& p : batch) {
      if (writes_attempt_row(p)) rows.push_back(&p);
    }
    for (std::size_t at = 0, k = 0; at < rows.size();) {
      const std::size_t n = kAttemptChunks[k];
      if (rows.size() - at < n) {
        ++k;
        continue;
      }
      Binder b(db_, prepared(kAttemptSql[k]).get());
      for (std::size_t i = at; i < at + n; ++i) bind_attempt(b, *rows[i]);
      b.run();
      at += n;
    }
    auto& finish = prepared(kFinishSql);
    for (const auto& p : batch) {
      const bool changed = finish_on(db_, finish.get(), nullptr, p);  // rows written above
      out.push_back(changed);
      if (changed && p.status == JobStatus::kPending) {
        earliest = earliest ? std::min(*earliest, p.run_at) : p.run_at;
      }
    }
    tx.commit();
  }
  if (earliest) notifier().notify(*earliest);
  return out;
}

bool SqliteStore::job_finish_tx(NativeConnection native, const JobFinishParams& p) {
  sqlite3* conn = caller_connection(
      native, backend(),
      "complete_in_transaction(conn) needs an open transaction on conn (BEGIN first)");
  constexpr std::string_view what = "prepare completion on the caller's connection";
  Stmt finish(conn, kFinishSql, 0, what);
  std::optional<Stmt> attempt;
  if (writes_attempt_row(p)) attempt.emplace(conn, kAttemptSql[3], 0, what);
  return finish_on(conn, finish.get(), attempt ? attempt->get() : nullptr, p);
}

bool SqliteStore::job_progress_update(const JobProgressParams& p) {
  // Touches only the progress columns, and only of the attempt that reports: a progress write
  // can never change a job's status, so it can never leave a job stuck.
  static constexpr std::string_view sql = R"sql(
    UPDATE jobs SET progress_message = ?1, progress_percent = ?2
    WHERE id = ?3 AND lease = ?4 AND worker_id = ?5 AND status = 'Running'
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  bind_progress(b, p);
  b.run();
  return sqlite3_changes(db_) == 1;
}

std::vector<HeldJob> SqliteStore::job_heartbeat(std::string_view worker_id, TimePoint now) {
  // One statement renews every job this worker holds, and tells it which ones it still holds
  // (a rescued job is missing: its handler must stop) and which were asked to cancel.
  static constexpr std::string_view sql = R"sql(
    UPDATE jobs SET heartbeat_at = ?1
    WHERE worker_id = ?2 AND status = 'Running'
    RETURNING id, lease, cancel_requested
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.time(now).text(worker_id);
  std::vector<HeldJob> out;
  while (b.step()) {
    auto id = JobId::parse(text_column(b.stmt(), 0));
    if (!id) continue;
    out.push_back({*id, sqlite3_column_int(b.stmt(), 1), sqlite3_column_int(b.stmt(), 2) != 0});
  }
  return out;
}

int SqliteStore::rescue_locked(std::string_view orphans, const JobRescueParams& p,
                               std::string_view worker_id) {
  // The orphans' attempts are written from their rows as found, before the rescue changes
  // them (the worker is cleared), so the orphans are picked once, under the write lock, and
  // both statements take exactly those (?4).
  static const std::string attempts = outcome_sql(R"sql(
    INSERT INTO job_attempts (@ATTEMPT_COLUMNS@)
    SELECT id, attempt, lease, coalesce(worker_id, ''), coalesce(started_at, ?1), ?1, 'rescued',
           @RESCUE_REASON@
    FROM jobs WHERE id IN (SELECT value FROM json_each(?4))
  )sql");
  static const std::string rescue = outcome_sql(R"sql(
    UPDATE jobs SET @RESCUE_SET@ WHERE id IN (SELECT value FROM json_each(?4))
  )sql");
  WriteTransaction tx(*this);
  std::vector<std::string> ids;
  {
    Binder b(db_, prepared(orphans).get());
    if (worker_id.empty()) {
      b.time(p.stale_before);
    } else {
      b.text(worker_id);
    }
    b.integer(static_cast<std::int64_t>(p.limit));
    while (b.step()) ids.push_back(text_column(b.stmt(), 0));
  }
  if (ids.empty()) {
    tx.commit();
    return 0;
  }
  const std::string list = text_list_json(ids);
  run_locked(attempts, p.now, p.default_max_attempts, p.poison_limit, list);
  const int n = run_locked(rescue, p.now, p.default_max_attempts, p.poison_limit, list);
  tx.commit();
  return n;
}

int SqliteStore::job_rescue(const JobRescueParams& p) {
  static constexpr std::string_view orphans = R"sql(
    SELECT id FROM jobs WHERE status = 'Running' AND heartbeat_at < ?1 LIMIT ?2
  )sql";
  int n;
  {
    std::lock_guard lock(mu_);
    n = rescue_locked(orphans, p, {});
  }
  if (n > 0) notifier().notify(p.now);
  return n;
}

int SqliteStore::job_release_worker(std::string_view worker_id, const JobRescueParams& p) {
  static constexpr std::string_view orphans = R"sql(
    SELECT id FROM jobs WHERE status = 'Running' AND worker_id = ?1 LIMIT ?2
  )sql";
  int n;
  {
    std::lock_guard lock(mu_);
    n = rescue_locked(orphans, p, worker_id);
  }
  if (n > 0) notifier().notify(p.now);
  return n;
}

CancelResult SqliteStore::job_cancel(const JobId& id, TimePoint now) {
  // A Pending job is cancelled at once; a Running one is asked to stop (its worker's heartbeat
  // reads cancel_requested).
  static constexpr std::string_view cancel = R"sql(
    UPDATE jobs SET status = 'Cancelled', completed_at = ?1 WHERE id = ?2 AND status = 'Pending'
  )sql";
  static constexpr std::string_view request = R"sql(
    UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'Running'
  )sql";
  static constexpr std::string_view exists = R"sql(
    SELECT 1 FROM jobs WHERE id = ?
  )sql";
  std::lock_guard lock(mu_);
  if (run_locked(cancel, now, id) == 1) return CancelResult::kCancelled;
  if (run_locked(request, id) == 1) return CancelResult::kRequested;
  Binder b(db_, prepared(exists).get());
  b.text(id.to_string());
  return b.step() ? CancelResult::kAlreadyFinished : CancelResult::kNotFound;
}

int SqliteStore::job_prune(JobStatus status, TimePoint before, int limit) {
  if (!is_final(status)) {
    throw Error(ErrorCode::kInvalidArgument, "only finished jobs can be pruned");
  }
  // Bounded: a large backlog of history is deleted in many small transactions, never one
  // that holds the write lock for long.
  static constexpr std::string_view sql = R"sql(
    DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = ?1 AND completed_at < ?2
                                  LIMIT ?3)
  )sql";
  return run(sql, status, before, limit);
}

}  // namespace ergon::sqlite
