// store/postgres/postgres_claim.cc — claiming: the main claim (plain or fair across groups,
// optionally renewing the worker's heartbeat), one job by id, and the claims of limited types
// under their concurrency and rate limits (docs/flow-control.md).
#include <algorithm>
#include <span>
#include <tuple>

#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// The claim's queues, $3 (varchar[]; NULL: every queue); a paused queue never.
constexpr std::string_view kQueues =
    R"sql(($3::varchar[] IS NULL OR queue = ANY($3::varchar[])) AND queue NOT IN (SELECT name
FROM @SCHEMA@.queues WHERE paused))sql";

// What the main claims (and job_claim_id) may take. @NOW@: now() (not clock_timestamp()) on
// the database clock: it is stable within the statement, so the index can use it as a bound
// and started_at = heartbeat_at = the instant that decided what was due; clock_timestamp() is
// volatile and would be evaluated per row. Limited types are left to claim_limited, type by
// type. @TYPES@: the job types the worker handles (varchar[]; NULL: every type), the last
// parameter, after `now`; not in kQueues, as claim_limited binds its type there instead, and
// is not run for types the worker does not handle.
constexpr std::string_view kClaimable = R"sql(status = 'Pending' AND run_at <= @NOW@ AND @QUEUES@
AND job_type NOT IN (SELECT job_type FROM @SCHEMA@.job_type_limits)
AND (@TYPES@::varchar[] IS NULL OR job_type = ANY(@TYPES@::varchar[])))sql";

// Flips the rows `due` picked to Running for worker $1 and returns them. They are found by
// `id = ANY (ARRAY(...))`, a look-up in jobs_pkey whatever `due` is estimated to hold, and not
// by a join with `due`, which the planner made a hash join over a scan of the whole table when
// it expected hundreds of rows from `due` (a claim of 1,000 with 50,000 jobs due; and a generic
// plan, see claim_pool_, expects a tenth of the due rows).
constexpr std::string_view kClaimUpdate = R"sql(
UPDATE @SCHEMA@.jobs AS j
SET status = 'Running', attempt = j.attempt + 1, lease = j.lease + 1, worker_id = $1,
    started_at = @NOW@, heartbeat_at = @NOW@, progress_message = NULL, progress_percent = NULL
WHERE j.id = ANY (ARRAY(SELECT id FROM due))
RETURNING @COLUMNS@)sql";

// Whether any grouped job is Pending (one seek into jobs_group_claim_idx).
constexpr std::string_view kGroupedPending =
    R"sql(EXISTS (SELECT 1 FROM @SCHEMA@.jobs WHERE status = 'Pending' AND group_key IS NOT NULL))sql";

// The end of the main claims: the claimed rows, each followed by the number of limited types
// and whether any grouped job is Pending. With no job claimed there is still one row, its job
// columns NULL: an idle poll learns in the same statement whether claim_limited has anything to
// do, and needs no second query.
constexpr std::string_view kClaimed = R"sql(,
claimed AS (@UPDATE@)
SELECT c.*, l.n, @GROUPED_PENDING@
FROM (SELECT count(*) AS n FROM @SCHEMA@.job_type_limits) l LEFT JOIN claimed c ON true)sql";

// A data-modifying CTE runs to completion whether or not it is read: with it, the claim also
// renews the worker's registry heartbeat (JobClaimParams::renew_worker, worker_heartbeat's
// UPDATE), and an idle worker's poll and heartbeat are one statement.
constexpr std::string_view kRenew = R"sql(,
renew AS (UPDATE @SCHEMA@.workers SET heartbeat_at = @NOW@ WHERE id = $1))sql";

