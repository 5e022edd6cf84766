// store/sqlite/sqlite_store.h — the embedded SQLite backend.
//
// One SQLite file in WAL mode, shared safely by several processes on one host: every write
// transaction takes the write lock up front (BEGIN IMMEDIATE, or a single autocommit write
// statement), and busy_timeout makes writers queue for it instead of failing. In this process
// the store uses one connection behind a mutex: SQLite serialises writers anyway, and one
// connection gives the cheapest statements (prepared once, reused).
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

namespace ergon::sqlite {

struct SqliteUrl {
  std::string path;
  std::string synchronous = "FULL";  // OFF | NORMAL | FULL | EXTRA
  int busy_timeout_ms = 5000;
  // mode=ro: for callers that only read (the CLI's listings). The file is opened read-only and
  // nothing is written or created beside it; a file its reader may not write (a read-only file,
  // or one in a read-only directory) can be read.
  bool read_only = false;
};

// "sqlite:PATH[?synchronous=normal&busy_timeout_ms=N&mode=ro|rw]". Throws
// Error(kInvalidArgument).
SqliteUrl parse_sqlite_url(std::string_view url);

// Opens the database file for SqliteStore (sqlite_open.cc). Throws Error: kNotFound for a
// missing file (unless create_if_missing and not read-only), kInvalidArgument for a path that
// is not a database (a device, a directory, a file of another format), kStore otherwise.
sqlite3* open_database(const SqliteUrl& url, bool create_if_missing);

// The methods are split by noun, one file each, as the PostgreSQL store's are: sqlite_store.cc
// has the connection, its statements, the migrations and the reads of jobs (sqlite_open.cc the
// URL and the file); sqlite_enqueue.cc, sqlite_claim.cc, sqlite_outcomes.cc (outcomes and
// fault tolerance), sqlite_workers.cc, sqlite_outbox.cc, sqlite_schedules.cc, sqlite_flow.cc
// (limits and queues) and sqlite_ops.cc (operators' actions) the rest.
class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteUrl& url, Clock& clock, bool create_if_missing);
  ~SqliteStore() override;

  std::string_view backend() const override { return "sqlite"; }
  // Throws Error(kSchema) unless the schema is at this build's version.
  void schema_check();
  // Tests only: EXPLAIN QUERY PLAN of the statements every claim runs, by name ("claim",
  // "claim_fair", "grouped_probe"), each plan's lines joined by newlines.
  std::map<std::string, std::string> TEST_claim_plans();

  // Every other method of Store.
#include "store/store_overrides.inc"

 private:
  // sqlite_internal.h
  class Stmt;
  class WriteTransaction;

  Stmt& prepared(std::string_view sql);  // requires mu_
  void exec(const char* sql);            // requires mu_
  // One of the store's own statements, its parameters bound from `values` in order
  // (bind_values, store/params.h). run() runs it to its end under mu_ and returns how many rows
  // it changed; run_locked() is the same for a caller that holds mu_. select() returns its
  // rows, each read by `read` (a reader of store/rows.h), under mu_; select_one() its first
  // row, if any; each_row() hands each row to `each` until it returns false. Defined in
  // sqlite_internal.h.
  template <class... Values>
  int run(std::string_view sql, const Values&... values);
  template <class... Values>
  int run_locked(std::string_view sql, const Values&... values);
  template <class Read, class... Values>
  auto select(std::string_view sql, Read read, const Values&... values);
  template <class Read, class... Values>
  auto select_one(std::string_view sql, Read read, const Values&... values);
  template <class Each, class... Values>
  void each_row(std::string_view sql, Each each, const Values&... values);
  int schema_version_locked();                    // requires mu_
  JobId insert_locked(const JobInsertParams& p);  // requires mu_
  // The claim of limited types (docs/flow-control.md); require mu_.
  void claim_limited_locked(const JobClaimParams& p, std::vector<JobRecord>& out);
  void claim_type_locked(const JobClaimParams& p, const std::string& type, int room,
                         std::vector<JobRecord>& out);
  void clear_starts_locked(std::string_view job_type);               // requires mu_
  void worker_heartbeat_locked(std::string_view id, TimePoint now);  // requires mu_
  // job_rescue / job_release_worker: `orphans` selects the ids of the Running rows to give back
  // (?1 stale_before, or the worker when `worker_id` is set; ?2 the limit).
  int rescue_locked(std::string_view orphans, const JobRescueParams& p, std::string_view worker_id);
  // One outcome, and its attempt's row when it names one; the caller holds the transaction
  // that both need (requires mu_).
  bool finish_locked(const JobFinishParams& p);

  std::mutex mu_;
  int busy_timeout_ms_ = 5000;
  sqlite3* db_ = nullptr;                                            // guarded by mu_
  std::map<std::string, std::unique_ptr<Stmt>, std::less<>> stmts_;  // guarded by mu_
};

}  // namespace ergon::sqlite
