// The dashboard's JSON API over HTTP (httplib's client) against a real SQLite file and, when
// ERGON_TEST_POSTGRES_URL is set, a throwaway PostgreSQL schema: every endpoint, the security
// checks, and malformed input (always a 4xx with a JSON message, never a 500).
//
// Tests named StoreOps_* need the store's operator actions (job_retry, job_delete, the bulk
// forms, job_counts, job_throughput, audit_insert/audit_list and the wider JobFilter); they
// fail with 501 until a backend implements them.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "assets.h"
#include "ergon/dashboard.h"
#include "ergon/ergon.h"
#include "http_util.h"
#include "store/store.h"
#include "support/pg_test_db.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  json body;
  std::string text;
  httplib::Headers headers;
};

class DashboardApiTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      std::string server = pg_test_server_url();
      if (server.empty()) GTEST_SKIP() << kNoPostgres;
      schema_ = std::make_unique<PgTestSchema>(server);
      store_ = open_store(schema_->url());
    } else {
      store_ = open_store(sqlite_url(dir_));
    }
    runner_ = std::make_unique<JobRunner>(store_);
  }

  void start(DashboardOptions o = {}) {
    o.port = 0;
    dashboard_ = std::make_unique<Dashboard>(store_, o);
    dashboard_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", dashboard_->port());
    client_->set_read_timeout(30, 0);
  }

  static Reply reply(const httplib::Result& r) {
    Reply out;
    if (!r) {
      ADD_FAILURE() << "no HTTP answer: " << httplib::to_string(r.error());
      return out;
    }
    out.status = r->status;
    out.text = r->body;
    out.headers = r->headers;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }

  Reply get(const std::string& path, httplib::Headers h = {}) {
    return reply(client_->Get(path.c_str(), h));
  }

  // A POST as the page sends it: with the X-Ergon-Request header.
  Reply post(const std::string& path, const std::string& body = "{}", httplib::Headers h = {},
             bool csrf_header = true) {
    if (csrf_header) h.emplace("X-Ergon-Request", "1");
    return reply(client_->Post(path.c_str(), h, body, "application/json"));
  }

  JobId enqueue(const std::string& type, const std::string& data = "{}",
                const std::string& queue = "default", int priority = 0) {
    JobOptions o;
    o.queue = queue;
    o.priority = priority;
    return runner_->start_job_raw(type, data, o);
  }

  // Claims the most urgent job (enqueue it with a low priority) and finishes it as `status`.
  JobId finish_next(JobStatus status, const std::string& error = "") {
    auto claimed =
        store_->job_claim({.worker_id = "test-worker", .limit = 1, .now = store_->clock().now()});
    EXPECT_EQ(claimed.size(), 1u);
    if (claimed.empty()) return JobId();
    JobFinishParams f;
    f.id = claimed[0].id;
    f.attempt = claimed[0].attempt;
    f.worker_id = "test-worker";
    f.status = status;
    f.now = store_->clock().now();
    if (!error.empty()) f.error_message = error;
    EXPECT_TRUE(store_->job_finish(f));
    return claimed[0].id;
  }

  JobId make_failed(const std::string& type, const std::string& data, const std::string& error) {
    JobId id = enqueue(type, data, "default", -1000);
    EXPECT_EQ(finish_next(JobStatus::kFailed, error), id);
    return id;
  }

  static void expect_error(const Reply& r, int status, const std::string& fragment = "") {
    EXPECT_EQ(r.status, status) << r.text;
    ASSERT_TRUE(r.body.is_object()) << r.text;
    ASSERT_TRUE(r.body.contains("error")) << r.text;
    EXPECT_NE(r.body["error"].get<std::string>().find(fragment), std::string::npos)
        << r.body["error"] << " lacks " << fragment;
  }

  TempDir dir_;
  std::unique_ptr<PgTestSchema> schema_;
  std::shared_ptr<Store> store_;
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<Dashboard> dashboard_;
  std::unique_ptr<httplib::Client> client_;
};

INSTANTIATE_TEST_SUITE_P(Stores, DashboardApiTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& param_info) { return param_info.param; });

// ---- the page --------------------------------------------------------------------------

