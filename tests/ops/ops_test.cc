// The operations layer (src/ops) that the CLI and the dashboard share, on a real SQLite file
// with a FakeClock: filters in words, each action's outcome and its audit record, and the JSON
// of every noun, above all for text that is not UTF-8.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ergon/job_runner.h"
#include "ops/audit.h"
#include "ops/filter.h"
#include "ops/jobs.h"
#include "ops/limits.h"
#include "ops/queues.h"
#include "ops/render.h"
#include "ops/schedules.h"
#include "ops/stats.h"
#include "ops/workers.h"
#include "store/store.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::string_view kActor = "test:ops";

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = open_store(sqlite_url(dir_), {.clock = &clock_}); }

  JobId enqueue(const std::string& type = "mail", JobOptions o = {}) {
    return JobRunner(store_).start_job_raw(type, R"({"to":"ann"})", o);
  }
  // Claims the next due job for `worker` and, unless `finish` is Running, finishes it so.
  JobId claim(JobStatus finish = JobStatus::kRunning, const std::string& worker = "w1",
              const std::string& error = "") {
    auto claimed = store_->job_claim({.worker_id = worker, .limit = 1, .now = clock_.now()});
    EXPECT_EQ(claimed.size(), 1u);
    if (claimed.empty()) return JobId();
    if (finish != JobStatus::kRunning) {
      JobFinishParams f;
      f.id = claimed[0].id;
      f.attempt = claimed[0].lease;
      f.worker_id = worker;
      f.status = finish;
      f.now = clock_.now();
      if (!error.empty()) f.error_message = error;
      EXPECT_TRUE(store_->job_finish(f));
    }
    return claimed[0].id;
  }
  AuditRecord last_audit() {
    auto log = ops::AuditLog(store_).list(1);
    EXPECT_EQ(log.size(), 1u);
    return log.empty() ? AuditRecord{} : log[0];
  }
  std::size_t audit_rows() { return ops::AuditLog(store_).list(10000).size(); }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::shared_ptr<Store> store_;
};

// ---- filters -------------------------------------------------------------------------------