// The fair claim (docs/flow-control.md). `due` picks up to $2 due Pending rows in claim order
// and locks them; FOR UPDATE SKIP LOCKED passes over rows that another claimer has locked
// instead of waiting for them, so concurrent claimers never block each other and never both get
// a row. A row that another claimer flipped to Running after our snapshot is re-checked against
// the WHERE clause once its lock is free (READ COMMITTED's EvalPlanQual) and dropped: it is no
// longer Pending. The UPDATE then flips exactly the locked rows, in the same statement and
// transaction.
// Ungrouped jobs come from jobs_claim_idx in claim order (`plain`, locked as above); grouped
// ones group by group, at most $2 from each, from jobs_group_claim_idx: `grp` walks the
// distinct group keys by index seeks (a skip scan, one seek per group rather than a scan of the
// backlog). Each job is ranked within its group (the ungrouped ones form one group) and the
// best ranks are taken first, priority before rank: round-robin across groups at each priority.
// The grouped rows picked are locked afterwards (SKIP LOCKED again; a row another claimer took
// is then left out), which keeps the locks to what is claimed. Without grouped jobs `grp` is
// one seek into an empty index and the claim is the plain one.
constexpr std::string_view kFairClaim = R"sql(
WITH RECURSIVE grp(k) AS (
  (SELECT group_key FROM @SCHEMA@.jobs WHERE status = 'Pending' AND group_key IS NOT NULL
   ORDER BY group_key LIMIT 1)
  UNION ALL
  SELECT (SELECT j.group_key FROM @SCHEMA@.jobs j
          WHERE j.status = 'Pending' AND j.group_key IS NOT NULL AND j.group_key > grp.k
          ORDER BY j.group_key LIMIT 1)
  FROM grp WHERE grp.k IS NOT NULL),
plain AS (
  SELECT id, priority, run_at FROM @SCHEMA@.jobs
  WHERE group_key IS NULL AND @CLAIMABLE@
  ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),
grouped AS (
  SELECT c.id, c.priority, c.run_at,
         row_number() OVER (PARTITION BY grp.k ORDER BY c.priority, c.run_at, c.id) AS rn
  FROM grp CROSS JOIN LATERAL (
    SELECT id, priority, run_at FROM @SCHEMA@.jobs
    WHERE group_key = grp.k AND @CLAIMABLE@
    ORDER BY priority, run_at, id LIMIT $2) c),
pick AS (
  SELECT id, g FROM (
    SELECT id, priority, run_at, row_number() OVER (ORDER BY priority, run_at, id) AS rn,
           false AS g
    FROM plain
    UNION ALL
    SELECT id, priority, run_at, rn, true FROM grouped) x
  ORDER BY priority, rn, run_at, id LIMIT $2),
glock AS (
  SELECT id FROM @SCHEMA@.jobs
  WHERE id IN (SELECT id FROM pick WHERE g) AND status = 'Pending'
  FOR UPDATE SKIP LOCKED),
due AS (SELECT id FROM pick WHERE NOT g UNION ALL SELECT id FROM glock)@RENEW@@CLAIMED@)sql";

// The claim while no grouped job is Pending (the last claim saw none): `plain` alone, without
// the group walk, the ranking and the union. It claims nothing when grouped jobs are Pending
// after all (the uncorrelated NOT EXISTS is evaluated once, in the statement's snapshot), and
// says so in its last column: job_claim then runs the fair claim, so the choice never shows in
// what is claimed.
constexpr std::string_view kPlainClaim = R"sql(
WITH due AS (
  SELECT id FROM @SCHEMA@.jobs
  WHERE group_key IS NULL AND @CLAIMABLE@ AND NOT @GROUPED_PENDING@
  ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)@RENEW@@CLAIMED@)sql";

// One job by id, on the claim's conditions. A row locked by a concurrent claim is waited for
// and then re-checked (it is Running by then, so nothing is returned).
constexpr std::string_view kClaimById = R"sql(
UPDATE @SCHEMA@.jobs
SET status = 'Running', attempt = attempt + 1, lease = lease + 1, worker_id = $1,
    started_at = @NOW@, heartbeat_at = @NOW@, progress_message = NULL, progress_percent = NULL
WHERE id = $2::uuid AND @CLAIMABLE@
RETURNING @COLUMNS@)sql";

