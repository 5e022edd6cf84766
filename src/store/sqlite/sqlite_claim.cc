// Claiming on SQLite: fair across groups, per limited type under its limits, by queue and job
// type, and one job by id.
//
// One statement selects and flips the rows: SQLite runs it under the database's single write
// lock, so no other connection (in this or another process) can claim the same rows.
#include <algorithm>
#include <string>
#include <tuple>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

// What every claim writes: Running for worker ?1 from ?2, the next attempt and lease, progress
// cleared.
constexpr std::string_view kClaimSet = R"sql(
  status = 'Running', attempt = attempt + 1, lease = lease + 1, worker_id = ?1,
  started_at = ?2, heartbeat_at = ?2, progress_message = NULL, progress_percent = NULL
)sql";

// The claim's queue conditions: ?4 is the worker's queues as a JSON array (NULL: every queue);
// a paused queue is never claimed from (docs/flow-control.md).
constexpr std::string_view kQueueFilter = R"sql(
  (?4 IS NULL OR queue IN (SELECT value FROM json_each(?4)))
  AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)
)sql";

// The claim's type condition: ?5 is the job types the worker handles as a JSON array (NULL:
// every type). Not part of @QUEUE_FILTER@: the per-type claim of a limited type binds its type
// there instead, and is not run for types the worker does not handle.
constexpr std::string_view kTypeFilter = R"sql(
  (?5 IS NULL OR job_type IN (SELECT value FROM json_each(?5)))
)sql";

// Limited types are left to the per-type claim (docs/flow-control.md).
constexpr std::string_view kUnlimited = R"sql(
  job_type NOT IN (SELECT job_type FROM job_type_limits)
)sql";

std::string claim_sql(std::string_view sql) {
  return fill(sql, {{"CLAIM_SET", kClaimSet},
                    {"QUEUE_FILTER", kQueueFilter},
                    {"TYPE_FILTER", kTypeFilter},
                    {"UNLIMITED", kUnlimited}});
}

// INDEXED BY: SQLite plans without statistics unless ANALYZE has run (Ergon does not run it).
// Without them it took `status = 'Pending'` on jobs_status_idx for a handful of rows and read
// and sorted the whole backlog at every claim; each claim names the index that holds its rows
// in its order, so it reads no more rows than it takes (and the ones it skips: not yet due,
// paused, limited).
//
// Fairness (docs/flow-control.md): ungrouped jobs come from jobs_claim_idx in claim order;
// grouped ones are taken group by group, at most ?3 from each, from jobs_group_claim_idx:
// `grp` walks the distinct group keys by index seeks (a skip scan: one seek per group, not a
// scan of the backlog). Each job is ranked within its group (the ungrouped ones form one
// group), and the claim takes the best ranks first, priority before rank: round-robin across
// groups at each priority. Without grouped jobs, `grp` is one empty index seek.
const std::string kClaimFairSql = claim_sql(R"sql(
  WITH RECURSIVE
    grp(k) AS (
      SELECT (SELECT group_key FROM jobs INDEXED BY jobs_group_claim_idx
              WHERE status = 'Pending' AND group_key IS NOT NULL
              ORDER BY group_key LIMIT 1)
      UNION ALL
      SELECT (SELECT group_key FROM jobs INDEXED BY jobs_group_claim_idx
              WHERE status = 'Pending' AND group_key IS NOT NULL AND group_key > grp.k
              ORDER BY group_key LIMIT 1)
      FROM grp WHERE grp.k IS NOT NULL),
    cand AS (
      SELECT id, priority, run_at, row_number() OVER (ORDER BY priority, run_at, id) AS rn
      FROM (SELECT id, priority, run_at FROM jobs INDEXED BY jobs_claim_idx
            WHERE status = 'Pending' AND group_key IS NULL AND run_at <= ?2
              AND @QUEUE_FILTER@ AND @UNLIMITED@ AND @TYPE_FILTER@
            ORDER BY priority, run_at, id LIMIT ?3)
      UNION ALL
      SELECT id, priority, run_at,
             row_number() OVER (PARTITION BY group_key ORDER BY priority, run_at, id)
      FROM (SELECT j.id, j.priority, j.run_at, j.group_key
            FROM grp JOIN jobs j ON j.id IN (
              SELECT id FROM jobs INDEXED BY jobs_group_claim_idx
              WHERE status = 'Pending' AND group_key = grp.k AND run_at <= ?2
                AND @QUEUE_FILTER@ AND @UNLIMITED@ AND @TYPE_FILTER@
              ORDER BY priority, run_at, id LIMIT ?3)))
  UPDATE jobs SET @CLAIM_SET@
  WHERE id IN (SELECT id FROM cand ORDER BY priority, rn, run_at, id LIMIT ?3)
  RETURNING @JOB_COLUMNS@
)sql");

