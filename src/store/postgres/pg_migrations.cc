#include "store/postgres/pg_migrations.h"

#include <cstdlib>

#include "ergon/error.h"
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// Append new migrations; never edit one that has shipped. Versions 1-8 match the SQLite backend's
// (sqlite_migrations.cc), with PostgreSQL's types; SQLite's 9 (a CHECK and an index predicate
// SQLite evaluates slowly) has no counterpart here, and this 9 is SQLite's 10. There is no 10:
// from 11 on, a version is the same change on both.
//
// Types: the original schema's types exactly (uuid, varchar, jsonb, timestamptz, integer,
// boolean). timestamptz keeps microseconds, like Ergon's timestamps.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE @SCHEMA@.jobs (
  -- the original columns
  id               uuid PRIMARY KEY,
  job_type         varchar NOT NULL,
  job_data         jsonb NOT NULL,
  status           varchar NOT NULL
                   CHECK (status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')),
  created_at       timestamptz NOT NULL,
  started_at       timestamptz,
  completed_at     timestamptz,
  error_message    varchar,
  progress_message varchar,
  progress_percent integer CHECK (progress_percent BETWEEN 0 AND 100),
  -- added for queues, scheduling, retries and leases
  queue            varchar NOT NULL DEFAULT 'default',
  priority         integer NOT NULL DEFAULT 0,
  run_at           timestamptz NOT NULL,
  attempt          integer NOT NULL DEFAULT 0,
  max_attempts     integer CHECK (max_attempts IS NULL OR max_attempts >= 1),
  worker_id        varchar,
  heartbeat_at     timestamptz
);
-- Serves the claim query exactly: only Pending rows, in claim order. Finished rows never
-- enter it, so the claim does not slow down as history grows.
CREATE INDEX jobs_claim_idx ON @SCHEMA@.jobs (priority, run_at, id) WHERE status = 'Pending';
-- Listing by status (CLI, dashboard), newest first.
CREATE INDEX jobs_status_idx ON @SCHEMA@.jobs (status, id);

