// store/postgres/postgres_ops.cc — operators' actions on PostgreSQL: retry and delete (one job
// or every match of a filter), counts, throughput and the audit log.
//
// These statements are built per call (a filter decides their shape) and run unprepared, so
// every call gets a plan for its own values: an operator's action is rare, and a generic plan
// for "status = $1" would not know that 'Running' is rare and 'Completed' is most of the table.
// Values always travel as $n parameters; only fixed SQL fragments fill the holes.
#include <algorithm>
#include <tuple>

#include "ergon/error.h"
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// What a retry writes: Pending, due at @NOW@, lease and outcome cleared, attempts and
// error_message kept (history). A job whose attempts are used up gets exactly one more.
constexpr std::string_view kRetrySet = R"sql(status = 'Pending', run_at = @NOW@,
completed_at = NULL, worker_id = NULL, heartbeat_at = NULL, cancel_requested = false,
max_attempts = CASE WHEN j.max_attempts IS NOT NULL AND j.attempt >= j.max_attempts
                    THEN j.attempt + 1 ELSE j.max_attempts END)sql";

// A retried job becomes Pending and so enters jobs_unique_idx (migration 5): it is skipped
// while another job holds its key (Pending, or Running while held so).
constexpr std::string_view kKeyFree = R"sql((j.unique_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM @SCHEMA@.jobs o
    WHERE o.unique_key = j.unique_key AND o.id <> j.id AND
          (o.status = 'Pending' OR (o.status = 'Running' AND o.unique_while_running)))))sql";

bool unique_violation(const Error& e) {
  return std::string_view(e.what()).find("jobs_unique_idx") != std::string_view::npos;
}

std::vector<JobCount> sorted(std::vector<JobCount> out) {
  std::sort(out.begin(), out.end(), [](const JobCount& a, const JobCount& b) {
    return std::tie(a.queue, a.status) < std::tie(b.queue, b.status);
  });
  return out;
}

}  // namespace

int PostgresStore::retry_run(const std::string& sql, const PgParams& params, TimePoint now) {
  int n = 0;
  std::optional<TimePoint> due;
  {
    auto conn = pool_.acquire();
    // The NOT EXISTS of kKeyFree reads the statement's snapshot: a job inserted with the same
    // key by a transaction that commits meanwhile makes the UPDATE fail on jobs_unique_idx.
    // Run it again: the new statement's snapshot sees the holder, and the job is skipped.
    for (int round = 0;; ++round) {
      try {
        auto r = conn->exec(sql, params);
        n = PQntuples(r.get());
        for (int i = 0; i < n; ++i) {
          auto at = pgbin::timestamptz(r.get(), i, 0);
          if (!due || at > *due) due = at;
        }
        break;
      } catch (const Error& e) {
        if (round >= 3 || !unique_violation(e)) throw;
      }
    }
    // Committed already (one statement). One notification for the whole batch, as an insert
    // sends one; the outbox triggers fired on the move to Pending inside the statement.
    if (due) {
      conn->exec(sql_->notify.sql, PgParams().text(channel_).text(format_timestamp(*due)),
                 Format::kText);
    }
  }
  if (n > 0) notifier().notify(now);
  return n;
}

bool PostgresStore::job_retry(const JobId& id, TimePoint now) {
  Params p;
  std::string now_sql = database_clock_ ? "now()" : p.add_time(now);
  std::string job = p.add_text(id.to_string());
  // The WHERE clause is re-checked on the locked row (READ COMMITTED): a job that another
  // operator retried meanwhile is Pending by then and is left alone.
  std::string sql = sql_->context.text(
      R"sql(
UPDATE @SCHEMA@.jobs AS j SET @RETRY_SET@
WHERE j.id = @ID@::uuid AND j.status IN ('Failed', 'Cancelled') AND @KEY_FREE@
RETURNING j.run_at)sql",
      {{"@RETRY_SET@", kRetrySet}, {"@KEY_FREE@", kKeyFree}, {"@NOW@", now_sql}, {"@ID@", job}});
  return retry_run(sql, p.params(), now) == 1;
}

int PostgresStore::job_retry_matching(const JobFilter& f, TimePoint now) {
  Params p;
  std::string now_sql = database_clock_ ? "now()" : p.add_time(now);
  std::string where = filter_sql(f, p);
  // Matches that share a unique key: only the newest is retried (two Pending jobs with one key
  // would break jobs_unique_idx), and none while another job holds the key.
  std::string sql = sql_->context.text(R"sql(
WITH m AS (
  SELECT id, unique_key, row_number() OVER (PARTITION BY unique_key ORDER BY id DESC) AS rn
  FROM @SCHEMA@.jobs WHERE status IN ('Failed', 'Cancelled') AND @FILTER@)
UPDATE @SCHEMA@.jobs AS j SET @RETRY_SET@
FROM m
WHERE j.id = m.id AND (m.unique_key IS NULL OR m.rn = 1) AND
      j.status IN ('Failed', 'Cancelled') AND @KEY_FREE@
RETURNING j.run_at)sql",
                                       {{"@RETRY_SET@", kRetrySet},
                                        {"@KEY_FREE@", kKeyFree},
                                        {"@NOW@", now_sql},
                                        {"@FILTER@", where}});
  return retry_run(sql, p.params(), now);
}

