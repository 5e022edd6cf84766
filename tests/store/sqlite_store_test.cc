#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <set>
#include <sstream>

#include "ergon/job_runner.h"
#include "store/sqlite/sqlite_migrations.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

const StoreBackend kSqlite{"sqlite", [](const TempDir& dir, Clock& clock) {
                             return open_store(sqlite_url(dir), {.clock = &clock});
                           }};
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformance, ::testing::Values(kSqlite),
                         [](const auto& param_info) { return param_info.param.name; });
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreOps, ::testing::Values(kSqlite),
                         [](const auto& param_info) { return param_info.param.name; });

struct Note {
  static constexpr std::string_view kJobType = "note";
  std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Note, text)

// The application's own connection to the same file, for the unit-of-work tests.
class AppConnection {
 public:
  explicit AppConnection(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
    exec("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)");
  }
  ~AppConnection() { sqlite3_close(db_); }
  void exec(const char* sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  FakeClock clock_{test_epoch()};
};

TEST_F(SqliteStoreTest, RolledBackTransactionalEnqueueLeavesNoJob) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  AppConnection app(dir_.file("jobs.db"));
  app.exec("BEGIN");
  app.exec("INSERT INTO orders (item) VALUES ('book')");
  JobId id = runner.start_job(app.get(), Note{"order placed"});
  // Not visible to anyone else before the caller commits: Ergon did not commit for it.
  EXPECT_FALSE(runner.get_job(id));
  app.exec("ROLLBACK");
  EXPECT_FALSE(runner.get_job(id));
  EXPECT_TRUE(runner.list_jobs().empty());
}

TEST_F(SqliteStoreTest, CommittedTransactionalEnqueueIsAPendingJob) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  AppConnection app(dir_.file("jobs.db"));
  app.exec("BEGIN");
  app.exec("INSERT INTO orders (item) VALUES ('book')");
  JobId id = runner.start_job(app.get(), Note{"order placed"});
  app.exec("COMMIT");
  auto job = runner.get_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, JobStatus::kPending);
  EXPECT_EQ(job->job_data, R"({"text":"order placed"})");
}

TEST_F(SqliteStoreTest, TransactionalEnqueueRefusesAConnectionWithoutATransaction) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  AppConnection app(dir_.file("jobs.db"));
  try {
    runner.start_job(app.get(), Note{"x"});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNoTransaction);
  }
  EXPECT_TRUE(runner.list_jobs().empty());
}

TEST_F(SqliteStoreTest, TransactionalEnqueueOnADatabaseWithoutTheSchemaSaysSo) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  AppConnection other(dir_.file("other.db"));
  other.exec("BEGIN");
  try {
    runner.start_job(other.get(), Note{"x"});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSchema);
  }
  other.exec("ROLLBACK");
}

TEST_F(SqliteStoreTest, StartJobRejectsBadInputAndWritesNothing) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  EXPECT_THROW(runner.start_job_raw("t", "{not json"), Error);
  EXPECT_THROW(runner.start_job_raw("", "{}"), Error);
  EXPECT_THROW(runner.start_job_raw(std::string(300, 't'), "{}"), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.max_attempts = 0}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.delay = -1s}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.run_at = clock_.now(), .delay = 1s}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.queue = ""}), Error);
  EXPECT_TRUE(runner.list_jobs().empty());
}