TEST(OpsFilter, ParsesEveryFieldAndNamesTheOneThatIsWrong) {
  const JobId id = JobId::generate(test_epoch());
  JobFilter f = ops::parse_filter({.status = "failed",
                                   .type = "mail",
                                   .queue = "q",
                                   .created_after = "2026-01-01T00:00:00Z",
                                   .created_before = "2026-02-01T00:00:00Z",
                                   .text = "50%",
                                   .before_id = id.to_string()});
  EXPECT_EQ(f.status, JobStatus::kFailed);
  EXPECT_EQ(f.job_type, "mail");
  EXPECT_EQ(f.queue, "q");
  EXPECT_EQ(format_timestamp(*f.created_after), "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(f.text, "50%");
  EXPECT_EQ(f.before_id, id);
  EXPECT_EQ(f.limit, JobFilter{}.limit);
  EXPECT_FALSE(ops::has_condition(ops::parse_filter({})));

  const ops::FilterNames cli{.status = "--status",
                             .created_after = "--since",
                             .created_before = "--until",
                             .before_id = "--before"};
  struct Case {
    ops::FilterText text;
    std::string name, detail;
  } cases[] = {
      {{.status = "Done"}, "--status", "'Done' is not one of Pending"},
      {{.type = std::string(201, 't')}, "type", "must be 1 to 200 bytes"},
      {{.queue = std::string(101, 'q')}, "queue", "must be 1 to 100 bytes"},
      {{.text = std::string(201, 'x')}, "text", "must be 1 to 200 bytes"},
      {{.created_after = "soon"}, "--since", "neither an ISO-8601 instant nor a duration"},
      {{.created_after = "-5m"}, "--since", "is negative"},
      {{.created_after = "2h", .created_before = "3h"}, "--since", "earlier than --until"},
      {{.before_id = "42"}, "--before", "not a job id: '42'"},
  };
  for (const auto& c : cases) {
    try {
      ops::parse_filter(c.text, cli, test_epoch());
      ADD_FAILURE() << c.detail << ": accepted";
    } catch (const ops::FieldError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_EQ(e.name(), c.name);
      EXPECT_NE(e.detail().find(c.detail), std::string::npos) << e.detail();
      EXPECT_EQ(std::string(e.what()), e.name() + ": " + e.detail());
    }
  }
}

TEST(OpsFilter, DurationsAgoOnlyWhereTheCallerAllowsThem) {
  JobFilter f = ops::parse_filter({.created_after = "2h"}, {}, test_epoch());
  EXPECT_EQ(*f.created_after, test_epoch() - 2h);
  try {
    ops::parse_filter({.created_after = "2h"});
    ADD_FAILURE() << "a duration without a now";
  } catch (const ops::FieldError& e) {
    EXPECT_EQ(e.name(), "created_after");
    EXPECT_NE(e.detail().find("ISO-8601 time"), std::string::npos) << e.detail();
  }
  // Past TimePoint's range: stops at its end, and two such instants still compare as given.
  JobFilter far = ops::parse_filter(
      {.created_after = "2300-01-01T00:00:00Z", .created_before = "2400-01-01T00:00:00Z"});
  EXPECT_EQ(far.created_after, far.created_before);
}

TEST(OpsFilter, DescribesForTheAuditLogWithTheTextQuoted) {
  EXPECT_EQ(ops::describe({}), "all jobs");
  JobFilter f;
  f.status = JobStatus::kCancelled;
  f.job_type = "mail";
  f.created_after = test_epoch();
  f.text = "a\" status=Failed \xff";
  EXPECT_EQ(ops::describe(f),
            "status=Cancelled type=mail created_after=2026-03-01T12:00:00.000000Z "
            "text=\"a\\\" status=Failed \uFFFD\"");
  // A tag alone is a condition, quoted as the text is.
  JobFilter tagged;
  tagged.tag = "vip queue=x";
  EXPECT_TRUE(ops::has_condition(tagged));
  EXPECT_EQ(ops::describe(tagged), "tag=\"vip queue=x\"");
}

TEST(OpsFilter, DurationsInWords) {
  EXPECT_EQ(ops::parse_duration("250ms", "d"), Duration(250ms));
  EXPECT_EQ(ops::parse_duration("90s", "d"), Duration(90s));
  EXPECT_EQ(ops::parse_duration("1d", "d"), Duration(24h));
  EXPECT_EQ(ops::parse_duration("01:30:00", "d"), Duration(90min));
  EXPECT_EQ(ops::parse_duration("a week", "d"), std::nullopt);
  EXPECT_EQ(ops::parse_duration("5y", "d"), std::nullopt);
  EXPECT_THROW(ops::parse_duration("-1s", "d"), ops::FieldError);
  EXPECT_THROW(ops::parse_duration("9223372036854775807ms", "d"), ops::FieldError);
  EXPECT_THROW(ops::parse_duration("10675199.02:48:05.4775808", "d"), ops::FieldError);
}

// ---- jobs ------------------------------------------------------------------------------------

TEST_F(OpsTest, ListSaysWhereTheNextPageStartsOnlyWhenThereIsOne) {
  std::vector<JobId> ids;
  for (int i = 0; i < 4; ++i) ids.insert(ids.begin(), enqueue());
  ops::Jobs jobs(store_);
  JobFilter f;
  f.limit = 2;
  auto first = jobs.list(f);
  ASSERT_EQ(first.jobs.size(), 2u);
  EXPECT_EQ(first.jobs[0].id, ids[0]);
  EXPECT_EQ(first.next_before_id, ids[1]);
  f.before_id = first.next_before_id;
  auto second = jobs.list(f);
  ASSERT_EQ(second.jobs.size(), 2u);
  EXPECT_EQ(second.jobs[1].id, ids[3]);
  EXPECT_EQ(second.next_before_id, std::nullopt);  // a full page, and nothing behind it
  // The store's largest page leaves no room for the row that looks ahead; it still lists.
  f = {};
  f.limit = 10000;
  EXPECT_EQ(jobs.list(f).next_before_id, std::nullopt);
}

TEST_F(OpsTest, RetryDeleteAndCancelSayWhatHappenedAndAuditWhatChanged) {
  ops::Jobs jobs(store_);
  JobId failed = enqueue("mail", {.priority = -10});
  claim(JobStatus::kFailed, "w1", "smtp down");
  JobId running = enqueue("mail", {.priority = -5});
  claim();
  JobId pending = enqueue();
  const JobId unknown = JobId::generate(clock_.now());

  auto refused = jobs.retry_job(pending, kActor);
  EXPECT_EQ(refused.change, ops::Change::kRefused);
  EXPECT_EQ(refused.refusal, "it is Pending; only Failed or Cancelled jobs are retried");
  EXPECT_EQ(jobs.retry_job(unknown, kActor).change, ops::Change::kNotFound);
  EXPECT_EQ(audit_rows(), 0u);

  auto retried = jobs.retry_job(failed, kActor);
  EXPECT_EQ(retried.change, ops::Change::kDone);
  EXPECT_TRUE(retried.audited.ok());
  EXPECT_EQ(jobs.get(failed)->status, JobStatus::kPending);
  AuditRecord a = last_audit();
  EXPECT_EQ(a.actor, kActor);
  EXPECT_EQ(a.action, "retry");
  EXPECT_EQ(a.target, failed.to_string());
  EXPECT_EQ(a.detail, "retried");
  EXPECT_EQ(a.at, clock_.now());

  auto busy = jobs.delete_job(running, kActor);
  EXPECT_EQ(busy.change, ops::Change::kRefused);
  EXPECT_EQ(busy.refusal, "it is Running (cancel it first)");
  EXPECT_EQ(jobs.delete_job(pending, kActor).change, ops::Change::kDone);
  EXPECT_EQ(last_audit().action, "delete");
  EXPECT_EQ(jobs.delete_job(pending, kActor).change, ops::Change::kNotFound);

  auto requested = jobs.cancel_job(running, kActor);
  EXPECT_EQ(requested.outcome, CancelOutcome::kRequested);
  EXPECT_EQ(last_audit().detail, "cancel_requested");
  EXPECT_EQ(jobs.cancel_job(failed, kActor).outcome, CancelOutcome::kCancelled);
  EXPECT_EQ(last_audit().detail, "cancelled");
  const std::size_t rows = audit_rows();
  EXPECT_EQ(jobs.cancel_job(failed, kActor).outcome, CancelOutcome::kAlreadyFinished);
  EXPECT_EQ(audit_rows(), rows);  // nothing changed, nothing recorded
  try {
    jobs.cancel_job(unknown, kActor);
    ADD_FAILURE() << "cancelled an unknown job";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST_F(OpsTest, ARetryRefusedForAUniqueKeySaysSo) {
  enqueue("report", {.priority = -1, .unique_key = "k"});
  JobId first = claim(JobStatus::kFailed);
  enqueue("report", {.unique_key = "k"});
  auto r = ops::Jobs(store_).retry_job(first, kActor);
  EXPECT_EQ(r.change, ops::Change::kRefused);
  EXPECT_EQ(r.refusal, "another job holds its unique key 'k'");
}

TEST_F(OpsTest, BulkActionsNeedAConditionAndAuditTheFilter) {
  ops::Jobs jobs(store_);
  for (int i = 0; i < 3; ++i) JobRunner(store_).cancel(enqueue());
  enqueue("resize");
  for (auto act : {&ops::Jobs::retry_matching, &ops::Jobs::delete_matching}) {
    try {
      (jobs.*act)(JobFilter{}, kActor);
      ADD_FAILURE() << "a bulk action over every job";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("at least one condition"), std::string::npos);
    }
  }
  EXPECT_EQ(audit_rows(), 0u);

  JobFilter cancelled;
  cancelled.status = JobStatus::kCancelled;
  auto retried = jobs.retry_matching(cancelled, kActor);
  EXPECT_EQ(retried.count, 3);
  EXPECT_EQ(retried.filter, "status=Cancelled");
  AuditRecord a = last_audit();
  EXPECT_EQ(a.action, "bulk.retry");
  EXPECT_EQ(a.target, "status=Cancelled");
  EXPECT_EQ(a.detail, "3 jobs");

  JobFilter resize;
  resize.job_type = "resize";
  EXPECT_EQ(jobs.delete_matching(resize, kActor).count, 1);
  EXPECT_EQ(last_audit().action, "bulk.delete");
  EXPECT_EQ(jobs.list({}).jobs.size(), 3u);
}

TEST_F(OpsTest, PurgeDeletesOldFinishedJobsAndRecordsTheOperatorsWords) {
  ops::Jobs jobs(store_);
  JobRunner(store_).cancel(enqueue());
  clock_.advance(2h);
  JobRunner(store_).cancel(enqueue());
  auto r = jobs.purge(JobStatus::kCancelled, 1h, 1, "1h", kActor);
  EXPECT_EQ(r.purged, 1);
  EXPECT_EQ(r.finished_before, clock_.now() - 1h);
  AuditRecord a = last_audit();
  EXPECT_EQ(a.action, "purge");
  EXPECT_EQ(a.target, "status=Cancelled older-than=1h");
  EXPECT_EQ(a.detail, "1 jobs");
  EXPECT_THROW(jobs.purge(JobStatus::kPending, 1h, 1, "1h", kActor), Error);
}

// An action is done before it is recorded: a record that cannot be written is reported, never
// thrown (the caller decides what to say).
TEST_F(OpsTest, AnAuditRecordThatCannotBeWrittenIsReportedNotThrown) {
  auto reader = open_store(sqlite_url(dir_) + "&mode=ro", {.clock = &clock_, .migrate = false});
  ops::Audited a;
  EXPECT_NO_THROW(a = ops::AuditLog(reader).record(kActor, "retry", "x"));
  EXPECT_FALSE(a.ok());
  EXPECT_FALSE(a.message().empty());
  EXPECT_TRUE(ops::Audited{}.ok());
  EXPECT_EQ(ops::Audited{}.message(), "");
}

// ---- queues, limits, workers, stats, schedules ------------------------------------------------

TEST_F(OpsTest, QueuesAndLimitsChangeAndAudit) {
  ops::Queues queues(store_);
  EXPECT_TRUE(queues.pause("emails", kActor).ok());
  EXPECT_EQ(last_audit().action, "queue.pause");
  auto listed = queues.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].paused);
  EXPECT_TRUE(queues.resume("emails", kActor).ok());
  EXPECT_EQ(last_audit().target, "emails");
  EXPECT_FALSE(queues.list()[0].paused);
  EXPECT_THROW(queues.pause("q\x1b[2J", kActor), Error);

  ops::Limits limits(store_);
  TypeLimit l{
      .job_type = "mail", .max_running = 2, .rate_limit = 10, .rate_period = 1s, .per_group = true};
  auto change = limits.set(l, kActor);
  EXPECT_EQ(change.description, "at most 2 running at once, at most 10/1s started, per group");
  EXPECT_EQ(last_audit().detail, change.description);
  ASSERT_EQ(limits.list().size(), 1u);
  EXPECT_EQ(ops::describe_rate(limits.list()[0]), "10/1s");
  EXPECT_EQ(ops::describe_rate({.rate_limit = 5, .rate_period = 250ms}), "5/250ms");
  EXPECT_EQ(ops::describe_max_running({}), "-");
  EXPECT_TRUE(limits.remove("mail", kActor).ok());
  EXPECT_EQ(last_audit().action, "limit.remove");
  EXPECT_TRUE(limits.list().empty());
}