TEST_P(DashboardApiTest, ServesThePageAndItsAssetsWithAStrictPolicy) {
  start();
  Reply page = get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.text.find("/assets/app.js"), std::string::npos);
  auto csp = page.headers.find("Content-Security-Policy");
  ASSERT_NE(csp, page.headers.end());
  EXPECT_NE(csp->second.find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(page.headers.find("X-Frame-Options")->second, "DENY");
  Reply js = get("/assets/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_NE(js.headers.find("Content-Type")->second.find("javascript"), std::string::npos);
  EXPECT_EQ(get("/assets/app.css").status, 200);
  expect_error(get("/assets/missing.js"), 404);
  expect_error(get("/no/such/page"), 404, "no such page");
}

// The page never turns database text into HTML: no HTML-parsing sink appears in its script.
TEST(DashboardAssets, TheScriptHasNoHtmlSinks) {
  std::string js;
  for (const auto& a : dashboard::assets()) {
    if (a.name == "app.js") js.assign(reinterpret_cast<const char*>(a.data), a.size);
  }
  ASSERT_FALSE(js.empty());
  for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function"}) {
    EXPECT_EQ(js.find(sink), std::string::npos) << sink;
  }
}

// ---- reading ---------------------------------------------------------------------------

TEST_P(DashboardApiTest, ConfigSaysWhetherActionsAreAllowed) {
  start({.read_only = true});
  Reply r = get("/api/config");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["read_only"], true);
  EXPECT_EQ(r.body["backend"], std::string(store_->backend()));
}

TEST_P(DashboardApiTest, JobsListFiltersByStatusAndTypeNewestFirst) {
  JobId failed = make_failed("mail", R"({"to":"a@example.com"})", "smtp down");
  JobId a = enqueue("mail", R"({"to":"b@example.com"})");
  JobId b = enqueue("resize", R"({"w":10})");
  start();
  Reply all = get("/api/jobs");
  ASSERT_EQ(all.status, 200) << all.text;
  ASSERT_EQ(all.body["jobs"].size(), 3u);
  EXPECT_EQ(all.body["jobs"][0]["id"], b.to_string());
  EXPECT_EQ(all.body["jobs"][1]["id"], a.to_string());
  EXPECT_TRUE(all.body["next_before_id"].is_null());

  Reply by_status = get("/api/jobs?status=failed");
  ASSERT_EQ(by_status.body["jobs"].size(), 1u);
  EXPECT_EQ(by_status.body["jobs"][0]["id"], failed.to_string());
  EXPECT_EQ(by_status.body["jobs"][0]["error_message"], "smtp down");

  Reply by_type = get("/api/jobs?type=resize");
  ASSERT_EQ(by_type.body["jobs"].size(), 1u);
  EXPECT_EQ(by_type.body["jobs"][0]["job_type"], "resize");
  EXPECT_EQ(get("/api/jobs?type=none").body["jobs"].size(), 0u);
}

TEST_P(DashboardApiTest, JobDetailShowsPayloadProgressAndTheAttemptHistory) {
  JobId id = enqueue("video", R"({"file":"a.mp4"})", "default", -5);
  auto claimed = store_->job_claim({.worker_id = "w1", .limit = 1, .now = store_->clock().now()});
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(store_->job_progress_update(
      {.id = id, .attempt = 1, .worker_id = "w1", .message = "encoding", .percent = 40}));
  start();
  Reply r = get("/api/jobs/" + id.to_string());
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["status"], "Running");
  EXPECT_EQ(r.body["job_data"]["file"], "a.mp4");
  EXPECT_EQ(r.body["progress_percent"], 40);
  EXPECT_EQ(r.body["progress_message"], "encoding");
  EXPECT_TRUE(r.body["attempts"].empty());  // the running attempt has not finished
  JobFinishParams fin{.id = id,
                      .attempt = 1,
                      .worker_id = "w1",
                      .status = JobStatus::kPending,
                      .now = store_->clock().now(),
                      .run_at = store_->clock().now(),
                      .error_message = "E: boom",
                      .attempt_outcome = AttemptOutcome::kRetried};
  ASSERT_TRUE(store_->job_finish(fin));
  r = get("/api/jobs/" + id.to_string());
  ASSERT_EQ(r.body["attempts"].size(), 1u) << r.text;
  const json& a = r.body["attempts"][0];
  EXPECT_EQ(a["attempt"], 1);
  EXPECT_EQ(a["worker_id"], "w1");
  EXPECT_EQ(a["outcome"], "retried");
  EXPECT_EQ(a["error_message"], "E: boom");
  EXPECT_GE(a["duration_ms"].get<std::int64_t>(), 0);
  EXPECT_TRUE(r.body["result"].is_null());
  EXPECT_EQ(r.body["tags"], json::array());
}

