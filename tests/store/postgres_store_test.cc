// The PostgreSQL store against a real server: the conformance suite, then what only PostgreSQL
// has (a failed transaction of the application's, LISTEN/NOTIFY, schemas, the database clock,
// plans and statistics, reconnection). Needs ERGON_TEST_POSTGRES_URL (scripts/test.sh sets it);
// without it every test here is skipped with a message saying so.
#include "store/postgres/postgres_store.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "ergon/job_runner.h"
#include "store_conformance.h"
#include "support/pg_test_db.h"
#include "transport/pg_listener.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

// --- The conformance suite --------------------------------------------------------------------

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformance, ::testing::Values(postgres_backend()),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, StoreOps, ::testing::Values(postgres_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, StoreHistory, ::testing::Values(postgres_backend()),
                         backend_name);

// --- PostgreSQL only ----------------------------------------------------------------------------

struct Note {
  static constexpr std::string_view kJobType = "note";
  std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Note, text)

JobInsertParams job(TimePoint now, std::string_view type = "t", Duration delay = Duration::zero()) {
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = type;
  p.job_data = R"({"n":1})";
  p.created_at = now;
  p.run_at = now + delay;
  p.queue = "default";
  return p;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = pg_test_server_url();
    if (server_.empty()) GTEST_SKIP() << kNoPostgres;
    schema_ = std::make_unique<PgTestSchema>(server_);
  }

  std::string url() const { return schema_->url(); }
  std::string quoted_schema() const { return "\"" + schema_->name() + "\""; }

  std::shared_ptr<postgres::PostgresStore> open(const std::string& url, Clock* clock) {
    auto store =
        std::dynamic_pointer_cast<postgres::PostgresStore>(open_store(url, {.clock = clock}));
    EXPECT_TRUE(store);
    return store;
  }
  // A store on this test's schema with the fake clock (another call: another connection pool,
  // as another process would have).
  std::shared_ptr<postgres::PostgresStore> open() { return open(url(), &clock_); }

  FakeClock clock_{test_epoch()};
  std::string server_;
  std::unique_ptr<PgTestSchema> schema_;
};

