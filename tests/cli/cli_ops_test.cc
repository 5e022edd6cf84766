// The operators' commands as a user runs them (jobs list/retry/delete, stats, purge, audit,
// config check), on a real SQLite file and, with ERGON_TEST_POSTGRES_URL, on PostgreSQL.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/pg_test_db.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";
const std::string kUnknownId = "01a223a3-f984-716a-98ba-0e08a36a78ed";

class CliOpsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      std::string server = pg_test_server_url();
      if (server.empty()) GTEST_SKIP() << kNoPostgres;
      schema_ = std::make_unique<PgTestSchema>(server);
      db_ = schema_->url();
    } else {
      db_ = "sqlite:" + dir_.file("jobs.db");
    }
    auto m = ergon({"migrate"});
    ASSERT_EQ(m.status, 0) << m.err;
  }
  ProcessResult ergon(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), kErgon);
    if (args.size() < 2 || args[1] != "config") {
      args.push_back("--db");
      args.push_back(db_);
    }
    env.push_back("ERGON_DATABASE_URL=");
    env.push_back("USER=tester");
    return run_process(args, "", env);
  }
  nlohmann::json json(std::vector<std::string> args) {
    args.push_back("--json");
    auto r = ergon(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  std::string enqueue(const std::string& type, const std::string& data = "{}",
                      const std::string& queue = "default") {
    auto r = ergon({"enqueue", type, data, "--queue", queue});
    EXPECT_EQ(r.status, 0) << r.err;
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }
  std::string cancelled(const std::string& type) {
    std::string id = enqueue(type);
    EXPECT_EQ(ergon({"jobs", "cancel", id}).status, 0);
    return id;
  }
  std::string status_of(const std::string& id) {
    return json({"jobs", "show", id})["status"].get<std::string>();
  }
  std::size_t jobs() { return json({"jobs", "list", "--limit", "10000"}).size(); }

  TempDir dir_;
  std::unique_ptr<PgTestSchema> schema_;
  std::string db_;
};

TEST_P(CliOpsTest, ListFiltersAndPagesWithBefore) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.insert(ids.begin(), enqueue("mail", R"({"to":"ann"})", "q1"));
  std::string sale = enqueue("bill", R"({"code":"50%_off"})", "q2");
  ids.insert(ids.begin(), sale);

  EXPECT_EQ(json({"jobs", "list", "--type", "mail"}).size(), 5u);
  EXPECT_EQ(json({"jobs", "list", "--queue", "q2"}).size(), 1u);
  auto text = json({"jobs", "list", "--text", "%_"});
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0]["id"], sale);
  EXPECT_EQ(json({"jobs", "list", "--since", "1h"}).size(), 6u);
  EXPECT_EQ(json({"jobs", "list", "--until", "1h"}).size(), 0u);
  EXPECT_EQ(json({"jobs", "list", "--status", "failed"}).size(), 0u);

  // Three pages of two, newest first, each starting after the last id of the one before.
  std::vector<std::string> seen;
  std::string before;
  for (int page = 0; page < 4; ++page) {
    std::vector<std::string> args = {"jobs", "list", "--limit", "2"};
    if (!before.empty()) {
      args.push_back("--before");
      args.push_back(before);
    }
    auto rows = json(args);
    if (page == 3) {
      EXPECT_TRUE(rows.empty());
      break;
    }
    ASSERT_EQ(rows.size(), 2u);
    for (const auto& r : rows) seen.push_back(r["id"]);
    before = rows.back()["id"];
  }
  EXPECT_EQ(seen, ids);
  // The human table says where the next page starts.
  auto table = ergon({"jobs", "list", "--limit", "2"});
  EXPECT_NE(table.err.find("more: --before " + ids[1]), std::string::npos) << table.err;
}

TEST_P(CliOpsTest, RetryAndDeleteByIdWithExitStatusesAndAudit) {
  std::string a = cancelled("mail");
  std::string pending = enqueue("mail");
  auto r = ergon({"jobs", "retry", a});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, a + " retried\n");
  EXPECT_EQ(status_of(a), "Pending");

  auto refused = ergon({"jobs", "retry", pending});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("only Failed or Cancelled"), std::string::npos) << refused.err;
  EXPECT_EQ(ergon({"jobs", "retry", kUnknownId}).status, 3);

  auto d = ergon({"jobs", "delete", a, pending});
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_EQ(jobs(), 0u);
  auto again = ergon({"jobs", "delete", a, "--json"});
  EXPECT_EQ(again.status, 3);
  EXPECT_EQ(nlohmann::json::parse(again.out)[0]["outcome"], "not found");

  auto log = json({"audit"});
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log[0]["actor"], "cli:tester");
  EXPECT_EQ(log[0]["action"], "delete");
  EXPECT_EQ(log[1]["action"], "delete");
  EXPECT_EQ(log[2]["action"], "retry");
  EXPECT_EQ(log[2]["target"], a);
  EXPECT_EQ(json({"audit", "--limit", "1"}).size(), 1u);
}

