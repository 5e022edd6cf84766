#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "ergon/error.h"
#include "store/handled_types.h"
#include "store/sqlite/sqlite_migrations.h"
#include "store/text_rules.h"

namespace ergon::sqlite {
namespace {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  // A missing table means the schema was never created on this database.
  if (msg.find("no such table") != std::string::npos) {
    throw Error(ErrorCode::kSchema, msg + " (run `ergon migrate`)");
  }
  throw Error(ErrorCode::kStore, msg);
}

std::string text_column(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

std::optional<std::string> opt_text(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return text_column(s, col);
}

std::optional<int> opt_int(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int(s, col);
}

TimePoint time_column(sqlite3_stmt* s, int col) {
  auto t = parse_timestamp(text_column(s, col));
  if (!t) throw Error(ErrorCode::kStore, "malformed timestamp in the database");
  return *t;
}

std::optional<TimePoint> opt_time(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return time_column(s, col);
}

// The column list every read returns, in JobRecord order (see read_job). A macro so that the
// statements below are single string literals, built at compile time.
#define ERGON_JOB_COLUMNS                                                                 \
  "id, job_type, job_data, status, created_at, started_at, completed_at, error_message, " \
  "progress_message, progress_percent, queue, priority, run_at, attempt, max_attempts, "  \
  "worker_id, heartbeat_at, timeout_ms, cancel_requested, rescue_count, unique_key, "     \
  "group_key, lease"

JobRecord read_job(sqlite3_stmt* s) {
  JobRecord r;
  auto id = JobId::parse(text_column(s, 0));
  if (!id) throw Error(ErrorCode::kStore, "malformed job id in the database");
  r.id = *id;
  r.job_type = text_column(s, 1);
  r.job_data = text_column(s, 2);
  auto status = parse_job_status(text_column(s, 3));
  if (!status) throw Error(ErrorCode::kStore, "unknown job status in the database");
  r.status = *status;
  r.created_at = time_column(s, 4);
  r.started_at = opt_time(s, 5);
  r.completed_at = opt_time(s, 6);
  r.error_message = opt_text(s, 7);
  r.progress_message = opt_text(s, 8);
  r.progress_percent = opt_int(s, 9);
  r.queue = text_column(s, 10);
  r.priority = sqlite3_column_int(s, 11);
  r.run_at = time_column(s, 12);
  r.attempt = sqlite3_column_int(s, 13);
  r.max_attempts = opt_int(s, 14);
  r.worker_id = opt_text(s, 15);
  r.heartbeat_at = opt_time(s, 16);
  if (sqlite3_column_type(s, 17) != SQLITE_NULL) {
    r.timeout = std::chrono::milliseconds(sqlite3_column_int64(s, 17));
  }
  r.cancel_requested = sqlite3_column_int(s, 18) != 0;
  r.rescue_count = sqlite3_column_int(s, 19);
  r.unique_key = opt_text(s, 20);
  r.group_key = opt_text(s, 21);
  r.lease = sqlite3_column_int(s, 22);
  return r;
}

#define ERGON_SCHEDULE_COLUMNS                                                                  \
  "id, name, job_type, job_data, cron_expression, with_seconds, time_zone, next_run_time, "     \
  "last_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue, priority, " \
  "max_attempts, last_job_id"

ScheduleRecord read_schedule(sqlite3_stmt* s) {
  ScheduleRecord r;
  auto id = JobId::parse(text_column(s, 0));
  if (!id) throw Error(ErrorCode::kStore, "malformed schedule id in the database");
  r.id = *id;
  r.name = text_column(s, 1);
  r.job_type = text_column(s, 2);
  r.job_data = text_column(s, 3);
  r.cron_expression = text_column(s, 4);
  r.with_seconds = sqlite3_column_int(s, 5) != 0;
  r.time_zone = text_column(s, 6);
  r.next_run_time = time_column(s, 7);
  r.last_run_time = opt_time(s, 8);
  r.is_enabled = sqlite3_column_int(s, 9) != 0;
  auto misfire = parse_misfire_policy(text_column(s, 10));
  auto overlap = parse_overlap_policy(text_column(s, 12));
  if (!misfire || !overlap)
    throw Error(ErrorCode::kStore, "unknown schedule policy in the database");
  r.misfire = *misfire;
  r.misfire_limit = sqlite3_column_int(s, 11);
  r.overlap = *overlap;
  r.queue = text_column(s, 13);
  r.priority = sqlite3_column_int(s, 14);
  r.max_attempts = opt_int(s, 15);
  if (auto last = opt_text(s, 16)) r.last_job_id = JobId::parse(*last);
  return r;
}

}  // namespace

// A prepared statement, reset after every use so that it holds no read lock between calls.
class SqliteStore::Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, "prepare");
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