// A payload made to be HTML comes back as the same text in a JSON string; the page puts it in
// with textContent (the browser test checks that no element is created from it).
TEST_P(DashboardApiTest, AnHtmlPayloadComesBackAsPlainText) {
  const std::string evil = "<img src=x onerror=alert(1)>";
  JobId id = make_failed("evil", json({{"html", evil}}).dump(), evil);
  start();
  Reply r = get("/api/jobs/" + id.to_string());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["job_data"]["html"], evil);
  EXPECT_EQ(r.body["error_message"], evil);
  EXPECT_EQ(r.headers.find("Content-Type")->second, "application/json; charset=utf-8");
}

TEST_P(DashboardApiTest, UnknownAndMalformedJobIds) {
  start();
  expect_error(get("/api/jobs/not-a-uuid"), 400, "not a job id");
  expect_error(get("/api/jobs/" + JobId::generate(store_->clock().now()).to_string()), 404,
               "no job");
  expect_error(get("/api/jobs/%00%01"), 400);
  expect_error(post("/api/jobs/xyz/cancel"), 400, "not a job id");
  expect_error(post("/api/jobs/" + JobId::generate(store_->clock().now()).to_string() + "/cancel"),
               404);
  expect_error(post("/api/jobs/" + JobId::generate(store_->clock().now()).to_string() + "/explode"),
               404, "unknown action");
}

TEST_P(DashboardApiTest, MalformedFiltersAndPageSizesAre400s) {
  start();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/api/jobs?limit=0", "limit"},
      {"/api/jobs?limit=100000", "limit"},
      {"/api/jobs?limit=abc", "limit"},
      {"/api/jobs?limit=-1", "limit"},
      {"/api/jobs?limit=10x", "limit"},
      {"/api/jobs?limit=", "limit"},
      {"/api/jobs?status=Sleeping", "status"},
      {"/api/jobs?created_after=yesterday", "created_after"},
      {"/api/jobs?created_before=2026-13-45", "created_before"},
      {"/api/jobs?created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z",
       "earlier"},
      {"/api/jobs?before_id=42", "not a job id"},
      {"/api/jobs?colour=red", "unknown parameter"},
      {"/api/jobs?status=Failed&status=Pending", "more than once"},
      {"/api/jobs?type=" + std::string(300, 'x'), "type"},
      {"/api/jobs?queue=" + std::string(101, 'q'), "queue"},
      {"/api/audit?limit=0", "limit"},
      {"/api/audit?since=now", "unknown parameter"},
      {"/api/schedules?x=1", "no parameters"},
      {"/api/jobs/" + JobId().to_string() + "?x=1", "no parameters"},
  };
  for (const auto& [path, fragment] : cases) {
    SCOPED_TRACE(path);
    expect_error(get(path), 400, fragment);
  }
}

TEST_P(DashboardApiTest, MalformedBodiesAre400s) {
  start();
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"/api/jobs/bulk/retry", "not json", "not valid JSON"},
      {"/api/jobs/bulk/retry", "[1,2]", "JSON object"},
      {"/api/jobs/bulk/delete", "{}", "at least one condition"},
      {"/api/jobs/bulk/delete", R"({"status": 3})", "must be a string"},
      {"/api/jobs/bulk/delete", R"({"status": "Zombie"})", "status"},
      {"/api/jobs/bulk/delete", R"({"limit": "5"})", "unknown parameter"},
      {"/api/queues/pause", "{}", "'name' is required"},
      {"/api/queues/pause", R"({"name": ""})", "name"},
      {"/api/queues/pause", R"({"name": 7})", "must be a string"},
      {"/api/queues/pause", R"({"name": "q", "extra": 1})", "unknown field"},
      {"/api/schedules/enable", "", "not valid JSON"},
      {"/api/schedules/edit", R"({"name": "x", "expression": 5})", "must be a string"},
  };
  for (const auto& [path, body, fragment] : cases) {
    SCOPED_TRACE(path + " " + body);
    expect_error(post(path, body), 400, fragment);
  }
  expect_error(post("/api/queues/explode", R"({"name": "q"})"), 404, "unknown queue action");
  expect_error(post("/api/schedules/enable", R"({"name": "nothing"})"), 404, "no schedule");
}

