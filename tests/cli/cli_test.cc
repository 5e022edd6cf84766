// The `ergon` binary as a user runs it: real processes, real SQLite files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/pg_test_db.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

class CliTest : public ::testing::Test {
 protected:
  ProcessResult ergon(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), kErgon);
    return run_process(args, input, {"ERGON_DATABASE_URL="});
  }
  // The database: a SQLite file, unless a test (CliStoreTest) points it elsewhere.
  std::string db() { return db_url_.empty() ? "sqlite:" + dir_.file("jobs.db") : db_url_; }
  std::size_t job_count() {
    auto r = ergon({"jobs", "list", "--json", "--db", db(), "--limit", "10000"});
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out).size();
  }
  void migrate() {
    auto r = ergon({"migrate", "--db", db()});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  // `ergon worker --config CONFIG` in the background; -1 if it could not be started.
  static pid_t spawn_worker(const std::string& config) {
    pid_t pid = fork();
    if (pid == 0) {
      execl(kErgon.c_str(), kErgon.c_str(), "worker", "--config", config.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }
  // Waits (bounded by a deadline) until `n` jobs are Completed, watching through the CLI.
  bool wait_completed(std::size_t n, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = ergon({"jobs", "list", "--status", "Completed", "--json", "--db", db()});
      if (r.status == 0 && nlohmann::json::parse(r.out).size() == n) return true;
    }
    return false;
  }

  // Runs `workers` worker processes on a config whose handler is `script` for `type` (four slots,
  // 20 ms polling) until `jobs` jobs are Completed, then stops them; false if they did not
  // finish within a minute.
  bool run_workers(const std::string& type, const std::string& script, int workers, int jobs) {
    std::string config = dir_.file("ergon.json");
    std::ofstream(config) << R"({"Database": ")" << db()
                          << R"(", "JobsWorker": {"PollingInterval": "00:00:00.020",
                                "MaxConcurrentJobs": 4, "RunScheduler": false},
                                "Handlers": {")"
                          << type << R"(": {"command": [")" << script << R"("]}}})";
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; ++w) {
      pids.push_back(spawn_worker(config));
      EXPECT_GE(pids.back(), 0);
    }
    bool done = wait_completed(static_cast<std::size_t>(jobs), std::chrono::seconds(60));
    for (pid_t pid : pids) {
      if (pid > 0) kill(pid, SIGTERM);
    }
    for (pid_t pid : pids) {
      if (pid > 0) waitpid(pid, nullptr, 0);
    }
    return done;
  }

  TempDir dir_;
  std::string db_url_;
};

// The tests that hold on both stores: "sqlite", or "postgres" (a fresh schema of the server in
// ERGON_TEST_POSTGRES_URL; skipped without one).
class CliStoreTest : public CliTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "postgres") return;
    std::string server = pg_test_server_url();
    if (server.empty()) GTEST_SKIP() << kNoPostgres;
    schema_ = std::make_unique<PgTestSchema>(server);
    db_url_ = schema_->url();
  }
  std::unique_ptr<PgTestSchema> schema_;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A command handler's result line, read back by `enqueue --wait` in another process; its