TEST(PostgresUrlTest, SplitsErgonsParametersFromLibpqs) {
  auto u = postgres::parse_postgres_url(
      "postgresql://alice@db.example:5433/app?schema=billing&connect_timeout=3&pool_size=8");
  EXPECT_EQ(u.schema, "billing");
  EXPECT_EQ(u.pool_size, 8);
  auto get = [&](std::string_view key) {
    std::string value;
    for (const auto& [k, v] : u.conninfo) {
      if (k == key) value = v;  // the last one wins, as in libpq
    }
    return value;
  };
  EXPECT_EQ(get("host"), "db.example");
  EXPECT_EQ(get("port"), "5433");
  EXPECT_EQ(get("dbname"), "app");
  EXPECT_EQ(get("user"), "alice");
  EXPECT_EQ(get("connect_timeout"), "3");
  EXPECT_EQ(get("application_name"), "ergon");
  EXPECT_EQ(get("client_encoding"), "UTF8");
  EXPECT_EQ(get("schema"), "");
  // No JIT on Ergon's connections (a claim compiled for ~100 ms); the URL's options follow.
  EXPECT_EQ(get("options"), "-c jit=off");
  auto with_options = postgres::parse_postgres_url(
      "postgresql://h/d?options=-c%20statement_timeout%3D5000%20-c%20jit%3Don");
  std::vector<std::string> options;
  for (const auto& [k, v] : with_options.conninfo) {
    if (k == "options") options.push_back(v);
  }
  EXPECT_EQ(options, std::vector<std::string>{"-c jit=off -c statement_timeout=5000 -c jit=on"});

  auto plain = postgres::parse_postgres_url("postgres://localhost/jobs");
  EXPECT_EQ(plain.schema, "public");
  EXPECT_EQ(plain.pool_size, postgres::kDefaultPoolSize);
  EXPECT_EQ(postgres::parse_postgres_url("postgresql:///d?schema=My%20Jobs").schema, "My Jobs");

  for (const std::string& bad : std::vector<std::string>{
           "postgresql://h/d?search_path=x", "postgresql://h/d?currentSchema=x",
           "postgresql://h/d?schema=", "postgresql://h/d?schema=a&schema=b",
           "postgresql://h/d?schema=" + std::string(64, 's'), "postgresql://h/d?schema=%zz",
           "postgresql://h/d?pool_size=0", "postgresql://h/d?pool_size=x", "mysql://h/d"}) {
    try {
      postgres::parse_postgres_url(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  try {
    postgres::parse_postgres_url("postgresql://h/d?currentSchema=x");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("currentSchema"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("schema and pool_size"), std::string::npos);
  }
}

// The listener's thread is waiting out a long back-off (nothing listens on 127.0.0.1:1): its
// destruction still returns at once, because every wait of the thread watches the stop pipe.
TEST(PgListenerTest, StopsPromptlyWhileWaitingToReconnect) {
  transport::Notifier notifier;
  FakeClock clock(test_epoch());
  EventCounter failures;
  transport::PgListener::Options o;
  o.conninfo = {{"host", "127.0.0.1"}, {"port", "1"}, {"dbname", "postgres"}};
  o.channel = "ergon:test";
  o.on_disconnected = [&] { failures.add(); };
  o.backoff_min = o.backoff_max = std::chrono::hours(1);
  auto listener = std::make_unique<transport::PgListener>(o, notifier, clock);
  ASSERT_TRUE(failures.wait_for(1));  // the connect failed; the thread is (about to be) waiting
  auto start = std::chrono::steady_clock::now();
  listener.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(failures.count(), 1);
}

// A statement PostgreSQL plans for its parameters at every execution pays the planner each
// time: for the claim with a backlog, as much as executing it. The claims run on
// connections that plan generically; the other statements of the hot path are written so that
// the plan cache settles on a generic plan after its five custom ones.
TEST_F(PostgresStoreTest, TheHotPathsStatementsSettleOnGenericPlans) {
  auto store = open(pg_url_with(url(), "pool_size=1"), &clock_);
  // A backlog, and statistics that know it: what a busy deployment's planner sees.
  std::vector<JobInsertParams> backlog;
  for (int i = 0; i < 5000; ++i) backlog.push_back(job(clock_.now()));
  store->job_insert_many(backlog);
  PgTestConnection app(server_);
  ASSERT_TRUE(app.exec("ANALYZE " + quoted_schema() + ".jobs"));
  const int n = 12;
  for (int i = 0; i < n * 3; ++i) store->job_insert(job(clock_.now()));
  std::vector<JobRecord> claimed;
  for (int i = 0; i < n * 3; ++i) {
    auto got = store->job_claim({"w", 1, clock_.now(), {}, i % 2 == 0});
    ASSERT_EQ(got.size(), 1u);
    claimed.push_back(got[0]);
  }
  for (int i = 0; i < n; ++i) {
    (void)store->job_heartbeat("w", clock_.now());
    const JobRecord& r = claimed[static_cast<std::size_t>(i)];
    ASSERT_TRUE(store->job_progress_update({r.id, r.attempt, "w", "half", 50}));
    ASSERT_TRUE(store->job_finish({r.id, r.attempt, "w", JobStatus::kCompleted, clock_.now()}));
  }
  for (int i = n; i < n * 3; i += 2) {
    std::vector<JobFinishParams> batch;
    for (int k = i; k < i + 2; ++k) {
      const JobRecord& r = claimed[static_cast<std::size_t>(k)];
      batch.push_back({r.id, r.attempt, "w", JobStatus::kCompleted, clock_.now()});
    }
    auto ok = store->job_finish_many(batch);
    ASSERT_EQ(std::count(ok.begin(), ok.end(), true), 2);
  }
  auto counts = store->TEST_plan_counts();
  for (const char* claim :
       {"ergon_job_claim_renew", "ergon_job_claim_plain", "ergon_job_claim_plain_renew"}) {
    SCOPED_TRACE(claim);
    EXPECT_GT(counts[claim].generic, 0);
    EXPECT_EQ(counts[claim].custom, 0);
  }
  for (const char* settles : {"ergon_job_insert", "ergon_job_heartbeat", "ergon_job_progress",
                              "ergon_job_finish_completed_many"}) {
    SCOPED_TRACE(settles);
    EXPECT_EQ(counts[settles].custom, 5);
    EXPECT_GT(counts[settles].generic, 0);
  }
}

// A failed transaction is refused like none at all (the conformance suite's
// TransactionalEnqueueRefusesAConnectionWithoutATransaction has the rest). Only PostgreSQL has
// this state: on SQLite an error ends the statement, not the transaction.
TEST_F(PostgresStoreTest, TransactionalEnqueueRefusesAFailedTransaction) {
  auto store = open();
  JobRunner runner(store);
  PgTestConnection app(server_);
  ASSERT_TRUE(app.exec("BEGIN"));
  EXPECT_FALSE(app.exec("SELECT 1/0"));
  try {
    runner.start_job(app.get(), Note{"x"});
    ADD_FAILURE() << "accepted a connection in state " << PQtransactionStatus(app.get());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNoTransaction) << e.what();
  }
  ASSERT_TRUE(app.exec("ROLLBACK"));
  EXPECT_TRUE(runner.list_jobs().empty());
}

TEST_F(PostgresStoreTest, UnreachableServerAndMissingDatabaseAreClearErrors) {
  try {
    open_store(pg_url_with(server_, "dbname=ergon_no_such_db"), {.clock = &clock_});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
  }
  try {
    // Port 1 on 127.0.0.1: nothing listens there.
    open_store("postgresql://postgres@127.0.0.1:1/postgres", {.clock = &clock_});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kStore) << e.what();
  }
}

// Many connections (three stores of four, as three worker processes would have) and twelve
// threads drain thousands of jobs: each is handed out exactly once.
TEST_F(PostgresStoreTest, ManyConnectionsDrainThousandsOfJobsExactlyOnce) {
  constexpr int kJobs = 3000;
  constexpr int kStores = 3;
  constexpr int kThreadsPerStore = 4;
  auto first = open();
  std::vector<JobInsertParams> batch;
  for (int i = 0; i < kJobs; ++i) batch.push_back(job(clock_.now(), "drain"));
  first->job_insert_many(batch);
  std::vector<std::shared_ptr<postgres::PostgresStore>> stores{first};
  while (stores.size() < kStores) stores.push_back(open());

  std::vector<std::vector<JobId>> got(kStores * kThreadsPerStore);
  std::vector<std::thread> threads;
  for (int t = 0; t < kStores * kThreadsPerStore; ++t) {
    threads.emplace_back([&, t] {
      auto& store = *stores[static_cast<std::size_t>(t % kStores)];
      std::string worker = "w" + std::to_string(t);
      for (;;) {
        auto claimed = store.job_claim({worker, 25, clock_.now()});
        if (claimed.empty()) break;
        for (auto& r : claimed) got[static_cast<std::size_t>(t)].push_back(r.id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<JobId> unique;
  std::size_t total = 0;
  for (auto& g : got) {
    total += g.size();
    unique.insert(g.begin(), g.end());
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kJobs));
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kJobs));
  PgTestConnection app(server_);
  EXPECT_EQ(app.value("SELECT count(*) FROM " + quoted_schema() +
                      ".jobs WHERE status = 'Running' AND attempt = 1"),
            std::to_string(kJobs));
}

// An outcome or a progress report of one job finds it by id (jobs_pkey), whatever the table's
// statistics say. Here they were taken when every job was Pending, and every plan is generic
// (as a prepared statement's becomes after five runs): a plain `status = 'Running'` fence then
// made the planner read the worker's Running rows through jobs_running_idx for every job.
TEST_F(PostgresStoreTest, OutcomesFindTheirJobByIdWhateverTheStatistics) {
  constexpr int kJobs = 300;
  const std::string generic = url() + "&options=-c%20plan_cache_mode%3Dforce_generic_plan";
  PgTestConnection app(server_);
  auto scans = [&](const std::string& index) {
    app.exec("SELECT pg_stat_clear_snapshot()");
    return std::stoll(app.value("SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = '" +
                                schema_->name() + "' AND indexrelname = '" + index + "'"));
  };
  // Rows updated in jobs, as reported so far: a backend reports its counts when it exits, all
  // in one go, so once the total matches what was done every report has arrived.
  auto updated = [&] {
    app.exec("SELECT pg_stat_clear_snapshot()");
    return std::stoll(app.value("SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = '" +
                                schema_->name() + "' AND relname = 'jobs'"));
  };
  std::vector<JobRecord> claimed;
  {
    auto store = open(generic, &clock_);
    std::vector<JobInsertParams> batch;
    for (int i = 0; i < kJobs; ++i) batch.push_back(job(clock_.now()));
    store->job_insert_many(batch);
    ASSERT_TRUE(app.exec("VACUUM ANALYZE " + quoted_schema() + ".jobs"));
    claimed = store->job_claim({"w", kJobs, clock_.now()});
    ASSERT_EQ(claimed.size(), static_cast<std::size_t>(kJobs));
  }  // its connections close, and their backends report their statistics
  ASSERT_TRUE(eventually([&] { return updated() == kJobs; }));  // the claims
  long long running = scans("jobs_running_idx") + scans("jobs_running_type_idx");
  {
    auto store = open(generic, &clock_);
    for (int i = 0; i < kJobs; ++i) {
      const JobRecord& r = claimed[static_cast<std::size_t>(i)];
      if (i % 3 == 1) {
        EXPECT_TRUE(store->job_progress_update({r.id, r.attempt, "w", "half", 50}));
      }
      JobFinishParams f;
      f.id = r.id;
      f.attempt = r.attempt;
      f.worker_id = "w";
      f.status = i % 2 == 0 ? JobStatus::kCompleted : JobStatus::kFailed;
      f.now = clock_.now();
      EXPECT_TRUE(store->job_finish(f));
    }
  }
  // Every outcome and report looked its job up by id: the Running indexes were not read per
  // job (the plan this guards against reads them once for each of the 400 statements). A stray
  // scan or two (a late statistics report of the first store's backends under a slow, loaded
  // test run) is not that plan.
  ASSERT_TRUE(eventually([&] { return updated() == kJobs + kJobs + kJobs / 3; }));
  EXPECT_LT(scans("jobs_running_idx") + scans("jobs_running_type_idx") - running, kJobs / 10);
  EXPECT_EQ(app.value("SELECT count(*) FROM " + quoted_schema() +
                      ".jobs WHERE status IN ('Completed', 'Failed')"),
            std::to_string(kJobs));
}

// A job enqueued through another store object (another connection, as from another process)
// reaches this store's subscribers through LISTEN/NOTIFY: one notification per transaction,
// and none relayed for this store's own inserts (those notify synchronously).
TEST_F(PostgresStoreTest, AnotherConnectionsInsertWakesThisStoresSubscribers) {
  auto listener = open();
  auto writer = open();
  ASSERT_TRUE(listener->listener_wait_ready(30s));
  DueRecorder due(*listener);

  auto one = job(clock_.now(), "t", 5s);
  writer->job_insert(one);
  ASSERT_TRUE(due.wait_for(1));
  EXPECT_EQ(due.seen()[0], one.run_at);

  std::vector<JobInsertParams> batch;
  for (int i = 3; i >= 1; --i) batch.push_back(job(clock_.now(), "t", std::chrono::seconds(i)));
  writer->job_insert_many(batch);
  ASSERT_TRUE(due.wait_for(2));
  EXPECT_EQ(due.seen()[1], clock_.now() + 1s);  // the batch's earliest due time

  listener->job_insert(job(clock_.now(), "t", 6s));  // own insert: notified synchronously
  EXPECT_EQ(due.seen().size(), 3u);

  // A barrier: notifications arrive in commit order, so when this one is in, any extra one
  // from the batch or a relay of the own insert would already be too.
  writer->job_insert(job(clock_.now(), "t", 7s));
  ASSERT_TRUE(due.wait_for(4));
  auto seen = due.seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[2], clock_.now() + 6s);
  EXPECT_EQ(seen[3], clock_.now() + 7s);
}

// An insert that commits without a notification of its own (another insert of its store was
// notifying at the time) is announced by the store's wake thread once it has committed: one at
// a time, each with its due time; from many threads at once, coalesced (a round's payload is
// the earliest due time it covers), and still every insert is covered by a round that starts
// after its commit. TEST_notify_inline(false) sends every insert down that path.
TEST_F(PostgresStoreTest, InsertsWithoutTheirOwnNotificationAreAnnouncedAfterTheyCommit) {
  auto listener = open();
  auto writer = open();
  writer->TEST_notify_inline(false);
  ASSERT_TRUE(listener->listener_wait_ready(30s));
  DueRecorder due(*listener);

  for (int i = 1; i <= 3; ++i) {
    auto one = job(clock_.now(), "t", std::chrono::seconds(i));
    writer->job_insert(one);
    ASSERT_TRUE(due.wait_for(i));
    EXPECT_EQ(due.seen().back(), one.run_at);
  }

  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 20; ++k) {
        writer->job_insert(job(clock_.now(), "t", std::chrono::seconds(100 + t * 20 + k)));
      }
    });
  }
  for (auto& t : threads) t.join();
  // Due before all of them: whichever round covers it carries exactly its due time.
  auto last = job(clock_.now(), "t", 50s);
  writer->job_insert(last);
  for (int n = static_cast<int>(due.seen().size()) + 1;; ++n) {
    auto seen = due.seen();
    if (std::find(seen.begin(), seen.end(), last.run_at) != seen.end()) break;
    ASSERT_TRUE(due.wait_for(n)) << "no wake-up for the last insert";
  }
  auto seen = due.seen();
  EXPECT_LE(seen.size(), 3u + 160u + 1u);
  PgTestConnection app(server_);
  EXPECT_EQ(app.value("SELECT count(*) FROM " + quoted_schema() + ".jobs"), "164");
}