// The claim of one limited type, run after pg_advisory_xact_lock on the type in the same
// transaction, which read the type's limits (limit_get) after the lock: every claimer of the
// type waits for the one before it, and this statement's snapshot (taken after the lock) sees
// every claim and every logged start committed before. So the counts are exact and the limits
// hold across processes. Each job is ranked in its group (grn, for fairness) and then in its
// limit's partition (prn: its group with per_group, else the whole type); a partition may
// start as many as the smaller of its free concurrency and its unused rate allow (a NULL limit:
// no such limit). Parameters after the queues (and now): the type, per_group, max_running,
// rate_limit, the start of the rate window.
constexpr std::string_view kClaimLimited = R"sql(
WITH cand AS (
  SELECT id, priority, run_at, @PARTITION@ AS p,
         row_number() OVER (PARTITION BY coalesce(group_key, '')
                            ORDER BY priority, run_at, id) AS grn
  FROM @SCHEMA@.jobs
  WHERE status = 'Pending' AND job_type = @TYPE@ AND run_at <= @NOW@ AND @QUEUES@),
ranked AS (
  SELECT id, priority, run_at, p, grn,
         row_number() OVER (PARTITION BY p ORDER BY priority, grn, run_at, id) AS prn
  FROM cand),
run AS (
  SELECT @PARTITION@ AS p, count(*) AS n FROM @SCHEMA@.jobs
  WHERE job_type = @TYPE@ AND status = 'Running' GROUP BY 1),
st AS (
  SELECT group_key AS p, count(*) AS n FROM @SCHEMA@.job_type_starts
  WHERE job_type = @TYPE@ AND started_at > @WINDOW_START@::timestamptz GROUP BY 1),
due AS (
  SELECT id FROM @SCHEMA@.jobs
  WHERE id IN (
      SELECT r.id FROM ranked r LEFT JOIN run ON run.p = r.p LEFT JOIN st ON st.p = r.p
      WHERE r.prn <= LEAST(coalesce(@MAX_RUNNING@::bigint - coalesce(run.n, 0), $2),
                           coalesce(@RATE_LIMIT@::bigint - coalesce(st.n, 0), $2))
      ORDER BY r.priority, r.grn, r.run_at, r.id
      LIMIT $2)
  FOR UPDATE SKIP LOCKED)
@UPDATE@)sql";

// A limited claim's partition: the job's group with per_group, else the whole type.
constexpr std::string_view kPartition =
    R"sql(CASE WHEN @PER_GROUP@::boolean THEN coalesce(group_key, '') ELSE '' END)sql";

// The claim's queues (varchar[]), NULL for an empty list ("every queue").
void queues_param(PgParams& params, std::span<const std::string> queues) {
  bind_value(params, nonempty(queues));
}

}  // namespace

