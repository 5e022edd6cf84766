// The SQLite store's connection and statements, its schema, and the reads of jobs.
#include "store/sqlite/sqlite_store.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "ergon/error.h"
#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_migrations.h"
#include "store/text_rules.h"

namespace ergon::sqlite {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  // A missing table means the schema was never created on this database.
  if (msg.find("no such table") != std::string::npos) {
    throw Error(ErrorCode::kSchema, msg + " (run `ergon migrate`)");
  }
  throw Error(ErrorCode::kStore, msg);
}

std::string fill(std::string_view sql, Holes holes) {
  static constexpr std::pair<std::string_view, std::string_view> kColumns[] = {
      {"JOB_COLUMNS", kJobColumns},         {"SCHEDULE_COLUMNS", kScheduleColumns},
      {"WORKER_COLUMNS", kWorkerColumns},   {"AUDIT_COLUMNS", kAuditColumns},
      {"ATTEMPT_COLUMNS", kAttemptColumns}, {"COMPLETED_ATTEMPT", kCompletedAttempt},
  };
  std::string out;
  out.reserve(sql.size());
  for (;;) {
    const auto at = sql.find('@');
    out += sql.substr(0, at);
    if (at == std::string_view::npos) return out;
    const auto end = sql.find('@', at + 1);
    const std::string_view name = sql.substr(at + 1, end - at - 1);
    std::optional<std::string_view> text;
    for (const auto& [hole, columns] : kColumns) {
      if (hole == name) text = columns;
    }
    for (const auto& [hole, filling] : holes) {
      if (hole == name) text = filling;
    }
    if (end == std::string_view::npos || !text) {
      throw std::logic_error("SQL names an unknown hole @" + std::string(name) + "@");
    }
    out += fill(*text, holes);
    sql.remove_prefix(end + 1);
  }
}

std::string text_list_json(std::span<const std::string> values) {
  return nlohmann::json(std::vector<std::string>(values.begin(), values.end())).dump();
}

std::vector<std::string> parse_text_list(std::string_view json) {
  auto list = nlohmann::json::parse(json, nullptr, false);
  std::vector<std::string> out;
  if (list.is_array()) {
    for (const auto& v : list) {
      if (!v.is_string()) break;
      out.push_back(v.get<std::string>());
    }
    if (out.size() == list.size()) return out;
  }
  throw Error(ErrorCode::kStore, "malformed list of text in the database");
}

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

// Prepared once per connection, on first use, and kept: the statement text is the key.
SqliteStore::Stmt& SqliteStore::prepared(std::string_view sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    it = stmts_.emplace(std::string(sql), std::make_unique<Stmt>(db_, sql)).first;
  }
  return *it->second;
}

sqlite3* caller_connection(const NativeConnection& native, std::string_view backend,
                           const char* no_transaction) {
  sqlite3* conn = native_handle<sqlite3>(native, backend);
  if (conn == nullptr) throw Error(ErrorCode::kInvalidArgument, "null sqlite3 connection");
  if (sqlite3_get_autocommit(conn) != 0) throw Error(ErrorCode::kNoTransaction, no_transaction);
  return conn;
}

// ---- Schema --------------------------------------------------------------------------------

int SqliteStore::schema_version_locked() {
  static constexpr std::string_view has_table = R"sql(
    SELECT count(*) FROM sqlite_master WHERE type='table' AND name='ergon_schema_migrations'
  )sql";
  static constexpr std::string_view version = R"sql(
    SELECT coalesce(max(version), 0) FROM ergon_schema_migrations
  )sql";
  Binder b(db_, prepared(has_table).get());
  b.step();
  if (sqlite3_column_int(b.stmt(), 0) == 0) return 0;
  Binder v(db_, prepared(version).get());
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
    exec(R"sql(
      CREATE TABLE IF NOT EXISTS ergon_schema_migrations (
        version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)
    )sql");
    int current = schema_version_locked();
    refuse_newer_schema(current, latest_schema_version());
    for (const Migration& m : migrations()) {
      if (m.version <= current) continue;
      exec(m.sql);
      static constexpr std::string_view record = R"sql(
        INSERT INTO ergon_schema_migrations (version, applied_at) VALUES (?, ?)
      )sql";
      Binder b(db_, prepared(record).get());
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
  require_schema_version(v, latest_schema_version());
}

// ---- Reading jobs --------------------------------------------------------------------------

std::optional<JobRecord> SqliteStore::job_get(const JobId& id) {
  static const std::string sql = fill(R"sql(
    SELECT @JOB_COLUMNS@ FROM jobs WHERE id = ?
  )sql");
  return select_one(sql, read_job<Row>, id);
}

void check_limit(int limit) {
  if (limit < 1 || limit > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "limit must be between 1 and 10000");
  }
}

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
  if (f.tag) w += " AND id IN (SELECT job_id FROM job_tags WHERE tag = ?)";
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
  if (f.tag) b.text(*f.tag);
  if (f.before_id) b.text(f.before_id->to_string());
}

std::vector<JobRecord> SqliteStore::job_list(const JobFilter& f) {
  check_limit(f.limit);
  // Newest first; ids are UUIDv7, so id order is creation order. With a status the scan runs
  // down jobs_status_idx (status, id), else down the primary key, starting at before_id:
  // every page costs the same, however deep (keyset pagination, no OFFSET).
  static constexpr std::string_view sql = R"sql(
    SELECT @JOB_COLUMNS@ FROM jobs WHERE @FILTER@ ORDER BY id DESC LIMIT ?
  )sql";
  // With a tag the scan runs down job_tags_tag_idx (tag, job_id) instead, the outer loop
  // (CROSS JOIN keeps it there), each row's job found by its key: the walk is in id order and
  // visits only the tag's jobs.
  static constexpr std::string_view tagged = R"sql(
    SELECT @JOB_COLUMNS@ FROM job_tags t INDEXED BY job_tags_tag_idx CROSS JOIN jobs
    ON jobs.id = t.job_id
    WHERE t.tag = ? AND @FILTER@ ORDER BY t.job_id DESC LIMIT ?
  )sql";
  JobFilter rest = f;
  rest.tag.reset();  // the join's
  const std::string statement = fill(f.tag ? tagged : sql, {{"FILTER", filter_where(rest)}});
  check_filter(f);
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(statement).get());
  if (f.tag) b.text(*f.tag);
  bind_filter(b, rest);
  b.integer(static_cast<std::int64_t>(f.limit));
  std::vector<JobRecord> out;
  while (b.step()) out.push_back(read_job(Row(b.stmt())));
  return out;
}

std::vector<AttemptRecord> SqliteStore::job_attempt_list(const JobId& id) {
  // The rows of job_attempts, and a Completed job's last attempt from its own row
  // (writes_attempt_row), in lease order: the order they ran.
  static const std::string sql = fill(R"sql(
    SELECT @ATTEMPT_COLUMNS@ FROM job_attempts WHERE job_id = ?1
    UNION ALL
    SELECT @COMPLETED_ATTEMPT@ FROM jobs
    WHERE id = ?1 AND status = 'Completed' AND worker_id IS NOT NULL AND started_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_attempts a WHERE a.job_id = jobs.id AND a.lease = jobs.lease)
    ORDER BY lease
  )sql");
  return select(sql, read_attempt<Row>, id);
}

}  // namespace ergon::sqlite