TEST_P(CliOpsTest, BulkActionsNeedAllMatchingAndSayHowMany) {
  for (int i = 0; i < 3; ++i) cancelled("mail");
  std::string bill = cancelled("bill");
  auto no_flag = ergon({"jobs", "retry", "--status", "cancelled"});
  EXPECT_EQ(no_flag.status, 2);
  EXPECT_NE(no_flag.err.find("--all-matching"), std::string::npos) << no_flag.err;
  EXPECT_EQ(json({"jobs", "list", "--status", "cancelled"}).size(), 4u);

  auto r = ergon({"jobs", "retry", "--status", "cancelled", "--type", "mail", "--all-matching"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "retried 3 jobs (status=Cancelled type=mail)\n");
  EXPECT_EQ(status_of(bill), "Cancelled");
  auto none = ergon({"jobs", "retry", "--type", "nope", "--all-matching"});
  EXPECT_EQ(none.status, 3);
  EXPECT_NE(none.err.find("no job matched"), std::string::npos) << none.err;

  auto d = ergon({"jobs", "delete", "--type", "mail", "--all-matching", "--json"});
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_EQ(nlohmann::json::parse(d.out)["deleted"], 3);
  EXPECT_EQ(jobs(), 1u);
  auto log = json({"audit"});
  EXPECT_EQ(log[0]["action"], "bulk.delete");
  EXPECT_EQ(log[0]["target"], "type=mail");
  EXPECT_EQ(log[0]["detail"], "3 jobs");
}

// Malformed input: a clear message, exit status 2, and nothing changed (no job, no audit row).
TEST_P(CliOpsTest, MalformedInputIsAUsageErrorAndChangesNothing) {
  std::string id = cancelled("t");
  std::size_t audit_rows = json({"audit"}).size();
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"jobs", "retry", "not-an-id"}, "not a job id"},
      {{"jobs", "retry", id, "not-an-id"}, "not a job id"},  // checked before any change
      {{"jobs", "delete", "12345"}, "not a job id"},
      {{"jobs", "retry"}, "give job ids"},
      {{"jobs", "retry", id, "--status", "failed"}, "not both"},
      {{"jobs", "delete", "--all-matching"}, "needs at least one filter"},
      {{"jobs", "retry", "--all-matching"}, "needs at least one filter"},
      {{"jobs", "list", "--since", "1h", "--until", "2h"}, "--since: must be earlier than --until"},
      {{"jobs", "list", "--type", std::string(201, 't')}, "--type"},
      {{"jobs", "retry", "--status", "Done", "--all-matching"}, "not one of"},
      {{"jobs", "list", "--status", "done"}, "not one of"},
      {{"jobs", "list", "--limit", "0"}, "--limit"},
      {{"jobs", "list", "--limit", "10001"}, "--limit"},
      {{"jobs", "list", "--limit", "many"}, "--limit"},
      {{"jobs", "list", "--since", "soon"}, "--since"},
      {{"jobs", "list", "--before", "xyz"}, "--before"},
      {{"purge", "--status", "pending", "--older-than", "1d"}, "only Completed"},
      {{"purge", "--status", "completed", "--older-than", "a week"}, "--older-than"},
      {{"purge", "--status", "completed", "--older-than", "-5m"}, "--older-than"},
      {{"purge", "--status", "completed"}, "--older-than"},
      {{"audit", "--limit", "0"}, "--limit"},
      {{"stats", "--alive-within", "never"}, "--alive-within"},
      {{"enqueue", "t", "{}", "--unique-period", "1h"}, "needs --unique-key"},
      {{"enqueue", "t", "{}", "--unique-key", "k", "--unique-period", "soon"}, "--unique-period"},
      {{"enqueue", "t", "{}", "--unique-key", "k", "--unique-period", "0s"}, "1ms to 366d"},
      {{"enqueue", "t", "{}", "--unique-key", "k", "--unique-period", "400d"}, "1ms to 366d"},
      {{"limits", "set", "t", "--rate", "ten/1s"}, "COUNT/PERIOD"},
      {{"limits", "set", "t"}, "give MAX"},
  };
  for (const auto& c : cases) {
    auto r = ergon(c.args);
    EXPECT_EQ(r.status, 2) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.expect << " | " << r.err;
  }
  EXPECT_EQ(status_of(id), "Cancelled");
  EXPECT_EQ(jobs(), 1u);
  EXPECT_EQ(json({"audit"}).size(), audit_rows);
}