TEST_F(PostgresStoreTest, TwoSchemasInOneDatabaseDoNotSeeEachOther) {
  PgTestSchema other_schema(server_);
  auto a = open();
  auto b = open(other_schema.url(), &clock_);
  auto b_writer = open(other_schema.url(), &clock_);
  EXPECT_NE(a->channel(), b->channel());
  ASSERT_TRUE(b->listener_wait_ready(30s));
  DueRecorder due(*b);

  auto in_a = job(clock_.now(), "t", 1h);
  a->job_insert(in_a);
  EXPECT_FALSE(b->job_get(in_a.id));
  EXPECT_TRUE(b->job_list({}).empty());
  EXPECT_TRUE(b->job_claim({"w", 10, clock_.now() + 2h}).empty());
  EXPECT_EQ(a->job_list({}).size(), 1u);

  // Committed after a's insert, so a notification of a's on b's channel would come first.
  b_writer->job_insert(job(clock_.now(), "t", 2h));
  ASSERT_TRUE(due.wait_for(1));
  ASSERT_EQ(due.seen().size(), 1u);
  EXPECT_EQ(due.seen()[0], clock_.now() + 2h);
}

// With the system clock the database clock decides what is due, whatever `now` the caller
// passes: a job due in the database's future is not claimed even by a caller whose clock runs
// hours ahead, and a due job is claimed even by one whose clock runs a day behind.
TEST_F(PostgresStoreTest, OnTheSystemClockTheDatabaseClockDecidesWhatIsDue) {
  auto store = std::dynamic_pointer_cast<postgres::PostgresStore>(open_store(url()));
  ASSERT_TRUE(store->database_clock());
  JobRunner runner(store);
  PgTestConnection app(server_);
  auto wall = [] { return std::chrono::system_clock::now(); };

  runner.start_job_raw("later", "{}", {.delay = 1h});
  ASSERT_TRUE(app.exec("INSERT INTO " + quoted_schema() +
                       ".jobs (id, job_type, job_data, status, created_at, run_at) VALUES "
                       "(gen_random_uuid(), 'sql_later', '{}', 'Pending', now(), "
                       "now() + interval '1 hour')"));
  EXPECT_TRUE(store->job_claim({"ahead", 10, wall() + 2h}).empty());

  std::string before = app.value(
      "SELECT to_char(now() AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  JobId due = runner.start_job_raw("now", "{}");
  auto claimed = store->job_claim({"behind", 10, wall() - 24h});
  std::string after = app.value(
      "SELECT to_char(now() AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, due);
  // Stamped by the server's clock, between two readings of it.
  ASSERT_TRUE(claimed[0].started_at);
  EXPECT_GE(*claimed[0].started_at, *parse_timestamp(before));
  EXPECT_LE(*claimed[0].started_at, *parse_timestamp(after));
  EXPECT_EQ(app.value("SELECT count(*) FROM " + quoted_schema() + ".jobs WHERE status = 'Pending'"),
            "2");
}

// On the database clock, grouped jobs and a rate limit use the server's time too: the rate
// window is measured from the server's statement time, whatever `now` the caller passes.
TEST_F(PostgresStoreTest, OnTheDatabaseClockRateLimitsAndGroupsUseTheServersTime) {
  auto store = std::dynamic_pointer_cast<postgres::PostgresStore>(open_store(url()));
  ASSERT_TRUE(store->database_clock());
  JobRunner runner(store);
  auto wall = [] { return std::chrono::system_clock::now(); };
  for (int i = 0; i < 3; ++i) runner.start_job_raw("api", "{}", {.group_key = "a"});
  for (int i = 0; i < 3; ++i) runner.start_job_raw("plain", "{}", {.group_key = "b"});
  runner.start_job_raw("plain", "{}");
  runner.set_type_limit({.job_type = "api", .rate_limit = 2, .rate_period = 1h});
  // A caller a day behind or ahead changes nothing: 2 api starts, and the 4 others.
  auto first = store->job_claim({"behind", 10, wall() - 24h});
  EXPECT_EQ(first.size(), 6u);
  EXPECT_TRUE(store->job_claim({"ahead", 10, wall() + 2h}).empty());
  auto limits = runner.list_type_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0].running, 2);
}