// failed attempts, listed by `jobs show`; a tag found by `jobs list --tag`.
TEST_P(CliStoreTest, EnqueueWaitPrintsTheResultAndShowListsTheAttempts) {
  migrate();
  std::string count = dir_.file("count");
  std::string script = dir_.file("handler.sh");
  // Fails twice (exit 1 with a line on stderr), then prints its result.
  std::ofstream(script) << "#!/bin/sh\necho x >> " << count << "\nn=$(wc -l < " << count
                        << ")\nif [ \"$n\" -lt 3 ]; then echo \"try $n broke\" >&2; exit 1; fi\n"
                        << "echo \"result {\\\"tries\\\": $n}\"\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Database": ")" << db()
                        << R"(", "JobsWorker": {"PollingInterval": "00:00:00.020",
                              "RetryBaseDelay": "00:00:00.001", "RetryMaxDelay": "00:00:00.002",
                              "RunScheduler": false},
                              "Handlers": {"flaky": {"command": [")"
                        << script << R"("]}}})";
  pid_t pid = spawn_worker(config);
  ASSERT_GE(pid, 0);
  auto r = ergon({"enqueue", "flaky", "{}", "--tag", "customer:42", "--meta", R"({"k": 1})",
                  "--wait", "--timeout", "60s", "--db", db()});
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json({{"tries", 3}}));
  const std::string id = trim(r.err);
  auto show = ergon({"jobs", "show", id, "--json", "--db", db()});
  ASSERT_EQ(show.status, 0) << show.err;
  auto job = nlohmann::json::parse(show.out);
  EXPECT_EQ(job["result"], nlohmann::json({{"tries", 3}}));
  EXPECT_EQ(job["tags"], nlohmann::json::array({"customer:42"}));
  EXPECT_EQ(job["meta"], nlohmann::json({{"k", 1}}));
  ASSERT_EQ(job["attempts"].size(), 3u) << show.out;
  for (int i = 0; i < 3; ++i) {
    const auto& a = job["attempts"][static_cast<std::size_t>(i)];
    EXPECT_EQ(a["attempt"], i + 1);
    EXPECT_EQ(a["outcome"], i < 2 ? "retried" : "completed");
    EXPECT_GE(a["duration_ms"].get<std::int64_t>(), 0);
    EXPECT_FALSE(a["worker_id"].get<std::string>().empty());
    if (i < 2) {
      EXPECT_NE(
          a["error_message"].get<std::string>().find("try " + std::to_string(i + 1) + " broke"),
          std::string::npos)
          << a;
    }
  }
  auto table = ergon({"jobs", "show", id, "--db", db()});
  EXPECT_NE(table.out.find("attempts:"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("retried"), std::string::npos) << table.out;
  auto tagged = ergon({"jobs", "list", "--tag", "customer:42", "--json", "--db", db()});
  ASSERT_EQ(tagged.status, 0) << tagged.err;
  EXPECT_EQ(nlohmann::json::parse(tagged.out).size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(
                ergon({"jobs", "list", "--tag", "customer:4", "--json", "--db", db()}).out)
                .size(),
            0u);
}

TEST_F(CliTest, JobsWaitTimesOutAndRefusesBadInput) {
  migrate();
  auto e = ergon({"enqueue", "nobody", "--db", db()});
  ASSERT_EQ(e.status, 0) << e.err;
  const std::string id = trim(e.out);
  auto w = ergon({"jobs", "wait", id, "--timeout", "50ms", "--db", db()});
  EXPECT_EQ(w.status, 4) << w.err;
  EXPECT_NE(w.err.find("is still Pending after"), std::string::npos) << w.err;
  EXPECT_EQ(ergon({"jobs", "wait", id, "--timeout", "-1s", "--db", db()}).status, 2);
  EXPECT_EQ(ergon({"jobs", "wait", "nope", "--db", db()}).status, 2);
  EXPECT_EQ(ergon({"jobs", "wait", JobId::generate(test_epoch()).to_string(), "--timeout", "1s",
                   "--db", db()})
                .status,
            3);
  EXPECT_EQ(ergon({"enqueue", "t", "--count", "2", "--wait", "--db", db()}).status, 2);
  EXPECT_EQ(ergon({"enqueue", "t", "--timeout", "1s", "--db", db()}).status, 2);
  EXPECT_EQ(ergon({"enqueue", "t", "--meta", "[1]", "--db", db()}).status, 1);
  EXPECT_EQ(ergon({"enqueue", "t", "--tag", "", "--db", db()}).status, 1);
}