namespace {

// Binds by position, 1-based, to keep the SQL next to the code readable.
class Binder {
 public:
  Binder(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Binder() { reset(); }
  // Releases the statement's locks and bindings; the destructor does it too.
  void reset() {
    if (s_ == nullptr) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    s_ = nullptr;
  }
  Binder(const Binder&) = delete;
  Binder& operator=(const Binder&) = delete;

  Binder& text(std::string_view v) {
    check(sqlite3_bind_text(s_, ++i_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Binder& text(const std::string& v) { return text(std::string_view(v)); }
  Binder& text(const char* v) { return text(std::string_view(v)); }
  Binder& text(const std::optional<std::string>& v) {
    if (!v) return null();
    return text(std::string_view(*v));
  }
  Binder& time(TimePoint t) { return text(format_timestamp(t)); }
  Binder& integer(std::int64_t v) {
    check(sqlite3_bind_int64(s_, ++i_, v));
    return *this;
  }
  Binder& integer(std::optional<int> v) {
    if (!v) return null();
    return integer(static_cast<std::int64_t>(*v));
  }
  Binder& null() {
    check(sqlite3_bind_null(s_, ++i_));
    return *this;
  }
  // Steps once; true while a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, rc, "sqlite step");
  }
  void run() {
    while (step()) {
    }
  }
  sqlite3_stmt* stmt() { return s_; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, rc, "sqlite bind");
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
  int i_ = 0;
};

// The claim's queue conditions: ?4 is the worker's queues as a JSON array (NULL: every queue);
// a paused queue is never claimed from (docs/flow-control.md).
#define ERGON_QUEUE_FILTER                                                       \
  "(?4 IS NULL OR queue IN (SELECT value FROM json_each(?4))) AND queue NOT IN " \
  "(SELECT name FROM queues WHERE paused = 1)"

// The claim's type condition: ?5 is the job types the worker handles as a JSON array (NULL:
// every type). Not part of ERGON_QUEUE_FILTER: the per-type claim of a limited type binds its
// type there instead, and is not run for types the worker does not handle.
#define ERGON_TYPE_FILTER " AND (?5 IS NULL OR job_type IN (SELECT value FROM json_each(?5)))"

// What every claim writes: Running for worker ?1 from ?2, the next attempt and lease, progress
// cleared.
#define ERGON_CLAIM_SET                                                            \
  "UPDATE jobs SET status = 'Running', attempt = attempt + 1, lease = lease + 1, " \
  "worker_id = ?1, started_at = ?2, heartbeat_at = ?2, progress_message = NULL, "  \
  "progress_percent = NULL "

// Limited types are left to the per-type claim (docs/flow-control.md).
#define ERGON_UNLIMITED " AND job_type NOT IN (SELECT job_type FROM job_type_limits)"

// A job moving from Running back to Pending (retry, release, rescue) whose unique key was
// taken meanwhile by a new Pending job (possible when the key is held only while Pending)
// gives the key up, or the unique index would refuse the move.
#define ERGON_UNIQUE_GIVE_UP                                                                   \
  "CASE WHEN unique_key IS NOT NULL AND unique_while_running = 0 AND EXISTS (SELECT 1 FROM "   \
  "jobs o WHERE o.unique_key = jobs.unique_key AND o.status = 'Pending' AND o.id <> jobs.id) " \
  "THEN NULL ELSE unique_key END"

// The predicate of jobs_unique_idx (migration 5), which ON CONFLICT must name to use it.
#define ERGON_UNIQUE_PREDICATE                                             \
  "unique_key IS NOT NULL AND (status = 'Pending' OR (status = 'Running' " \
  "AND unique_while_running = 1))"

// A unique key already held makes the insert do nothing (sqlite3_changes() == 0): by a
// Pending (or Running) job through jobs_unique_idx, or by a job whose time window
// (unique_until) is still open at the new job's created_at. The check and the insert are one
// statement under the write lock.
constexpr const char* kInsertSql =
    "INSERT INTO jobs (id, job_type, job_data, status, created_at, queue, priority, run_at, "
    "attempt, max_attempts, timeout_ms, unique_key, unique_while_running, group_key, "
    "unique_until) SELECT ?1, ?2, ?3, 'Pending', ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12, ?13 "
    "WHERE ?10 IS NULL OR NOT EXISTS (SELECT 1 FROM jobs WHERE unique_key = ?10 AND "
    "unique_until > ?4) ON CONFLICT (unique_key) WHERE " ERGON_UNIQUE_PREDICATE " DO NOTHING";

// The job holding a key at ?2: a Pending (or Running) holder first, else the newest window.
constexpr const char* kUniqueHolderSql =
    "SELECT id FROM jobs WHERE unique_key = ?1 AND ((" ERGON_UNIQUE_PREDICATE
    ") OR unique_until > ?2) ORDER BY (" ERGON_UNIQUE_PREDICATE
    ") DESC, unique_until DESC "
    "LIMIT 1";

void bind_insert(Binder& b, const JobInsertParams& p) {
  b.text(p.id.to_string())
      .text(p.job_type)
      .text(p.job_data)
      .time(p.created_at)
      .text(p.queue)
      .integer(static_cast<std::int64_t>(p.priority))
      .time(p.run_at)
      .integer(p.max_attempts);
  if (p.timeout) {
    b.integer(static_cast<std::int64_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(*p.timeout).count())));
  } else {
    b.null();
  }
  if (p.unique_key.empty()) {
    b.null();
  } else {
    b.text(p.unique_key);
  }
  b.integer(static_cast<std::int64_t>(p.unique_while_running));
  if (p.group_key.empty()) {
    b.null();
  } else {
    b.text(p.group_key);
  }
  if (p.unique_period && !p.unique_key.empty()) {
    b.time(p.created_at + *p.unique_period);
  } else {
    b.null();
  }
}

void bind_queues(Binder& b, std::span<const std::string> queues) {
  if (queues.empty()) {
    b.null();
    return;
  }
  b.text(nlohmann::json(std::vector<std::string>(queues.begin(), queues.end())).dump());
}

void bind_types(Binder& b, const std::optional<std::span<const std::string>>& types) {
  if (!types) {
    b.null();
    return;
  }
  b.text(nlohmann::json(std::vector<std::string>(types->begin(), types->end())).dump());
}

// Runs the insert on `db` (the store's or the caller's connection, inside whatever transaction
// is open there). Returns p.id, or the id of the job that holds p.unique_key: the insert did
// nothing, and in the same transaction (so under the same write lock) the holder is found.
JobId insert_on(sqlite3* db, sqlite3_stmt* insert, sqlite3_stmt* holder, const JobInsertParams& p) {
  {
    Binder b(db, insert);
    bind_insert(b, p);
    b.run();
  }
  if (sqlite3_changes(db) == 1) return p.id;
  Binder h(db, holder);
  h.text(p.unique_key).time(p.created_at);
  if (!h.step()) {
    throw Error(ErrorCode::kStore,
                "unique key '" + std::string(p.unique_key) + "' conflicts, but no job holds it");
  }
  auto id = JobId::parse(text_column(h.stmt(), 0));
  if (!id) throw Error(ErrorCode::kStore, "malformed job id in the database");
  return *id;
}

}  // namespace

SqliteStore::SqliteStore(const SqliteUrl& url, Clock& clock, bool create_if_missing)
    : Store(clock) {
  db_ = open_database(url, create_if_missing);
  try {
    std::lock_guard lock(mu_);
    busy_timeout_ms_ = url.busy_timeout_ms;
    sqlite3_busy_timeout(db_, url.busy_timeout_ms);
    sqlite3_extended_result_codes(db_, 1);
    // WAL lets readers (the CLI, the dashboard) run while a worker writes, and keeps commits
    // cheap. The setting is persistent in the file; re-asserting it is a no-op. A reader
    // leaves the file as it is (switching an empty file to WAL writes it).
    if (!url.read_only) {
      exec("PRAGMA journal_mode=WAL");
      exec(("PRAGMA synchronous=" + url.synchronous).c_str());
    }
    exec("PRAGMA foreign_keys=ON");
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteStore::~SqliteStore() {
  stmts_.clear();
  sqlite3_close_v2(db_);
}

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  // The busy handler is not consulted in every case (switching a new file to WAL while another
  // process does the same, recovering a WAL index): retry those for up to busy_timeout too.
  // Every statement run through exec() is safe to repeat after SQLITE_BUSY.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
  while ((rc & 0xFF) == SQLITE_BUSY && std::chrono::steady_clock::now() < deadline) {
    sqlite3_free(err);
    err = nullptr;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  }
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw Error(
        msg.find("no such table") != std::string::npos ? ErrorCode::kSchema : ErrorCode::kStore,
        std::string("sqlite: ") + msg);
  }
}

SqliteStore::Stmt& SqliteStore::prepared(std::string_view sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    it = stmts_.emplace(std::string(sql), std::make_unique<Stmt>(db_, sql)).first;
  }
  return *it->second;
}

