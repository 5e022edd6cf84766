#include "store/sqlite/sqlite_migrations.h"

namespace ergon::sqlite {
namespace {

// Append new migrations; never edit one that has shipped.
//
// Types: the original schema's PostgreSQL types map to SQLite as uuid -> TEXT (canonical
// 36-character form), jsonb -> TEXT checked by json_valid, timestamptz -> TEXT in ISO-8601 UTC
// with microseconds ("2026-11-28T19:20:11.123456Z", fixed width so text order is time order),
// boolean -> INTEGER 0/1.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE jobs (
  -- the original columns
  id               TEXT PRIMARY KEY NOT NULL,
  job_type         TEXT NOT NULL,
  job_data         TEXT NOT NULL CHECK (json_valid(job_data)),
  status           TEXT NOT NULL
                   CHECK (status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')),
  created_at       TEXT NOT NULL,
  started_at       TEXT,
  completed_at     TEXT,
  error_message    TEXT,
  progress_message TEXT,
  progress_percent INTEGER CHECK (progress_percent BETWEEN 0 AND 100),
  -- added for queues, scheduling, retries and leases
  queue            TEXT NOT NULL DEFAULT 'default',
  priority         INTEGER NOT NULL DEFAULT 0,
  run_at           TEXT NOT NULL,
  attempt          INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER CHECK (max_attempts IS NULL OR max_attempts >= 1),
  worker_id        TEXT,
  heartbeat_at     TEXT
);
-- Serves the claim query exactly: only Pending rows, in claim order. Finished rows never
-- enter it, so the claim does not slow down as history grows.
CREATE INDEX jobs_claim_idx ON jobs (priority, run_at, id) WHERE status = 'Pending';
-- Listing by status (CLI, dashboard), newest first.
CREATE INDEX jobs_status_idx ON jobs (status, id);

CREATE TABLE scheduled_jobs (
  -- the original columns
  id              TEXT PRIMARY KEY NOT NULL,
  job_type        TEXT NOT NULL,
  job_data        TEXT NOT NULL CHECK (json_valid(job_data)),
  cron_expression TEXT NOT NULL,
  next_run_time   TEXT NOT NULL,
  last_run_time   TEXT,
  is_enabled      INTEGER NOT NULL DEFAULT 1 CHECK (is_enabled IN (0, 1)),
  -- added: the stable key that add_or_update_scheduled_job updates, and the zone of the
  -- expression
  name            TEXT NOT NULL UNIQUE,
  time_zone       TEXT NOT NULL DEFAULT 'UTC'
);
)sql"},
    {2, R"sql(
-- Recurring jobs: the expression's format, the misfire and overlap policies, the options of the
-- jobs a schedule enqueues, and the job its last slot enqueued (for the overlap check).
ALTER TABLE scheduled_jobs ADD COLUMN with_seconds INTEGER NOT NULL DEFAULT 0
  CHECK (with_seconds IN (0, 1));
ALTER TABLE scheduled_jobs ADD COLUMN misfire_policy TEXT NOT NULL DEFAULT 'run_once'
  CHECK (misfire_policy IN ('run_once', 'skip', 'run_all'));
ALTER TABLE scheduled_jobs ADD COLUMN misfire_limit INTEGER NOT NULL DEFAULT 10
  CHECK (misfire_limit >= 1);
ALTER TABLE scheduled_jobs ADD COLUMN overlap_policy TEXT NOT NULL DEFAULT 'allow'
  CHECK (overlap_policy IN ('allow', 'skip'));
ALTER TABLE scheduled_jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE scheduled_jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scheduled_jobs ADD COLUMN max_attempts INTEGER
  CHECK (max_attempts IS NULL OR max_attempts >= 1);
ALTER TABLE scheduled_jobs ADD COLUMN last_job_id TEXT;
-- The scheduler's question: which enabled schedules are due, earliest first.
CREATE INDEX scheduled_jobs_due_idx ON scheduled_jobs (next_run_time) WHERE is_enabled = 1;
)sql"},
    {3, R"sql(
-- Fault tolerance: cancellation requests, how often a job was rescued from a dead worker (for
-- poison-job quarantine), and the worker processes with their heartbeats.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0
  CHECK (cancel_requested IN (0, 1));
ALTER TABLE jobs ADD COLUMN rescue_count INTEGER NOT NULL DEFAULT 0;
-- The job's own timeout for one attempt, in milliseconds (NULL: the handler's).
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER CHECK (timeout_ms IS NULL OR timeout_ms > 0);
-- Heartbeats (by worker) and the rescuer (by heartbeat age) touch Running rows only.
CREATE INDEX jobs_running_idx ON jobs (worker_id, heartbeat_at) WHERE status = 'Running';
-- Pruning finished jobs by age.
CREATE INDEX jobs_finished_idx ON jobs (status, completed_at)
  WHERE status IN ('Completed', 'Failed', 'Cancelled');
CREATE TABLE workers (
  id           TEXT PRIMARY KEY NOT NULL,
  name         TEXT NOT NULL,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL
);
)sql"},
    {4, R"sql(
-- The outbox of the messaging transport (docs/messaging.md): one row per job that became due
-- to run, written in the job's transaction by triggers that exist only while messaging is
-- enabled (Store::outbox_enable). The relay publishes the rows and deletes them.
CREATE TABLE job_outbox (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id     TEXT NOT NULL,
  due_at     TEXT NOT NULL
);
)sql"},
    {5, R"sql(
-- Flow control (docs/flow-control.md). Unique jobs: at most one job per unique_key among those
-- waiting to run (Pending), and also among Running ones when unique_while_running.
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
ALTER TABLE jobs ADD COLUMN unique_while_running INTEGER NOT NULL DEFAULT 0
  CHECK (unique_while_running IN (0, 1));
CREATE UNIQUE INDEX jobs_unique_idx ON jobs (unique_key)
  WHERE unique_key IS NOT NULL AND (status = 'Pending' OR (status = 'Running' AND unique_while_running = 1));
-- Queues paused cluster-wide: the claim starts nothing from them. No row: running.
CREATE TABLE queues (
  name       TEXT PRIMARY KEY NOT NULL,
  paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
  changed_at TEXT NOT NULL
);
)sql"},
    {6, R"sql(
-- The audit log of operators' actions (`ergon jobs retry|delete`, `ergon purge`, the
-- dashboard): who did what to which job or schedule, newest first by id. Append-only.
CREATE TABLE audit_log (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at     TEXT NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
)sql"},
    {7, R"sql(
-- Cluster-wide concurrency limits per job type (docs/flow-control.md): at most max_running
-- jobs of the type Running at once. SQLite's single writer makes count-and-claim atomic.
CREATE TABLE job_type_limits (
  job_type    TEXT PRIMARY KEY NOT NULL,
  max_running INTEGER NOT NULL CHECK (max_running >= 0),
  changed_at  TEXT NOT NULL
);
CREATE INDEX jobs_running_type_idx ON jobs (job_type) WHERE status = 'Running';
)sql"},
    {8, R"sql(
-- Fair claiming and finer limits (docs/flow-control.md). A job may carry a group key (a
-- tenant, an account): grouped jobs are claimed round-robin across groups, and a limit with
-- per_group holds for each group on its own.
ALTER TABLE jobs ADD COLUMN group_key TEXT;
-- The claim takes ungrouped jobs from jobs_claim_idx, now without grouped rows, and grouped
-- ones group by group from jobs_group_claim_idx (see the PostgreSQL migration).
DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (priority, run_at, id)
  WHERE status = 'Pending' AND group_key IS NULL;
CREATE INDEX jobs_group_claim_idx ON jobs (group_key, priority, run_at, id)
  WHERE status = 'Pending' AND group_key IS NOT NULL;
-- Rate limits and per_group; max_running becomes optional, which SQLite's ALTER TABLE cannot
-- do, so the table is rebuilt.
CREATE TABLE job_type_limits_v8 (
  job_type       TEXT PRIMARY KEY NOT NULL,
  max_running    INTEGER CHECK (max_running >= 0),
  rate_limit     INTEGER CHECK (rate_limit >= 0),
  rate_period_ms INTEGER CHECK (rate_period_ms > 0),
  per_group      INTEGER NOT NULL DEFAULT 0 CHECK (per_group IN (0, 1)),
  changed_at     TEXT NOT NULL,
  CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL)),
  CHECK (max_running IS NOT NULL OR rate_limit IS NOT NULL)
);
INSERT INTO job_type_limits_v8 (job_type, max_running, changed_at)
  SELECT job_type, max_running, changed_at FROM job_type_limits;