ClaimStatements::ClaimStatements(const SqlContext& sql) {
  // The claim's parameters: $1 the worker, $2 the limit, $3 the queues, then its `now` ($4),
  // which the database clock leaves out, then the job types.
  const std::string now = sql.now(4);
  const int last = sql.db_clock ? 4 : 5;
  // Appended rather than "$" + to_string(): g++ 12 at -O3 warns falsely on the latter
  // (stringop-overflow).
  auto arg = [&](int i) {
    std::string a = "$";
    a += std::to_string(i);
    return a;
  };
  const std::string types = arg(last);
  const std::string claimed = columns(kJobColumns, "j.");
  auto main_claim = [&](const char* name, std::string_view picks, bool renew) {
    return sql.statement(name, picks,
                         {{"@RENEW@", renew ? kRenew : ""},
                          {"@CLAIMED@", kClaimed},
                          {"@UPDATE@", kClaimUpdate},
                          {"@GROUPED_PENDING@", kGroupedPending},
                          {"@CLAIMABLE@", kClaimable},
                          {"@QUEUES@", kQueues},
                          {"@NOW@", now},
                          {"@TYPES@", types},
                          {"@COLUMNS@", claimed}});
  };
  fair = main_claim("ergon_job_claim", kFairClaim, false);
  fair_renew = main_claim("ergon_job_claim_renew", kFairClaim, true);
  plain = main_claim("ergon_job_claim_plain", kPlainClaim, false);
  plain_renew = main_claim("ergon_job_claim_plain_renew", kPlainClaim, true);
  by_id = sql.statement("ergon_job_claim_id", kClaimById,
                        {{"@CLAIMABLE@", kClaimable},
                         {"@QUEUES@", kQueues},
                         {"@NOW@", now},
                         {"@TYPES@", types},
                         {"@COLUMNS@", columns(kJobColumns)}});
  // The limited claim's own parameters follow the queues (and now) instead of the types.
  limited = sql.statement("ergon_job_claim_limited", kClaimLimited,
                          {{"@UPDATE@", kClaimUpdate},
                           {"@PARTITION@", kPartition},
                           {"@QUEUES@", kQueues},
                           {"@NOW@", now},
                           {"@COLUMNS@", claimed},
                           {"@TYPE@", arg(last)},
                           {"@PER_GROUP@", arg(last + 1)},
                           {"@MAX_RUNNING@", arg(last + 2)},
                           {"@RATE_LIMIT@", arg(last + 3)},
                           {"@WINDOW_START@", arg(last + 4)}});
  limit_lock = {"ergon_limit_lock", "SELECT pg_advisory_xact_lock(hashtext($1))"};
  limit_types = sql.statement("ergon_limit_types", "SELECT job_type FROM @SCHEMA@.job_type_limits");
  // The type's limits and the statement's time (the rate window's end on the database clock).
  limit_get = sql.statement("ergon_limit_get", R"sql(
SELECT max_running, rate_limit, rate_period_ms, per_group, statement_timestamp()
FROM @SCHEMA@.job_type_limits WHERE job_type = $1)sql");
  // The starts of one claim ($2: the group keys, '' when not per_group), and pruning the ones
  // older than the rate window ($2).
  starts_log = sql.statement("ergon_starts_log", R"sql(
INSERT INTO @SCHEMA@.job_type_starts (job_type, group_key, started_at)
SELECT $1, unnest($2::varchar[]), $3::timestamptz)sql");
  starts_prune = sql.statement("ergon_starts_prune", R"sql(
DELETE FROM @SCHEMA@.job_type_starts WHERE job_type = $1 AND started_at <= $2::timestamptz)sql");
}

std::vector<JobRecord> PostgresStore::job_claim(const JobClaimParams& p) {
  // The first claim is a worker's first poll: from now on it wants wake-ups.
  listener_ensure();
  std::vector<JobRecord> out;
  if (p.limit <= 0) return out;
  // Runs one claim statement for up to `limit` jobs. Every row ends with the number of
  // limited types and whether grouped jobs are Pending; a row with a NULL id claimed nothing.
  std::int64_t limited = 0;
  bool grouped = false;
  auto run = [&](const PgStatement& statement, int limit) {
    PgParams params;
    params.text(p.worker_id).integer(static_cast<std::int64_t>(limit));
    queues_param(params, p.queues);
    if (!database_clock_) params.time(p.now);
    bind_value(params, p.job_types);  // NULL: every type; an empty list matches none
    PgResult r;
    {
      auto conn = claim_pool_.acquire();
      r = conn->run(statement, params);
    }
    int rows = PQntuples(r.get());
    int grouped_col = PQnfields(r.get()) - 1;
    if (rows > 0) {
      limited = pgbin::int8(r.get(), 0, grouped_col - 1);
      grouped = pgbin::boolean(r.get(), 0, grouped_col);
    }
    for (int i = 0; i < rows; ++i) {
      if (!pgbin::is_null(r.get(), i, 0)) out.push_back(read_job(Row(r.get(), i)));
    }
  };
  // The plain claim while the last claim saw no grouped job Pending; the fair one otherwise.
  bool fair = grouped_pending_.load(std::memory_order_relaxed);
  if (fair) {
    run(p.renew_worker ? sql_->claim.fair_renew : sql_->claim.fair, p.limit);
  } else {
    run(p.renew_worker ? sql_->claim.plain_renew : sql_->claim.plain, p.limit);
    // Grouped jobs appeared since the last claim: the plain claim took nothing, the fair
    // claim takes them now rather than at the next poll.
    if (grouped) run(sql_->claim.fair, p.limit);
  }
  grouped_pending_.store(grouped, std::memory_order_relaxed);
  if (static_cast<int>(out.size()) < p.limit && limited > 0) {
    claim_limited(p, out, static_cast<std::size_t>(limited));
  }
  // RETURNING gives rows in no defined order; hand them out in claim order.
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& c) {
    return std::tie(a.priority, a.run_at, a.id) < std::tie(c.priority, c.run_at, c.id);
  });
  return out;
}