bool PostgresStore::job_delete(const JobId& id) {
  // A row a worker is claiming is waited for and re-checked: Running by then, it stays.
  auto r = pooled_exec(
      sql_->context.text("DELETE FROM @SCHEMA@.jobs WHERE id = $1::uuid AND status <> 'Running'"),
      PgParams().text(id.to_string()), Format::kText);
  return std::string_view(PQcmdTuples(r.get())) == "1";
}

int PostgresStore::job_delete_matching(const JobFilter& f) {
  Params p;
  std::string where = filter_sql(f, p);
  std::string sql = sql_->context.text(
      "DELETE FROM @SCHEMA@.jobs WHERE status <> 'Running' AND @FILTER@", {{"@FILTER@", where}});
  auto r = pooled_exec(sql, p.params(), Format::kText);
  return std::atoi(PQcmdTuples(r.get()));
}

std::vector<JobTypeCount> PostgresStore::job_pending_types() {
  // The Pending rows only (a scan of them; no index leads with job_type): an operator's
  // summary, not a hot path.
  PgResult r = pooled_exec(sql_->context.text(R"sql(
SELECT job_type, count(*) FROM @SCHEMA@.jobs WHERE status = 'Pending'
GROUP BY job_type ORDER BY job_type)sql"),
                           PgParams());
  return read_rows(r, read_type_count<Row>);
}

std::vector<JobCount> PostgresStore::job_counts(TimePoint now) {
  Params p;
  std::string now_sql = database_clock_ ? "now()" : p.add_time(now);
  // One pass over the table: an operator's summary, not a hot path.
  std::string sql = sql_->context.text(R"sql(
SELECT queue, status, count(*),
       min(run_at) FILTER (WHERE status = 'Pending' AND run_at <= @NOW@)
FROM @SCHEMA@.jobs GROUP BY queue, status)sql",
                                       {{"@NOW@", now_sql}});
  return sorted(read_rows(pooled_exec(sql, p.params()), read_job_count<Row>));
}

std::vector<ThroughputBucket> PostgresStore::job_throughput(TimePoint since, Duration bucket) {
  std::vector<ThroughputBucket> out = throughput_buckets(since, bucket, clock().now());
  if (out.empty()) return out;
  Params p;
  std::string from = p.add_time(since);
  std::string width =
      p.add_integer(std::chrono::duration_cast<std::chrono::microseconds>(bucket).count());
  // Served by jobs_finished_idx (status, completed_at). extract(epoch ...) is numeric, so the
  // bucket number is exact to the microsecond.
  std::string sql = sql_->context.text(R"sql(
SELECT floor(extract(epoch FROM completed_at - @FROM@) * 1000000 / @WIDTH@)::bigint AS k,
       status, count(*)
FROM @SCHEMA@.jobs
WHERE status IN ('Completed', 'Failed') AND completed_at >= @FROM@
GROUP BY 1, 2)sql",
                                       {{"@FROM@", from}, {"@WIDTH@", width}});
  PgResult r = pooled_exec(sql, p.params());
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    auto k = pgbin::int8(r.get(), i, 0);
    if (k < 0 || k >= static_cast<std::int64_t>(out.size())) continue;  // after now
    auto& slot = out[static_cast<std::size_t>(k)];
    (pgbin::text(r.get(), i, 1) == "Completed" ? slot.completed : slot.failed) +=
        pgbin::int8(r.get(), i, 2);
  }
  return out;
}

void PostgresStore::audit_insert(const AuditRecord& a) {
  PgParams params;
  bind_audit(params, a);
  pooled_exec(sql_->context.text(R"sql(
INSERT INTO @SCHEMA@.audit_log (at, actor, action, target, detail)
VALUES ($1::timestamptz, $2, $3, $4, $5))sql"),
              params, Format::kText);
}

std::vector<AuditRecord> PostgresStore::audit_list(int limit) {
  check_limit(limit);
  PgResult r = pooled_exec(sql_->context.text(R"sql(
SELECT @COLUMNS@ FROM @SCHEMA@.audit_log ORDER BY id DESC LIMIT $1::integer)sql",
                                              {{"@COLUMNS@", kAuditColumns}}),
                           PgParams().integer(static_cast<std::int64_t>(limit)));
  return read_rows(r, read_audit<Row>);
}

}  // namespace ergon::postgres