int SqliteStore::schema_version_locked() {
  Binder b(db_, prepared("SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                         "name='ergon_schema_migrations'")
                    .get());
  b.step();
  if (sqlite3_column_int(b.stmt(), 0) == 0) return 0;
  Binder v(db_, prepared("SELECT coalesce(max(version), 0) FROM ergon_schema_migrations").get());
  v.step();
  return sqlite3_column_int(v.stmt(), 0);
}

std::vector<int> SqliteStore::schema_migrate() {
  std::lock_guard lock(mu_);
  // Migration 9 edits a table's definition through writable_schema, which defensive mode
  // forbids. It is off by default; a build of SQLite may turn it on, and this connection is
  // Ergon's own.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 0, static_cast<int*>(nullptr));
  // BEGIN IMMEDIATE takes the write lock before reading the version, so two processes that
  // migrate at once serialise here: the second sees the first one's version and does nothing.
  exec("BEGIN IMMEDIATE");
  std::vector<int> applied;
  try {
    exec(
        "CREATE TABLE IF NOT EXISTS ergon_schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
    int current = schema_version_locked();
    if (current > latest_schema_version()) {
      throw Error(ErrorCode::kSchema, "database schema version " + std::to_string(current) +
                                          " is newer than this build of Ergon (" +
                                          std::to_string(latest_schema_version()) + ")");
    }
    for (const Migration& m : migrations()) {
      if (m.version <= current) continue;
      exec(m.sql);
      Binder b(db_, prepared("INSERT INTO ergon_schema_migrations (version, applied_at) "
                             "VALUES (?, ?)")
                        .get());
      b.integer(static_cast<std::int64_t>(m.version)).time(clock().now()).run();
      applied.push_back(m.version);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    // Statements prepared against the old schema must not survive a failed migration.
    stmts_.clear();
    throw;
  }
  return applied;
}

void SqliteStore::schema_check() {
  std::lock_guard lock(mu_);
  int v = schema_version_locked();
  if (v == latest_schema_version()) return;
  if (v == 0) {
    throw Error(ErrorCode::kSchema, "the database has no Ergon schema; run `ergon migrate`");
  }
  if (v < latest_schema_version()) {
    throw Error(ErrorCode::kSchema,
                "the database schema is at version " + std::to_string(v) + ", this build needs " +
                    std::to_string(latest_schema_version()) + "; run `ergon migrate`");
  }
  throw Error(ErrorCode::kSchema, "database schema version " + std::to_string(v) +
                                      " is newer than this build of Ergon (" +
                                      std::to_string(latest_schema_version()) + ")");
}

JobId SqliteStore::insert_locked(const JobInsertParams& p) {
  return insert_on(db_, prepared(kInsertSql).get(), prepared(kUniqueHolderSql).get(), p);
}

JobId SqliteStore::job_insert(const JobInsertParams& p) {
  JobId id;
  {
    std::lock_guard lock(mu_);
    if (p.unique_key.empty()) {
      // A single autocommit INSERT takes the write lock when it starts, so busy_timeout covers
      // contention with other processes; no explicit transaction is needed.
      id = insert_locked(p);
    } else {
      // The insert and, on a conflict, the look-up of the holder under one write lock: the
      // holder cannot finish in between.
      exec("BEGIN IMMEDIATE");
      try {
        id = insert_locked(p);
        exec("COMMIT");
      } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
  }
  if (id == p.id) notifier().notify(p.run_at);
  return id;
}

void SqliteStore::job_insert_many(const std::vector<JobInsertParams>& jobs) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mu_);
    exec("BEGIN IMMEDIATE");
    try {
      for (const auto& p : jobs) insert_locked(p);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  TimePoint earliest = jobs.front().run_at;
  for (const auto& p : jobs) earliest = std::min(earliest, p.run_at);
  notifier().notify(earliest);  // one wake-up for the batch
}

JobId SqliteStore::job_insert_tx(NativeConnection native, const JobInsertParams& p) {
  sqlite3* conn = native_handle<sqlite3>(native, backend());
  if (conn == nullptr) throw Error(ErrorCode::kInvalidArgument, "null sqlite3 connection");
  // The caller's transaction is theirs: Ergon writes inside it and never commits. Writing on a
  // connection in autocommit mode would commit at once, which is exactly what the twin must
  // not do, so refuse it.
  if (sqlite3_get_autocommit(conn) != 0) {
    throw Error(ErrorCode::kNoTransaction,
                "start_job(conn, ...) needs an open transaction on conn (BEGIN first)");
  }
  sqlite3_stmt* s = nullptr;
  sqlite3_stmt* h = nullptr;
  int rc = sqlite3_prepare_v2(conn, kInsertSql, -1, &s, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(conn, kUniqueHolderSql, -1, &h, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    fail(conn, rc, "prepare insert on the caller's connection");
  }
  try {
    JobId id = insert_on(conn, s, h, p);
    sqlite3_finalize(s);
    sqlite3_finalize(h);
    return id;
  } catch (...) {
    sqlite3_finalize(s);
    sqlite3_finalize(h);
    throw;
  }
}

namespace {

// The claims. One statement selects and flips the rows: SQLite runs it under the database's
// single write lock, so no other connection (in this or another process) can claim the same
// rows. ?4: the worker's queues as a JSON array, or NULL for all; paused queues never.
//
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
constexpr const char* kClaimFairSql =
    "WITH RECURSIVE grp(k) AS (SELECT (SELECT group_key FROM jobs INDEXED BY "
    "jobs_group_claim_idx WHERE status = 'Pending' AND group_key IS NOT NULL ORDER BY group_key "
    "LIMIT 1) UNION ALL SELECT (SELECT group_key FROM jobs INDEXED BY jobs_group_claim_idx WHERE "
    "status = 'Pending' AND group_key IS NOT NULL AND group_key > grp.k ORDER BY group_key LIMIT "
    "1) FROM grp WHERE grp.k IS NOT NULL), "
    "cand AS (SELECT id, priority, run_at, row_number() OVER (ORDER BY priority, run_at, id) "
    "AS rn FROM (SELECT id, priority, run_at FROM jobs INDEXED BY jobs_claim_idx WHERE status = "
    "'Pending' AND group_key IS NULL AND run_at <= ?2 AND " ERGON_QUEUE_FILTER ERGON_UNLIMITED
        ERGON_TYPE_FILTER
    " ORDER BY priority, run_at, id LIMIT ?3) UNION ALL SELECT id, priority, run_at, "
    "row_number() OVER (PARTITION BY group_key ORDER BY priority, run_at, id) FROM (SELECT "
    "j.id, j.priority, j.run_at, j.group_key FROM grp JOIN jobs j ON j.id IN (SELECT id FROM "
    "jobs INDEXED BY jobs_group_claim_idx WHERE status = 'Pending' AND group_key = grp.k AND "
    "run_at <= ?2 AND " ERGON_QUEUE_FILTER ERGON_UNLIMITED ERGON_TYPE_FILTER
    " ORDER BY priority, run_at, id LIMIT ?3))) " ERGON_CLAIM_SET
    "WHERE id IN (SELECT id FROM cand ORDER BY priority, rn, run_at, id LIMIT ?3) "
    "RETURNING " ERGON_JOB_COLUMNS;

// Without grouped jobs waiting, the plain claim: the ranking above costs about a tenth of the
// throughput when it has nothing to rank (bench/results/2026-11-29-flow). The probe is one
// in-process seek into jobs_group_claim_idx. A grouped job another process adds between the
// probe and the claim is taken by the next claim, as if it had come a moment later.
constexpr const char* kClaimPlainSql = ERGON_CLAIM_SET
    "WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim_idx WHERE status = 'Pending' AND "
    "group_key IS NULL AND run_at <= ?2 AND " ERGON_QUEUE_FILTER ERGON_UNLIMITED ERGON_TYPE_FILTER
    " ORDER BY priority, run_at, id LIMIT ?3) RETURNING " ERGON_JOB_COLUMNS;

constexpr const char* kGroupedProbeSql =
    "SELECT 1 FROM jobs INDEXED BY jobs_group_claim_idx WHERE status = 'Pending' AND group_key "
    "IS NOT NULL LIMIT 1";

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
    bind_types(b, p.job_types);
    while (b.step()) out.push_back(read_job(b.stmt()));
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
  for (auto [name, sql] :
       {std::pair{"claim", kClaimPlainSql}, std::pair{"claim_fair", kClaimFairSql},
        std::pair{"grouped_probe", kGroupedProbeSql}}) {
    Binder b(db_, prepared(std::string("EXPLAIN QUERY PLAN ") + sql).get());
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
  std::vector<std::string> types;
  {
    Binder t(db_, prepared("SELECT job_type FROM job_type_limits").get());
    while (t.step()) types.push_back(text_column(t.stmt(), 0));
  }
  for (const auto& type : types) {
    int room = p.limit - static_cast<int>(out.size());
    if (room <= 0) break;
    if (!claims_type(p, type)) continue;
    exec("BEGIN IMMEDIATE");
    try {
      claim_type_locked(p, type, room, out);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

void SqliteStore::claim_type_locked(const JobClaimParams& p, const std::string& type, int room,
                                    std::vector<JobRecord>& out) {
  std::optional<TypeLimit> limit;
  {
    Binder b(db_, prepared("SELECT max_running, rate_limit, rate_period_ms, per_group FROM "
                           "job_type_limits WHERE job_type = ?1")
                      .get());
    b.text(type);
    if (b.step()) {
      TypeLimit l;
      l.max_running = opt_int(b.stmt(), 0);
      l.rate_limit = opt_int(b.stmt(), 1);
      l.rate_period = std::chrono::milliseconds(sqlite3_column_int64(b.stmt(), 2));
      l.per_group = sqlite3_column_int(b.stmt(), 3) != 0;
      limit = l;
    }
  }
  if (!limit) return;  // removed meanwhile: the main claim takes the type from its next poll
  TimePoint window_start = p.now - limit->rate_period;
  // Each job is ranked in its group (grn, for fairness) and then in its limit's partition
  // (prn: its group with per_group, else the whole type); a partition may start as many as
  // the smaller of its free concurrency and its unused rate allow (NULL: no such limit).
  static constexpr const char* sql =
      "WITH cand AS (SELECT id, priority, run_at, CASE WHEN ?6 THEN coalesce(group_key, '') "
      "ELSE '' END AS p, row_number() OVER (PARTITION BY coalesce(group_key, '') ORDER BY "
      "priority, run_at, id) AS grn FROM jobs WHERE status = 'Pending' AND job_type = ?5 AND "
      "run_at <= ?2 AND " ERGON_QUEUE_FILTER
      "), ranked AS (SELECT id, priority, run_at, p, grn, row_number() OVER (PARTITION BY p "
      "ORDER BY priority, grn, run_at, id) AS prn FROM cand), "
      "run AS (SELECT CASE WHEN ?6 THEN coalesce(group_key, '') ELSE '' END AS p, count(*) AS n "
      "FROM jobs WHERE job_type = ?5 AND status = 'Running' GROUP BY 1), "
      "st AS (SELECT group_key AS p, count(*) AS n FROM job_type_starts WHERE job_type = ?5 AND "
      "started_at > ?9 GROUP BY 1), "
      "allowed AS (SELECT r.id, r.priority, r.grn, r.run_at FROM ranked r LEFT JOIN run ON "
      "run.p = r.p LEFT JOIN st ON st.p = r.p WHERE r.prn <= min(coalesce(?7 - "
      "coalesce(run.n, 0), ?3), coalesce(?8 - coalesce(st.n, 0), ?3))) " ERGON_CLAIM_SET
      "WHERE id IN (SELECT id FROM allowed ORDER BY priority, grn, run_at, id LIMIT ?3) "
      "RETURNING " ERGON_JOB_COLUMNS;
  std::size_t first = out.size();
  {
    Binder b(db_, prepared(sql).get());
    b.text(p.worker_id).time(p.now).integer(static_cast<std::int64_t>(room));
    bind_queues(b, p.queues);
    b.text(type)
        .integer(static_cast<std::int64_t>(limit->per_group))
        .integer(limit->max_running)
        .integer(limit->rate_limit)
        .time(window_start);
    while (b.step()) out.push_back(read_job(b.stmt()));
  }
  if (!limit->rate_limit) return;
  // The starts the rate limit counts from now on, and the ones it no longer needs.
  for (std::size_t i = first; i < out.size(); ++i) {
    Binder b(db_, prepared("INSERT INTO job_type_starts (job_type, group_key, started_at) "
                           "VALUES (?1, ?2, ?3)")
                      .get());
    b.text(type).text(limit->per_group ? out[i].group_key.value_or("") : "").time(p.now).run();
  }
  Binder d(db_,
           prepared("DELETE FROM job_type_starts WHERE job_type = ?1 AND started_at <= ?2").get());
  d.text(type).time(window_start).run();
}

namespace {

// The WHERE clause is the fence: only the claim (lease) that holds the job may move it on.
constexpr const char* kFinishSql =
    "UPDATE jobs SET status = ?1, "
    "completed_at = CASE WHEN ?2 THEN ?3 ELSE NULL END, "
    "run_at = CASE WHEN ?2 THEN run_at ELSE coalesce(?4, run_at) END, "
    "worker_id = CASE WHEN ?2 THEN worker_id ELSE NULL END, "
    "heartbeat_at = CASE WHEN ?2 THEN heartbeat_at ELSE NULL END, "
    "error_message = coalesce(?5, error_message), "
    "attempt = attempt - ?6, "
    "progress_message = CASE WHEN ?7 IS NULL THEN progress_message ELSE ?7 END, "
    "progress_percent = coalesce(?8, progress_percent), "
    "unique_key = CASE WHEN ?2 THEN unique_key ELSE " ERGON_UNIQUE_GIVE_UP
    " END "
    "WHERE id = ?9 AND lease = ?10 AND worker_id = ?11 AND status = 'Running'";

// Messages come from exceptions and a command's stderr: cleaned as PostgreSQL needs them, so
// both stores keep the same text (store/text_rules.h).
void bind_finish(Binder& b, const JobFinishParams& p) {
  std::optional<std::string> error;
  if (p.error_message) error = clean_text(*p.error_message, kMaxErrorMessageBytes);
  std::optional<std::string> progress;
  if (p.progress_message) progress = clean_text(*p.progress_message, kMaxProgressMessageBytes);
  std::optional<int> percent;
  if (p.progress_percent) percent = std::clamp(*p.progress_percent, 0, 100);
  b.text(to_string(p.status)).integer(static_cast<std::int64_t>(is_final(p.status))).time(p.now);
  // NULL run_at: keep the row's own (a release); see JobFinishParams::keep_run_at.
  if (p.keep_run_at) {
    b.null();
  } else {
    b.time(p.run_at);
  }
  b.text(error)
      .integer(static_cast<std::int64_t>(p.give_back_attempt && p.status == JobStatus::kPending))
      .text(progress)
      .integer(percent)
      .text(p.id.to_string())
      .integer(static_cast<std::int64_t>(p.attempt))
      .text(p.worker_id);
}

}  // namespace

bool SqliteStore::job_finish(const JobFinishParams& p) {
  std::unique_lock lock(mu_);
  Binder b(db_, prepared(kFinishSql).get());
  bind_finish(b, p);
  b.run();
  bool changed = sqlite3_changes(db_) == 1;
  b.reset();
  lock.unlock();  // listeners take their own locks; never call them under ours
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
    exec("BEGIN IMMEDIATE");
    try {
      auto& stmt = prepared(kFinishSql);
      for (const auto& p : batch) {
        Binder b(db_, stmt.get());
        bind_finish(b, p);
        b.run();
        bool changed = sqlite3_changes(db_) == 1;
        b.reset();
        out.push_back(changed);
        if (changed && p.status == JobStatus::kPending) {
          earliest = earliest ? std::min(*earliest, p.run_at) : p.run_at;
        }
      }
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  if (earliest) notifier().notify(*earliest);
  return out;
}

bool SqliteStore::job_finish_tx(NativeConnection native, const JobFinishParams& p) {
  sqlite3* conn = native_handle<sqlite3>(native, backend());
  if (conn == nullptr) throw Error(ErrorCode::kInvalidArgument, "null sqlite3 connection");
  if (sqlite3_get_autocommit(conn) != 0) {
    throw Error(ErrorCode::kNoTransaction,
                "complete_in_transaction(conn) needs an open transaction on conn (BEGIN first)");
  }
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(conn, kFinishSql, -1, &s, nullptr);
  if (rc != SQLITE_OK) fail(conn, rc, "prepare completion on the caller's connection");
  bool changed = false;
  try {
    Binder b(conn, s);
    bind_finish(b, p);
    b.run();
    changed = sqlite3_changes(conn) == 1;
  } catch (...) {
    sqlite3_finalize(s);
    throw;
  }
  sqlite3_finalize(s);
  return changed;
}

bool SqliteStore::job_progress_update(const JobProgressParams& p) {
  std::lock_guard lock(mu_);
  // Touches only the progress columns, and only of the attempt that reports: a progress write
  // can never change a job's status, so it can never leave a job stuck.
  Binder b(db_, prepared("UPDATE jobs SET progress_message = ?1, progress_percent = ?2 "
                         "WHERE id = ?3 AND lease = ?4 AND worker_id = ?5 "
                         "AND status = 'Running'")
                    .get());
  b.text(clean_text(p.message, kMaxProgressMessageBytes))
      .integer(static_cast<std::int64_t>(std::clamp(p.percent, 0, 100)))
      .text(p.id.to_string())
      .integer(static_cast<std::int64_t>(p.attempt))
      .text(p.worker_id);
  b.run();
  return sqlite3_changes(db_) == 1;
}

std::optional<JobRecord> SqliteStore::job_claim_id(const JobClaimParams& p, const JobId& id) {
  std::lock_guard lock(mu_);
  // The claim's own conditions, for one row: the single write lock makes it atomic.
  static constexpr const char* sql = ERGON_CLAIM_SET
      "WHERE id = ?3 AND status = 'Pending' AND run_at <= ?2 AND " ERGON_QUEUE_FILTER
          ERGON_UNLIMITED ERGON_TYPE_FILTER " RETURNING " ERGON_JOB_COLUMNS;
  Binder b(db_, prepared(sql).get());
  b.text(p.worker_id).time(p.now).text(id.to_string());
  bind_queues(b, p.queues);
  bind_types(b, p.job_types);
  if (!b.step()) return std::nullopt;
  return read_job(b.stmt());
}

void SqliteStore::limit_set(const TypeLimit& l, TimePoint now) {
  check_type_limit(l);
  {
    std::lock_guard lock(mu_);
    exec("BEGIN IMMEDIATE");
    try {
      Binder b(db_, prepared("INSERT INTO job_type_limits (job_type, max_running, rate_limit, "
                             "rate_period_ms, per_group, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                             "?6) ON CONFLICT (job_type) DO UPDATE SET max_running = "
                             "excluded.max_running, rate_limit = excluded.rate_limit, "
                             "rate_period_ms = excluded.rate_period_ms, per_group = "
                             "excluded.per_group, changed_at = excluded.changed_at")
                        .get());
      b.text(l.job_type).integer(l.max_running).integer(l.rate_limit);
      if (l.rate_limit) {
        b.integer(static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(l.rate_period).count()));
      } else {
        b.null();
      }
      b.integer(static_cast<std::int64_t>(l.per_group)).time(now).run();
      if (!l.rate_limit) clear_starts_locked(l.job_type);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  notifier().notify(now);  // a raised or changed limit may let waiting jobs start
}

void SqliteStore::limit_remove(std::string_view job_type, TimePoint now) {
  {
    std::lock_guard lock(mu_);
    exec("BEGIN IMMEDIATE");
    try {
      Binder b(db_, prepared("DELETE FROM job_type_limits WHERE job_type = ?1").get());
      b.text(job_type).run();
      clear_starts_locked(job_type);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  notifier().notify(now);  // waiting jobs of the type may start
}

// A type without a rate limit keeps no start log (a rate set later starts counting afresh).
void SqliteStore::clear_starts_locked(std::string_view job_type) {
  Binder b(db_, prepared("DELETE FROM job_type_starts WHERE job_type = ?1").get());
  b.text(job_type).run();
}

std::vector<TypeLimit> SqliteStore::limit_list() {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("SELECT l.job_type, l.max_running, l.rate_limit, l.rate_period_ms, "
                         "l.per_group, (SELECT count(*) FROM jobs j WHERE j.job_type = l.job_type "
                         "AND j.status = 'Running') FROM job_type_limits l ORDER BY l.job_type")
                    .get());
  std::vector<TypeLimit> out;
  while (b.step()) {
    TypeLimit l;
    l.job_type = text_column(b.stmt(), 0);
    l.max_running = opt_int(b.stmt(), 1);
    l.rate_limit = opt_int(b.stmt(), 2);
    l.rate_period = std::chrono::milliseconds(sqlite3_column_int64(b.stmt(), 3));
    l.per_group = sqlite3_column_int(b.stmt(), 4) != 0;
    l.running = sqlite3_column_int64(b.stmt(), 5);
    out.push_back(std::move(l));
  }
  return out;
}

void SqliteStore::queue_set_paused(std::string_view name, bool paused, TimePoint now) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("INSERT INTO queues (name, paused, changed_at) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
                         "changed_at = excluded.changed_at")
                    .get());
  b.text(name).integer(static_cast<std::int64_t>(paused)).time(now).run();
}

std::vector<QueueRecord> SqliteStore::queue_list() {
  std::lock_guard lock(mu_);
  // The queues with jobs waiting or running (jobs_claim_idx and jobs_running_idx hold them),
  // and every queue ever paused or resumed.
  static constexpr const char* sql =
      "SELECT n.name, coalesce(q.paused, 0), "
      "(SELECT count(*) FROM jobs WHERE queue = n.name AND status = 'Pending'), "
      "(SELECT count(*) FROM jobs WHERE queue = n.name AND status = 'Running') "
      "FROM (SELECT queue AS name FROM jobs WHERE status IN ('Pending', 'Running') "
      "UNION SELECT name FROM queues) AS n LEFT JOIN queues q ON q.name = n.name ORDER BY n.name";
  Binder b(db_, prepared(sql).get());
  std::vector<QueueRecord> out;
  while (b.step()) {
    out.push_back({text_column(b.stmt(), 0), sqlite3_column_int(b.stmt(), 1) != 0,
                   sqlite3_column_int64(b.stmt(), 2), sqlite3_column_int64(b.stmt(), 3)});
  }
  return out;
}

// The outbox triggers: a job that becomes Pending (inserted so, or moved back from Running by
// a retry, release or rescue) gets an outbox row in the same transaction.
void SqliteStore::outbox_enable() {
  std::lock_guard lock(mu_);
  exec(
      "CREATE TRIGGER IF NOT EXISTS jobs_outbox_insert AFTER INSERT ON jobs "
      "WHEN NEW.status = 'Pending' BEGIN "
      "INSERT INTO job_outbox (job_id, due_at) VALUES (NEW.id, NEW.run_at); END");
  exec(
      "CREATE TRIGGER IF NOT EXISTS jobs_outbox_pending AFTER UPDATE OF status ON jobs "
      "WHEN NEW.status = 'Pending' AND OLD.status <> 'Pending' BEGIN "
      "INSERT INTO job_outbox (job_id, due_at) VALUES (NEW.id, NEW.run_at); END");
}

void SqliteStore::outbox_disable() {
  std::lock_guard lock(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    exec("DROP TRIGGER IF EXISTS jobs_outbox_insert");
    exec("DROP TRIGGER IF EXISTS jobs_outbox_pending");
    exec("DELETE FROM job_outbox");
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

OutboxState SqliteStore::outbox_state() {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("SELECT (SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND "
                         "name IN ('jobs_outbox_insert', 'jobs_outbox_pending')), (SELECT "
                         "count(*) FROM job_outbox)")
                    .get());
  b.step();
  return {sqlite3_column_int(b.stmt(), 0) > 0, sqlite3_column_int64(b.stmt(), 1)};
}

std::vector<OutboxRow> SqliteStore::outbox_peek(int limit) {
  std::lock_guard lock(mu_);
  static constexpr const char* sql =
      "SELECT id, job_id, due_at FROM job_outbox ORDER BY id LIMIT ?1";
  Binder b(db_, prepared(sql).get());
  b.integer(static_cast<std::int64_t>(limit));
  std::vector<OutboxRow> out;
  while (b.step()) {
    auto id = JobId::parse(text_column(b.stmt(), 1));
    if (!id) throw Error(ErrorCode::kStore, "malformed job id in job_outbox");
    out.push_back({sqlite3_column_int64(b.stmt(), 0), *id, time_column(b.stmt(), 2)});
  }
  return out;
}

void SqliteStore::outbox_remove(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  std::lock_guard lock(mu_);
  // One statement: the ids as a JSON array, unpacked by json_each.
  std::string list = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) list += ',';
    list += std::to_string(ids[i]);
  }
  list += "]";
  Binder b(db_,
           prepared("DELETE FROM job_outbox WHERE id IN (SELECT value FROM json_each(?1))").get());
  b.text(list);
  b.run();
}

std::optional<JobRecord> SqliteStore::job_get(const JobId& id) {
  std::lock_guard lock(mu_);
  static constexpr const char* sql = "SELECT " ERGON_JOB_COLUMNS " FROM jobs WHERE id = ?";
  Binder b(db_, prepared(sql).get());
  b.text(id.to_string());
  if (!b.step()) return std::nullopt;
  return read_job(b.stmt());
}

namespace {

void check_limit(int limit) {
  if (limit < 1 || limit > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "limit must be between 1 and 10000");
  }
}

// The WHERE clause of a JobFilter (limit aside): "1" and one "AND ..." per set field, with ?
// placeholders that bind_filter fills in the same order. The statement text depends only on
// which fields are set, so prepared() keeps one statement per shape.
std::string filter_where(const JobFilter& f) {
  check_filter(f);
  std::string w = "1";
  if (f.status) w += " AND status = ?";
  if (f.job_type) w += " AND job_type = ?";
  if (f.queue) w += " AND queue = ?";
  if (f.created_after) w += " AND created_at >= ?";
  if (f.created_before) w += " AND created_at < ?";
  // instr() is a plain substring test: % and _ in the text mean themselves (LIKE would need
  // escaping, and is case-insensitive for ASCII).
  if (f.text) w += " AND (instr(job_data, ?) > 0 OR instr(coalesce(error_message, ''), ?) > 0)";
  if (f.before_id) w += " AND id < ?";
  return w;
}

void bind_filter(Binder& b, const JobFilter& f) {
  if (f.status) b.text(to_string(*f.status));
  if (f.job_type) b.text(*f.job_type);
  if (f.queue) b.text(*f.queue);
  if (f.created_after) b.time(*f.created_after);
  if (f.created_before) b.time(*f.created_before);
  if (f.text) b.text(*f.text).text(*f.text);
  if (f.before_id) b.text(f.before_id->to_string());
}

// What an operator's retry writes: Pending, due at `now`, lease and outcome cleared; attempts and
// error_message kept (history). A job whose attempts are used up gets exactly one more, so
// the retry runs once even when max_attempts was reached.
#define ERGON_RETRY_SET(now)                                                                   \
  "status = 'Pending', run_at = " now                                                          \
  ", completed_at = NULL, worker_id = NULL, heartbeat_at = "                                   \
  "NULL, cancel_requested = 0, max_attempts = CASE WHEN max_attempts IS NOT NULL AND attempt " \
  ">= max_attempts THEN attempt + 1 ELSE max_attempts END"

// A retried job becomes Pending, so it would enter jobs_unique_idx: it is skipped (not
// retried) while another job holds its unique key (Pending, or Running while held so).
#define ERGON_KEY_FREE(t)                                                                 \
  "(" t ".unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs o WHERE o.unique_key = " t \
  ".unique_key AND o.id <> " t                                                            \
  ".id AND (o.status = 'Pending' OR (o.status = 'Running' AND "                           \
  "o.unique_while_running = 1))))"

}  // namespace

std::vector<JobRecord> SqliteStore::job_list(const JobFilter& f) {
  check_limit(f.limit);
  std::lock_guard lock(mu_);
  // Newest first; ids are UUIDv7, so id order is creation order. With a status the scan runs
  // down jobs_status_idx (status, id), else down the primary key, starting at before_id:
  // every page costs the same, however deep (keyset pagination, no OFFSET).
  std::string sql = "SELECT " ERGON_JOB_COLUMNS " FROM jobs WHERE " + filter_where(f) +
                    " ORDER BY id DESC LIMIT ?";
  Binder b(db_, prepared(sql).get());
  bind_filter(b, f);
  b.integer(static_cast<std::int64_t>(f.limit));
  std::vector<JobRecord> out;
  while (b.step()) out.push_back(read_job(b.stmt()));
  return out;
}

bool SqliteStore::job_retry(const JobId& id, TimePoint now) {
  {
    std::lock_guard lock(mu_);
    // One statement under the write lock: the status fence and the unique-key check cannot be
    // overtaken. The outbox trigger (if enabled) fires on the move to Pending.
    Binder b(db_, prepared("UPDATE jobs SET " ERGON_RETRY_SET(
                               "?1") " WHERE id = ?2 AND status IN ('Failed', 'Cancelled') "
                                     "AND " ERGON_KEY_FREE("jobs"))
                      .get());
    b.time(now).text(id.to_string()).run();
    if (sqlite3_changes(db_) != 1) return false;
  }
  notifier().notify(now);
  return true;
}

bool SqliteStore::job_delete(const JobId& id) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("DELETE FROM jobs WHERE id = ?1 AND status <> 'Running'").get());
  b.text(id.to_string()).run();
  return sqlite3_changes(db_) == 1;
}

int SqliteStore::job_retry_matching(const JobFilter& f, TimePoint now) {
  int n = 0;
  {
    std::lock_guard lock(mu_);
    // Several matches may share a unique key: only the newest of them is retried (two Pending
    // jobs with one key would break jobs_unique_idx), and none while another job holds the key.
    std::string sql =
        "WITH m AS (SELECT id, unique_key, row_number() OVER (PARTITION BY unique_key ORDER BY "
        "id DESC) AS rn FROM jobs WHERE status IN ('Failed', 'Cancelled') AND " +
        filter_where(f) +
        ") UPDATE jobs SET " ERGON_RETRY_SET("?")
        " WHERE status IN ('Failed', 'Cancelled') AND id IN (SELECT id FROM m WHERE "
        "unique_key IS NULL OR rn = 1) AND " ERGON_KEY_FREE("jobs");
    Binder b(db_, prepared(sql).get());
    bind_filter(b, f);  // the plain ? placeholders number in the order they appear
    b.time(now);
    b.run();
    n = sqlite3_changes(db_);
  }
  if (n > 0) notifier().notify(now);
  return n;
}

int SqliteStore::job_delete_matching(const JobFilter& f) {
  std::lock_guard lock(mu_);
  Binder b(db_,
           prepared("DELETE FROM jobs WHERE status <> 'Running' AND " + filter_where(f)).get());
  bind_filter(b, f);
  b.run();
  return sqlite3_changes(db_);
}

std::vector<JobTypeCount> SqliteStore::job_pending_types() {
  std::lock_guard lock(mu_);
  // The Pending rows of jobs_status_idx; an operator's summary, not a hot path.
  Binder b(db_, prepared("SELECT job_type, count(*) FROM jobs WHERE status = 'Pending' GROUP BY "
                         "job_type ORDER BY job_type")
                    .get());
  std::vector<JobTypeCount> out;
  while (b.step()) out.push_back({text_column(b.stmt(), 0), sqlite3_column_int64(b.stmt(), 1)});
  return out;
}

std::vector<JobCount> SqliteStore::job_counts(TimePoint now) {
  std::lock_guard lock(mu_);
  // One pass over the table (a count cannot be served by an index alone in SQLite); fine for
  // an operator's summary, not meant for a hot path.
  Binder b(db_, prepared("SELECT queue, status, count(*), min(CASE WHEN status = 'Pending' AND "
                         "run_at <= ?1 THEN run_at END) FROM jobs GROUP BY queue, status")
                    .get());
  b.time(now);
  std::vector<JobCount> out;
  while (b.step()) {
    JobCount c;
    c.queue = text_column(b.stmt(), 0);
    auto status = parse_job_status(text_column(b.stmt(), 1));
    if (!status) throw Error(ErrorCode::kStore, "unknown job status in the database");
    c.status = *status;
    c.count = sqlite3_column_int64(b.stmt(), 2);
    c.oldest_due_run_at = opt_time(b.stmt(), 3);
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const JobCount& x, const JobCount& y) {
    return std::tie(x.queue, x.status) < std::tie(y.queue, y.status);
  });
  return out;
}

std::vector<ThroughputBucket> SqliteStore::job_throughput(TimePoint since, Duration bucket) {
  std::vector<ThroughputBucket> out = throughput_buckets(since, bucket, clock().now());
  if (out.empty()) return out;
  const auto bucket_us = std::chrono::duration_cast<std::chrono::microseconds>(bucket).count();
  std::lock_guard lock(mu_);
  // Served by jobs_finished_idx (status, completed_at). Timestamps are fixed-width ISO text:
  // whole seconds by unixepoch(), microseconds from characters 21-26, all integer arithmetic.
  Binder b(db_, prepared("SELECT (unixepoch(completed_at) * 1000000 + CAST(substr(completed_at, "
                         "21, 6) AS INTEGER) - ?1) / ?2 AS k, status, count(*) FROM jobs WHERE "
                         "status IN ('Completed', 'Failed') AND completed_at >= ?3 GROUP BY k, "
                         "status")
                    .get());
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
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("INSERT INTO audit_log (at, actor, action, target, detail) "
                         "VALUES (?, ?, ?, ?, ?)")
                    .get());
  b.time(r.at)
      .text(clean_text(r.actor))
      .text(clean_text(r.action))
      .text(clean_text(r.target))
      .text(clean_text(r.detail))
      .run();
}

std::vector<AuditRecord> SqliteStore::audit_list(int limit) {
  check_limit(limit);
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("SELECT id, at, actor, action, target, detail FROM audit_log "
                         "ORDER BY id DESC LIMIT ?")
                    .get());
  b.integer(static_cast<std::int64_t>(limit));
  std::vector<AuditRecord> out;
  while (b.step()) {
    AuditRecord r;
    r.id = sqlite3_column_int64(b.stmt(), 0);
    r.at = time_column(b.stmt(), 1);
    r.actor = text_column(b.stmt(), 2);
    r.action = text_column(b.stmt(), 3);
    r.target = text_column(b.stmt(), 4);
    r.detail = text_column(b.stmt(), 5);
    out.push_back(std::move(r));
  }
  return out;
}

void SqliteStore::schedule_upsert(const ScheduleUpsertParams& p) {
  const ScheduleRecord& r = p.schedule;
  {
    std::lock_guard lock(mu_);
    // On conflict every right-hand side sees the old row, so the CASE compares the stored
    // expression with the new one before either is overwritten.
    Binder b(db_,
             prepared("INSERT INTO scheduled_jobs (id, name, job_type, job_data, cron_expression, "
                      "with_seconds, time_zone, next_run_time, is_enabled, misfire_policy, "
                      "misfire_limit, overlap_policy, queue, priority, max_attempts) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
                      "ON CONFLICT (name) DO UPDATE SET job_type = excluded.job_type, "
                      "job_data = excluded.job_data, "
                      "next_run_time = CASE WHEN cron_expression = excluded.cron_expression "
                      "  AND with_seconds = excluded.with_seconds "
                      "  AND time_zone = excluded.time_zone "
                      "  THEN next_run_time ELSE excluded.next_run_time END, "
                      "cron_expression = excluded.cron_expression, "
                      "with_seconds = excluded.with_seconds, time_zone = excluded.time_zone, "
                      "misfire_policy = excluded.misfire_policy, "
                      "misfire_limit = excluded.misfire_limit, "
                      "overlap_policy = excluded.overlap_policy, queue = excluded.queue, "
                      "priority = excluded.priority, max_attempts = excluded.max_attempts")
                 .get());
    b.text(r.id.to_string())
        .text(r.name)
        .text(r.job_type)
        .text(r.job_data)
        .text(r.cron_expression)
        .integer(static_cast<std::int64_t>(r.with_seconds))
        .text(r.time_zone)
        .time(r.next_run_time)
        .integer(static_cast<std::int64_t>(r.is_enabled))
        .text(to_string(r.misfire))
        .integer(static_cast<std::int64_t>(r.misfire_limit))
        .text(to_string(r.overlap))
        .text(r.queue)
        .integer(static_cast<std::int64_t>(r.priority))
        .integer(r.max_attempts);
    b.run();
  }
  schedule_notifier().notify(r.next_run_time);
}

bool SqliteStore::schedule_remove(std::string_view name) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("DELETE FROM scheduled_jobs WHERE name = ?").get());
  b.text(name).run();
  return sqlite3_changes(db_) == 1;
}