CREATE TABLE @SCHEMA@.scheduled_jobs (
  -- the original columns
  id              uuid PRIMARY KEY,
  job_type        varchar NOT NULL,
  job_data        jsonb NOT NULL,
  cron_expression varchar NOT NULL,
  next_run_time   timestamptz NOT NULL,
  last_run_time   timestamptz,
  is_enabled      boolean NOT NULL DEFAULT true,
  -- added: the stable key that add_or_update_scheduled_job updates, and the zone of the
  -- expression
  name            varchar NOT NULL UNIQUE,
  time_zone       varchar NOT NULL DEFAULT 'UTC'
);
)sql"},
    {2, R"sql(
-- Recurring jobs: the expression's format, the misfire and overlap policies, the options of the
-- jobs a schedule enqueues, and the job its last slot enqueued (for the overlap check).
ALTER TABLE @SCHEMA@.scheduled_jobs
  ADD COLUMN with_seconds   boolean NOT NULL DEFAULT false,
  ADD COLUMN misfire_policy varchar NOT NULL DEFAULT 'run_once'
                            CHECK (misfire_policy IN ('run_once', 'skip', 'run_all')),
  ADD COLUMN misfire_limit  integer NOT NULL DEFAULT 10 CHECK (misfire_limit >= 1),
  ADD COLUMN overlap_policy varchar NOT NULL DEFAULT 'allow'
                            CHECK (overlap_policy IN ('allow', 'skip')),
  ADD COLUMN queue          varchar NOT NULL DEFAULT 'default',
  ADD COLUMN priority       integer NOT NULL DEFAULT 0,
  ADD COLUMN max_attempts   integer CHECK (max_attempts IS NULL OR max_attempts >= 1),
  ADD COLUMN last_job_id    uuid;
-- The scheduler's question: which enabled schedules are due, earliest first.
CREATE INDEX scheduled_jobs_due_idx ON @SCHEMA@.scheduled_jobs (next_run_time) WHERE is_enabled;
)sql"},
    {3, R"sql(
-- Fault tolerance: cancellation requests, how often a job was rescued from a dead worker (for
-- poison-job quarantine), the job's own timeout for one attempt in milliseconds (NULL: the
-- handler's), and the worker processes with their heartbeats.
ALTER TABLE @SCHEMA@.jobs
  ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
  ADD COLUMN rescue_count     integer NOT NULL DEFAULT 0,
  ADD COLUMN timeout_ms       bigint CHECK (timeout_ms IS NULL OR timeout_ms > 0);
-- Heartbeats (by worker) and the rescuer (by heartbeat age) touch Running rows only.
CREATE INDEX jobs_running_idx ON @SCHEMA@.jobs (worker_id, heartbeat_at) WHERE status = 'Running';
-- Pruning finished jobs by age.
CREATE INDEX jobs_finished_idx ON @SCHEMA@.jobs (status, completed_at)
  WHERE status IN ('Completed', 'Failed', 'Cancelled');
CREATE TABLE @SCHEMA@.workers (
  id           varchar PRIMARY KEY,
  name         varchar NOT NULL,
  host         varchar NOT NULL,
  pid          integer NOT NULL,
  started_at   timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL
);
)sql"},
    {4, R"sql(
-- The outbox of the messaging transport (docs/messaging.md): one row per job that became due
-- to run (enqueued, or Pending again after a retry, release or rescue), written in the same
-- transaction as the job by triggers that exist only while messaging is enabled
-- (Store::outbox_enable). The relay publishes the rows and deletes them.
CREATE TABLE @SCHEMA@.job_outbox (
  id         bigserial PRIMARY KEY,
  job_id     uuid NOT NULL,
  due_at     timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION @SCHEMA@.ergon_job_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO @SCHEMA@.job_outbox (job_id, due_at) VALUES (NEW.id, NEW.run_at);
  RETURN NULL;
END $$;
)sql"},
    {5, R"sql(
-- Flow control (docs/flow-control.md). Unique jobs: at most one job per unique_key among those
-- waiting to run (Pending), and also among Running ones when unique_while_running; the partial
-- unique index enforces it for every writer, whatever process.
ALTER TABLE @SCHEMA@.jobs
  ADD COLUMN unique_key           varchar,
  ADD COLUMN unique_while_running boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX jobs_unique_idx ON @SCHEMA@.jobs (unique_key)
  WHERE unique_key IS NOT NULL AND (status = 'Pending' OR (status = 'Running' AND unique_while_running));
-- Queues that are paused cluster-wide: the claim starts nothing from them. A queue without a
-- row is running.
CREATE TABLE @SCHEMA@.queues (
  name       varchar PRIMARY KEY,
  paused     boolean NOT NULL DEFAULT false,
  changed_at timestamptz NOT NULL DEFAULT now()
);
)sql"},
    {6, R"sql(
-- The audit log of operators' actions (`ergon jobs retry|delete`, `ergon purge`, the
-- dashboard): who did what to which job or schedule, newest first by id. Append-only.
CREATE TABLE @SCHEMA@.audit_log (
  id     bigserial PRIMARY KEY,
  at     timestamptz NOT NULL DEFAULT now(),
  actor  varchar NOT NULL,
  action varchar NOT NULL,
  target varchar NOT NULL DEFAULT '',
  detail varchar NOT NULL DEFAULT ''
);
)sql"},
    {7, R"sql(
-- Cluster-wide concurrency limits per job type (docs/flow-control.md): at most max_running
-- jobs of the type Running at once. The claim counts them under a per-type advisory lock.
CREATE TABLE @SCHEMA@.job_type_limits (
  job_type    varchar(200) PRIMARY KEY,
  max_running integer NOT NULL CHECK (max_running >= 0),
  changed_at  timestamptz NOT NULL DEFAULT now()
);
-- The count of a type's Running jobs (the set is small: what the workers hold).
CREATE INDEX jobs_running_type_idx ON @SCHEMA@.jobs (job_type) WHERE status = 'Running';
)sql"},
    {8, R"sql(
-- Fair claiming and finer limits (docs/flow-control.md). A job may carry a group key (a
-- tenant, an account): grouped jobs are claimed round-robin across groups, and a limit with
-- per_group holds for each group on its own.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN group_key varchar;
-- The claim takes ungrouped jobs from jobs_claim_idx, now without grouped rows (a group's
-- backlog would otherwise sit in front of every claim's scan), and grouped ones group by group
-- from jobs_group_claim_idx, whose leading group_key also lets the claim skip from one group
-- to the next.
DROP INDEX @SCHEMA@.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON @SCHEMA@.jobs (priority, run_at, id)
  WHERE status = 'Pending' AND group_key IS NULL;
CREATE INDEX jobs_group_claim_idx ON @SCHEMA@.jobs (group_key, priority, run_at, id)
  WHERE status = 'Pending' AND group_key IS NOT NULL;
-- Rate limits (at most rate_limit started in any rate_period_ms), an optional concurrency limit,
-- and per_group.
ALTER TABLE @SCHEMA@.job_type_limits
  ALTER COLUMN max_running DROP NOT NULL,
  ADD COLUMN rate_limit     integer CHECK (rate_limit >= 0),
  ADD COLUMN rate_period_ms bigint CHECK (rate_period_ms > 0),
  ADD COLUMN per_group      boolean NOT NULL DEFAULT false,
  ADD CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL)),
  ADD CHECK (max_running IS NOT NULL OR rate_limit IS NOT NULL);
