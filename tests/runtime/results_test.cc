// What a job returned and how it got there, through a real worker on each store (SQLite;
// PostgreSQL with ERGON_TEST_POSTGRES_URL): results read back with JobRunner::result and
// JobRunner::wait, the attempt history, tags and meta in the handler, progress without a
// percent. A FakeClock drives retries; on_event counters replace sleeps.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <future>
#include <sstream>
#include <thread>

#include "ergon/ergon.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

struct Sum {
  static constexpr std::string_view kJobType = "sum";
  int a = 0;
  int b = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Sum, a, b)

struct Total {
  int total = 0;
  std::string note;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Total, total, note)

class SumHandler final : public JobHandler<Sum, Total> {
 public:
  Total handle(const Sum& job, JobContext&) override { return {job.a + job.b, "é ok"}; }
};

class ResultsTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  ResultsTest() {
    options_.max_concurrent_jobs = 2;
    options_.polling_interval = 1h;  // only the in-process wake-up starts jobs quickly
    options_.retry_base_delay = 10s;
    options_.on_event = [this](const JobEvent& e) { counter(e.kind).add(); };
  }
  void SetUp() override {
    backend_ = GetParam().make(dir_);
    if (backend_) store_ = backend_->open(clock_);
  }
  EventCounter& counter(Kind k) { return events_[static_cast<int>(k)]; }
  bool wait_for(Kind k, int n) { return counter(k).wait_for(n); }
  std::unique_ptr<JobsWorker> start_worker() {
    auto w = std::make_unique<JobsWorker>(store_, std::move(handlers_), options_);
    w->start();
    return w;
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::unique_ptr<TestBackend> backend_;
  std::shared_ptr<Store> store_;
  HandlerRegistry handlers_;
  WorkerOptions options_;
  EventCounter events_[9];
};

INSTANTIATE_TEST_SUITE_P(Stores, ResultsTest, every_backend(), backend_name);

TEST_P(ResultsTest, WaitHandsBackWhatTheHandlerReturned) {
  handlers_.add<Sum>(std::make_shared<SumHandler>());
  JobRunner runner(store_);
  JobId id = runner.start_job(Sum{2, 40});
  // Waiting starts before the worker does: the fake clock never moves, so only the
  // completer's in-process wake-up can end this wait.
  auto waited = std::async(std::launch::async, [&] { return runner.wait(id, 1h); });
  auto worker = start_worker();
  std::optional<JobRecord> job = waited.get();
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, JobStatus::kCompleted);
  EXPECT_EQ(nlohmann::json::parse(*job->result), nlohmann::json({{"total", 42}, {"note", "é ok"}}));
  std::optional<Total> total = runner.result<Total>(id);
  ASSERT_TRUE(total);
  EXPECT_EQ(total->total, 42);
  EXPECT_EQ(total->note, "é ok");
  // A result that does not decode as the asked type says so.
  EXPECT_THROW((void)runner.result<std::vector<int>>(id), Error);
  worker->stop();
}

// Another store on the same database, as another process would have (its wait polls on
// SQLite, and hears the completion's notification on PostgreSQL).
TEST_P(ResultsTest, AnotherStoreSeesTheResult) {
  handlers_.add<Sum>([](const Sum& s, JobContext&) { return s.a * s.b; });
  auto worker = start_worker();
  JobId id = JobRunner(store_).start_job(Sum{6, 7});
  SystemClock real;
  auto other = backend_->open(real);
  JobRunner elsewhere(other);
  std::optional<JobRecord> job = elsewhere.wait(id, 30s);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->result, "42");
  EXPECT_EQ(elsewhere.result<int>(id), 42);
  worker->stop();
}

// A FakeClock that tells when a thread starts waiting on it: the test's latch for "the wait
// has read the job once and sleeps".
class LatchClock final : public Clock {
 public:
  explicit LatchClock(TimePoint start) : fake_(start) {}
  [[nodiscard]] TimePoint now() const override { return fake_.now(); }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  TimePoint deadline) override {
    waits_.add();
    fake_.wait_until(lock, cv, deadline);
  }
  void advance(Duration d) { fake_.advance(d); }
  EventCounter waits_;

 private:
  FakeClock fake_;
};

