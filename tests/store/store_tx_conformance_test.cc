// The caller's own transaction: a job enqueued (JobRunner::start_job(conn, ...)) or completed
// (Store::job_finish_tx) on the application's connection commits and rolls back with it, and
// Ergon never begins, commits or rolls back for the caller. Where the backends differ is the
// wake-up: PostgreSQL queues a pg_notify that the caller's commit delivers; SQLite's twins
// notify nothing (TestBackend::notifies_on_commit).
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

struct Note {
  static constexpr std::string_view kJobType = "note";
  std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Note, text)

// The application's connection to the test's database, with a table of its own; the store
// hears the wake-ups of its commits from now on.
std::unique_ptr<AppConnection> connect_app(TestBackend& backend, Store& store) {
  EXPECT_TRUE(backend.wait_listening(store));
  auto app = backend.connect();
  EXPECT_TRUE(app->exec("CREATE TABLE orders (item TEXT)")) << app->last_error();
  return app;
}

// What the caller's commits woke: on a backend that notifies on commit, exactly `due` (in
// commit order); on one that does not, nothing.
void expect_woken(const TestBackend& backend, DueRecorder& woken,
                  const std::vector<TimePoint>& due) {
  if (!backend.notifies_on_commit()) {
    EXPECT_TRUE(woken.seen().empty());
    return;
  }
  ASSERT_TRUE(woken.wait_for(static_cast<int>(due.size())));
  EXPECT_EQ(woken.seen(), due);
}

TEST_P(StoreConformance, CommittedTransactionalEnqueueIsAPendingJobAndWakesTheWorkers) {
  auto app = connect_app(*backend_, *store_);
  DueRecorder woken(*store_);
  JobRunner runner(store_);
  ASSERT_TRUE(app->begin());
  ASSERT_TRUE(app->exec("INSERT INTO orders (item) VALUES ('book')")) << app->last_error();
  JobId id = start_job_tx(runner, *app, Note{"order placed"}, {.delay = 10s});
  // Ergon neither committed nor began anything: the transaction is still the caller's.
  EXPECT_TRUE(app->in_transaction());
  EXPECT_FALSE(runner.get_job(id));  // invisible to everyone else before the commit
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();

  auto job = runner.get_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, JobStatus::kPending);
  EXPECT_EQ(job->job_data, R"({"text":"order placed"})");
  EXPECT_EQ(job->run_at, clock_.now() + 10s);
  EXPECT_EQ(app->value("SELECT count(*) FROM orders"), "1");
  // On PostgreSQL the notification was queued in the caller's transaction and delivered by the
  // commit.
  expect_woken(*backend_, woken, {job->run_at});
}

TEST_P(StoreConformance, RolledBackTransactionalEnqueueLeavesNoJobAndNoWakeUp) {
  auto app = connect_app(*backend_, *store_);
  DueRecorder woken(*store_);
  JobRunner runner(store_);
  ASSERT_TRUE(app->begin());
  ASSERT_TRUE(app->exec("INSERT INTO orders (item) VALUES ('book')")) << app->last_error();
  JobId id = start_job_tx(runner, *app, Note{"never"}, {.delay = 1s});
  // Not visible to anyone else before the caller commits: Ergon did not commit for it.
  EXPECT_FALSE(runner.get_job(id));
  ASSERT_TRUE(app->exec("ROLLBACK")) << app->last_error();
  EXPECT_FALSE(runner.get_job(id));
  EXPECT_TRUE(runner.list_jobs().empty());
  EXPECT_EQ(app->value("SELECT count(*) FROM orders"), "0");
  // Notifications arrive in commit order: had the rolled-back one been sent, it would come
  // before this committed one.
  ASSERT_TRUE(app->begin());
  start_job_tx(runner, *app, Note{"kept"}, {.delay = 2s});
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();
  expect_woken(*backend_, woken, {clock_.now() + 2s});
}