// A release (graceful stop) puts the job back at its own place in the queue: its run_at is the
// row's, untouched, not the caller's time translated to the database clock (which moves it
// behind every job enqueued within the translation's error, thousands in a bulk enqueue).
TEST_F(PostgresStoreTest, OnTheDatabaseClockAReleaseKeepsTheJobsPlaceInTheQueue) {
  auto store = std::dynamic_pointer_cast<postgres::PostgresStore>(open_store(url()));
  ASSERT_TRUE(store->database_clock());
  JobRunner runner(store);
  JobId first = runner.start_job_raw("t", "{}");
  runner.start_job_raw("t", "{}");
  auto claimed = store->job_claim({"w", 1, std::chrono::system_clock::now()});
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed[0].id, first);
  JobFinishParams fin;
  fin.id = first;
  fin.attempt = claimed[0].attempt;
  fin.worker_id = "w";
  fin.status = JobStatus::kPending;
  // A caller whose clock is a minute behind the server's: a translated run_at would move.
  fin.now = std::chrono::system_clock::now() - 1min;
  fin.run_at = claimed[0].run_at;
  fin.keep_run_at = true;
  ASSERT_TRUE(store->job_finish(fin));
  EXPECT_EQ(store->job_get(first)->run_at, claimed[0].run_at);
  auto again = store->job_claim({"w", 1, std::chrono::system_clock::now()});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, first);  // still first in line
}