TEST_F(CliTest, MigrateThenEnqueueThenInspect) {
  auto m = ergon({"migrate", "--db", db()});
  ASSERT_EQ(m.status, 0) << m.err;
  EXPECT_EQ(m.out,
            "applied migration 1\napplied migration 2\napplied migration 3\napplied migration 4\n"
            "applied migration 5\napplied migration 6\napplied migration 7\napplied migration 8\n"
            "applied migration 9\napplied migration 10\napplied migration 11\n"
            "applied migration 12\n");
  EXPECT_EQ(ergon({"migrate", "--db", db()}).out, "schema is up to date\n");

  auto e = ergon({"enqueue", "resize", R"({"image":"a.png"})", "--db", db(), "--delay", "90s",
                  "--max-attempts", "3"});
  ASSERT_EQ(e.status, 0) << e.err;
  std::string id = trim(e.out);
  ASSERT_EQ(id.size(), 36u);

  auto show = ergon({"jobs", "show", id, "--json", "--db", db()});
  ASSERT_EQ(show.status, 0) << show.err;
  auto j = nlohmann::json::parse(show.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["job_type"], "resize");
  EXPECT_EQ(j["job_data"]["image"], "a.png");
  EXPECT_EQ(j["status"], "Pending");
  EXPECT_EQ(j["max_attempts"], 3);

  auto text = ergon({"jobs", "show", id, "--db", db()});
  EXPECT_NE(text.out.find("status:"), std::string::npos);
  auto list = ergon({"jobs", "list", "--status", "pending", "--type", "resize", "--db", db()});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_NE(list.out.find(id), std::string::npos);
  EXPECT_EQ(job_count(), 1u);
}

TEST_F(CliTest, DatabaseComesFromTheEnvironmentToo) {
  migrate();
  auto r = run_process({kErgon, "enqueue", "t"}, "", {"ERGON_DATABASE_URL=" + db()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(job_count(), 1u);
}

// Bad input: one clear line on stderr, a non-zero status, and nothing written.
TEST_F(CliTest, BadInputIsRefusedAndChangesNothing) {
  migrate();
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"enqueue", "t", "{not json", "--db", db()}, "not valid JSON"},
      {{"enqueue", "t", "{}", "--delay", "soon", "--db", db()}, "not a duration"},
      {{"enqueue", "t", "{}", "--run-at", "yesterday", "--db", db()}, "ISO-8601"},
      {{"enqueue", "t", "{}", "--max-attempts", "0", "--db", db()}, "max-attempts"},
      {{"enqueue", "t", "{}", "--delay", "5s", "--run-at", "2026-01-01T00:00:00Z", "--db", db()},
       "not both"},
      {{"enqueue", "", "{}", "--db", db()}, "job type must be 1 to 200 bytes"},
      {{"jobs", "show", "not-an-id", "--db", db()}, "not a job id"},
      {{"jobs", "show", "01a223a3-f984-716a-98ba-0e08a36a78ed", "--db", db()}, "no job with id"},
      {{"jobs", "list", "--status", "Done", "--db", db()}, "not one of"},
      {{"jobs", "list", "--limit", "0", "--db", db()}, "limit"},
      {{"jobs", "list", "--bogus", "--db", db()}, "--bogus"},
      {{"jobs", "list", "--db", "sqlite:" + dir_.file("missing.db")}, "not found"},
      {{"jobs", "list", "--db", "mysql://x"}, "unknown database URL"},
      {{"jobs", "list"}, "no database"},
      {{"frobnicate"}, "frobnicate"},
      {{"worker", "--config", dir_.file("nope.json"), "--db", db()}, "nope.json"},
  };
  for (const auto& c : cases) {
    auto r = ergon(c.args);
    std::string all = r.out + r.err;
    EXPECT_NE(r.status, 0) << all;
    EXPECT_LT(r.status, 128) << "crashed: " << all;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.expect << " | " << all;
  }
  EXPECT_EQ(job_count(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("missing.db")));
}

TEST_F(CliTest, CommandsOtherThanMigrateNeedTheSchema) {
  { std::ofstream(dir_.file("jobs.db")); }  // an empty file: a valid, empty SQLite database
  auto r = ergon({"enqueue", "t", "--db", db()});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("ergon migrate"), std::string::npos) << r.err;
}