TEST_P(CliOpsTest, StatsCountPerQueueAndStatus) {
  enqueue("t", "{}", "mail");
  enqueue("t", "{}", "mail");
  cancelled("t");
  auto s = json({"stats"});
  ASSERT_EQ(s["queues"].size(), 2u);
  EXPECT_EQ(s["queues"][0]["queue"], "default");
  EXPECT_EQ(s["queues"][0]["cancelled"], 1);
  EXPECT_EQ(s["queues"][0]["pending"], 0);
  EXPECT_TRUE(s["queues"][0]["oldest_due_pending_age_seconds"].is_null());
  EXPECT_EQ(s["queues"][1]["queue"], "mail");
  EXPECT_EQ(s["queues"][1]["pending"], 2);
  EXPECT_TRUE(s["queues"][1]["oldest_due_pending_age_seconds"].is_number());
  EXPECT_EQ(s["workers"]["registered"], 0);
  // With no live worker, nothing handles the Pending jobs' type; no messaging outbox.
  EXPECT_EQ(s["unhandled_types"], nlohmann::json::parse(R"([{"job_type": "t", "pending": 2}])"));
  EXPECT_EQ(s["outbox"], nlohmann::json::parse(R"({"enabled": false, "rows": 0})"));
  auto table = ergon({"stats"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("workers: 0 registered, 0 alive"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("no live worker handles job type t: 2 pending"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("messaging outbox: 0 row(s), triggers off"), std::string::npos)
      << table.out;
}

TEST_P(CliOpsTest, PurgeDeletesOldFinishedJobsOnly) {
  cancelled("t");
  cancelled("t");
  std::string pending = enqueue("t");
  auto keep = json({"purge", "--status", "cancelled", "--older-than", "1h"});
  EXPECT_EQ(keep["purged"], 0);
  auto p = json({"purge", "--status", "cancelled", "--older-than", "0s", "--batch", "1"});
  EXPECT_EQ(p["purged"], 2);
  EXPECT_EQ(jobs(), 1u);
  EXPECT_EQ(status_of(pending), "Pending");
  EXPECT_EQ(json({"audit"})[0]["action"], "purge");
}

TEST_P(CliOpsTest, EveryListingCommandPrintsJson) {
  enqueue("t");
  ASSERT_EQ(ergon({"schedules", "add", "nightly", "t", "0 3 * * *"}).status, 0);
  for (std::vector<std::string> args : {std::vector<std::string>{"jobs", "list"},
                                        {"schedules", "list"},
                                        {"workers", "list"},
                                        {"queues", "list"},
                                        {"stats"},
                                        {"audit"},
                                        {"cron", "next", "0 3 * * *"}}) {
    auto j = json(args);
    EXPECT_FALSE(j.is_discarded()) << args[0];
  }
  EXPECT_EQ(json({"cron", "next", "0 3 * * *", "--count", "3"}).size(), 3u);
  EXPECT_EQ(json({"audit"})[0]["action"], "schedule.add");
}

// `schedules add --tag --meta`: the jobs the schedule starts carry them and `schedules list`
// shows them; bad ones are refused as `enqueue` refuses them, and nothing is stored.
TEST_P(CliOpsTest, SchedulesGiveTheirJobsTagsAndMeta) {
  const nlohmann::json tags = {"reports", "customer:42"}, meta = {{"owner", "ops"}};
  auto add = ergon({"schedules", "add", "nightly", "report", "0 3 * * *", "--tag", "reports",
                    "--tag", "customer:42", "--meta", R"({"owner": "ops"})"});
  ASSERT_EQ(add.status, 0) << add.err;
  auto listed = json({"schedules", "list"});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["tags"], tags);
  EXPECT_EQ(listed[0]["meta"], meta);
  auto table = ergon({"schedules", "list"});
  EXPECT_NE(table.out.find("reports,customer:42"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(R"("owner")"), std::string::npos) << table.out;
  ASSERT_EQ(ergon({"schedules", "trigger", "nightly"}).status, 0);
  auto tagged = json({"jobs", "list", "--tag", "customer:42"});
  ASSERT_EQ(tagged.size(), 1u);
  EXPECT_EQ(tagged[0]["tags"], tags);
  EXPECT_EQ(tagged[0]["meta"], meta);

  std::vector<std::string> many;
  for (int i = 0; i < 21; ++i) many.insert(many.end(), {"--tag", "t" + std::to_string(i)});
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {many, "21 tags, the limit is 20"},
      {{"--tag", ""}, "tag must be 1 to 100 bytes"},
      {{"--tag", std::string(101, 'x')}, "tag must be 1 to 100 bytes"},
      {{"--tag", "a", "--tag", "a"}, "tag 'a' is given twice"},
      {{"--tag", "bad \xff"}, "tag is not valid UTF-8 (byte 4 is \\xff)"},
      {{"--tag", "a\x1b[2J"}, "tag must not contain control characters"},
      {{"--meta", "[1]"}, "meta must be a JSON object"},
      {{"--meta", "{"}, "meta is not valid JSON"},
      {{"--meta", "{\"a\": \"\xff\"}"}, "meta is not valid JSON"},
  };
  for (const auto& [options, message] : bad) {
    std::vector<std::string> schedule = {"schedules", "add", "s", "report", "0 3 * * *"};
    std::vector<std::string> enqueue = {"enqueue", "report"};
    schedule.insert(schedule.end(), options.begin(), options.end());
    enqueue.insert(enqueue.end(), options.begin(), options.end());
    auto r = ergon(schedule);
    EXPECT_EQ(r.status, 1) << message;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    auto e = ergon(enqueue);
    EXPECT_EQ(e.status, r.status) << message;
    EXPECT_EQ(e.err, r.err);
  }
  EXPECT_EQ(json({"schedules", "list"}).size(), 1u);
  EXPECT_EQ(jobs(), 1u);

  // Added again without them: the schedule's jobs carry none.
  ASSERT_EQ(ergon({"schedules", "add", "nightly", "report", "0 3 * * *"}).status, 0);
  listed = json({"schedules", "list"});
  EXPECT_EQ(listed[0]["tags"], nlohmann::json::array());
  EXPECT_TRUE(listed[0]["meta"].is_null());
}

INSTANTIATE_TEST_SUITE_P(Backends, CliOpsTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& param_info) { return param_info.param; });

// --- ergon config check -----------------------------------------------------------------------

class CliConfigTest : public ::testing::Test {
 protected:
  ProcessResult check(const std::string& text, std::vector<std::string> env = {},
                      bool json = false) {
    std::string path = dir_.file("ergon.json");
    std::ofstream(path) << text;
    std::vector<std::string> args = {kErgon, "config", "check", path};
    if (json) args.push_back("--json");
    return run_process(args, "", env);
  }
  TempDir dir_;
};

TEST_F(CliConfigTest, PrintsTheEffectiveConfigurationWithOverrides) {
  auto r = check(R"({"Database": "postgresql://u:secret@h/db",
                     "JobsWorker": {"OrphanedJobThreshold": "00:10:00"}})",
                 {"JobsWorker__OrphanedJobThreshold=00:02:00", "jobsworker__maxconcurrentjobs=7"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("JobsWorker.OrphanedJobThreshold = 00:02:00"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("JobsWorker.MaxConcurrentJobs = 7"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("JobsWorker.ScheduledJobsCheckInterval = 00:01:00"), std::string::npos);
  EXPECT_EQ(r.out.find("secret"), std::string::npos) << r.out;  // masked
  auto j = check("{}", {}, true);
  ASSERT_EQ(j.status, 0) << j.err;
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["JobsWorker"]["OrphanedJobThreshold"], "00:30:00");
}

TEST_F(CliConfigTest, ListsEveryErrorAndFails) {
  auto r = check(R"({"JobsWorker": {"MaxConcurrentJobs": "many", "Typo": 1,
                     "Messaging": {"ConnectionString": "x", "MaxDeliveries": 1.5}}})",
                 {"JobsWorker__PollingInterval=soon"});
  EXPECT_EQ(r.status, 1);
  for (const char* expect :
       {"4 errors", "JobsWorker.MaxConcurrentJobs: expected an integer",
        "JobsWorker.Typo: unknown key", "JobsWorker.Messaging.MaxDeliveries: expected an integer",
        "JobsWorker__PollingInterval=soon"}) {
    EXPECT_NE(r.err.find(expect), std::string::npos) << expect << " | " << r.err;
  }
  auto unknown = check("{}", {"JobsWorker__PollingIntervall=00:00:01"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("JobsWorker__PollingIntervall: unknown key"), std::string::npos)
      << unknown.err;
  EXPECT_NE(check("{", {}).status, 0);
  auto missing = run_process({kErgon, "config", "check", dir_.file("nope.json")});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("nope.json"), std::string::npos);
}

}  // namespace
}  // namespace ergon::testing