// ---- security --------------------------------------------------------------------------

TEST_P(DashboardApiTest, ActionsArePostOnly) {
  JobId id = enqueue("mail");
  start();
  for (const std::string& path :
       {"/api/jobs/" + id.to_string() + "/cancel", "/api/jobs/" + id.to_string() + "/retry",
        "/api/jobs/" + id.to_string() + "/delete", std::string("/api/jobs/bulk/delete"),
        std::string("/api/queues/pause"), std::string("/api/schedules/trigger")}) {
    SCOPED_TRACE(path);
    expect_error(get(path), 405, "POST");
  }
  auto del = client_->Delete(("/api/jobs/" + id.to_string()).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kPending);
}

TEST_P(DashboardApiTest, CrossSiteRequestsAreRefused) {
  JobId id = enqueue("mail");
  start();
  const std::string path = "/api/jobs/" + id.to_string() + "/cancel";
  expect_error(post(path, "{}", {}, /*csrf_header=*/false), 403, "X-Ergon-Request");
  expect_error(post(path, "{}", {{"Origin", "http://evil.example"}}), 403, "Origin");
  expect_error(post(path, "{}", {{"Sec-Fetch-Site", "cross-site"}}), 403, "Sec-Fetch-Site");
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kPending);
  // The page itself: same origin.
  const std::string origin = "http://127.0.0.1:" + std::to_string(dashboard_->port());
  Reply ok = post(path, "{}", {{"Origin", origin}, {"Sec-Fetch-Site", "same-origin"}});
  EXPECT_EQ(ok.status, 200) << ok.text;
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kCancelled);
}

// DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name as Host.
TEST_P(DashboardApiTest, ALoopbackDashboardAnswersOnlyLocalHostNames) {
  start();
  expect_error(get("/api/jobs", {{"Host", "evil.example:8080"}}), 403, "localhost");
  EXPECT_EQ(get("/api/jobs", {{"Host", "localhost:8080"}}).status, 200);
}

TEST_P(DashboardApiTest, ReadOnlyModeRefusesEveryAction) {
  JobId id = enqueue("mail");
  runner_->add_or_update_scheduled_job_raw("report", "{}", "0 * * * *", {.name = "hourly"});
  start({.read_only = true});
  expect_error(post("/api/jobs/" + id.to_string() + "/cancel"), 403, "read-only");
  expect_error(post("/api/jobs/bulk/delete", R"({"status":"Pending"})"), 403, "read-only");
  expect_error(post("/api/queues/pause", R"({"name":"default"})"), 403, "read-only");
  expect_error(post("/api/schedules/disable", R"({"name":"hourly"})"), 403, "read-only");
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kPending);
  EXPECT_TRUE(runner_->get_scheduled_job("hourly")->is_enabled);
  EXPECT_EQ(get("/api/jobs").status, 200);
}

TEST_P(DashboardApiTest, ANonLoopbackAddressNeedsAToken) {
  for (const char* address : {"0.0.0.0", "192.168.1.10", "::", "example.com"}) {
    SCOPED_TRACE(address);
    try {
      Dashboard d(store_, {.address = address, .port = 0});
      ADD_FAILURE() << "accepted without a token";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("token"), std::string::npos);
    }
  }
  EXPECT_NO_THROW(
      Dashboard(store_, {.address = "0.0.0.0", .port = 0, .token = "s3cret-0123456789"}));
  EXPECT_THROW(Dashboard(store_, {.port = 70000}), Error);
  EXPECT_THROW(Dashboard(store_, {.port = 0, .token = "has space 0123456789"}), Error);
}

