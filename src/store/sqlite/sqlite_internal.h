// store/sqlite/sqlite_internal.h — what the SQLite store's files share: errors, reading
// columns (the Row that store/rows.h reads records from), binding parameters (the Binder that
// store/params.h binds statements' parameters to), the prepared statement and the write
// transaction, and how statement text names the parts it shares. Included only by
// src/store/sqlite/*.cc.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ergon/error.h"
#include "store/params.h"
#include "store/rows.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

// Throws the connection's error: Error(kSchema) for a missing table (the schema was never
// created on this database), Error(kStore) otherwise.
[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what);

// ---- Statement text ------------------------------------------------------------------------
//
// Every statement is a raw string literal in the file of its noun, as on PostgreSQL. A part
// that several statements share is one named constant, written in them as a named hole
// (@NAME@) and filled once, when the statement's constant is built; a hole's SQL may hold
// others. Only the condition of a JobFilter (@FILTER@, filter_where) is filled at each call: it
// depends on the filter.

// Named holes of a statement (@NAME@, given without the @s) and the SQL that fills each.
using Holes = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// `sql` with each hole filled: the columns of a record's row (@JOB_COLUMNS@,
// @SCHEDULE_COLUMNS@, @WORKER_COLUMNS@, @AUDIT_COLUMNS@, @ATTEMPT_COLUMNS@: store/rows.h), holes
// every statement may name, and those of `holes`. Throws std::logic_error for a hole it has no SQL
// for: a mistake in a statement fails when its constant is built, not when it first runs.
std::string fill(std::string_view sql, Holes holes = {});

// ---- Lists of text --------------------------------------------------------------------------

// A list of text as SQLite keeps one (a job's tags, a claim's queues): a JSON array.
std::string text_list_json(std::span<const std::string> values);
// Error(kStore) for text that is not a JSON array of strings.
std::vector<std::string> parse_text_list(std::string_view json);

// ---- Reading columns -----------------------------------------------------------------------

inline std::string text_column(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

inline std::optional<std::string> opt_text(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return text_column(s, col);
}

inline TimePoint time_column(sqlite3_stmt* s, int col) {
  auto t = parse_timestamp(text_column(s, col));
  if (!t) throw Error(ErrorCode::kStore, "malformed timestamp in the database");
  return *t;
}

inline std::optional<TimePoint> opt_time(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return time_column(s, col);
}

// The current row of a statement, read column by column (the Row of store/rows.h).
class Row {
 public:
  explicit Row(sqlite3_stmt* s) : s_(s) {}

  bool skip_null() {
    if (sqlite3_column_type(s_, col_) != SQLITE_NULL) return false;
    ++col_;
    return true;
  }
  std::string text() { return text_column(s_, col_++); }
  std::string json() { return text(); }  // stored as text
  std::vector<std::string> text_list() { return parse_text_list(text()); }
  int int32() { return sqlite3_column_int(s_, col_++); }
  std::int64_t int64() { return sqlite3_column_int64(s_, col_++); }
  bool boolean() { return int32() != 0; }
  TimePoint time() { return time_column(s_, col_++); }
  // Stored as text; `what` names one that does not parse.
  JobId uuid(std::string_view what) {
    auto id = JobId::parse(text());
    if (!id) throw Error(ErrorCode::kStore, "malformed " + std::string(what) + " in the database");
    return *id;
  }

 private:
  sqlite3_stmt* s_;
  int col_ = 0;
};

// ---- Statements ----------------------------------------------------------------------------

// A prepared statement, reset after every use so that it holds no read lock between calls.
// `flags`: SQLITE_PREPARE_PERSISTENT for the store's own, which are kept (prepared()); 0 for
// one used once, on the caller's connection. `what` names a failure.
class SqliteStore::Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql, unsigned flags = SQLITE_PREPARE_PERSISTENT,
       std::string_view what = "prepare") {
    int rc =
        sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, what);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

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
  Binder& boolean(bool v) { return integer(static_cast<std::int64_t>(v)); }
  Binder& text_list(std::span<const std::string> values) { return text(text_list_json(values)); }
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

template <class... Values>
int SqliteStore::run_locked(std::string_view sql, const Values&... values) {
  Binder b(db_, prepared(sql).get());
  bind_values(b, values...);
  b.run();
  return sqlite3_changes(db_);
}

template <class... Values>
int SqliteStore::run(std::string_view sql, const Values&... values) {
  std::lock_guard lock(mu_);
  return run_locked(sql, values...);
}

template <class Each, class... Values>
void SqliteStore::each_row(std::string_view sql, Each each, const Values&... values) {
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  bind_values(b, values...);
  while (b.step() && each(Row(b.stmt()))) {
  }
}

template <class Read, class... Values>
auto SqliteStore::select(std::string_view sql, Read read, const Values&... values) {
  std::vector<std::invoke_result_t<Read, Row>> out;
  auto keep = [&](Row&& row) {
    out.push_back(read(std::move(row)));
    return true;  // and the next
  };
  each_row(sql, keep, values...);
  return out;
}

template <class Read, class... Values>
auto SqliteStore::select_one(std::string_view sql, Read read, const Values&... values) {
  std::optional<std::invoke_result_t<Read, Row>> out;
  auto keep = [&](Row&& row) {
    out = read(std::move(row));
    return false;  // and no more
  };
  each_row(sql, keep, values...);
  return out;
}

// One write transaction on the store's connection, rolled back unless commit() is reached.
// BEGIN IMMEDIATE takes the write lock before the first read, so busy_timeout queues this
// writer behind other processes' instead of failing it halfway. Requires mu_.
class SqliteStore::WriteTransaction {
 public:
  explicit WriteTransaction(SqliteStore& store) : store_(store) { store_.exec("BEGIN IMMEDIATE"); }
  ~WriteTransaction() {
    if (open_) sqlite3_exec(store_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  void commit() {
    store_.exec("COMMIT");
    open_ = false;
  }
  // Ends it now, reporting a failure (the destructor ignores one).
  void rollback() {
    store_.exec("ROLLBACK");
    open_ = false;
  }

 private:
  SqliteStore& store_;
  bool open_ = true;
};

// The connection of a *_tx method. The caller's transaction is theirs: Ergon writes inside it
// and never commits. Writing on a connection in autocommit mode would commit at once, which is
// exactly what the twin must not do, so one is refused: Error(kNoTransaction, no_transaction).
sqlite3* caller_connection(const NativeConnection& native, std::string_view backend,
                           const char* no_transaction);

// ---- Filters -------------------------------------------------------------------------------

// Throws Error(kInvalidArgument) unless 1 <= limit <= 10000.
void check_limit(int limit);

// The condition of a JobFilter (limit aside): "1" and one "AND ..." per set field, with plain ?
// placeholders that bind_filter fills in the same order. The text depends only on which fields
// are set, so prepared() keeps one statement per shape. Checks the filter (check_filter).
std::string filter_where(const JobFilter& f);
void bind_filter(Binder& b, const JobFilter& f);

}  // namespace ergon::sqlite