bool SqliteStore::schedule_set_enabled(std::string_view name, bool enabled) {
  bool changed;
  {
    std::lock_guard lock(mu_);
    Binder b(db_, prepared("UPDATE scheduled_jobs SET is_enabled = ? WHERE name = ?").get());
    b.integer(static_cast<std::int64_t>(enabled)).text(name).run();
    changed = sqlite3_changes(db_) == 1;
  }
  if (changed && enabled) schedule_notifier().notify(clock().now());
  return changed;
}

std::optional<ScheduleRecord> SqliteStore::schedule_get(std::string_view name) {
  std::lock_guard lock(mu_);
  Binder b(db_,
           prepared("SELECT " ERGON_SCHEDULE_COLUMNS " FROM scheduled_jobs WHERE name = ?").get());
  b.text(name);
  if (!b.step()) return std::nullopt;
  return read_schedule(b.stmt());
}

std::vector<ScheduleRecord> SqliteStore::schedule_list() {
  std::lock_guard lock(mu_);
  Binder b(db_,
           prepared("SELECT " ERGON_SCHEDULE_COLUMNS " FROM scheduled_jobs ORDER BY name").get());
  std::vector<ScheduleRecord> out;
  while (b.step()) out.push_back(read_schedule(b.stmt()));
  return out;
}