TEST_P(DashboardApiTest, WithATokenEveryRequestMustCarryIt) {
  start({.token = "t0ken-0123456789"});
  expect_error(get("/api/jobs"), 401, "token");
  expect_error(get("/"), 401);
  expect_error(get("/metrics"), 401);
  expect_error(get("/api/jobs", {{"Authorization", "Bearer wrong"}}), 401);
  EXPECT_EQ(get("/api/jobs", {{"Authorization", "Bearer t0ken-0123456789"}}).status, 200);
  // The browser's way: /login?token= sets an HttpOnly, SameSite=Strict cookie.
  expect_error(get("/login?token=nope"), 401, "wrong");
  auto login = client_->Get("/login?token=t0ken-0123456789");
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 303);
  std::string cookie = login->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(get("/api/jobs", {{"Cookie", cookie.substr(0, cookie.find(';'))}}).status, 200);
  EXPECT_EQ(get("/api/jobs", {{"Cookie", "ergon_session=wrong"}}).status, 401);
  // A token also lets the dashboard answer to any Host name (it may sit behind a proxy).
  EXPECT_EQ(
      get("/api/jobs", {{"Authorization", "Bearer t0ken-0123456789"}, {"Host", "jobs.internal"}})
          .status,
      200);
}

TEST(DashboardHttpUtil, Helpers) {
  using namespace dashboard;
  EXPECT_EQ(cookie_value("a=1; ergon_token=xyz; b=2", "ergon_token"), "xyz");
  EXPECT_EQ(cookie_value("xergon_token=1", "ergon_token"), std::nullopt);
  EXPECT_EQ(host_of("[::1]:8080"), "::1");
  EXPECT_EQ(host_of("127.0.0.1:80"), "127.0.0.1");
  EXPECT_TRUE(is_loopback_host_header("localhost:1"));
  EXPECT_FALSE(is_loopback_host_header("127.0.0.1.evil.example"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3"));
  EXPECT_FALSE(is_loopback_address("128.0.0.1"));
  EXPECT_FALSE(cross_site_refusal("", "h:1", "").has_value());
  EXPECT_FALSE(cross_site_refusal("http://h:1", "h:1", "same-origin").has_value());
  EXPECT_TRUE(cross_site_refusal("http://h:2", "h:1", "").has_value());
  EXPECT_TRUE(cross_site_refusal("", "h:1", "same-site").has_value());
}

// ---- actions that work on every store today ----------------------------------------------

TEST_P(DashboardApiTest, CancelsAPendingJob) {
  JobId id = enqueue("mail");
  start();
  Reply r = post("/api/jobs/" + id.to_string() + "/cancel");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["result"], "cancelled");
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kCancelled);
  expect_error(post("/api/jobs/" + id.to_string() + "/cancel"), 409, "already finished");
}

TEST_P(DashboardApiTest, RecurringJobsShowTheNextFiveAndCanBeChanged) {
  runner_->add_or_update_scheduled_job_raw("report", R"({"kind":"daily"})", "30 6 * * *",
                                           {.name = "daily-report",
                                            .time_zone = "Europe/Berlin",
                                            .tags = {"reports"},
                                            .meta = R"({"owner":"ops"})"});
  start();
  Reply r = get("/api/schedules");
  ASSERT_EQ(r.status, 200) << r.text;
  ASSERT_EQ(r.body["schedules"].size(), 1u);
  json s = r.body["schedules"][0];
  EXPECT_EQ(s["name"], "daily-report");
  EXPECT_EQ(s["time_zone"], "Europe/Berlin");
  EXPECT_EQ(s["tags"], json::array({"reports"}));
  EXPECT_EQ(s["meta"], json({{"owner", "ops"}}));
  ASSERT_EQ(s["next_occurrences"].size(), 5u);
  // 06:30 in Berlin is 05:30 or 04:30 UTC; consecutive days.
  for (const auto& t : s["next_occurrences"]) {
    std::string text = t.get<std::string>();
    EXPECT_TRUE(text.find("T05:30:00") != std::string::npos ||
                text.find("T04:30:00") != std::string::npos)
        << text;
  }

  ASSERT_EQ(post("/api/schedules/disable", R"({"name":"daily-report"})").status, 200);
  EXPECT_FALSE(runner_->get_scheduled_job("daily-report")->is_enabled);
  ASSERT_EQ(post("/api/schedules/enable", R"({"name":"daily-report"})").status, 200);
  EXPECT_TRUE(runner_->get_scheduled_job("daily-report")->is_enabled);

  Reply trig = post("/api/schedules/trigger", R"({"name":"daily-report"})");
  ASSERT_EQ(trig.status, 200) << trig.text;
  auto job = runner_->get_job(*JobId::parse(trig.body["job_id"].get<std::string>()));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_type, "report");
  EXPECT_EQ(job->tags, std::vector<std::string>{"reports"});

  expect_error(post("/api/schedules/edit", R"({"name":"daily-report","expression":"61 * * * *"})"),
               400);
  expect_error(
      post("/api/schedules/edit",
           R"({"name":"daily-report","expression":"0 * * * *","time_zone":"Mars/Olympus"})"),
      400, "time_zone");
  Reply edit =
      post("/api/schedules/edit", R"({"name":"daily-report","expression":"*/15 * * * *"})");
  ASSERT_EQ(edit.status, 200) << edit.text;
  auto after = runner_->get_scheduled_job("daily-report");
  EXPECT_EQ(after->cron_expression, "*/15 * * * *");
  EXPECT_EQ(after->time_zone, "Europe/Berlin");
  EXPECT_EQ(after->job_data, R"({"kind":"daily"})");
  EXPECT_EQ(after->tags, std::vector<std::string>{"reports"});  // the job's, kept
}