// The operators' actions as an application calls them: unknown ids are kNotFound, a job in
// the wrong state is false, and every action leaves the others alone.
TEST_F(SqliteStoreTest, RunnerRetriesDeletesCountsPurgesAndAudits) {
  auto store = open_store(sqlite_url(dir_), {.clock = &clock_});
  JobRunner runner(store);
  JobId unknown = JobId::generate(clock_.now());
  EXPECT_THROW(runner.retry_job(unknown), Error);
  EXPECT_THROW(runner.delete_job(unknown), Error);

  JobId a = runner.start_job_raw("t", "{}");
  JobId b = runner.start_job_raw("t", "{}", {.queue = "mail"});
  EXPECT_FALSE(runner.retry_job(a));  // Pending
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);
  EXPECT_TRUE(runner.retry_job(a));
  EXPECT_EQ(runner.get_job(a)->status, JobStatus::kPending);
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);

  auto counts = runner.job_counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].queue, "default");
  EXPECT_EQ(counts[0].status, JobStatus::kCancelled);
  EXPECT_EQ(counts[1].queue, "mail");
  EXPECT_EQ(counts[1].oldest_due_run_at, clock_.now());

  EXPECT_EQ(runner.retry_jobs({.status = JobStatus::kCancelled}), 1);
  ASSERT_EQ(runner.cancel(a), CancelOutcome::kCancelled);
  EXPECT_THROW(runner.purge_jobs(JobStatus::kPending, 1h), Error);
  EXPECT_THROW(runner.purge_jobs(JobStatus::kCancelled, 1h, 0), Error);
  EXPECT_EQ(runner.purge_jobs(JobStatus::kCancelled, 1h), 0);
  clock_.advance(2h);
  EXPECT_EQ(runner.purge_jobs(JobStatus::kCancelled, 1h, 1), 1);
  EXPECT_FALSE(runner.get_job(a));
  EXPECT_EQ(runner.delete_jobs({.queue = "mail"}), 1);
  EXPECT_FALSE(runner.get_job(b));

  runner.audit("app:test", "retry", a.to_string(), "by hand");
  auto log = runner.list_audit();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].actor, "app:test");
  EXPECT_EQ(log[0].at, clock_.now());
  EXPECT_THROW((void)runner.list_audit(0), Error);
}

TEST_F(SqliteStoreTest, OpeningAMissingFileWithoutCreateFails) {
  try {
    open_store("sqlite:" + dir_.file("missing.db"), {.create_if_missing = false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.file("missing.db")));
}

TEST_F(SqliteStoreTest, OpeningWithoutMigrateNeedsTheSchema) {
  // An empty SQLite file: no Ergon schema.
  { AppConnection app(dir_.file("empty.db")); }
  try {
    open_store("sqlite:" + dir_.file("empty.db"), {.migrate = false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSchema);
    EXPECT_NE(std::string(e.what()).find("ergon migrate"), std::string::npos);
  }
  open_store("sqlite:" + dir_.file("empty.db"));  // migrates
  EXPECT_NO_THROW(open_store("sqlite:" + dir_.file("empty.db"), {.migrate = false}));
}

TEST_F(SqliteStoreTest, RefusesASchemaNewerThanThisBuild) {
  open_store(sqlite_url(dir_));
  {
    AppConnection app(dir_.file("jobs.db"));
    app.exec("INSERT INTO ergon_schema_migrations VALUES (999, 'x')");
  }
  try {
    open_store(sqlite_url(dir_));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSchema);
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos);
  }
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

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// SQLite's planner has no statistics unless someone runs ANALYZE, and Ergon never does. Without
// them it guessed that `status = 'Pending'` on jobs_status_idx finds a handful of rows and read
// the whole backlog that way, sorting it on every claim (the 20,000-job burn-down ran at about
// 1,000 jobs/s instead of 7,700). The claims name their indexes; this holds them to it.
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

// Several processes claim from one file at once: each job is handed out exactly once.
TEST_F(SqliteStoreTest, ClaimsFromSeveralProcessesNeverOverlap) {
  constexpr int kJobs = 600;
  auto store = open_store(sqlite_url(dir_));
  JobRunner runner(store);
  for (int i = 0; i < kJobs; ++i) runner.start_job(Note{std::to_string(i)});
  std::vector<std::thread> procs;
  std::vector<ProcessResult> results(4);
  for (int p = 0; p < 4; ++p) {
    procs.emplace_back([&, p] {
      results[p] =
          run_process({STORE_HELPER, "claim", sqlite_url(dir_), "proc" + std::to_string(p)});
    });
  }
  for (auto& t : procs) t.join();
  std::multiset<std::string> all;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    for (auto& l : lines(r.out)) all.insert(l);
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), static_cast<std::size_t>(kJobs));
}

