// Test support for PostgreSQL: the test server, throwaway schemas, and a plain libpq connection
// for a test's own SQL (setting up, inspecting, killing connections).
//
// scripts/test.sh starts one throwaway cluster (scripts/pg-test-cluster.sh) for the whole run
// and exports its URL as ERGON_TEST_POSTGRES_URL. Tests that need a server GTEST_SKIP() when it
// is unset, so a developer without a cluster still runs everything else. Each test works in a
// schema of its own (`?schema=t_<random>`), dropped at the end.
#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <vector>

namespace ergon::testing {

inline constexpr const char* kNoPostgres =
    "ERGON_TEST_POSTGRES_URL is not set: start a cluster with scripts/pg-test-cluster.sh (or "
    "run scripts/test.sh) to run the PostgreSQL tests";

// ERGON_TEST_POSTGRES_URL, or "" when unset.
std::string pg_test_server_url();

// A fresh schema name, "t_" and 16 random hex digits.
std::string pg_random_schema();

// `url` with the query parameter `param` ("key=value") appended.
std::string pg_url_with(const std::string& url, const std::string& param);

// Drops `schema` and everything in it, if it exists.
void pg_drop_schema(const std::string& server_url, const std::string& schema);

// A libpq connection for the test's own SQL. Failures are reported as test failures.
class PgTestConnection {
 public:
  explicit PgTestConnection(const std::string& url);
  ~PgTestConnection();
  PgTestConnection(const PgTestConnection&) = delete;
  PgTestConnection& operator=(const PgTestConnection&) = delete;

  [[nodiscard]] PGconn* get() const { return conn_; }
  // Runs `sql` (one or more statements); false (and the error in last_error()) on failure.
  bool exec(const std::string& sql);
  // Runs one query; its rows as text, NULL as std::nullopt. A failure fails the test.
  std::vector<std::vector<std::optional<std::string>>> query(const std::string& sql);
  // The first column of the first row, or "" (for one-value queries).
  std::string value(const std::string& sql);
  [[nodiscard]] const std::string& last_error() const { return last_error_; }

 private:
  PGconn* conn_ = nullptr;
  std::string last_error_;
};

// A schema name for one test, dropped (with everything in it) when the object is destroyed.
// The schema itself is created by whatever migrates it.
class PgTestSchema {
 public:
  explicit PgTestSchema(std::string server_url);
  ~PgTestSchema();
  PgTestSchema(const PgTestSchema&) = delete;
  PgTestSchema& operator=(const PgTestSchema&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  // The server URL with ?schema=NAME.
  [[nodiscard]] std::string url() const { return pg_url_with(server_url_, "schema=" + name_); }

 private:
  std::string server_url_;
  std::string name_;
};

}  // namespace ergon::testing