TEST_P(DashboardApiTest, QueuesPauseAndResume) {
  enqueue("mail", "{}", "emails");
  start();
  ASSERT_EQ(post("/api/queues/pause", R"({"name":"emails"})").status, 200);
  Reply q = get("/api/queues");
  ASSERT_EQ(q.status, 200);
  bool seen = false;
  for (const auto& row : q.body["queues"]) {
    if (row["name"] == "emails") {
      seen = true;
      EXPECT_EQ(row["paused"], true);
      EXPECT_EQ(row["pending"], 1);
    }
  }
  EXPECT_TRUE(seen) << q.text;
  ASSERT_EQ(post("/api/queues/resume", R"({"name":"emails"})").status, 200);
  EXPECT_EQ(get("/api/queues").body["queues"][0]["paused"], false);
}

TEST_P(DashboardApiTest, WorkersShowTheirRunningJobs) {
  const TimePoint now = store_->clock().now();
  store_->worker_register({.id = "w-1",
                           .name = "resizer-1",
                           .host = "host-a",
                           .pid = 4242,
                           .started_at = now,
                           .heartbeat_at = now});
  JobId id = enqueue("resize", "{}", "default", -10);
  ASSERT_EQ(
      store_->job_claim({.worker_id = "w-1", .limit = 1, .now = store_->clock().now()}).size(), 1u);
  start();
  Reply r = get("/api/workers");
  ASSERT_EQ(r.status, 200) << r.text;
  ASSERT_EQ(r.body["workers"].size(), 1u);
  json w = r.body["workers"][0];
  EXPECT_EQ(w["host"], "host-a");
  EXPECT_EQ(w["pid"], 4242);
  EXPECT_EQ(w["alive"], true);
  ASSERT_EQ(w["running_jobs"].size(), 1u);
  EXPECT_EQ(w["running_jobs"][0]["id"], id.to_string());
}

TEST_P(DashboardApiTest, OverviewDegradesPartByPart) {
  enqueue("mail");
  start();
  Reply r = get("/api/overview");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_TRUE(r.body.contains("workers"));
  EXPECT_TRUE(r.body["unavailable"].is_array());
}

TEST_P(DashboardApiTest, MetricsReportStoreGauges) {
  enqueue("mail", "{}", "emails");
  start();
  auto r = client_->Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(r->body.find("ergon_store_up 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"(ergon_queue_jobs{queue="emails",status="Pending"} 1)"),
            std::string::npos)
      << r->body;
}

// ---- StoreOps_*: need the store's operator actions (another branch) ----------------------

TEST_P(DashboardApiTest, StoreOps_RetriesAFailedJobAndAuditsIt) {
  JobId id = make_failed("mail", "{}", "boom");
  JobId pending = enqueue("mail");
  start();
  Reply r = post("/api/jobs/" + id.to_string() + "/retry");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["audited"], true);
  EXPECT_EQ(runner_->get_job(id)->status, JobStatus::kPending);
  expect_error(post("/api/jobs/" + pending.to_string() + "/retry"), 409, "Failed or Cancelled");
  Reply audit = get("/api/audit");
  ASSERT_EQ(audit.status, 200) << audit.text;
  ASSERT_GE(audit.body["entries"].size(), 1u);
  json e = audit.body["entries"][0];
  EXPECT_EQ(e["action"], "retry");
  EXPECT_EQ(e["target"], id.to_string());
  EXPECT_EQ(e["actor"].get<std::string>().rfind("dashboard:", 0), 0u);
}