// Without grouped jobs waiting, the plain claim: the ranking above costs about a tenth of the
// throughput when it has nothing to rank. The probe is one in-process seek into
// jobs_group_claim_idx. A grouped job another process adds between the probe and the claim is
// taken by the next claim, as if it had come a moment later.
const std::string kClaimPlainSql = claim_sql(R"sql(
  UPDATE jobs SET @CLAIM_SET@
  WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim_idx
               WHERE status = 'Pending' AND group_key IS NULL AND run_at <= ?2
                 AND @QUEUE_FILTER@ AND @UNLIMITED@ AND @TYPE_FILTER@
               ORDER BY priority, run_at, id LIMIT ?3)
  RETURNING @JOB_COLUMNS@
)sql");

constexpr std::string_view kGroupedProbeSql = R"sql(
  SELECT 1 FROM jobs INDEXED BY jobs_group_claim_idx
  WHERE status = 'Pending' AND group_key IS NOT NULL LIMIT 1
)sql";

// The claim's queues as a JSON array, NULL for an empty list ("every queue").
void bind_queues(Binder& b, std::span<const std::string> queues) {
  bind_value(b, nonempty(queues));
}

}  // namespace

std::vector<JobRecord> SqliteStore::job_claim(const JobClaimParams& p) {
  std::vector<JobRecord> out;
  if (p.limit <= 0) return out;
  std::lock_guard lock(mu_);
  if (p.renew_worker) {
    // Its own autocommit statement: SQLite has no round trip to save by folding it into the
    // claim, and an idle claim that changes nothing commits nothing.
    worker_heartbeat_locked(p.worker_id, p.now);
  }
  bool grouped = false;
  {
    Binder g(db_, prepared(kGroupedProbeSql).get());
    grouped = g.step();
  }
  {
    Binder b(db_, prepared(grouped ? kClaimFairSql : kClaimPlainSql).get());
    b.text(p.worker_id).time(p.now).integer(static_cast<std::int64_t>(p.limit));
    bind_queues(b, p.queues);
    bind_value(b, p.job_types);  // NULL: every type
    while (b.step()) out.push_back(read_job(Row(b.stmt())));
  }
  if (static_cast<int>(out.size()) < p.limit) claim_limited_locked(p, out);
  // RETURNING gives rows in no defined order; hand them out in claim order.
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& c) {
    return std::tie(a.priority, a.run_at, a.id) < std::tie(c.priority, c.run_at, c.id);
  });
  return out;
}

std::map<std::string, std::string> SqliteStore::TEST_claim_plans() {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  const std::pair<const char*, std::string_view> statements[] = {
      {"claim", kClaimPlainSql},
      {"claim_fair", kClaimFairSql},
      {"grouped_probe", kGroupedProbeSql}};
  for (const auto& [name, sql] : statements) {
    Binder b(db_, prepared("EXPLAIN QUERY PLAN " + std::string(sql)).get());
    while (b.step()) out[name] += text_column(b.stmt(), 3) + "\n";
  }
  return out;
}

// The limited types, one at a time, each in one write transaction: its limits are read, its
// Running jobs and recent starts counted, its jobs claimed and their starts logged under the
// database's single write lock, so no other claimer (of any process) can claim the type in
// between.
void SqliteStore::claim_limited_locked(const JobClaimParams& p, std::vector<JobRecord>& out) {
  // Read on every claim that has room left: a look-up in this process, not a round trip, so
  // unlike PostgreSQL's (store/limited_types.h) it needs no cache.
  static constexpr std::string_view limited = R"sql(
    SELECT job_type FROM job_type_limits
  )sql";
  std::vector<std::string> types;
  {
    Binder t(db_, prepared(limited).get());
    while (t.step()) types.push_back(text_column(t.stmt(), 0));
  }
  for (const auto& type : types) {
    int room = p.limit - static_cast<int>(out.size());
    if (room <= 0) break;
    if (!claims_type(p, type)) continue;
    WriteTransaction tx(*this);
    claim_type_locked(p, type, room, out);
    tx.commit();
  }
}