// The worker is another process (store_helper sum), started once the wait sleeps, so the job
// ends after the wait's first look. The wait's clock never moves, so it cannot poll: on
// PostgreSQL only the completion's NOTIFY can end it. SQLite has nothing that crosses
// processes: the clock moves and the wait's next look finds the result.
TEST_P(ResultsTest, WaitHandsBackAResultFromAnotherProcess) {
  LatchClock clock(test_epoch());
  auto mine = backend_->open(clock);
  JobRunner runner(mine);
  JobId id = runner.start_job(Sum{20, 22});
  auto waited = std::async(std::launch::async, [&] { return runner.wait(id, 1h); });
  ASSERT_TRUE(clock.waits_.wait_for(1));
  if (GetParam().name == "postgres") {
    // Its LISTEN runs before the worker starts, or the notification could go to nobody.
    ASSERT_TRUE(eventually([&] {
      return backend_->connect()->value(
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND application_name LIKE 'ergon-wait:%' AND state = 'idle' "
                 "AND query LIKE 'LISTEN%'") == "1";
    }));
  }
  ProcessResult worker = run_process({STORE_HELPER, "sum", backend_->url(), "1"});
  ASSERT_EQ(worker.status, 0) << worker.err;
  if (GetParam().name != "postgres") {
    EXPECT_NE(waited.wait_for(100ms), std::future_status::ready);  // nothing woke it
    clock.advance(1s);
  }
  ASSERT_EQ(waited.wait_for(30s), std::future_status::ready);
  std::optional<JobRecord> job = waited.get();
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, JobStatus::kCompleted);
  std::optional<Total> total = runner.result<Total>(id);
  ASSERT_TRUE(total);
  EXPECT_EQ(total->total, 42);
  EXPECT_EQ(total->note, "é ok");
  EXPECT_NE(runner.list_attempts(id).at(0).worker_id, "");
}

TEST_P(ResultsTest, WaitEndsAtItsTimeoutAndRefusesUnknownJobs) {
  JobRunner runner(store_);
  JobId id = runner.start_job(Sum{1, 1});  // no worker: it stays Pending
  auto waited = std::async(std::launch::async, [&] { return runner.wait(id, 5s); });
  // The wait polls on the fake clock: once time passes the timeout, it gives up.
  while (waited.wait_for(10ms) != std::future_status::ready) clock_.advance(1s);
  EXPECT_FALSE(waited.get());
  EXPECT_FALSE(runner.wait(id, 0s));
  EXPECT_FALSE(runner.result_json(id));
  EXPECT_THROW((void)runner.wait(JobId::generate(clock_.now()), 1s), Error);
  EXPECT_THROW((void)runner.result_json(JobId::generate(clock_.now())), Error);
  EXPECT_THROW((void)runner.wait(id, -1s), Error);
}

// Two failures, then success: three attempts, each with its worker, its times and its error.
TEST_P(ResultsTest, EveryAttemptLeavesItsRow) {
  std::atomic<int> calls{0};
  handlers_.add<Sum>([&](const Sum&, JobContext&) {
    int n = ++calls;
    if (n < 3) throw std::runtime_error("boom " + std::to_string(n));
    return n;
  });
  auto worker = start_worker();
  JobRunner runner(store_);
  JobId id = runner.start_job(Sum{});
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 1));
  clock_.advance(10s);
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 2));
  clock_.advance(20s);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  std::optional<JobRecord> job = runner.get_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->result, "3");
  std::vector<AttemptRecord> attempts = runner.list_attempts(id);
  ASSERT_EQ(attempts.size(), 3u);
  const AttemptOutcome expected[] = {AttemptOutcome::kRetried, AttemptOutcome::kRetried,
                                     AttemptOutcome::kCompleted};
  for (int i = 0; i < 3; ++i) {
    const AttemptRecord& a = attempts[static_cast<std::size_t>(i)];
    SCOPED_TRACE(i);
    EXPECT_EQ(a.job_id, id);
    EXPECT_EQ(a.attempt, i + 1);
    EXPECT_EQ(a.outcome, expected[i]);
    EXPECT_EQ(a.worker_id, worker->worker_id());
    EXPECT_LE(a.started_at, a.finished_at);
    if (i < 2) {
      EXPECT_EQ(a.error_message, "std::runtime_error: boom " + std::to_string(i + 1));
    } else {
      EXPECT_FALSE(a.error_message);
    }
  }
  EXPECT_LT(attempts[0].finished_at, attempts[1].started_at);
  worker->stop();
}