TEST_F(CliTest, WorkerRunsCommandHandlersAndStopsGracefullyOnSigterm) {
  migrate();
  std::string ledger = dir_.file("ledger.txt");
  std::string script = dir_.file("handler.sh");
  std::ofstream(script) << "#!/bin/sh\necho 'progress 50 half'\ncat >> " << ledger << "\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Database": ")" << db()
                        << R"(", "JobsWorker": {"PollingInterval": "00:00:00.050"},
                              "Handlers": {"note": {"command": [")"
                        << script << R"("]}}})";
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ergon({"enqueue", "note", R"({"i":)" + std::to_string(i) + "}", "--db", db()}).status,
              0);
  }
  // The worker runs in the background; this test waits for the jobs by watching the
  // database through the CLI, bounded by a deadline.
  pid_t pid = spawn_worker(config);
  ASSERT_GE(pid, 0);
  bool done = wait_completed(3, std::chrono::seconds(30));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(done);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto j = nlohmann::json::parse(ergon({"jobs", "list", "--json", "--db", db()}).out);
  for (const auto& job : j) {
    EXPECT_EQ(job["status"], "Completed");
    EXPECT_EQ(job["progress_percent"], 50);
  }
  std::ifstream in(ledger);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(content.find(R"({"i":)" + std::to_string(i) + "}"), std::string::npos) << content;
  }
}

// Three worker processes with four slots each, and a limit of one for the type: the handlers'
// ledger never shows two of them running at once.
TEST_P(CliStoreTest, AConcurrencyLimitHoldsAcrossWorkerProcesses) {
  migrate();
  ASSERT_EQ(ergon({"limits", "set", "scarce", "1", "--db", db()}).status, 0);
  EXPECT_NE(ergon({"limits", "set", "scarce", "-1", "--db", db()}).status, 0);
  EXPECT_NE(ergon({"limits", "set", "", "1", "--db", db()}).status, 0);
  EXPECT_NE(ergon({"limits", "set", "scarce", "many", "--db", db()}).status, 0);
  constexpr int kJobs = 12;
  ASSERT_EQ(
      ergon({"enqueue", "scarce", "{}", "--count", std::to_string(kJobs), "--db", db()}).status, 0);
  std::string ledger = dir_.file("ledger.txt");
  std::string script = dir_.file("handler.sh");
  // The handler's own work is a short sleep, so that overlapping runs would show.
  std::ofstream(script) << "#!/bin/sh\ncat > /dev/null\necho \"start $(date +%s%N)\" >> " << ledger
                        << "\nsleep 0.05\necho \"end $(date +%s%N)\" >> " << ledger << "\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  ASSERT_TRUE(run_workers("scarce", script, 3, kJobs));
  std::ifstream in(ledger);
  std::string word;
  long long stamp = 0;
  int running = 0, most = 0, starts = 0;
  while (in >> word >> stamp) {
    if (word == "start") {
      ++starts;
      most = std::max(most, ++running);
    } else {
      --running;
    }
  }
  EXPECT_EQ(starts, kJobs);
  EXPECT_EQ(most, 1);
  auto limits = nlohmann::json::parse(ergon({"limits", "list", "--json", "--db", db()}).out);
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0]["job_type"], "scarce");
  EXPECT_EQ(limits[0]["max_running"], 1);
  EXPECT_EQ(limits[0]["running"], 0);
  ASSERT_EQ(ergon({"limits", "remove", "scarce", "--db", db()}).status, 0);
  EXPECT_EQ(nlohmann::json::parse(ergon({"limits", "list", "--json", "--db", db()}).out).size(),
            0u);
}

