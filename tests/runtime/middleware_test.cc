// Middleware: an enqueue chain on JobRunner (adds tags and meta, rejects with its own error,
// per job type) and an execution chain on HandlerRegistry (wraps the handler in order, sees its
// outcome, translates its exceptions), through a real worker on SQLite. on_event counters
// replace sleeps.
#include <gtest/gtest.h>

#include "ergon/ergon.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using Kind = JobEvent::Kind;

struct Ping {
  static constexpr std::string_view kJobType = "ping";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Ping, n)

struct Pong {
  static constexpr std::string_view kJobType = "pong";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Pong, n)

class MiddlewareTest : public ::testing::Test {
 protected:
  MiddlewareTest() {
    backend_ = sqlite_backend().make(dir_);
    store_ = backend_->open(clock_);
    options_.on_event = [this](const JobEvent& e) { events_[static_cast<int>(e.kind)].add(); };
  }
  bool wait_for(Kind k, int n) { return events_[static_cast<int>(k)].wait_for(n); }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::unique_ptr<TestBackend> backend_;
  std::shared_ptr<Store> store_;
  WorkerOptions options_;
  EventCounter events_[9];
};

TEST_F(MiddlewareTest, EnqueueMiddlewareAddsMetaAndTagsAndMayReject) {
  JobRunner runner(store_);
  runner.use([](EnqueueRequest& r) {
    nlohmann::json meta =
        r.options.meta.empty() ? nlohmann::json::object() : nlohmann::json::parse(r.options.meta);
    meta["tenant"] = "acme";
    r.options.meta = meta.dump();
  });
  runner.use(
      [](EnqueueRequest& r) {
        if (nlohmann::json::parse(r.job_data).at("n") < 0) {
          throw Error(ErrorCode::kInvalidArgument, "ping: n must not be negative");
        }
        r.options.tags.push_back("pinged");
      },
      "ping");
  JobOptions given;
  given.meta = R"({"source":"api"})";
  JobId ping = runner.start_job(Ping{1}, given);
  JobId pong = runner.start_job(Pong{});
  std::vector<JobId> many = runner.start_jobs(std::vector<Ping>{{2}, {3}});

  auto meta = [&](const JobId& id) { return nlohmann::json::parse(*runner.get_job(id)->meta); };
  EXPECT_EQ(meta(ping), nlohmann::json({{"source", "api"}, {"tenant", "acme"}}));
  EXPECT_EQ(runner.get_job(ping)->tags, std::vector<std::string>{"pinged"});
  EXPECT_EQ(meta(pong), nlohmann::json({{"tenant", "acme"}}));
  EXPECT_TRUE(runner.get_job(pong)->tags.empty());  // the typed middleware is ping's only
  for (const JobId& id : many) EXPECT_EQ(runner.get_job(id)->tags.size(), 1u);

  // A rejection reaches the caller as the middleware threw it, and writes nothing.
  const std::size_t before = runner.list_jobs({}).size();
  try {
    (void)runner.start_job(Ping{-1});
    ADD_FAILURE() << "not rejected";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "ping: n must not be negative");
  }
  EXPECT_THROW((void)runner.start_jobs(std::vector<Ping>{{4}, {-4}}), Error);
  EXPECT_EQ(runner.list_jobs({}).size(), before);
  // What a middleware adds is checked like what the caller gave.
  runner.use([](EnqueueRequest& r) { r.options.tags.push_back(""); }, "pong");
  EXPECT_THROW((void)runner.start_job(Pong{}), Error);
  EXPECT_EQ(runner.list_jobs({}).size(), before);
  EXPECT_THROW(runner.use(EnqueueMiddleware{}), Error);
}

TEST_F(MiddlewareTest, ExecutionMiddlewareWrapsTheHandlerInOrderAndSeesItsOutcome) {
  std::mutex mu;
  std::vector<std::string> trace;  // guarded by mu
  auto log = [&](std::string line) {
    std::lock_guard lock(mu);
    trace.push_back(std::move(line));
  };
  HandlerRegistry handlers;
  handlers.add<Ping>([&](const Ping& p, JobContext&) {
    log("handler " + std::to_string(p.n));
    if (p.n == 2) throw std::runtime_error("bad ping");
    if (p.n == 3) throw std::logic_error("a bug");
    return p.n * 10;
  });
  handlers.use([&](JobContext& ctx, const std::function<void()>& next) {
    log("outer before " + std::string(ctx.job_type()));
    try {
      next();
      log("outer after: completed");
    } catch (const std::exception& e) {
      log(std::string("outer after: threw ") + e.what());
      throw;
    }
  });
  handlers.use(
      [&](JobContext&, const std::function<void()>& next) {
        log("inner before");
        try {
          next();
        } catch (const std::logic_error& e) {
          // Translated: a bug is not worth another attempt.
          throw NonRetryableError(std::string("translated: ") + e.what());
        }
      },
      "ping");
  options_.max_concurrent_jobs = 1;
  JobsWorker worker(store_, std::move(handlers), options_);
  JobRunner runner(store_);
  JobOptions once;
  once.max_attempts = 5;
  JobId ok = runner.start_job(Ping{1}, once);
  worker.start();
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  EXPECT_EQ(runner.result<int>(ok), 10);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(trace, (std::vector<std::string>{"outer before ping", "inner before", "handler 1",
                                               "outer after: completed"}));
    trace.clear();
  }
  JobId retried = runner.start_job(Ping{2}, once);
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 1));
  JobId failed = runner.start_job(Ping{3}, once);
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  worker.stop();
  EXPECT_EQ(runner.get_job(retried)->status, JobStatus::kPending);
  auto job = runner.get_job(failed);
  EXPECT_EQ(job->status, JobStatus::kFailed);  // at its first of five attempts
  EXPECT_NE(job->error_message->find("translated: a bug"), std::string::npos);
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(trace.begin(), trace.end(), "outer after: threw bad ping"), trace.end());
  EXPECT_NE(std::find(trace.begin(), trace.end(), "outer after: threw translated: a bug"),
            trace.end());
}

}  // namespace
}  // namespace ergon::testing