TEST_F(OpsTest, WorkersCarryTheirRunningJobsAndStatsCountTheLiveOnes) {
  const TimePoint now = clock_.now();
  store_->worker_register(
      {.id = "w1", .name = "a", .host = "h", .pid = 1, .started_at = now, .heartbeat_at = now});
  store_->worker_register({.id = "w2",
                           .name = "b",
                           .host = "h",
                           .pid = 2,
                           .started_at = now,
                           .heartbeat_at = now - 5min});
  JobId running = enqueue("mail", {.priority = -1});
  claim();
  enqueue("mail", {.queue = "other"});

  auto workers = ops::Workers(store_).list();
  ASSERT_EQ(workers.size(), 2u);
  for (const auto& w : workers) {
    EXPECT_EQ(w.alive, w.worker.id == "w1") << w.worker.id;
    if (w.worker.id == "w1") {
      ASSERT_EQ(w.running.size(), 1u);
      EXPECT_EQ(w.running[0].id, running);
    } else {
      EXPECT_TRUE(w.running.empty());
    }
  }

  ops::Stats stats(store_);
  EXPECT_EQ(stats.now(), clock_.now());
  auto counted = stats.workers(stats.now(), ops::kAliveWithin);
  EXPECT_EQ(counted.registered, 2u);
  EXPECT_EQ(counted.alive, 1);
  EXPECT_EQ(stats.workers(stats.now(), 10min).alive, 2);
  std::int64_t pending = 0;
  for (const auto& c : stats.job_counts(stats.now())) {
    if (c.status == JobStatus::kPending) pending += c.count;
  }
  EXPECT_EQ(pending, 1);
  EXPECT_FALSE(stats.outbox().enabled);
  EXPECT_GE(stats.throughput(stats.now() - 1h, 1min).size(), 60u);
}