// Three worker processes and a rate limit of 4 per second for the type: the handlers' ledger
// never shows more than 4 starts within a second (less a tolerance for process start-up, since
// the ledger records when a handler began, not when its job was claimed), and 12 jobs take at
// least two periods.
TEST_P(CliStoreTest, ARateLimitHoldsAcrossWorkerProcesses) {
  migrate();
  for (std::string bad : {"4", "x/1s", "4/", "4/soon", "-1/1s", "4/0s"}) {
    EXPECT_EQ(ergon({"limits", "set", "api", "--rate", bad, "--db", db()}).status, 2) << bad;
  }
  EXPECT_EQ(ergon({"limits", "set", "api", "--db", db()}).status, 2);  // neither limit
  EXPECT_EQ(nlohmann::json::parse(ergon({"limits", "list", "--json", "--db", db()}).out).size(),
            0u);
  ASSERT_EQ(ergon({"limits", "set", "api", "--rate", "4/1s", "--db", db()}).status, 0);
  constexpr int kJobs = 12;
  ASSERT_EQ(ergon({"enqueue", "api", "{}", "--count", std::to_string(kJobs), "--db", db()}).status,
            0);
  std::string ledger = dir_.file("ledger.txt");
  std::string script = dir_.file("handler.sh");
  std::ofstream(script) << "#!/bin/sh\ncat > /dev/null\necho \"$(date +%s%N)\" >> " << ledger
                        << "\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  ASSERT_TRUE(run_workers("api", script, 3, kJobs));
  std::ifstream in(ledger);
  std::vector<long long> starts;
  for (long long t = 0; in >> t;) starts.push_back(t);
  ASSERT_EQ(starts.size(), static_cast<std::size_t>(kJobs));
  std::sort(starts.begin(), starts.end());
  constexpr long long kWindowNs = 800'000'000;  // 1 s less 200 ms of start-up tolerance
  for (std::size_t i = 0; i + 4 < starts.size(); ++i) {
    EXPECT_GE(starts[i + 4] - starts[i], kWindowNs) << "5 starts within 0.8 s from start " << i;
  }
  EXPECT_GE(starts.back() - starts.front(), 2 * kWindowNs);
  auto limits = nlohmann::json::parse(ergon({"limits", "list", "--json", "--db", db()}).out);
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0]["rate_limit"], 4);
  EXPECT_EQ(limits[0]["rate_period_ms"], 1000);
  EXPECT_TRUE(limits[0]["max_running"].is_null());
}

INSTANTIATE_TEST_SUITE_P(Stores, CliStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& p) { return p.param; });

TEST_F(CliTest, CronNextPrintsOccurrencesWithTheZonesOffset) {
  auto r = ergon({"cron", "next", "30 2 * * *", "--tz", "America/New_York", "--from",
                  "2026-03-07T00:00:00Z", "--count", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "2026-03-07T02:30:00-05:00\n2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n");
  auto s = ergon({"cron", "next", "*/20 * * * * *", "--seconds", "--from", "2026-01-01T00:00:00Z",
                  "--inclusive", "--count", "2"});
  EXPECT_EQ(s.out, "2026-01-01T00:00:00+00:00\n2026-01-01T00:00:20+00:00\n");
  auto bad = ergon({"cron", "next", "61 * * * *"});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("Minutes"), std::string::npos) << bad.err;
  EXPECT_NE(ergon({"cron", "next", "* * * * *", "--tz", "Nowhere/Land"}).status, 0);
  EXPECT_NE(ergon({"cron", "next", "* * * * *", "--from", "soon"}).status, 0);
}

TEST_F(CliTest, SchedulesCanBeAddedListedChangedTriggeredAndRemoved) {
  migrate();
  auto add = ergon({"schedules", "add", "nightly", "report", "0 3 * * *", R"({"k":1})", "--tz",
                    "Europe/Berlin", "--misfire", "skip", "--db", db()});
  ASSERT_EQ(add.status, 0) << add.err;
  auto list = nlohmann::json::parse(ergon({"schedules", "list", "--json", "--db", db()}).out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "nightly");
  EXPECT_EQ(list[0]["time_zone"], "Europe/Berlin");
  EXPECT_EQ(list[0]["misfire_policy"], "skip");
  EXPECT_EQ(list[0]["is_enabled"], true);
  EXPECT_EQ(ergon({"schedules", "disable", "nightly", "--db", db()}).status, 0);
  list = nlohmann::json::parse(ergon({"schedules", "list", "--json", "--db", db()}).out);
  EXPECT_EQ(list[0]["is_enabled"], false);
  auto trig = ergon({"schedules", "trigger", "nightly", "--db", db()});
  ASSERT_EQ(trig.status, 0) << trig.err;
  EXPECT_EQ(job_count(), 1u);
  auto bad = ergon({"schedules", "add", "x", "report", "* * *", "--db", db()});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("schedule 'x'"), std::string::npos) << bad.err;
  EXPECT_NE(
      ergon({"schedules", "add", "x", "report", "* * * * *", "--overlap", "maybe", "--db", db()})
          .status,
      0);
  EXPECT_EQ(ergon({"schedules", "remove", "nope", "--db", db()}).status, 3);
  EXPECT_EQ(ergon({"schedules", "remove", "nightly", "--db", db()}).status, 0);
  EXPECT_EQ(nlohmann::json::parse(ergon({"schedules", "list", "--json", "--db", db()}).out).size(),
            0u);
}

