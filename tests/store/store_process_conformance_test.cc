// Several processes on one database (store_helper, started by the test): claims, unique keys
// and migrations never overlap. And opening a database: without migrating, a store needs the
// schema, and no store opens a schema newer than its build.
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "store_conformance.h"

namespace ergon::testing {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Runs `n` store_helper processes at once, the i-th with the arguments args(i); their results.
std::vector<ProcessResult> run_helpers(int n,
                                       const std::function<std::vector<std::string>(int)>& args) {
  std::vector<std::thread> procs;
  std::vector<ProcessResult> results(static_cast<std::size_t>(n));
  for (int p = 0; p < n; ++p) {
    std::vector<std::string> argv{STORE_HELPER};
    for (auto& a : args(p)) argv.push_back(std::move(a));
    procs.emplace_back([&results, p, argv = std::move(argv)] {
      results[static_cast<std::size_t>(p)] = run_process(argv);
    });
  }
  for (auto& t : procs) t.join();
  return results;
}

// Several processes claim from one database at once: each job is handed out exactly once.
TEST_P(StoreConformance, ClaimsFromSeveralProcessesNeverOverlap) {
  constexpr int kJobs = 600;
  // The helpers run on the system clock (on PostgreSQL the database clock then decides what is
  // due): enqueue on it too.
  JobRunner runner(backend_->open(Clock::system()));
  runner.start_jobs_raw("note", std::vector<std::string>(kJobs, R"({"text":"x"})"));
  auto results = run_helpers(4, [&](int p) {
    return std::vector<std::string>{"claim", backend_->url(), "proc" + std::to_string(p)};
  });
  std::multiset<std::string> all;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    for (auto& l : lines(r.out)) all.insert(l);
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), static_cast<std::size_t>(kJobs));
}

// Several processes enqueue with one unique key at once: exactly one job exists, and every
// enqueue returned its id (on PostgreSQL: ON CONFLICT on the partial unique index, and the
// holder's look-up).
TEST_P(StoreConformance, AUniqueKeyHoldsAcrossProcesses) {
  auto results = run_helpers(4, [&](int) {
    return std::vector<std::string>{"unique", backend_->url(), "invoice-42", "25"};
  });
  std::set<std::string> ids;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    auto l = lines(r.out);
    EXPECT_EQ(l.size(), 25u);
    ids.insert(l.begin(), l.end());
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(store_->job_list({}).size(), 1u);
}

// Several processes migrate a fresh database at once: exactly one applies each migration
// (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
TEST_P(StoreConformance, ConcurrentMigrationsApplyEachVersionOnce) {
  // A database without the schema: on SQLite connecting creates the file.
  { auto app = backend_->connect("fresh"); }
  auto results = run_helpers(4, [&](int) {
    return std::vector<std::string>{"migrate", backend_->url("fresh")};
  });
  std::size_t applied = 0;
  for (auto& r : results) {
    ASSERT_EQ(r.status, 0) << r.err;
    applied += lines(r.out).size();
  }
  EXPECT_EQ(applied, backend_->migration_count());
  EXPECT_EQ(backend_->connect("fresh")->value("SELECT count(*) FROM ergon_schema_migrations"),
            std::to_string(backend_->migration_count()));
}

TEST_P(StoreConformance, OpeningWithoutMigrateNeedsTheSchemaAndRefusesANewerOne) {
  auto app = backend_->connect("empty");  // a database without Ergon's schema
  const std::string url = backend_->url("empty");
  try {
    open_store(url, {.clock = &clock_, .migrate = false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSchema);
    EXPECT_NE(std::string(e.what()).find("ergon migrate"), std::string::npos) << e.what();
  }
  open_store(url, {.clock = &clock_});  // migrates
  EXPECT_NO_THROW(open_store(url, {.clock = &clock_, .migrate = false}));
  ASSERT_TRUE(
      app->exec("INSERT INTO ergon_schema_migrations (version, applied_at) "
                "VALUES (999, '2026-01-01T00:00:00Z')"))
      << app->last_error();
  for (bool migrate : {true, false}) {
    try {
      open_store(url, {.clock = &clock_, .migrate = migrate});
      ADD_FAILURE() << "migrate = " << migrate;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kSchema);
      EXPECT_NE(std::string(e.what()).find("newer than this build"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ergon::testing