TEST_F(OpsTest, SchedulesChangeAndAuditEachAction) {
  ops::Schedules schedules(store_);
  auto added =
      schedules.add("report", "{}", "0 3 * * *",
                    {.name = "nightly", .tags = {"reports"}, .meta = R"({"k":1})"}, kActor);
  ASSERT_TRUE(added.schedule);
  EXPECT_EQ(added.schedule->name, "nightly");
  AuditRecord a = last_audit();
  EXPECT_EQ(a.action, "schedule.add");
  EXPECT_EQ(a.detail, "0 3 * * *");

  auto edited = schedules.edit("nightly", "*/15 * * * *", "Europe/Berlin", std::nullopt, kActor);
  EXPECT_EQ(edited.schedule->cron_expression, "*/15 * * * *");
  EXPECT_EQ(edited.schedule->time_zone, "Europe/Berlin");
  EXPECT_EQ(edited.schedule->job_type, "report");
  EXPECT_EQ(edited.schedule->tags, std::vector<std::string>{"reports"});  // the job's, kept
  EXPECT_EQ(edited.schedule->meta, R"({"k":1})");
  EXPECT_EQ(last_audit().detail, "*/15 * * * * (Europe/Berlin)");
  try {
    schedules.edit("nightly", "0 * * * *", "Mars/Olympus", std::nullopt, kActor);
    ADD_FAILURE() << "an unknown zone";
  } catch (const ops::FieldError& e) {
    EXPECT_EQ(e.name(), "time_zone");
  }

  auto triggered = schedules.trigger("nightly", kActor);
  EXPECT_EQ(last_audit().detail, "job " + triggered.job_id.to_string());
  EXPECT_EQ(ops::Jobs(store_).get(triggered.job_id)->job_type, "report");
  EXPECT_EQ(ops::Jobs(store_).get(triggered.job_id)->tags, std::vector<std::string>{"reports"});
  EXPECT_TRUE(schedules.set_enabled("nightly", false, kActor).ok());
  EXPECT_EQ(last_audit().action, "schedule.disable");
  EXPECT_FALSE(schedules.get("nightly")->is_enabled);
  EXPECT_TRUE(schedules.remove("nightly", kActor).ok());
  EXPECT_TRUE(schedules.list().empty());
  for (auto act : {+[](ops::Schedules& s) { (void)s.remove("nope", kActor); },
                   +[](ops::Schedules& s) { (void)s.set_enabled("nope", true, kActor); },
                   +[](ops::Schedules& s) { (void)s.edit("nope", "* * * * *", {}, {}, kActor); }}) {
    try {
      act(schedules);
      ADD_FAILURE() << "acted on a schedule that does not exist";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kNotFound);
      EXPECT_EQ(std::string(e.what()), "no schedule named 'nope'");
    }
  }
}