// Several processes enqueue with one unique key at once: exactly one job exists, and every
// enqueue returned its id.
TEST_F(SqliteStoreTest, AUniqueKeyHoldsAcrossProcesses) {
  auto store = open_store(sqlite_url(dir_));
  std::vector<std::thread> procs;
  std::vector<ProcessResult> results(4);
  for (int p = 0; p < 4; ++p) {
    procs.emplace_back([&, p] {
      results[p] = run_process({STORE_HELPER, "unique", sqlite_url(dir_), "invoice-42", "25"});
    });
  }
  for (auto& t : procs) t.join();
  std::set<std::string> ids;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    auto l = lines(r.out);
    EXPECT_EQ(l.size(), 25u);
    ids.insert(l.begin(), l.end());
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(store->job_list({}).size(), 1u);
}

// Migration 9 rewrites jobs' CHECK on status in place (writable_schema) and rebuilds
// jobs_finished_idx: a file that was at version 8, with jobs in it, keeps every row, passes
// integrity_check, still refuses a status outside the five, and prunes through the index.
TEST_F(SqliteStoreTest, UpgradingFromVersion8KeepsTheJobsAndTheStatusCheck) {
  const std::string path = dir_.file("v8.db");
  {
    AppConnection app(path);
    app.exec("CREATE TABLE ergon_schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)");
    for (const auto& m : sqlite::migrations()) {
      if (m.version > 8) break;
      app.exec(m.sql);
      app.exec(
          ("INSERT INTO ergon_schema_migrations VALUES (" + std::to_string(m.version) + ", 'x')")
              .c_str());
    }
    app.exec(
        "INSERT INTO jobs (id, job_type, job_data, status, created_at, run_at, completed_at) "
        "VALUES ('00000000-0000-7000-8000-000000000001', 'note', '{}', 'Pending', "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', NULL), "
        "('00000000-0000-7000-8000-000000000002', 'note', '{}', 'Completed', "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', "
        "'2026-01-01T00:00:01.000000Z')");
  }
  auto store = open_store("sqlite:" + path, {.clock = &clock_});  // migrates to the latest
  EXPECT_EQ(store->job_list({}).size(), 2u);

  AppConnection app(path);
  auto one_text = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(app.get(), sql, -1, &s, nullptr), SQLITE_OK) << sql;
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
  EXPECT_EQ(sqlite3_exec(app.get(),
                         "UPDATE jobs SET status = 'Done' WHERE id = "
                         "'00000000-0000-7000-8000-000000000001'",
                         nullptr, nullptr, &err),
            SQLITE_CONSTRAINT);
  EXPECT_NE(std::string(err ? err : "").find("CHECK constraint failed"), std::string::npos);
  sqlite3_free(err);
  std::multiset<JobStatus> statuses;
  for (const auto& j : store->job_list({})) statuses.insert(j.status);
  EXPECT_EQ(statuses, (std::multiset<JobStatus>{JobStatus::kPending, JobStatus::kCompleted}));

  // The prune reads jobs_finished_idx (the old index's predicate hid it from the planner).
  std::string plan = one_text(
      "EXPLAIN QUERY PLAN DELETE FROM jobs WHERE id IN (SELECT id FROM jobs "
      "WHERE status = 'Completed' AND completed_at < '2026-02-01' LIMIT 10)");
  EXPECT_NE(plan.find("jobs_finished_idx"), std::string::npos) << plan;
  EXPECT_EQ(store->job_prune(JobStatus::kCompleted, clock_.now(), 10), 1);
  EXPECT_EQ(store->job_list({}).size(), 1u);
}

// Several processes migrate a new file at once: exactly one applies each migration.
TEST_F(SqliteStoreTest, ConcurrentMigrationsApplyEachVersionOnce) {
  std::string url = "sqlite:" + dir_.file("fresh.db");
  { AppConnection app(dir_.file("fresh.db")); }  // the file exists, the schema does not
  std::vector<std::thread> procs;
  std::vector<ProcessResult> results(4);
  for (int p = 0; p < 4; ++p) {
    procs.emplace_back([&, p] { results[p] = run_process({STORE_HELPER, "migrate", url}); });
  }
  for (auto& t : procs) t.join();
  int applied = 0;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    applied += static_cast<int>(lines(r.out).size());
  }
  EXPECT_EQ(applied, static_cast<int>(sqlite::migrations().size()));
}

}  // namespace
}  // namespace ergon::testing
