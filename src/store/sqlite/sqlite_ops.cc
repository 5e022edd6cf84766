// What operators do on SQLite (the CLI and the dashboard): retry and delete jobs, one or all
// that match a filter; the counts and throughput they watch; the audit log of their actions.
#include <algorithm>
#include <string>
#include <tuple>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

// What an operator's retry writes: Pending, due at the next plain ? (now), lease and outcome
// cleared; attempts and error_message kept (history). A job whose attempts are used up gets
// exactly one more, so the retry runs once even when max_attempts was reached.
constexpr std::string_view kRetrySet = R"sql(
  status = 'Pending', run_at = ?, completed_at = NULL, worker_id = NULL, heartbeat_at = NULL,
  cancel_requested = 0,
  max_attempts = CASE WHEN max_attempts IS NOT NULL AND attempt >= max_attempts
                      THEN attempt + 1 ELSE max_attempts END
)sql";

// A retried job becomes Pending, so it would enter jobs_unique_idx: it is skipped (not
// retried) while another job holds its unique key (Pending, or Running while held so).
constexpr std::string_view kKeyFree = R"sql(
  (jobs.unique_key IS NULL
   OR NOT EXISTS (SELECT 1 FROM jobs o
                  WHERE o.unique_key = jobs.unique_key AND o.id <> jobs.id
                    AND (o.status = 'Pending'
                         OR (o.status = 'Running' AND o.unique_while_running = 1))))
)sql";

// `sql` with the holes above filled, and @FILTER@ the condition of a JobFilter (filter_where).
std::string ops_sql(std::string_view sql, std::string_view filter = {}) {
  return fill(sql, {{"RETRY_SET", kRetrySet}, {"KEY_FREE", kKeyFree}, {"FILTER", filter}});
}

}  // namespace

bool SqliteStore::job_retry(const JobId& id, TimePoint now) {
  // One statement under the write lock: the status fence and the unique-key check cannot be
  // overtaken. The outbox trigger (if enabled) fires on the move to Pending.
  static const std::string sql = ops_sql(R"sql(
    UPDATE jobs SET @RETRY_SET@
    WHERE id = ? AND status IN ('Failed', 'Cancelled') AND @KEY_FREE@
  )sql");
  if (run(sql, now, id) != 1) return false;
  notifier().notify(now);
  return true;
}

bool SqliteStore::job_delete(const JobId& id) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM jobs WHERE id = ?1 AND status <> 'Running'
  )sql";
  return run(sql, id) == 1;
}

int SqliteStore::job_retry_matching(const JobFilter& f, TimePoint now) {
  // Several matches may share a unique key: only the newest of them is retried (two Pending
  // jobs with one key would break jobs_unique_idx), and none while another job holds the key.
  // The plain ? placeholders number in the order they appear: the filter's, then now.
  static constexpr std::string_view sql = R"sql(
    WITH m AS (
      SELECT id, unique_key, row_number() OVER (PARTITION BY unique_key ORDER BY id DESC) AS rn
      FROM jobs WHERE status IN ('Failed', 'Cancelled') AND @FILTER@)
    UPDATE jobs SET @RETRY_SET@
    WHERE status IN ('Failed', 'Cancelled')
      AND id IN (SELECT id FROM m WHERE unique_key IS NULL OR rn = 1)
      AND @KEY_FREE@
  )sql";
  const std::string statement = ops_sql(sql, filter_where(f));
  int n = 0;
  {
    std::lock_guard lock(mu_);
    Binder b(db_, prepared(statement).get());
    bind_filter(b, f);
    b.time(now);
    b.run();
    n = sqlite3_changes(db_);
  }
  if (n > 0) notifier().notify(now);
  return n;
}

int SqliteStore::job_delete_matching(const JobFilter& f) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM jobs WHERE status <> 'Running' AND @FILTER@
  )sql";
  const std::string statement = ops_sql(sql, filter_where(f));
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(statement).get());
  bind_filter(b, f);
  b.run();
  return sqlite3_changes(db_);
}

std::vector<JobTypeCount> SqliteStore::job_pending_types() {
  // The Pending rows of jobs_status_idx; an operator's summary, not a hot path.
  static constexpr std::string_view sql = R"sql(
    SELECT job_type, count(*) FROM jobs WHERE status = 'Pending'
    GROUP BY job_type ORDER BY job_type
  )sql";
  return select(sql, read_type_count<Row>);
}

std::vector<JobCount> SqliteStore::job_counts(TimePoint now) {
  // One pass over the table (a count cannot be served by an index alone in SQLite); fine for
  // an operator's summary, not meant for a hot path.
  static constexpr std::string_view sql = R"sql(
    SELECT queue, status, count(*), min(CASE WHEN status = 'Pending' AND run_at <= ?1
                                             THEN run_at END)
    FROM jobs GROUP BY queue, status
  )sql";
  std::vector<JobCount> out = select(sql, read_job_count<Row>, now);
  std::sort(out.begin(), out.end(), [](const JobCount& x, const JobCount& y) {
    return std::tie(x.queue, x.status) < std::tie(y.queue, y.status);
  });
  return out;
}

std::vector<ThroughputBucket> SqliteStore::job_throughput(TimePoint since, Duration bucket) {
  // Served by jobs_finished_idx (status, completed_at). Timestamps are fixed-width ISO text:
  // whole seconds by unixepoch(), microseconds from characters 21-26, all integer arithmetic.
  static constexpr std::string_view sql = R"sql(
    SELECT (unixepoch(completed_at) * 1000000 + CAST(substr(completed_at, 21, 6) AS INTEGER)
            - ?1) / ?2 AS k,
           status, count(*)
    FROM jobs WHERE status IN ('Completed', 'Failed') AND completed_at >= ?3
    GROUP BY k, status
  )sql";
  std::vector<ThroughputBucket> out = throughput_buckets(since, bucket, clock().now());
  if (out.empty()) return out;
  const auto bucket_us = std::chrono::duration_cast<std::chrono::microseconds>(bucket).count();
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  const auto since_us =
      std::chrono::duration_cast<std::chrono::microseconds>(since.time_since_epoch()).count();
  b.integer(since_us).integer(bucket_us).time(since);
  while (b.step()) {
    auto k = sqlite3_column_int64(b.stmt(), 0);
    if (k < 0 || k >= static_cast<std::int64_t>(out.size())) continue;  // after now
    auto& slot = out[static_cast<std::size_t>(k)];
    (text_column(b.stmt(), 1) == "Completed" ? slot.completed : slot.failed) +=
        sqlite3_column_int64(b.stmt(), 2);
  }
  return out;
}

void SqliteStore::audit_insert(const AuditRecord& r) {
  static constexpr std::string_view sql = R"sql(
    INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  bind_audit(b, r);
  b.run();
}

std::vector<AuditRecord> SqliteStore::audit_list(int limit) {
  static const std::string sql = fill(R"sql(
    SELECT @AUDIT_COLUMNS@ FROM audit_log ORDER BY id DESC LIMIT ?
  )sql");
  check_limit(limit);
  return select(sql, read_audit<Row>, limit);
}

}  // namespace ergon::sqlite
