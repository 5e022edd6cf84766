// The stores a test runs on, and what differs between them beyond the Store seam: where a
// test's databases are (the URL a child process opens), the application's own connection to
// them (for the transactional twins), and whether a commit on that connection wakes workers.
//
// A parametrized fixture takes a StoreBackend as its parameter, calls make() in SetUp and
// keeps the TestBackend for the test's length, declared before any store it opens (the
// PostgreSQL backend drops its schemas when destroyed, so its stores must be gone by then).
//   SQLite (sqlite_test_backend.cc): files in the test's TempDir, always available.
//   PostgreSQL (pg_test_backend.cc, links libpq and pg_test_db.cc): a schema of its own per
//   database name on the ERGON_TEST_POSTGRES_URL server; without that server make() skips
//   the test (GTEST_SKIP) and returns nullptr.
// A TestBackend may be used from any thread; an AppConnection from one thread at a time.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ergon/job.h"
#include "ergon/job_runner.h"
#include "ergon/store.h"
#include "support/test_support.h"

struct sqlite3;  // <sqlite3.h>
struct pg_conn;  // PGconn of <libpq-fe.h>

namespace ergon::testing {

// The application's own connection to one of the test's databases, as an application that
// writes its own rows and Ergon's job in one transaction holds it. Exactly one of sqlite()
// and postgres() is set. On PostgreSQL the connection's search_path is the test's schema, so
// the test's own tables need no schema name.
class AppConnection {
 public:
  virtual ~AppConnection() = default;
  // Runs `sql` (one or more statements); false, with the error in last_error(), on failure.
  virtual bool exec(const std::string& sql) = 0;
  // The first column of the first row of one query, or "" (a failure fails the test).
  virtual std::string value(const std::string& sql) = 0;
  // Begins a transaction. On SQLite BEGIN IMMEDIATE: it takes the write lock at once, so the
  // store's own writers wait for it (busy_timeout) instead of failing it halfway.
  virtual bool begin() = 0;
  // Whether a transaction is open (and, on PostgreSQL, not failed).
  [[nodiscard]] virtual bool in_transaction() = 0;
  [[nodiscard]] virtual sqlite3* sqlite() { return nullptr; }
  [[nodiscard]] virtual pg_conn* postgres() { return nullptr; }
  [[nodiscard]] const std::string& last_error() const { return last_error_; }

 protected:
  std::string last_error_;
};

// JobRunner::start_job_raw(conn, ...) on the application's connection: the public API's
// transactional enqueue, on whichever backend `conn` is.
JobId start_job_tx(JobRunner& runner, AppConnection& conn, std::string_view job_type,
                   std::string_view job_data, const JobOptions& options = {});
template <class T>
JobId start_job_tx(JobRunner& runner, AppConnection& conn, const T& job,
                   const JobOptions& options = {}) {
  return start_job_tx(runner, conn, T::kJobType, nlohmann::json(job).dump(), options);
}
// JobContext::complete_in_transaction(conn) on the application's connection.
void complete_in_transaction(JobContext& ctx, AppConnection& conn);

// One test's databases on one backend. Databases are named ("jobs" unless a test needs more);
// the same name is the same database, whichever store or process opens it.
class TestBackend {
 public:
  virtual ~TestBackend() = default;
  // The URL of database `db`: what open_store and a child process (store_helper) open.
  [[nodiscard]] virtual std::string url(const std::string& db = "jobs") = 0;
  // The application's own connection to database `db`. On SQLite this creates the file; on
  // PostgreSQL it creates nothing (the schema appears when a store migrates it).
  [[nodiscard]] virtual std::unique_ptr<AppConnection> connect(const std::string& db = "jobs") = 0;
  // Whether a commit on an AppConnection wakes the workers (PostgreSQL queues a pg_notify in
  // the caller's transaction). SQLite's transactional twins notify nothing: callers notify
  // after committing (ARCHITECTURE.md, "Decisions").
  [[nodiscard]] virtual bool notifies_on_commit() const = 0;
  // Waits until `store` hears what other connections commit (PostgreSQL: its LISTEN runs);
  // true at once where nothing is listened for.
  [[nodiscard]] virtual bool wait_listening(Store& store) = 0;
  // How many migrations this build has for the backend.
  [[nodiscard]] virtual std::size_t migration_count() const = 0;
  // Gives database `db` Ergon's schema as an older build left it, the starting point of an
  // upgrade test: the migrations numbered up to `version` applied and recorded, no later one.
  virtual void migrate_through(int version, const std::string& db = "jobs") = 0;

  // A store on database `db`, migrated, with `clock` (which outlives it). Another call: another
  // store, with connections of its own, as another process would have.
  std::shared_ptr<Store> open(Clock& clock, const std::string& db = "jobs") {
    return open_store(url(db), {.clock = &clock});
  }
};

struct StoreBackend {
  std::string name;
  // A backend for one test, its SQLite files in `dir` (which outlives it); nullptr when it
  // cannot run here, after GTEST_SKIP() has said why.
  std::function<std::unique_ptr<TestBackend>(const TempDir& dir)> make;
};

StoreBackend sqlite_backend();
StoreBackend postgres_backend();

// For a suite every store runs: INSTANTIATE_TEST_SUITE_P(Stores, Suite, every_backend(),
// backend_name). Links sqlite_test_backend.cc and pg_test_backend.cc.
inline auto every_backend() { return ::testing::Values(sqlite_backend(), postgres_backend()); }

// For INSTANTIATE_TEST_SUITE_P: the parameter's name ("sqlite", "postgres").
inline std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}
// How gtest prints the parameter of a failed test.
inline void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

}  // namespace ergon::testing