TEST_F(CliTest, UniqueKeysAndQueues) {
  migrate();
  std::string a = trim(
      ergon({"enqueue", "report", "--unique-key", "r-1", "--queue", "reports", "--db", db()}).out);
  std::string again = trim(
      ergon({"enqueue", "report", "--unique-key", "r-1", "--queue", "reports", "--db", db()}).out);
  EXPECT_EQ(again, a);  // the pending job's id, nothing added
  auto bulk = ergon({"enqueue", "report", "--unique-key", "r-1", "--count", "2", "--db", db()});
  EXPECT_EQ(bulk.status, 1);  // bulk enqueue takes no unique key
  EXPECT_NE(bulk.err.find("unique_key is for start_job"), std::string::npos) << bulk.err;
  auto lone = ergon({"enqueue", "report", "--unique-while-running", "--db", db()});
  EXPECT_EQ(lone.status, 1);
  EXPECT_NE(lone.err.find("needs a unique_key"), std::string::npos) << lone.err;

  auto p = ergon({"queues", "pause", "reports", "--db", db()});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(p.out, "queue reports paused\n");
  auto l = nlohmann::json::parse(ergon({"queues", "list", "--json", "--db", db()}).out);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["name"], "reports");
  EXPECT_EQ(l[0]["paused"], true);
  EXPECT_EQ(l[0]["pending"], 1);
  EXPECT_EQ(ergon({"queues", "resume", "reports", "--db", db()}).out, "queue reports resumed\n");
  l = nlohmann::json::parse(ergon({"queues", "list", "--json", "--db", db()}).out);
  EXPECT_EQ(l[0]["paused"], false);
  auto bad = ergon({"queues", "pause", "", "--db", db()});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("queue name must be 1 to 100 bytes"), std::string::npos) << bad.err;
}

TEST_F(CliTest, CancelAPendingJobAndListWorkers) {
  migrate();
  std::string id = trim(ergon({"enqueue", "t", "--db", db()}).out);
  auto c = ergon({"jobs", "cancel", id, "--db", db()});
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(c.out, "cancelled\n");
  auto j = nlohmann::json::parse(ergon({"jobs", "show", id, "--json", "--db", db()}).out);
  EXPECT_EQ(j["status"], "Cancelled");
  EXPECT_EQ(ergon({"jobs", "cancel", id, "--db", db()}).out, "already finished; nothing changed\n");
  EXPECT_EQ(ergon({"jobs", "cancel", "01a223a3-f984-716a-98ba-0e08a36a78ed", "--db", db()}).status,
            3);
  auto w = ergon({"workers", "list", "--json", "--db", db()});
  ASSERT_EQ(w.status, 0) << w.err;
  EXPECT_EQ(nlohmann::json::parse(w.out).size(), 0u);
}

