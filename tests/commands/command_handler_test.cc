// Command handlers end to end: a worker runs jobs whose handlers are shell scripts.
#include "commands/command_handler.h"

#include <gtest/gtest.h>

#include <fstream>

#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using Kind = JobEvent::Kind;

class CommandHandlerTest : public ::testing::Test {
 protected:
  CommandHandlerTest() {
    store_ = open_store(sqlite_url(dir_), {.clock = &clock_});
    options_.max_concurrent_jobs = 2;
    options_.polling_interval = 1h;
    options_.on_event = [this](const JobEvent& e) { events_[static_cast<int>(e.kind)].add(); };
  }

  // Writes `body` as an executable script in the test directory and returns its path.
  std::string script(const std::string& name, const std::string& body) {
    std::string path = dir_.file(name);
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path;
  }

  JobRecord run(const std::string& config_json, const std::string& type, const std::string& data,
                Kind until) {
    HandlerRegistry handlers;
    commands::add_command_handlers(handlers, commands::parse_cli_config(config_json));
    JobsWorker worker(store_, std::move(handlers), options_);
    worker.start();
    JobRunner runner(store_);
    JobId id = runner.start_job_raw(type, data);
    EXPECT_TRUE(events_[static_cast<int>(until)].wait_for(1));
    worker.stop();
    return *runner.get_job(id);
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::shared_ptr<Store> store_;
  WorkerOptions options_;
  EventCounter events_[9];  // one per JobEvent::Kind
};

TEST_F(CommandHandlerTest, PassesJobDataAndEnvironmentAndSucceedsOnExitZero) {
  std::string out = dir_.file("seen.txt");
  std::string s =
      script("ok.sh", "cat > " + out +
                          ".data\n"
                          "echo \"$ERGON_JOB_ID $ERGON_JOB_TYPE $ERGON_ATTEMPT $GREETING\" > " +
                          out);
  auto r =
      run(R"({"Handlers": {"resize": {"command": [")" + s + R"("], "env": {"GREETING": "hi"}}}})",
          "resize", R"({"image":"a.png"})", Kind::kCompleted);
  EXPECT_EQ(r.status, JobStatus::kCompleted);
  std::string line;
  std::getline(std::ifstream(out), line);
  EXPECT_EQ(line, r.id.to_string() + " resize 1 hi");
  std::string data;
  std::getline(std::ifstream(out + ".data"), data);
  EXPECT_EQ(data, R"({"image":"a.png"})");
}

TEST_F(CommandHandlerTest, ProgressLinesBecomeProgress) {
  std::string s = script("progress.sh",
                         "echo 'progress 10 starting'\necho 'some log line'\n"
                         "echo 'progress 100 all done'");
  auto r =
      run(R"({"Handlers": {"p": {"command": [")" + s + R"("]}}})", "p", "{}", Kind::kCompleted);
  EXPECT_EQ(r.progress_message, "all done");
  EXPECT_EQ(r.progress_percent, 100);
}

// The stdout protocol's directives: the last `result` line is the job's result, `fail` ends it
// for good, `snooze` runs it again later without using the attempt.
TEST_F(CommandHandlerTest, AResultLineBecomesTheResult) {
  std::string s = script("result.sh", "echo 'result {\"n\": 1}'\necho 'result {\"n\": 2}'");
  auto r =
      run(R"({"Handlers": {"r": {"command": [")" + s + R"("]}}})", "r", "{}", Kind::kCompleted);
  EXPECT_EQ(r.status, JobStatus::kCompleted);
  ASSERT_TRUE(r.result);
  EXPECT_EQ(nlohmann::json::parse(*r.result), nlohmann::json({{"n", 2}}));
}

TEST_F(CommandHandlerTest, AResultLineThatIsNotJsonFailsTheAttemptSayingSo) {
  std::string s = script("bad.sh", "echo 'result {not json'");
  auto r = run(R"({"Handlers": {"r": {"command": [")" + s + R"("], "maxAttempts": 1}}})", "r", "{}",
               Kind::kFailed);
  EXPECT_FALSE(r.result);
  EXPECT_EQ(r.error_message,
            "ergon::commands::CommandFailed: the command's result line: the result is not valid "
            "JSON");
}

TEST_F(CommandHandlerTest, AFailLineFailsForGoodWhateverTheExitStatus) {
  std::string ok = script("fail0.sh", "echo 'fail account closed'");
  auto r = run(R"({"Handlers": {"f": {"command": [")" + ok + R"("], "maxAttempts": 5}}})", "f",
               "{}", Kind::kFailed);
  EXPECT_EQ(r.status, JobStatus::kFailed);
  EXPECT_EQ(r.attempt, 1);
  EXPECT_EQ(r.error_message, "ergon::NonRetryableError: account closed");
}

TEST_F(CommandHandlerTest, AFailLineWithANonZeroExitSaysBoth) {
  std::string bad = script("fail3.sh", "echo 'fail no such user'\nexit 3");
  auto r3 = run(R"({"Handlers": {"g": {"command": [")" + bad + R"("], "maxAttempts": 5}}})", "g",
                "{}", Kind::kFailed);
  EXPECT_EQ(r3.attempt, 1);
  EXPECT_EQ(r3.error_message,
            "ergon::NonRetryableError: no such user (command exited with status 3)");
}

TEST_F(CommandHandlerTest, ASnoozeLineRunsTheJobAgainLaterWithoutUsingTheAttempt) {
  std::string s = script("snooze.sh", "echo 'snooze 00:05:00'");
  auto r = run(R"({"Handlers": {"s": {"command": [")" + s + R"("]}}})", "s", "{}", Kind::kSnoozed);
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.attempt, 0);
  EXPECT_EQ(r.run_at, clock_.now() + 5min);
}