// Every statement in its database-clock form (the conformance suite runs the injected-clock
// forms): what the server's clock decides, whatever `now` the caller passes.
TEST_F(PostgresStoreTest, FaultToleranceAndOutcomesFollowTheDatabaseClock) {
  auto store = std::dynamic_pointer_cast<postgres::PostgresStore>(open_store(url()));
  ASSERT_TRUE(store->database_clock());
  auto wall = [] { return std::chrono::system_clock::now(); };
  std::vector<JobInsertParams> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(job(wall(), "db"));
  store->job_insert_many(batch);
  auto claimed = store->job_claim({"w", 3, wall()});
  ASSERT_EQ(claimed.size(), 3u);

  // Heartbeats are the server's now(), not the caller's (a day behind) ...
  ASSERT_EQ(store->job_heartbeat("w", wall() - 24h).size(), 3u);
  // ... so a rescuer whose clock runs an hour ahead finds nothing stale.
  JobRescueParams rescue;
  rescue.now = wall() + 1h;
  rescue.stale_before = rescue.now - 30s;
  EXPECT_EQ(store->job_rescue(rescue), 0);
  EXPECT_TRUE(store->job_progress_update({claimed[0].id, 1, "w", "half", 50}));

  JobFinishParams retry;
  retry.id = claimed[0].id;
  retry.attempt = 1;
  retry.worker_id = "w";
  retry.status = JobStatus::kPending;
  retry.now = wall() - 24h;       // the caller's clock is a day behind ...
  retry.run_at = retry.now + 1h;  // ... and it means "in an hour"
  ASSERT_TRUE(store->job_finish(retry));
  auto retried = store->job_get(claimed[0].id);
  EXPECT_GT(retried->run_at, wall() + 50min);  // an hour from the server's now
  EXPECT_TRUE(store->job_claim({"w", 10, wall() + 2h}).empty());

  JobFinishParams done = retry;
  done.id = claimed[1].id;
  done.status = JobStatus::kCompleted;
  ASSERT_TRUE(store->job_finish(done));
  EXPECT_GT(*store->job_get(claimed[1].id)->completed_at, wall() - 1h);

  EXPECT_EQ(store->job_cancel(claimed[2].id, wall()), CancelResult::kRequested);
  EXPECT_EQ(store->job_release_worker("w", rescue), 1);
  EXPECT_EQ(store->job_get(claimed[2].id)->status, JobStatus::kPending);
  EXPECT_EQ(store->job_cancel(claimed[2].id, wall() - 24h), CancelResult::kCancelled);
  EXPECT_GT(*store->job_get(claimed[2].id)->completed_at, wall() - 1h);

  store->worker_register({"w-1", "n", "h", 1, wall() - 48h - 1s, wall() - 48h});
  store->worker_heartbeat("w-1", wall() - 48h);
  auto workers = store->worker_list();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_GT(workers[0].heartbeat_at, wall() - 1h);
  // Registered at the server's now() minus the second the caller meant; renewed since.
  EXPECT_GE(workers[0].heartbeat_at - workers[0].started_at, 1s);
  EXPECT_LT(workers[0].heartbeat_at - workers[0].started_at, 1min);
  EXPECT_EQ(store->job_prune(JobStatus::kCompleted, wall() + 1h, 10), 1);
}