DROP TABLE job_type_limits;
ALTER TABLE job_type_limits_v8 RENAME TO job_type_limits;
-- The starts a rate limit counts (see the PostgreSQL migration).
CREATE TABLE job_type_starts (
  job_type   TEXT NOT NULL,
  group_key  TEXT NOT NULL,
  started_at TEXT NOT NULL
);
CREATE INDEX job_type_starts_idx ON job_type_starts (job_type, group_key, started_at);
-- A unique key's time window (JobOptions::unique_period): a job enqueued with one holds its key
-- until unique_until, whatever its status; an enqueue of the key before then inserts nothing.
ALTER TABLE jobs ADD COLUMN unique_until TEXT;
CREATE INDEX jobs_unique_until_idx ON jobs (unique_key, unique_until)
  WHERE unique_until IS NOT NULL;
)sql"},
    {9, R"sql(
-- Cheaper status changes. SQLite evaluates `status IN (<three or more constants>)` in a CHECK
-- constraint or a partial index's WHERE by building a temporary b-tree of the constants, once
-- for every row a statement writes; on an UPDATE of status that was three b-trees per job
-- (the CHECK, and jobs_finished_idx's predicate for the old and the new row). Without them
-- the burn-down with a local queue ran 40% faster (bench/results/2026-11-29-sqlite-check).
--
-- jobs_finished_idx: completed_at is set exactly when a job reaches a final status, and the
-- queries that need the index (pruning, the dashboard's throughput) bound completed_at, which
-- lets SQLite see that they imply `completed_at IS NOT NULL`; it could not see that they imply
-- the old `status IN (...)`, so the old index was written but never read.
DROP INDEX jobs_finished_idx;
CREATE INDEX jobs_finished_idx ON jobs (status, completed_at) WHERE completed_at IS NOT NULL;
-- The CHECK on status becomes the same condition spelled with OR, which SQLite compiles to
-- plain comparisons. Changing a CHECK that every row already satisfies is done by editing the
-- table's definition in place (https://sqlite.org/lang_altertable.html, "the simpler
-- procedure"); rebuilding the table would copy every row. The edit matches the exact text of
-- migration 1 or does nothing. RESET reloads this connection's schema; the index DDL above
-- advances the schema cookie, so other connections reload theirs at their next statement.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (status IN (''Pending'', ''Running'', ''Completed'', ''Failed'', ''Cancelled''))',
    'CHECK (status = ''Pending'' OR status = ''Running'' OR status = ''Completed'' OR '
    || 'status = ''Failed'' OR status = ''Cancelled'')')
  WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;
)sql"},
    {10, R"sql(
-- Worker identity, leases, and what a worker claims and relays. A worker's process identity
-- (docs/reliability.md, "Worker identity"): the kernel's boot id,
-- the inode of its PID namespace and its start time in clock ticks since boot. A starting
-- worker returns a predecessor's jobs at once only when these prove it dead; rows written
-- before them hold '' and 0 and prove nothing.
ALTER TABLE workers ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN pid_namespace INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN process_start INTEGER NOT NULL DEFAULT 0;
-- The fencing token: a job's claims so far, which only grows, so that a release can give back
-- the attempt it used (attempt - 1) instead of raising max_attempts. Running jobs keep the
-- token they were claimed with; the others start counting at their next claim.
ALTER TABLE jobs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET lease = attempt WHERE status = 'Running';
-- The job types a worker claims (its handlers), as a JSON array; NULL: every type
-- (WorkerOptions::claim_unhandled_types). `ergon stats` names the Pending jobs' types that no
-- live worker claims.
ALTER TABLE workers ADD COLUMN job_types TEXT;
-- Whether it relays the messaging outbox: with no live relay the outbox triggers are dropped,
-- or job_outbox would grow without bound once messaging is turned off.
ALTER TABLE workers ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;
)sql"},
    {11, R"sql(
-- Results, tags, meta and attempt history. What the handler of a Completed job returned; the
-- job's tags as a JSON array (NULL: none); its meta, a JSON object. json_valid(NULL) is 0 before
-- SQLite 3.45, hence the IS NULL.
ALTER TABLE jobs ADD COLUMN result TEXT CHECK (result IS NULL OR json_valid(result));
ALTER TABLE jobs ADD COLUMN tags TEXT CHECK (tags IS NULL OR json_valid(tags));
ALTER TABLE jobs ADD COLUMN meta TEXT CHECK (meta IS NULL OR json_valid(meta));
-- The tag filter's index: one row per tag of a tagged job, written with the job by the trigger
-- below, so every insert on any connection keeps it (untagged jobs skip it). A listing by tag
-- walks job_tags_tag_idx backwards from (tag, before_id): a page costs its own rows, however
-- rare or common the tag.
CREATE TABLE job_tags (
  job_id TEXT NOT NULL,
  tag    TEXT NOT NULL,
  PRIMARY KEY (job_id, tag)
) WITHOUT ROWID;
CREATE INDEX job_tags_tag_idx ON job_tags (tag, job_id);
CREATE TRIGGER jobs_tags_insert AFTER INSERT ON jobs WHEN NEW.tags IS NOT NULL
BEGIN
  INSERT INTO job_tags (job_id, tag) SELECT DISTINCT NEW.id, value FROM json_each(NEW.tags);
END;
-- One row per attempt that ended (or was rescued), written in the transaction that stores its
-- outcome, keyed by the claim's lease. No CHECK on outcome: the reader refuses a name it does
-- not know, and a CHECK of eight constants would be evaluated for every row written (see 9).
CREATE TABLE job_attempts (
  job_id        TEXT NOT NULL,
  lease         INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  worker_id     TEXT NOT NULL,
  started_at    TEXT NOT NULL,
  finished_at   TEXT NOT NULL,
  outcome       TEXT NOT NULL,
  error_message TEXT,
  PRIMARY KEY (job_id, lease)
) WITHOUT ROWID;
-- A job's rows go with it, whoever deletes it on whatever connection. A trigger rather than
-- foreign keys: SQLite enforces those only on connections that turn them on, and checks the
-- parent of every row inserted, which cost the burn-down a few percent more with history.
CREATE TRIGGER jobs_history_delete AFTER DELETE ON jobs
BEGIN
  DELETE FROM job_attempts WHERE job_id = OLD.id;
  DELETE FROM job_tags WHERE job_id = OLD.id AND OLD.tags IS NOT NULL;
END;
)sql"},
    {12, R"sql(
-- The tags and meta a schedule gives every job it starts, kept as jobs keeps them (11).
ALTER TABLE scheduled_jobs ADD COLUMN tags TEXT CHECK (tags IS NULL OR json_valid(tags));
ALTER TABLE scheduled_jobs ADD COLUMN meta TEXT CHECK (meta IS NULL OR json_valid(meta));
)sql"},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }
int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

}  // namespace ergon::sqlite