// The limited types, one transaction each (see kClaimLimited).
void PostgresStore::claim_limited(const JobClaimParams& p, std::vector<JobRecord>& out,
                                  std::size_t count) {
  std::vector<std::string> types = limited_types_.get(count, [&] {
    std::vector<std::string> v;
    auto conn = pool_.acquire();
    auto r = conn->run(sql_->claim.limit_types, PgParams(), Format::kText);
    for (int i = 0; i < PQntuples(r.get()); ++i) v.emplace_back(PQgetvalue(r.get(), i, 0));
    return v;
  });
  for (const auto& type : types) {
    int room = p.limit - static_cast<int>(out.size());
    if (room <= 0) break;
    if (!claims_type(p, type)) continue;
    auto conn = pool_.acquire();
    transaction(*conn, [&] { claim_type(*conn, p, type, room, out); });
  }
}

void PostgresStore::claim_type(PgConnection& conn, const JobClaimParams& p, const std::string& type,
                               int room, std::vector<JobRecord>& out) {
  conn.run(sql_->claim.limit_lock, PgParams().text(schema_ + ":" + type), Format::kText);
  auto l = conn.run(sql_->claim.limit_get, PgParams().text(type));
  if (PQntuples(l.get()) != 1) return;  // removed meanwhile: the main claim takes the type
  Row row(l.get(), 0);
  TypeLimit limit;
  read_limits(row, limit);
  // The rate window ends now: the caller's clock, or the database's after the lock (the row's
  // last column).
  const TimePoint db_now = row.time();
  const TimePoint now = database_clock_ ? db_now : p.now;
  const TimePoint window_start = now - limit.rate_period;
  PgParams params;
  params.text(p.worker_id).integer(static_cast<std::int64_t>(room));
  queues_param(params, p.queues);
  if (!database_clock_) params.time(p.now);
  bind_values(params, type, limit.per_group, limit.max_running, limit.rate_limit, window_start);
  auto r = conn.run(sql_->claim.limited, params);
  int rows = PQntuples(r.get());
  pq::PgArray keys;
  for (int i = 0; i < rows; ++i) {
    out.push_back(read_job(Row(r.get(), i)));
    if (!limit.rate_limit) continue;
    keys.add(limit.per_group ? out.back().group_key.value_or("") : "");
  }
  if (!limit.rate_limit) return;
  // The starts the rate limit counts from now on, and the ones it no longer needs.
  if (rows > 0) {
    conn.run(sql_->claim.starts_log, PgParams().text(type).text(keys.str()).time(now),
             Format::kText);
  }
  conn.run(sql_->claim.starts_prune, PgParams().text(type).time(window_start), Format::kText);
}

std::optional<JobRecord> PostgresStore::job_claim_id(const JobClaimParams& p, const JobId& id) {
  PgParams params;
  params.text(p.worker_id).text(id.to_string());
  queues_param(params, p.queues);
  // The claim's clock rule: `now` is the last parameter, left out on the database clock.
  if (!database_clock_) params.time(p.now);
  bind_value(params, p.job_types);
  return read_first(pooled_run(sql_->claim.by_id, params), read_job<Row>);
}

}  // namespace ergon::postgres