TEST_P(DashboardApiTest, StoreOps_DeletesAJobButNotARunningOne) {
  JobId running = enqueue("mail", "{}", "default", -100);
  ASSERT_EQ(store_->job_claim({.worker_id = "w", .limit = 1, .now = store_->clock().now()}).size(),
            1u);
  JobId id = enqueue("mail");
  start();
  ASSERT_EQ(post("/api/jobs/" + id.to_string() + "/delete").status, 200);
  EXPECT_FALSE(runner_->get_job(id));
  expect_error(post("/api/jobs/" + running.to_string() + "/delete"), 409, "Running");
  expect_error(post("/api/jobs/" + id.to_string() + "/delete"), 404);
}

TEST_P(DashboardApiTest, StoreOps_BulkRetryAndDeleteOfAFilteredSet) {
  make_failed("mail", "{}", "a");
  make_failed("mail", "{}", "b");
  make_failed("resize", "{}", "c");
  start();
  Reply r = post("/api/jobs/bulk/retry", R"({"status":"Failed","type":"mail"})");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["count"], 2);
  EXPECT_EQ(runner_->list_jobs({.status = JobStatus::kPending}).size(), 2u);
  Reply d = post("/api/jobs/bulk/delete", R"({"type":"resize"})");
  ASSERT_EQ(d.status, 200) << d.text;
  EXPECT_EQ(d.body["count"], 1);
  EXPECT_EQ(runner_->list_jobs({}).size(), 2u);
  EXPECT_EQ(get("/api/audit").body["entries"][0]["action"], "bulk.delete");
}

TEST_P(DashboardApiTest, StoreOps_FiltersByQueueTextAndTime) {
  enqueue("mail", R"({"to":"alice@example.com"})", "emails");
  enqueue("mail", R"({"to":"bob@example.com"})", "emails");
  enqueue("resize", R"({"file":"alice.png"})", "images");
  start();
  EXPECT_EQ(get("/api/jobs?queue=emails").body["jobs"].size(), 2u);
  EXPECT_EQ(get("/api/jobs?text=alice").body["jobs"].size(), 2u);
  EXPECT_EQ(get("/api/jobs?text=alice&queue=images").body["jobs"].size(), 1u);
  EXPECT_EQ(get("/api/jobs?created_after=2000-01-01T00:00:00Z").body["jobs"].size(), 3u);
  EXPECT_EQ(get("/api/jobs?created_before=2000-01-01T00:00:00Z").body["jobs"].size(), 0u);
}

TEST_P(DashboardApiTest, StoreOps_PagesWithBeforeId) {
  std::vector<JobId> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(enqueue("mail", "{\"n\":" + std::to_string(i) + "}"));
  start();
  std::vector<std::string> seen;
  std::string next;
  for (int page = 0; page < 10; ++page) {
    Reply r = get("/api/jobs?limit=3" + (next.empty() ? "" : "&before_id=" + next));
    ASSERT_EQ(r.status, 200) << r.text;
    for (const auto& j : r.body["jobs"]) seen.push_back(j["id"]);
    if (r.body["next_before_id"].is_null()) break;
    next = r.body["next_before_id"];
  }
  ASSERT_EQ(seen.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(seen[i], ids[6 - i].to_string());
}

TEST_P(DashboardApiTest, StoreOps_OverviewCountsAndThroughput) {
  make_failed("mail", "{}", "x");
  enqueue("mail", "{}", "emails");
  start();
  Reply r = get("/api/overview");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_TRUE(r.body["unavailable"].empty()) << r.body["unavailable"];
  EXPECT_EQ(r.body["counts"]["by_status"]["Failed"], 1);
  EXPECT_EQ(r.body["counts"]["by_queue"]["emails"]["Pending"], 1);
  ASSERT_GE(r.body["throughput"]["buckets"].size(), 60u);  // an hour of minutes
  std::int64_t failed = 0;
  for (const auto& b : r.body["throughput"]["buckets"]) failed += b["failed"].get<std::int64_t>();
  EXPECT_EQ(failed, 1);
}

}  // namespace
}  // namespace ergon::testing