// What an operator sees at the default level (info), in the JSON format: the retry with its
// error and next run at warn, the failure for good at error, each with the job's fields; and a
// job that then completes has no error left (its attempts keep theirs).
TEST_P(ResultsTest, RetriesAndFailuresReachTheDefaultLog) {
  // A sink that formats as it is written (a ring buffer formats later, without the job's
  // fields, which live only while the line is written).
  std::ostringstream out;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "ergon", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
  configure_logging({LogFormat::kJson, "info"});
  std::atomic<int> calls{0};
  handlers_.add<Sum>([&](const Sum& s, JobContext&) {
    if (s.a == 0 || ++calls == 1) throw std::runtime_error("boom");
    return 1;
  });
  auto worker = start_worker();
  JobRunner runner(store_);
  JobOptions once;
  once.max_attempts = 1;
  once.queue = "mail";
  JobId doomed = runner.start_job(Sum{0, 0}, once);
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  JobOptions twice;
  twice.max_attempts = 2;
  JobId retried = runner.start_job(Sum{1, 0}, twice);
  ASSERT_TRUE(wait_for(Kind::kRetryScheduled, 1));
  clock_.advance(10s);
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  worker->stop();
  spdlog::set_default_logger(previous);
  configure_logging({});

  std::vector<nlohmann::json> lines;
  std::istringstream in(out.str());
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  auto find = [&](const JobId& id, std::string_view level) -> const nlohmann::json* {
    for (const auto& l : lines) {
      if (l.value("job_id", "") == id.to_string() && l["level"] == level) return &l;
    }
    return nullptr;
  };
  const nlohmann::json* failed = find(doomed, "error");
  ASSERT_TRUE(failed) << nlohmann::json(lines).dump(1);
  EXPECT_NE(failed->at("msg").get<std::string>().find("failed for good: std::runtime_error: boom"),
            std::string::npos)
      << *failed;
  EXPECT_EQ(failed->at("job_type"), "sum");
  EXPECT_EQ(failed->at("attempt"), 1);
  EXPECT_EQ(failed->at("queue"), "mail");
  const nlohmann::json* retry = find(retried, "warning");
  ASSERT_TRUE(retry);
  const std::string msg = retry->at("msg");
  EXPECT_NE(msg.find("failed, retry at 20"), std::string::npos) << msg;  // an ISO-8601 instant
  EXPECT_NE(msg.find(": std::runtime_error: boom"), std::string::npos) << msg;
  EXPECT_EQ(retry->at("queue"), "default");
  EXPECT_FALSE(find(retried, "error"));

  EXPECT_FALSE(runner.get_job(retried)->error_message);
  EXPECT_EQ(runner.list_attempts(retried).at(0).error_message, "std::runtime_error: boom");
}

TEST_P(ResultsTest, AResultPastTheLimitFailsTheJobSayingWhy) {
  options_.max_result_bytes = 10;
  handlers_.add<Sum>([](const Sum&, JobContext&) { return std::string(20, 'x'); });
  auto worker = start_worker();
  JobRunner runner(store_);
  JobId id = runner.start_job(Sum{});
  ASSERT_TRUE(wait_for(Kind::kFailed, 1));
  std::optional<JobRecord> job = runner.get_job(id);
  EXPECT_EQ(job->status, JobStatus::kFailed);
  EXPECT_FALSE(job->result);
  EXPECT_EQ(job->error_message,
            "result too large: 22 bytes, the limit is 10 (WorkerOptions::max_result_bytes, "
            "MaxResultBytes)");
  ASSERT_EQ(runner.list_attempts(id).size(), 1u);
  EXPECT_EQ(runner.list_attempts(id)[0].outcome, AttemptOutcome::kFailed);
  worker->stop();
}