-- The starts a rate limit counts: one row per job started of a rate-limited type (group_key is
-- '' unless the limit is per_group), written by the claim and pruned by it once older than
-- the period. A log rather than jobs.started_at: a retried job starts again and counts again.
CREATE TABLE @SCHEMA@.job_type_starts (
  job_type   varchar NOT NULL,
  group_key  varchar NOT NULL,
  started_at timestamptz NOT NULL
);
CREATE INDEX job_type_starts_idx ON @SCHEMA@.job_type_starts (job_type, group_key, started_at);
-- A unique key's time window (JobOptions::unique_period): a job enqueued with one holds its key
-- until unique_until, whatever its status; an enqueue of the key before then inserts nothing.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN unique_until timestamptz;
CREATE INDEX jobs_unique_until_idx ON @SCHEMA@.jobs (unique_key, unique_until)
  WHERE unique_until IS NOT NULL;
)sql"},
    {9, R"sql(
-- Worker identity, leases, and what a worker claims and relays. A worker's process identity
-- (docs/reliability.md, "Worker identity"): the kernel's boot id,
-- the inode of its PID namespace and its start time in clock ticks since boot. A starting
-- worker returns a predecessor's jobs at once only when these prove it dead; rows written
-- before them hold '' and 0 and prove nothing.
ALTER TABLE @SCHEMA@.workers
  ADD COLUMN boot_id       varchar NOT NULL DEFAULT '',
  ADD COLUMN pid_namespace bigint NOT NULL DEFAULT 0,
  ADD COLUMN process_start bigint NOT NULL DEFAULT 0;
-- The fencing token: a job's claims so far, which only grows, so that a release can give back
-- the attempt it used (attempt - 1) instead of raising max_attempts. Running jobs keep the
-- token they were claimed with; the others start counting at their next claim.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN lease integer NOT NULL DEFAULT 0;
UPDATE @SCHEMA@.jobs SET lease = attempt WHERE status = 'Running';
-- The job types a worker claims (its handlers); NULL: every type
-- (WorkerOptions::claim_unhandled_types). `ergon stats` names the Pending jobs' types that no
-- live worker claims.
ALTER TABLE @SCHEMA@.workers ADD COLUMN job_types jsonb;
-- Whether it relays the messaging outbox: with no live relay the outbox triggers are dropped,
-- or job_outbox would grow without bound once messaging is turned off.
ALTER TABLE @SCHEMA@.workers ADD COLUMN relay boolean NOT NULL DEFAULT false;
)sql"},
    {11, R"sql(
-- Results, tags, meta and attempt history. What the handler of a Completed job returned; the
-- job's tags (NULL: none); its meta, a JSON object. Nullable without a default: adding them
-- rewrites no row.
ALTER TABLE @SCHEMA@.jobs
  ADD COLUMN result jsonb,
  ADD COLUMN tags   text[],
  ADD COLUMN meta   jsonb;
-- The tag filter (tags @> ARRAY[tag]). Partial: untagged jobs, most of them, never enter it, so
-- an insert without tags does not write it; the filter's @> is strict, so the planner knows it
-- implies tags IS NOT NULL and can use it.
CREATE INDEX jobs_tags_idx ON @SCHEMA@.jobs USING gin (tags) WHERE tags IS NOT NULL;
-- One row per attempt that ended (or was rescued), written in the statement that stores its
-- outcome, keyed by the claim's lease.
CREATE TABLE @SCHEMA@.job_attempts (
  job_id        uuid NOT NULL,
  lease         integer NOT NULL,
  attempt       integer NOT NULL,
  worker_id     varchar NOT NULL,
  started_at    timestamptz NOT NULL,
  finished_at   timestamptz NOT NULL,
  outcome       varchar NOT NULL CHECK (outcome IN ('completed', 'failed', 'retried', 'rescued',
                                                    'timed_out', 'cancelled', 'snoozed',
                                                    'released')),
  error_message varchar,
  PRIMARY KEY (job_id, lease)
);
-- A job's rows go with it, whoever deletes it: once per statement, for all the jobs it deleted
-- (a prune of thousands is one join). A trigger rather than a foreign key: the key's check of
-- every row inserted (a look-up and a lock of the job's row) cost the burn-down with history
-- a few percent. The function's DELETE runs on a snapshot taken after the jobs' DELETE, so it
-- also sees a row that an outcome committed while the jobs' DELETE waited for that job.
CREATE FUNCTION @SCHEMA@.ergon_job_history_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM @SCHEMA@.job_attempts a USING gone WHERE a.job_id = gone.id;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_history_delete AFTER DELETE ON @SCHEMA@.jobs
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
  EXECUTE FUNCTION @SCHEMA@.ergon_job_history_delete();
)sql"},
    {12, R"sql(
-- The tags and meta a schedule gives every job it starts, typed as jobs keeps them (11).
-- Nullable without a default: adding them rewrites no row.
ALTER TABLE @SCHEMA@.scheduled_jobs
  ADD COLUMN tags text[],
  ADD COLUMN meta jsonb;
)sql"},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }
int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

std::string schema_sql(std::string_view sql, std::string_view quoted_schema) {
  return replace_placeholder(sql, "@SCHEMA@", quoted_schema);
}

std::string replace_placeholder(std::string_view sql, std::string_view placeholder,
                                std::string_view value) {
  std::string out;
  out.reserve(sql.size() + 8 * value.size());
  for (;;) {
    auto at = sql.find(placeholder);
    out.append(sql.substr(0, at));
    if (at == std::string_view::npos) break;
    out.append(value);
    sql.remove_prefix(at + placeholder.size());
  }
  return out;
}

namespace {

// The advisory lock that serialises migrations of one schema: a constant derived from "ergon"
// and the schema, so that migrators of other schemas (other applications) do not wait.
std::int64_t migration_lock_key(const std::string& schema) {
  return static_cast<std::int64_t>(fnv1a("ergon migrate\x1f" + schema));
}

}  // namespace

int PostgresStore::schema_version(PgConnection& conn) {
  auto exists =
      conn.exec("SELECT to_regclass($1) IS NOT NULL",
                PgParams().text(quoted_schema_ + ".ergon_schema_migrations"), Format::kText);
  if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") return 0;
  auto v = conn.exec(
      sql_->context.text("SELECT coalesce(max(version), 0) FROM @SCHEMA@.ergon_schema_migrations"),
      PgParams(), Format::kText);
  return std::atoi(PQgetvalue(v.get(), 0, 0));
}

std::vector<int> PostgresStore::schema_migrate() {
  auto conn = pool_.acquire();
  std::vector<int> applied;
  transaction(*conn, [&] {
    // Serialises every migrator of this schema, in any process on any host: the second one
    // waits here, then finds the first one's version and has nothing to do. The _xact_ lock
    // is released by COMMIT or ROLLBACK, and by the server if this process dies mid-way, so
    // it can never be left behind.
    conn->exec("SELECT pg_advisory_xact_lock($1::bigint)",
               PgParams().integer(migration_lock_key(schema_)), Format::kText);
    // CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database even when the
    // schema exists; look first, so that a role that owns only its schema can migrate.
    auto ns = conn->exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", PgParams().text(schema_),
                         Format::kText);
    if (PQntuples(ns.get()) == 0)
      conn->exec_script(sql_->context.text("CREATE SCHEMA IF NOT EXISTS @SCHEMA@"));
    conn->exec_script(sql_->context.text(R"sql(
CREATE TABLE IF NOT EXISTS @SCHEMA@.ergon_schema_migrations (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL))sql"));
    int current = schema_version(*conn);
    refuse_newer_schema(current, latest_schema_version());
    for (const Migration& m : migrations()) {
      if (m.version <= current) continue;
      conn->exec_script(schema_sql(m.sql, quoted_schema_));
      PgParams record;
      record.integer(static_cast<std::int64_t>(m.version));
      if (!database_clock_) record.time(clock().now());
      conn->exec(sql_->context.text(R"sql(
INSERT INTO @SCHEMA@.ergon_schema_migrations (version, applied_at) VALUES ($1::integer, @NOW@))sql",
                                    {{"@NOW@", sql_->context.now(2)}}),
                 record, Format::kText);
      applied.push_back(m.version);
    }
  });
  return applied;
}

void PostgresStore::schema_check() {
  int v;
  {
    auto conn = pool_.acquire();
    v = schema_version(*conn);
  }
  require_schema_version(v, latest_schema_version(), " in schema '" + schema_ + "'");
}

}  // namespace ergon::postgres