void SqliteStore::claim_type_locked(const JobClaimParams& p, const std::string& type, int room,
                                    std::vector<JobRecord>& out) {
  static constexpr std::string_view limits = R"sql(
    SELECT max_running, rate_limit, rate_period_ms, per_group FROM job_type_limits
    WHERE job_type = ?1
  )sql";
  // Each job is ranked in its group (grn, for fairness) and then in its limit's partition
  // (prn: its group with per_group, else the whole type); a partition may start as many as
  // the smaller of its free concurrency and its unused rate allow (NULL: no such limit).
  static const std::string claim = claim_sql(R"sql(
    WITH
      cand AS (
        SELECT id, priority, run_at,
               CASE WHEN ?6 THEN coalesce(group_key, '') ELSE '' END AS p,
               row_number() OVER (PARTITION BY coalesce(group_key, '')
                                  ORDER BY priority, run_at, id) AS grn
        FROM jobs
        WHERE status = 'Pending' AND job_type = ?5 AND run_at <= ?2 AND @QUEUE_FILTER@),
      ranked AS (
        SELECT id, priority, run_at, p, grn,
               row_number() OVER (PARTITION BY p ORDER BY priority, grn, run_at, id) AS prn
        FROM cand),
      run AS (
        SELECT CASE WHEN ?6 THEN coalesce(group_key, '') ELSE '' END AS p, count(*) AS n
        FROM jobs WHERE job_type = ?5 AND status = 'Running' GROUP BY 1),
      st AS (
        SELECT group_key AS p, count(*) AS n FROM job_type_starts
        WHERE job_type = ?5 AND started_at > ?9 GROUP BY 1),
      allowed AS (
        SELECT r.id, r.priority, r.grn, r.run_at
        FROM ranked r LEFT JOIN run ON run.p = r.p LEFT JOIN st ON st.p = r.p
        WHERE r.prn <= min(coalesce(?7 - coalesce(run.n, 0), ?3),
                           coalesce(?8 - coalesce(st.n, 0), ?3)))
    UPDATE jobs SET @CLAIM_SET@
    WHERE id IN (SELECT id FROM allowed ORDER BY priority, grn, run_at, id LIMIT ?3)
    RETURNING @JOB_COLUMNS@
  )sql");
  // The starts the rate limit counts from now on, and the ones it no longer needs.
  static constexpr std::string_view log_start = R"sql(
    INSERT INTO job_type_starts (job_type, group_key, started_at) VALUES (?1, ?2, ?3)
  )sql";
  static constexpr std::string_view forget_starts = R"sql(
    DELETE FROM job_type_starts WHERE job_type = ?1 AND started_at <= ?2
  )sql";

  std::optional<TypeLimit> limit;
  {
    Binder b(db_, prepared(limits).get());
    b.text(type);
    if (b.step()) {
      Row row(b.stmt());
      read_limits(row, limit.emplace());
    }
  }
  if (!limit) return;  // removed meanwhile: the main claim takes the type from its next poll
  TimePoint window_start = p.now - limit->rate_period;
  std::size_t first = out.size();
  {
    Binder b(db_, prepared(claim).get());
    b.text(p.worker_id).time(p.now).integer(static_cast<std::int64_t>(room));
    bind_queues(b, p.queues);
    b.text(type)
        .integer(static_cast<std::int64_t>(limit->per_group))
        .integer(limit->max_running)
        .integer(limit->rate_limit)
        .time(window_start);
    while (b.step()) out.push_back(read_job(Row(b.stmt())));
  }
  if (!limit->rate_limit) return;
  for (std::size_t i = first; i < out.size(); ++i) {
    Binder b(db_, prepared(log_start).get());
    b.text(type).text(limit->per_group ? out[i].group_key.value_or("") : "").time(p.now).run();
  }
  Binder d(db_, prepared(forget_starts).get());
  d.text(type).time(window_start).run();
}

std::optional<JobRecord> SqliteStore::job_claim_id(const JobClaimParams& p, const JobId& id) {
  // The claim's own conditions, for one row: the single write lock makes it atomic.
  static const std::string sql = claim_sql(R"sql(
    UPDATE jobs SET @CLAIM_SET@
    WHERE id = ?3 AND status = 'Pending' AND run_at <= ?2
      AND @QUEUE_FILTER@ AND @UNLIMITED@ AND @TYPE_FILTER@
    RETURNING @JOB_COLUMNS@
  )sql");
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.text(p.worker_id).time(p.now).text(id.to_string());
  bind_queues(b, p.queues);
  bind_value(b, p.job_types);
  if (!b.step()) return std::nullopt;
  return read_job(Row(b.stmt()));
}

}  // namespace ergon::sqlite