std::vector<ScheduleRecord> SqliteStore::schedule_due(TimePoint now, int limit) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("SELECT " ERGON_SCHEDULE_COLUMNS " FROM scheduled_jobs "
                         "WHERE is_enabled = 1 AND next_run_time <= ? "
                         "ORDER BY next_run_time LIMIT ?")
                    .get());
  b.time(now).integer(static_cast<std::int64_t>(limit));
  std::vector<ScheduleRecord> out;
  while (b.step()) out.push_back(read_schedule(b.stmt()));
  return out;
}

std::optional<TimePoint> SqliteStore::schedule_next_due() {
  std::lock_guard lock(mu_);
  Binder b(db_,
           prepared("SELECT min(next_run_time) FROM scheduled_jobs WHERE is_enabled = 1").get());
  if (!b.step()) return std::nullopt;
  return opt_time(b.stmt(), 0);
}

ScheduleFireResult SqliteStore::schedule_fire(const ScheduleFireParams& p) {
  ScheduleFireResult result = ScheduleFireResult::kFired;
  std::optional<TimePoint> earliest;
  {
    std::lock_guard lock(mu_);
    // The write lock is taken before the check, so the check, the inserts and the advance are
    // one atomic step for every connection and process on this file: of all the schedulers
    // that saw this slot, only the first finds next_run_time unchanged.
    exec("BEGIN IMMEDIATE");
    try {
      std::optional<std::string> last_job;
      {
        Binder b(db_, prepared("SELECT last_job_id FROM scheduled_jobs "
                               "WHERE name = ? AND next_run_time = ? AND is_enabled = 1")
                          .get());
        b.text(p.name).time(p.expected_next);
        if (!b.step()) {
          result = ScheduleFireResult::kLost;
        } else {
          last_job = opt_text(b.stmt(), 0);
        }
      }
      if (result != ScheduleFireResult::kLost && p.skip_if_previous_running && last_job) {
        Binder b(db_, prepared("SELECT status FROM jobs WHERE id = ?").get());
        b.text(*last_job);
        if (b.step()) {
          std::string status = text_column(b.stmt(), 0);
          if (status == "Pending" || status == "Running") {
            result = ScheduleFireResult::kSkippedOverlap;
          }
        }
      }
      if (result == ScheduleFireResult::kLost) {
        exec("ROLLBACK");
        return result;
      }
      std::optional<std::string> new_last_job;
      if (result == ScheduleFireResult::kFired) {
        for (const auto& j : p.jobs) {
          insert_locked(j);
          new_last_job = j.id.to_string();
          earliest = earliest ? std::min(*earliest, j.run_at) : j.run_at;
        }
      }
      Binder b(db_, prepared("UPDATE scheduled_jobs SET next_run_time = ?, last_run_time = ?, "
                             "last_job_id = coalesce(?, last_job_id) "
                             "WHERE name = ? AND next_run_time = ?")
                        .get());
      b.time(p.new_next)
          .time(p.last_run_time)
          .text(new_last_job)
          .text(p.name)
          .time(p.expected_next);
      b.run();
      b.reset();
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  if (earliest) notifier().notify(*earliest);
  return result;
}

std::vector<HeldJob> SqliteStore::job_heartbeat(std::string_view worker_id, TimePoint now) {
  std::lock_guard lock(mu_);
  // One statement renews every job this worker holds, and tells it which ones it still holds
  // (a rescued job is missing: its handler must stop) and which were asked to cancel.
  Binder b(db_, prepared("UPDATE jobs SET heartbeat_at = ?1 "
                         "WHERE worker_id = ?2 AND status = 'Running' "
                         "RETURNING id, lease, cancel_requested")
                    .get());
  b.time(now).text(worker_id);
  std::vector<HeldJob> out;
  while (b.step()) {
    auto id = JobId::parse(text_column(b.stmt(), 0));
    if (!id) continue;
    out.push_back({*id, sqlite3_column_int(b.stmt(), 1), sqlite3_column_int(b.stmt(), 2) != 0});
  }
  return out;
}

namespace {

// Shared by the rescuer and startup recovery. An orphan goes back to Pending, unless its
// attempts are used up, or it has now been rescued poison_limit times (a job that keeps killing
// its worker): then it is Failed, with the reason in error_message. Either way the rescue is
// counted and the job leaves the worker that lost it.
constexpr const char* kRescueSet =
    "UPDATE jobs SET "
    "status = CASE WHEN attempt >= coalesce(max_attempts, ?2) OR rescue_count + 1 >= ?3 "
    "  THEN 'Failed' ELSE 'Pending' END, "
    "completed_at = CASE WHEN attempt >= coalesce(max_attempts, ?2) OR rescue_count + 1 >= ?3 "
    "  THEN ?1 ELSE NULL END, "
    "error_message = CASE WHEN rescue_count + 1 >= ?3 AND attempt < coalesce(max_attempts, ?2) "
    "  THEN 'quarantined: the worker running it died ' || (rescue_count + 1) || "
    "       ' times (last: ' || coalesce(worker_id, '?') || ')' "
    "  ELSE 'orphaned: worker ' || coalesce(worker_id, '?') || ' stopped heartbeating' END, "
    "rescue_count = rescue_count + 1, worker_id = NULL, heartbeat_at = NULL, "
    "unique_key = " ERGON_UNIQUE_GIVE_UP " ";
// run_at is kept: the orphan was due long ago and goes back to its old place in the queue,
// not behind everything enqueued since.

}  // namespace

int SqliteStore::rescue_locked(const char* sql, const JobRescueParams& p,
                               std::string_view worker_id) {
  Binder b(db_, prepared(sql).get());
  b.time(p.now)
      .integer(static_cast<std::int64_t>(p.default_max_attempts))
      .integer(static_cast<std::int64_t>(p.poison_limit));
  if (worker_id.empty()) {
    b.time(p.stale_before);
  } else {
    b.text(worker_id);
  }
  b.integer(static_cast<std::int64_t>(p.limit));
  b.run();
  return sqlite3_changes(db_);
}

int SqliteStore::job_rescue(const JobRescueParams& p) {
  static const std::string sql =
      std::string(kRescueSet) +
      "WHERE id IN (SELECT id FROM jobs WHERE status = 'Running' AND heartbeat_at < ?4 LIMIT ?5)";
  int n;
  {
    std::lock_guard lock(mu_);
    n = rescue_locked(sql.c_str(), p, {});
  }
  if (n > 0) notifier().notify(p.now);
  return n;
}

int SqliteStore::job_release_worker(std::string_view worker_id, const JobRescueParams& p) {
  static const std::string sql =
      std::string(kRescueSet) +
      "WHERE id IN (SELECT id FROM jobs WHERE status = 'Running' AND worker_id = ?4 LIMIT ?5)";
  int n;
  {
    std::lock_guard lock(mu_);
    n = rescue_locked(sql.c_str(), p, worker_id);
  }
  if (n > 0) notifier().notify(p.now);
  return n;
}

CancelResult SqliteStore::job_cancel(const JobId& id, TimePoint now) {
  std::lock_guard lock(mu_);
  {
    Binder b(db_, prepared("UPDATE jobs SET status = 'Cancelled', completed_at = ?1 "
                           "WHERE id = ?2 AND status = 'Pending'")
                      .get());
    b.time(now).text(id.to_string()).run();
    if (sqlite3_changes(db_) == 1) return CancelResult::kCancelled;
  }
  {
    Binder b(db_, prepared("UPDATE jobs SET cancel_requested = 1 "
                           "WHERE id = ? AND status = 'Running'")
                      .get());
    b.text(id.to_string()).run();
    if (sqlite3_changes(db_) == 1) return CancelResult::kRequested;
  }
  Binder b(db_, prepared("SELECT 1 FROM jobs WHERE id = ?").get());
  b.text(id.to_string());
  return b.step() ? CancelResult::kAlreadyFinished : CancelResult::kNotFound;
}

int SqliteStore::job_prune(JobStatus status, TimePoint before, int limit) {
  if (!is_final(status)) {
    throw Error(ErrorCode::kInvalidArgument, "only finished jobs can be pruned");
  }
  std::lock_guard lock(mu_);
  // Bounded: a large backlog of history is deleted in many small transactions, never one
  // that holds the write lock for long.
  Binder b(db_, prepared("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs "
                         "WHERE status = ?1 AND completed_at < ?2 LIMIT ?3)")
                    .get());
  b.text(to_string(status)).time(before).integer(static_cast<std::int64_t>(limit)).run();
  return sqlite3_changes(db_);
}

void SqliteStore::worker_register(const WorkerRecord& w) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("INSERT OR REPLACE INTO workers (id, name, host, pid, started_at, "
                         "heartbeat_at, boot_id, pid_namespace, process_start, job_types, "
                         "relay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                    .get());
  b.text(w.id)
      .text(w.name)
      .text(w.host)
      .integer(static_cast<std::int64_t>(w.pid))
      .time(w.started_at)
      .time(w.heartbeat_at)
      .text(w.boot_id)
      .integer(w.pid_namespace)
      .integer(w.process_start);
  if (auto types = worker_types_json(w)) {
    b.text(*types);
  } else {
    b.null();
  }
  b.integer(static_cast<std::int64_t>(w.relay)).run();
}

void SqliteStore::worker_heartbeat(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  worker_heartbeat_locked(id, now);
}

void SqliteStore::worker_heartbeat_locked(std::string_view id, TimePoint now) {
  Binder b(db_, prepared("UPDATE workers SET heartbeat_at = ? WHERE id = ?").get());
  b.time(now).text(id).run();
}

void SqliteStore::worker_remove(std::string_view id) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("DELETE FROM workers WHERE id = ?").get());
  b.text(id).run();
}