TEST(OpsSchedules, NextOccurrencesOrWhyThereAreNone) {
  ScheduleRecord s;
  s.cron_expression = "30 6 * * *";
  s.time_zone = "UTC";
  auto next = ops::next_occurrences(s, test_epoch(), 3);
  ASSERT_EQ(next.next.size(), 3u);
  EXPECT_EQ(format_timestamp(next.next[0]), "2026-03-02T06:30:00.000000Z");
  EXPECT_FALSE(next.error);
  s.time_zone = "Mars/Olympus";
  EXPECT_TRUE(ops::next_occurrences(s, test_epoch(), 3).error);
}

// ---- JSON ------------------------------------------------------------------------------------

TEST(OpsRender, StoredTextThatIsNotUtf8BecomesReplacementCharacters) {
  JobRecord r;
  r.id = JobId::generate(test_epoch());
  r.job_type = "t\xff";
  r.job_data = "not json \xfe";
  r.status = JobStatus::kFailed;
  r.created_at = r.run_at = test_epoch();
  r.attempt = 1;
  r.started_at = r.completed_at = test_epoch();
  r.worker_id = "w\xc3(";
  r.error_message = std::string("boom \xed\xa0\x80 nul \0 \x1b[31m", 20);
  json j = ops::job_to_json(r);
  EXPECT_NO_THROW((void)j.dump());  // json::dump throws on bytes that are not UTF-8
  EXPECT_EQ(j["job_type"], "t\uFFFD");
  EXPECT_EQ(j["job_data"], "not json \uFFFD");
  EXPECT_EQ(j["worker_id"], "w\uFFFD(");
  EXPECT_EQ(j["error_message"], "boom \uFFFD\uFFFD\uFFFD nul \uFFFD \x1b[31m");
  EXPECT_EQ(j["status"], "Failed");
  EXPECT_EQ(j["cancel_requested"], false);
  EXPECT_TRUE(j["timeout_ms"].is_null());
  EXPECT_NO_THROW((void)ops::job_summary_to_json(r).dump());
  json attempts = ops::attempts_to_json({{.job_id = r.id,
                                          .attempt = 1,
                                          .lease = 1,
                                          .worker_id = "w\xc3(",
                                          .started_at = test_epoch(),
                                          .finished_at = test_epoch() + std::chrono::seconds(2),
                                          .outcome = AttemptOutcome::kFailed,
                                          .error_message = "e\xff"}});
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0]["outcome"], "failed");
  EXPECT_EQ(attempts[0]["worker_id"], "w\uFFFD(");
  EXPECT_EQ(attempts[0]["error_message"], "e\uFFFD");
  EXPECT_EQ(attempts[0]["duration_ms"], 2000);
  EXPECT_NO_THROW((void)attempts.dump());
  r.result = "not json \xff";
  r.tags = {"t\xff"};
  EXPECT_EQ(ops::job_to_json(r)["result"], "not json \uFFFD");
  EXPECT_EQ(ops::job_to_json(r)["tags"][0], "t\uFFFD");

  // For a terminal that escapes each byte itself: exactly as stored.
  json raw = ops::job_to_json(r, ops::Text::kAsStored);
  EXPECT_EQ(raw["job_type"].get<std::string>(), "t\xff");
  EXPECT_EQ(raw["error_message"].get<std::string>(), *r.error_message);

  const TimePoint t = test_epoch();
  ops::WorkerView w{
      .worker =
          {.id = "w\xff", .name = "n", .host = "h", .pid = 7, .started_at = t, .heartbeat_at = t},
      .alive = true,
      .running = {r}};
  json wj = ops::worker_to_json(w);
  EXPECT_NO_THROW((void)wj.dump());
  EXPECT_EQ(wj["id"], "w\uFFFD");
  EXPECT_EQ(wj["running_jobs"][0]["job_type"], "t\uFFFD");
  EXPECT_NO_THROW(
      (void)ops::audit_to_json({.at = t, .actor = "a\xff", .action = "b", .target = "c"}).dump());
  EXPECT_NO_THROW((void)ops::queue_to_json({.name = "q\xff"}).dump());
  EXPECT_NO_THROW((void)ops::limit_to_json({.job_type = "t\xff"}).dump());
  ScheduleRecord s{.name = "s\xff",
                   .job_data = R"({"a":1})",
                   .time_zone = "UTC",
                   .tags = {"t\xff"},
                   .meta = R"({"m":2})"};
  json sj = ops::schedule_to_json(s);
  EXPECT_NO_THROW((void)sj.dump());
  EXPECT_EQ(sj["job_data"]["a"], 1);
  EXPECT_EQ(sj["tags"], json::array({"t\uFFFD"}));
  EXPECT_EQ(sj["meta"]["m"], 2);
}

TEST(OpsRender, ListingsPreviewLongText) {
  JobRecord r;
  r.job_data = "{\"x\":\"" + std::string(200, 'a') + "\"}";
  r.error_message = std::string(400, 'e');
  json j = ops::job_summary_to_json(r);
  EXPECT_EQ(j["payload_preview"].get<std::string>().size(), 123u);  // 120 and "..."
  EXPECT_EQ(j["error_message"].get<std::string>().size(), 303u);
  EXPECT_FALSE(j.contains("job_data"));
  json full = ops::job_to_json(r);
  EXPECT_EQ(full["error_message"].get<std::string>().size(), 400u);
  EXPECT_EQ(full["job_data"]["x"].get<std::string>().size(), 200u);
}

}  // namespace
}  // namespace ergon::testing
