// Database outages, on a real PostgreSQL server seen through a TCP proxy that the test cuts
// (tests/support/tcp_proxy.h): the worker keeps running its handlers while the database is out
// of reach, and records their outcomes when it returns; nothing is lost or run twice.
#include <gtest/gtest.h>

#include "ergon/ergon.h"
#include "store/store.h"
#include "support/pg_test_db.h"
#include "support/tcp_proxy.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Step {
  static constexpr std::string_view kJobType = "step";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Step, n)

TEST(OutageTest, AnOutcomeReachedDuringAnOutageIsStoredWhenTheDatabaseReturns) {
  std::string server = pg_test_server_url();
  if (server.empty()) GTEST_SKIP() << kNoPostgres;
  PgTestSchema schema(server);
  // The test's own store talks to the server directly; the worker's goes through the proxy.
  auto direct = open_store(schema.url());
  TcpProxy proxy("127.0.0.1", pg_url_port(server));
  auto via_proxy = open_store(pg_url_via_port(schema.url(), proxy.port()));

  Gate gate;
  EventCounter started, completed, other;
  HandlerRegistry handlers;
  handlers.add<Step>([&](const Step&, JobContext&) {
    started.add();
    gate.wait();
  });
  WorkerOptions options;
  options.polling_interval = 50ms;
  options.heartbeat_interval = 100ms;
  options.orphaned_job_threshold = 1h;  // no rescue: the outage alone is under test
  options.run_scheduler = false;
  options.on_event = [&](const JobEvent& e) {
    (e.kind == Kind::kCompleted ? completed : other).add();
  };
  JobsWorker worker(via_proxy, handlers, options);
  worker.start();
  JobId id = JobRunner(direct).start_job(Step{1});
  ASSERT_TRUE(started.wait_for(1));

  proxy.cut();
  gate.open();  // the handler returns while the database is out of reach
  // The outage outlasts many tries to store the outcome (they back off up to a second); this
  // waits for real time because the database comes back in real time. Meanwhile the job is
  // still Running in the database and the worker still holds its slot.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(direct->job_get(id)->status, JobStatus::kRunning);
  EXPECT_EQ(completed.count(), 0);
  EXPECT_EQ(worker.running_jobs(), 1u);

  proxy.restore();
  ASSERT_TRUE(completed.wait_for(1));
  JobRecord job = *direct->job_get(id);
  EXPECT_EQ(job.status, JobStatus::kCompleted);
  EXPECT_EQ(job.attempt, 1);
  EXPECT_EQ(started.count(), 1);
  EXPECT_EQ(other.count(), 1);  // kStarted only: no retry, no release, no fencing
  worker.stop();
}

}  // namespace
}  // namespace ergon::testing