TEST_P(ResultsTest, TheHandlerSeesItsTagsAndMeta) {
  std::promise<std::pair<std::vector<std::string>, nlohmann::json>> seen;
  handlers_.add<Sum>([&](const Sum&, JobContext& ctx) {
    seen.set_value({ctx.tags(), ctx.meta()});
    ctx.report_progress("halfway, no percent");
  });
  auto worker = start_worker();
  JobRunner runner(store_);
  JobOptions o;
  o.tags = {"customer:42", "é"};
  o.meta = R"({"trace": "abc", "n": [1, 2]})";
  JobId id = runner.start_job(Sum{}, o);
  auto [tags, meta] = seen.get_future().get();
  EXPECT_EQ(tags, o.tags);
  EXPECT_EQ(meta, nlohmann::json::parse(o.meta));
  ASSERT_TRUE(wait_for(Kind::kCompleted, 1));
  std::optional<JobRecord> job = runner.get_job(id);
  EXPECT_EQ(job->tags, o.tags);
  EXPECT_EQ(job->progress_message, "halfway, no percent");
  EXPECT_FALSE(job->progress_percent);
  JobFilter f;
  f.tag = "customer:42";
  ASSERT_EQ(runner.list_jobs(f).size(), 1u);
  f.tag = "customer:4";
  EXPECT_TRUE(runner.list_jobs(f).empty());
  worker->stop();
}

// A job's and a schedule's alike (a schedule's are those of the jobs it starts).
TEST_P(ResultsTest, BadTagsAndMetaAreRefusedAndWriteNothing) {
  JobRunner runner(store_);
  auto attempt = [](auto&& call) {
    try {
      call();
      return std::string("accepted");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
  };
  auto refused = [&](JobOptions o) {
    std::string job = attempt([&] { runner.start_job(Sum{}, o); });
    std::string schedule = attempt([&] {
      runner.add_or_update_scheduled_job(Sum{}, "@hourly", {.tags = o.tags, .meta = o.meta});
    });
    EXPECT_EQ(schedule, job);
    return job;
  };
  JobOptions many;
  for (int i = 0; i < 21; ++i) many.tags.push_back("t" + std::to_string(i));
  EXPECT_EQ(refused(many), "21 tags, the limit is 20");
  EXPECT_NE(refused({.tags = {std::string(101, 'x')}}).find("tag"), std::string::npos);
  EXPECT_NE(refused({.tags = {""}}).find("tag"), std::string::npos);
  EXPECT_NE(refused({.tags = {"a\nb"}}).find("tag"), std::string::npos);
  EXPECT_NE(refused({.tags = {"bad \xff"}}).find("tag"), std::string::npos);
  EXPECT_EQ(refused({.tags = {"a", "a"}}), "tag 'a' is given twice");
  EXPECT_EQ(refused({.meta = "[1]"}), "meta must be a JSON object");
  EXPECT_EQ(refused({.meta = "{"}), "meta is not valid JSON");
  EXPECT_EQ(refused({.meta = R"({"a": "\u0000"})"}),
            "meta holds a NUL character (\\u0000), which PostgreSQL cannot store");
  EXPECT_EQ(refused({.meta = "{\"a\":\"" + std::string(64 * 1024, 'x') + "\"}"}),
            "meta is 65544 bytes, the limit is 65536");
  EXPECT_TRUE(runner.list_jobs().empty());
  EXPECT_TRUE(runner.list_scheduled_jobs().empty());
}

}  // namespace
}  // namespace ergon::testing