int SqliteStore::worker_prune(TimePoint stale_before, TimePoint) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("DELETE FROM workers WHERE heartbeat_at < ?").get());
  b.time(stale_before).run();
  return sqlite3_changes(db_);
}

std::vector<WorkerRecord> SqliteStore::worker_list() {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared("SELECT id, name, host, pid, started_at, heartbeat_at, boot_id, "
                         "pid_namespace, process_start, job_types, relay FROM workers ORDER BY "
                         "started_at")
                    .get());
  std::vector<WorkerRecord> out;
  while (b.step()) {
    WorkerRecord w;
    w.id = text_column(b.stmt(), 0);
    w.name = text_column(b.stmt(), 1);
    w.host = text_column(b.stmt(), 2);
    w.pid = sqlite3_column_int(b.stmt(), 3);
    w.started_at = time_column(b.stmt(), 4);
    w.heartbeat_at = time_column(b.stmt(), 5);
    w.boot_id = text_column(b.stmt(), 6);
    w.pid_namespace = sqlite3_column_int64(b.stmt(), 7);
    w.process_start = sqlite3_column_int64(b.stmt(), 8);
    if (auto types = opt_text(b.stmt(), 9)) w.job_types = worker_types_parse(*types);
    w.relay = sqlite3_column_int(b.stmt(), 10) != 0;
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace ergon::sqlite