// Outcomes must never fail because of the bytes of a message: a refused outcome would leave
// the job Running.
TEST_F(PostgresStoreTest, MessagesWithAnyBytesAreStored) {
  auto store = open();
  auto p = job(clock_.now());
  store->job_insert(p);
  auto r = store->job_claim({"w", 1, clock_.now()}).at(0);
  ASSERT_TRUE(store->job_progress_update({r.id, r.attempt, "w", std::string("half\0way", 8), 50}));
  JobFinishParams f;
  f.id = r.id;
  f.attempt = r.attempt;
  f.worker_id = "w";
  f.status = JobStatus::kFailed;
  f.now = clock_.now();
  f.error_message = std::string("bad \xff byte and a \0 NUL", 22);
  ASSERT_TRUE(store->job_finish(f));
  auto after = store->job_get(p.id);
  EXPECT_EQ(after->status, JobStatus::kFailed);
  // The text rule of both stores (docs/storage.md#text): invalid bytes and NUL become U+FFFD.
  EXPECT_EQ(after->error_message, "bad \xEF\xBF\xBD byte and a \xEF\xBF\xBD NUL");
  EXPECT_EQ(after->progress_message, "half\xEF\xBF\xBDway");
}

// The server kills every connection of the store (as a failover or an administrator would):
// the next calls may fail with kStore, but within a few they succeed on new connections, no
// data is lost, and the listener reconnects and tells the workers to look again.
TEST_F(PostgresStoreTest, StoreReconnectsAfterItsConnectionsAreKilled) {
  std::string app_name = "ergon_" + schema_->name();
  auto store = open(pg_url_with(url(), "application_name=" + app_name), &clock_);
  for (int i = 0; i < 10; ++i) store->job_insert(job(clock_.now()));
  ASSERT_EQ(store->job_claim({"w", 3, clock_.now()}).size(), 3u);
  ASSERT_TRUE(store->listener_wait_ready(30s));
  DueRecorder due(*store);

  PgTestConnection admin(server_);
  int killed = std::stoi(admin.value(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
      app_name + "'"));
  EXPECT_GE(killed, 2);  // the pool's connection and the listener's

  int failures = 0;
  std::vector<JobRecord> jobs;
  for (int attempt = 0; attempt < 100; ++attempt) {
    try {
      jobs = store->job_list({});
      break;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kStore) << e.what();
      ++failures;
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_LE(failures, postgres::kDefaultPoolSize);
  ASSERT_EQ(jobs.size(), 10u);
  EXPECT_EQ(std::count_if(jobs.begin(), jobs.end(),
                          [](const JobRecord& j) { return j.status == JobStatus::kRunning; }),
            3);
  ASSERT_TRUE(due.wait_for(1));  // the listener's "look again" after reconnecting
  EXPECT_EQ(due.seen()[0], clock_.now());
  EXPECT_EQ(store->job_claim({"w", 10, clock_.now()}).size(), 7u);
}

// Stops (and removes) a private cluster at the end of a test, whatever happens in it.
class PrivateCluster {
 public:
  explicit PrivateCluster(const TempDir& dir) : dir_(dir.file("pg")) {
    auto r = run_process({script(), "start", dir_});
    started_ = r.status == 0;
    url_ = trim(r.out);
    EXPECT_TRUE(started_) << r.err;
  }
  ~PrivateCluster() {
    if (started_) run_process({script(), "stop", dir_});
  }
  [[nodiscard]] bool started() const { return started_; }
  [[nodiscard]] const std::string& url() const { return url_; }
  ProcessResult restart() { return run_process({script(), "restart", dir_}); }

 private:
  static std::string script() {
    return std::string(ERGON_SOURCE_DIR) + "/scripts/pg-test-cluster.sh";
  }
  std::string dir_;
  std::string url_;
  bool started_ = false;
};

// The whole server restarts (on a cluster of this test's own, so the other tests' server stays
// up): the store reconnects within a bounded number of failed calls and nothing is lost.
TEST_F(PostgresStoreTest, ServerRestartLosesNothing) {
  TempDir dir;
  PrivateCluster cluster(dir);
  ASSERT_TRUE(cluster.started());
  auto store = open(pg_url_with(cluster.url(), "schema=restart"), &clock_);
  std::vector<JobId> ids;
  for (int i = 0; i < 20; ++i) {
    auto p = job(clock_.now());
    store->job_insert(p);
    ids.push_back(p.id);
  }
  auto claimed = store->job_claim({"w", 5, clock_.now()});
  ASSERT_EQ(claimed.size(), 5u);
  JobFinishParams done;
  done.id = claimed[0].id;
  done.attempt = claimed[0].attempt;
  done.worker_id = "w";
  done.status = JobStatus::kCompleted;
  done.now = clock_.now();
  ASSERT_TRUE(store->job_finish(done));
  ASSERT_TRUE(store->listener_wait_ready(30s));
  DueRecorder due(*store);

  auto r = cluster.restart();
  ASSERT_EQ(r.status, 0) << r.err;

  int failures = 0;
  std::vector<JobRecord> jobs;
  for (int attempt = 0; attempt < 200; ++attempt) {
    try {
      jobs = store->job_list({});
      break;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kStore) << e.what();
      ++failures;
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_LE(failures, 10);
  ASSERT_EQ(jobs.size(), 20u);
  std::map<JobStatus, int> by_status;
  for (const auto& j : jobs) ++by_status[j.status];
  EXPECT_EQ(by_status[JobStatus::kPending], 15);
  EXPECT_EQ(by_status[JobStatus::kRunning], 4);
  EXPECT_EQ(by_status[JobStatus::kCompleted], 1);
  ASSERT_TRUE(due.wait_for(1));  // the listener is back and asked the workers to look again
  EXPECT_EQ(store->job_claim({"w", 100, clock_.now()}).size(), 15u);
}

}  // namespace
}  // namespace ergon::testing