// PostgreSQL refuses a failed transaction too: postgres_store_test.cc (SQLite has no such
// state: an error there ends the statement, not the transaction).
TEST_P(StoreConformance, TransactionalEnqueueRefusesAConnectionWithoutATransaction) {
  auto app = connect_app(*backend_, *store_);
  JobRunner runner(store_);
  try {
    start_job_tx(runner, *app, Note{"x"});
    ADD_FAILURE() << "accepted a connection without a transaction";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNoTransaction) << e.what();
  }
  EXPECT_FALSE(app->in_transaction());  // and Ergon did not begin one
  if (app->sqlite() != nullptr) {
    EXPECT_THROW(runner.start_job(static_cast<sqlite3*>(nullptr), Note{"x"}), Error);
  } else {
    EXPECT_THROW(runner.start_job(static_cast<pg_conn*>(nullptr), Note{"x"}), Error);
  }
  EXPECT_TRUE(runner.list_jobs().empty());
}

TEST_P(StoreConformance, TransactionalEnqueueOnADatabaseWithoutTheSchemaSaysSo) {
  auto bare = open_store(backend_->url("bare"),
                         {.clock = &clock_, .migrate = false, .check_schema = false});
  JobRunner runner(bare);
  auto app = backend_->connect("bare");
  ASSERT_TRUE(app->begin());
  try {
    start_job_tx(runner, *app, Note{"x"});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSchema) << e.what();
    EXPECT_NE(std::string(e.what()).find("ergon migrate"), std::string::npos) << e.what();
  }
  ASSERT_TRUE(app->exec("ROLLBACK")) << app->last_error();
}

// Transactional completion: a handler records its job's outcome in its own transaction.
TEST_P(StoreConformance, TransactionalCompletionCommitsAndRollsBackWithTheCallersTransaction) {
  auto app = connect_app(*backend_, *store_);
  JobInsertParams p;
  p.job_type = "t";
  p.job_data = "{}";
  p.created_at = p.run_at = clock_.now();
  p.queue = "default";
  JobInsertParams q = p;
  p.id = JobId::generate(clock_.now());
  q.id = JobId::generate(clock_.now());
  store_->job_insert(p);
  store_->job_insert(q);
  auto claimed = store_->job_claim({"w", 2, clock_.now()});
  ASSERT_EQ(claimed.size(), 2u);
  auto outcome = [&](const JobId& id, JobStatus status) {
    JobFinishParams f;
    f.id = id;
    f.attempt = 1;
    f.worker_id = "w";
    f.status = status;
    f.now = clock_.now();
    f.run_at = clock_.now() + 30s;
    return f;
  };
  try {
    (void)job_finish_tx(*store_, *app, outcome(p.id, JobStatus::kCompleted));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNoTransaction);
  }
  ASSERT_TRUE(app->begin());
  EXPECT_TRUE(job_finish_tx(*store_, *app, outcome(p.id, JobStatus::kCompleted)));
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kRunning);  // not committed yet
  ASSERT_TRUE(app->exec("ROLLBACK")) << app->last_error();
  EXPECT_EQ(store_->job_get(p.id)->status, JobStatus::kRunning);

  DueRecorder woken(*store_);
  ASSERT_TRUE(app->begin());
  EXPECT_TRUE(job_finish_tx(*store_, *app, outcome(p.id, JobStatus::kCompleted)));
  auto stale = outcome(p.id, JobStatus::kFailed);
  stale.attempt = 0;
  EXPECT_FALSE(job_finish_tx(*store_, *app, stale));                              // fenced
  EXPECT_TRUE(job_finish_tx(*store_, *app, outcome(q.id, JobStatus::kPending)));  // a retry
  EXPECT_TRUE(app->in_transaction());
  ASSERT_TRUE(app->exec("COMMIT")) << app->last_error();
  auto done = store_->job_get(p.id);
  EXPECT_EQ(done->status, JobStatus::kCompleted);
  EXPECT_EQ(done->completed_at, clock_.now());
  auto retried = store_->job_get(q.id);
  EXPECT_EQ(retried->status, JobStatus::kPending);
  EXPECT_EQ(retried->run_at, clock_.now() + 30s);
  expect_woken(*backend_, woken,
               {clock_.now() + 30s});  // the retry's wake-up, sent by the caller's commit
}

}  // namespace
}  // namespace ergon::testing