TEST_F(CommandHandlerTest, ASnoozeLineWithoutADurationFailsTheAttemptSayingSo) {
  std::string bad = script("snooze_bad.sh", "echo 'snooze soon'");
  auto b = run(R"({"Handlers": {"t": {"command": [")" + bad + R"("], "maxAttempts": 1}}})", "t",
               "{}", Kind::kFailed);
  ASSERT_TRUE(b.error_message);
  EXPECT_NE(b.error_message->find("the command's snooze line"), std::string::npos)
      << *b.error_message;
}

TEST_F(CommandHandlerTest, NonZeroExitFailsTheAttemptWithTheStderrTail) {
  std::string s = script("fail.sh", "echo 'connecting' >&2\necho 'disk full' >&2\nexit 3");
  auto r = run(R"({"Handlers": {"f": {"command": [")" + s + R"("], "maxAttempts": 1}}})", "f", "{}",
               Kind::kFailed);
  EXPECT_EQ(r.status, JobStatus::kFailed);
  ASSERT_TRUE(r.error_message);
  EXPECT_NE(r.error_message->find("exited with status 3"), std::string::npos) << *r.error_message;
  EXPECT_NE(r.error_message->find("disk full"), std::string::npos) << *r.error_message;
}

TEST_F(CommandHandlerTest, FailureIsRetriedWhileAttemptsRemain) {
  std::string s = script("fail.sh", "exit 1");
  auto r = run(R"({"Handlers": {"f": {"command": [")" + s + R"("], "maxAttempts": 2}}})", "f", "{}",
               Kind::kRetryScheduled);
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.attempt, 1);
}

TEST_F(CommandHandlerTest, TimeoutKillsTheProcessGroupAndFailsTheAttempt) {
  std::string pidfile = dir_.file("grandchild.pid");
  std::string s = script("slow.sh", "sleep 30 &\necho $! > " + pidfile + "\nsleep 30");
  auto r = run(R"({"Handlers": {"slow": {"command": [")" + s +
                   R"("], "timeout": "00:00:00.300", "maxAttempts": 1}}})",
               "slow", "{}", Kind::kFailed);
  ASSERT_TRUE(r.error_message);
  EXPECT_NE(r.error_message->find("timed out"), std::string::npos) << *r.error_message;
  // The whole group was killed: the background grandchild is not left running.
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  ASSERT_GT(grandchild, 0);
  std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
  std::string content;
  std::getline(stat, content);
  // Gone, or a zombie waiting for init to reap it: either way no longer running.
  EXPECT_TRUE(content.empty() || content.find(") Z ") != std::string::npos) << content;
}

TEST_F(CommandHandlerTest, MissingCommandFailsWithAClearMessage) {
  auto r = run(R"({"Handlers": {"m": {"command": ["/nonexistent/tool"], "maxAttempts": 1}}})", "m",
               "{}", Kind::kFailed);
  ASSERT_TRUE(r.error_message);
  EXPECT_NE(r.error_message->find("/nonexistent/tool"), std::string::npos) << *r.error_message;
}

}  // namespace
}  // namespace ergon::testing
