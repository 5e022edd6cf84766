// The SQLite store: the conformance suite, then what only SQLite has (files, URLs, its
// planner without statistics, migrations that rewrite a table in place).
#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <set>

#include "ergon/job_runner.h"
#include "store/sqlite/sqlite_migrations.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformance, ::testing::Values(sqlite_backend()),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreOps, ::testing::Values(sqlite_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreHistory, ::testing::Values(sqlite_backend()), backend_name);

class SqliteStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  FakeClock clock_{test_epoch()};
};

TEST_F(SqliteStoreTest, OpeningAMissingFileWithoutCreateFails) {
  try {
    open_store("sqlite:" + dir_.file("missing.db"), {.create_if_missing = false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.file("missing.db")));
}

TEST_F(SqliteStoreTest, ParsesUrls) {
  auto u = sqlite::parse_sqlite_url("sqlite:/tmp/a.db?synchronous=normal&busy_timeout_ms=10");
  EXPECT_EQ(u.path, "/tmp/a.db");
  EXPECT_EQ(u.synchronous, "NORMAL");
  EXPECT_EQ(u.busy_timeout_ms, 10);
  EXPECT_EQ(sqlite::parse_sqlite_url("sqlite:rel.db").path, "rel.db");
  EXPECT_EQ(sqlite::parse_sqlite_url("sqlite:rel.db").synchronous, "FULL");
  EXPECT_FALSE(sqlite::parse_sqlite_url("sqlite:rel.db").read_only);
  EXPECT_TRUE(sqlite::parse_sqlite_url("sqlite:rel.db?mode=rw&mode=ro").read_only);
  for (const char* bad :
       {"sqlite:", "sqlite:a.db?synchronous=fast", "sqlite:a.db?busy_timeout_ms=x",
        "sqlite:a.db?journal=wal", "sqlite:a.db?mode=readonly", "mysql://x"}) {
    EXPECT_THROW(sqlite::parse_sqlite_url(bad), Error) << bad;
  }
  EXPECT_THROW(open_store("redis://localhost"), Error);
}

// SQLite's planner has no statistics unless someone runs ANALYZE, and Ergon never does. Without
// them it guessed that `status = 'Pending'` on jobs_status_idx finds a handful of rows and read
// the whole backlog that way, sorting it on every claim (a 20,000-job burn-down runs seven times
// slower that way). The claims name their indexes; this holds them to it.
TEST_F(SqliteStoreTest, ClaimsReadTheirIndexesInOrderWithoutStatistics) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  runner.start_jobs_raw("note", std::vector<std::string>(2000, R"({"text":"x"})"));
  JobOptions grouped;
  grouped.group_key = "tenant-1";
  runner.start_jobs_raw("note", std::vector<std::string>(200, R"({"text":"x"})"), grouped);
  auto* sqlite = dynamic_cast<sqlite::SqliteStore*>(store.get());
  ASSERT_NE(sqlite, nullptr);
  auto plans = sqlite->TEST_claim_plans();
  ASSERT_EQ(plans.size(), 3u);
  for (const auto& [name, plan] : plans) {
    EXPECT_EQ(plan.find("jobs_status_idx"), std::string::npos) << name << ":\n" << plan;
  }
  EXPECT_NE(plans["claim"].find("jobs_claim_idx"), std::string::npos) << plans["claim"];
  EXPECT_EQ(plans["claim"].find("TEMP B-TREE"), std::string::npos) << plans["claim"];
  EXPECT_NE(plans["grouped_probe"].find("jobs_group_claim_idx"), std::string::npos)
      << plans["grouped_probe"];
  EXPECT_NE(plans["claim_fair"].find("jobs_claim_idx"), std::string::npos) << plans["claim_fair"];
  EXPECT_NE(plans["claim_fair"].find("jobs_group_claim_idx"), std::string::npos)
      << plans["claim_fair"];
}

// Migration 9 rewrites jobs' CHECK on status in place (writable_schema) and rebuilds
// jobs_finished_idx: a file that was at version 8, with jobs in it, keeps every row, passes
// integrity_check, still refuses a status outside the five, and prunes through the index.
TEST_F(SqliteStoreTest, UpgradingFromVersion8KeepsTheJobsAndTheStatusCheck) {
  auto backend = sqlite_backend().make(dir_);
  {
    auto app = backend->connect("v8");
    auto exec = [&](const std::string& sql) { ASSERT_TRUE(app->exec(sql)) << app->last_error(); };
    exec("CREATE TABLE ergon_schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)");
    for (const auto& m : sqlite::migrations()) {
      if (m.version > 8) break;
      exec(m.sql);
      exec("INSERT INTO ergon_schema_migrations VALUES (" + std::to_string(m.version) + ", 'x')");
    }
    exec(
        "INSERT INTO jobs (id, job_type, job_data, status, created_at, run_at, completed_at) "
        "VALUES ('00000000-0000-7000-8000-000000000001', 'note', '{}', 'Pending', "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', NULL), "
        "('00000000-0000-7000-8000-000000000002', 'note', '{}', 'Completed', "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', "
        "'2026-01-01T00:00:01.000000Z')");
  }
  auto store = backend->open(clock_, "v8");  // migrates to the latest
  EXPECT_EQ(store->job_list({}).size(), 2u);

  auto app = backend->connect("v8");
  auto one_text = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(app->sqlite(), sql, -1, &s, nullptr), SQLITE_OK) << sql;
    std::string out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(s, sqlite3_column_count(s) - 1));
      out += "\n";
    }
    sqlite3_finalize(s);
    return out;
  };
  EXPECT_EQ(one_text("PRAGMA integrity_check"), "ok\n");
  std::string table = one_text("SELECT sql FROM sqlite_schema WHERE name = 'jobs'");
  EXPECT_NE(table.find("CHECK (status = 'Pending' OR status = 'Running' OR status = 'Completed' "
                       "OR status = 'Failed' OR status = 'Cancelled')"),
            std::string::npos)
      << table;
  EXPECT_EQ(table.find("status IN"), std::string::npos) << table;

  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(app->sqlite(),
                         "UPDATE jobs SET status = 'Done' WHERE id = "
                         "'00000000-0000-7000-8000-000000000001'",
                         nullptr, nullptr, &err),
            SQLITE_CONSTRAINT);
  EXPECT_NE(std::string(err ? err : "").find("CHECK constraint failed"), std::string::npos);
  sqlite3_free(err);
  std::multiset<JobStatus> statuses;
  for (const auto& j : store->job_list({})) statuses.insert(j.status);
  EXPECT_EQ(statuses, (std::multiset<JobStatus>{JobStatus::kPending, JobStatus::kCompleted}));

  // The prune reads jobs_finished_idx (a predicate on status IN (...) would hide it from the
  // planner).
  std::string plan = one_text(
      "EXPLAIN QUERY PLAN DELETE FROM jobs WHERE id IN (SELECT id FROM jobs "
      "WHERE status = 'Completed' AND completed_at < '2026-02-01' LIMIT 10)");
  EXPECT_NE(plan.find("jobs_finished_idx"), std::string::npos) << plan;
  EXPECT_EQ(store->job_prune(JobStatus::kCompleted, clock_.now(), 10), 1);
  EXPECT_EQ(store->job_list({}).size(), 1u);
}

}  // namespace
}  // namespace ergon::testing