TEST_F(CliTest, DemoRunsToTheEnd) {
  auto r = ergon({"demo", "--exit-when-done", "--db", db()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("5 completed, 1 failed"), std::string::npos) << r.out;
}

// `ergon ARGS...` in the background, its stdout and stderr on `out_fd`; -1 if it could not be
// started.
pid_t spawn_ergon(std::vector<std::string> args, int out_fd) {
  args.insert(args.begin(), kErgon);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    execv(kErgon.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// A handler that starts a background child, records its pid, says "ready" on a FIFO (blocking
// until the test reads it) and waits: a shell script without exec, whose children must end
// with it.
std::string tree_handler(const TempDir& dir) {
  std::string script = dir.file("tree.sh");
  mkfifo(dir.file("ready").c_str(), 0600);
  std::ofstream(script) << "#!/bin/sh\ncat > /dev/null\nsleep 30 &\necho $! > " << dir.file("child")
                        << "\necho ready > " << dir.file("ready") << "\nwait\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  return script;
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST_F(CliTest, GlobalOptionsComeBeforeOrAfterTheCommand) {
  migrate();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--log-format", "json", "jobs", "list", "--db", db()},
           {"--log-format=json", "jobs", "list", "--db", db()},
           {"jobs", "list", "--log-format", "json", "--db", db()},
           {"-v", "--log-format", "text", "--db", db(), "jobs", "list"}}) {
    auto r = ergon(args);
    EXPECT_EQ(r.status, 0) << args[0] << " " << args[1] << ": " << r.err;
  }
  auto bad = ergon({"--log-format", "xml", "jobs", "list", "--db", db()});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--log-format"), std::string::npos) << bad.err;
}

TEST_F(CliTest, WorkerStopsGracefullyOnSighupAndEndsTheHandlersChildren) {
  migrate();
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Database": ")" << db()
                        << R"(", "JobsWorker": {"PollingInterval": "00:00:00.050",
                              "ShutdownTimeout": "00:00:05", "RunScheduler": false},
                              "Handlers": {"tree": {"command": [")"
                        << tree_handler(dir_) << R"("]}}})";
  ASSERT_EQ(ergon({"enqueue", "tree", "{}", "--db", db()}).status, 0);
  pid_t pid = spawn_worker(config);
  ASSERT_GE(pid, 0);
  ASSERT_EQ(read_line(dir_.file("ready")), "ready");
  pid_t child = std::stoi(read_line(dir_.file("child")));

  kill(pid, SIGHUP);
  int status = 0;
  waitpid(pid, &status, 0);

  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto j = nlohmann::json::parse(ergon({"jobs", "list", "--json", "--db", db()}).out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["status"], "Pending");  // given back, to run again
  EXPECT_TRUE(kill(child, 0) == -1 && errno == ESRCH) << "the handler's child still runs";
}

TEST_F(CliTest, WorkerLogsAStatusLineOnSigusr1AndKeepsRunning) {
  migrate();
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Database": ")" << db()
                        << R"(", "JobsWorker": {"PollingInterval": "00:00:00.050",
                              "MaxConcurrentJobs": 3, "RunScheduler": false},
                              "Handlers": {"tree": {"command": [")"
                        << tree_handler(dir_) << R"("]}}})";
  ASSERT_EQ(ergon({"enqueue", "tree", "{}", "--db", db()}).status, 0);
  std::string log = dir_.file("worker.log");
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  pid_t pid = spawn_ergon({"worker", "--config", config}, fd);
  close(fd);
  ASSERT_GE(pid, 0);
  ASSERT_EQ(read_line(dir_.file("ready")), "ready");

  kill(pid, SIGUSR1);
  bool logged = eventually([&] {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find("running 1 of at most 3 job(s)") != std::string::npos;
  });
  bool alive = kill(pid, 0) == 0;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);

  EXPECT_TRUE(logged);
  EXPECT_TRUE(alive);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(CliTest, WorkerKeepsWorkingWhenNobodyReadsItsOutput) {
  // `ergon -v worker ... 2>&1 | head -1`, after head has exited.
  migrate();
  std::string script = dir_.file("handler.sh");
  std::ofstream(script) << "#!/bin/sh\ncat > /dev/null\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Database": ")" << db()
                        << R"(", "JobsWorker": {"PollingInterval": "00:00:00.020",
                              "RunScheduler": false},
                              "Handlers": {"quiet": {"command": [")"
                        << script << R"("]}}})";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(ergon({"enqueue", "quiet", "{}", "--db", db()}).status, 0);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  pid_t pid = spawn_ergon({"-v", "worker", "--config", config}, fds[1]);
  close(fds[1]);
  ASSERT_GE(pid, 0);

  bool done = wait_completed(3, std::chrono::seconds(30));
  bool alive = kill(pid, 0) == 0 && waitpid(pid, nullptr, WNOHANG) == 0;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);

  EXPECT_TRUE(done);
  EXPECT_TRUE(alive);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace ergon::testing
