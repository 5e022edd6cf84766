// The `ergon` binary against PostgreSQL: `ergon migrate` creates the original tables with their
// original column names and types, and the job commands work on a PostgreSQL URL. Needs
// ERGON_TEST_POSTGRES_URL (scripts/test.sh sets it); skipped with a message without it.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "store/postgres/pg_migrations.h"
#include "support/pg_test_db.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

class CliPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = pg_test_server_url();
    if (server_.empty()) GTEST_SKIP() << kNoPostgres;
    schema_ = std::make_unique<PgTestSchema>(server_);
  }
  ProcessResult ergon(std::vector<std::string> args) {
    args.insert(args.begin(), kErgon);
    return run_process(args, "", {"ERGON_DATABASE_URL="});
  }
  std::string db() const { return schema_->url(); }

  std::string server_;
  std::unique_ptr<PgTestSchema> schema_;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST_F(CliPostgresTest, MigrateCreatesTheOriginalColumnsWithTheirTypes) {
  auto m = ergon({"migrate", "--db", db()});
  ASSERT_EQ(m.status, 0) << m.err;
  std::string applied;
  for (const auto& mig : postgres::migrations()) {
    applied += "applied migration " + std::to_string(mig.version) + "\n";
  }
  EXPECT_EQ(m.out, applied);
  EXPECT_EQ(ergon({"migrate", "--db", db()}).out, "schema is up to date\n");

  PgTestConnection psql(server_);
  struct Column {
    std::string type;
    bool nullable;
  };
  std::map<std::string, std::map<std::string, Column>> tables;
  std::vector<std::string> jobs_order;
  for (const auto& row : psql.query("SELECT table_name, column_name, data_type, is_nullable FROM "
                                    "information_schema.columns WHERE table_schema = '" +
                                    schema_->name() + "' ORDER BY table_name, ordinal_position")) {
    tables[*row[0]][*row[1]] = {*row[2], *row[3] == "YES"};
    if (*row[0] == "jobs") jobs_order.push_back(*row[1]);
  }
  const std::string uuid = "uuid", varchar = "character varying", jsonb = "jsonb",
                    tstz = "timestamp with time zone", integer = "integer", boolean = "boolean";
  // jobs: the original columns first, exactly, then the added ones.
  const std::vector<std::pair<std::string, Column>> jobs = {
      {"id", {uuid, false}},
      {"job_type", {varchar, false}},
      {"job_data", {jsonb, false}},
      {"status", {varchar, false}},
      {"created_at", {tstz, false}},
      {"started_at", {tstz, true}},
      {"completed_at", {tstz, true}},
      {"error_message", {varchar, true}},
      {"progress_message", {varchar, true}},
      {"progress_percent", {integer, true}},
      {"queue", {varchar, false}},
      {"priority", {integer, false}},
      {"run_at", {tstz, false}},
      {"attempt", {integer, false}},
      {"max_attempts", {integer, true}},
      {"worker_id", {varchar, true}},
      {"heartbeat_at", {tstz, true}},
      {"cancel_requested", {boolean, false}},
      {"rescue_count", {integer, false}},
      {"timeout_ms", {"bigint", true}},
      {"unique_key", {varchar, true}},
      {"unique_while_running", {boolean, false}},
      {"group_key", {varchar, true}},
      {"unique_until", {tstz, true}},
      {"lease", {integer, false}},
      {"result", {jsonb, true}},
      {"tags", {"ARRAY", true}},
      {"meta", {jsonb, true}},
  };
  ASSERT_EQ(jobs_order.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& [name, want] = jobs[i];
    EXPECT_EQ(jobs_order[i], name);
    EXPECT_EQ(tables["jobs"][name].type, want.type) << name;
    EXPECT_EQ(tables["jobs"][name].nullable, want.nullable) << name;
  }
  const std::vector<std::pair<std::string, Column>> scheduled = {
      {"id", {uuid, false}},
      {"job_type", {varchar, false}},
      {"job_data", {jsonb, false}},
      {"cron_expression", {varchar, false}},
      {"next_run_time", {tstz, false}},
      {"last_run_time", {tstz, true}},
      {"is_enabled", {boolean, false}},
      {"name", {varchar, false}},
      {"time_zone", {varchar, false}},
      {"tags", {"ARRAY", true}},
      {"meta", {jsonb, true}},
  };
  ASSERT_TRUE(tables.contains("scheduled_jobs"));
  for (const auto& [name, want] : scheduled) {
    ASSERT_TRUE(tables["scheduled_jobs"].contains(name)) << name;
    EXPECT_EQ(tables["scheduled_jobs"][name].type, want.type) << name;
    EXPECT_EQ(tables["scheduled_jobs"][name].nullable, want.nullable) << name;
  }
  const std::vector<std::pair<std::string, Column>> attempts = {
      {"job_id", {uuid, false}},     {"lease", {integer, false}},
      {"attempt", {integer, false}}, {"worker_id", {varchar, false}},
      {"started_at", {tstz, false}}, {"finished_at", {tstz, false}},
      {"outcome", {varchar, false}}, {"error_message", {varchar, true}},
  };
  ASSERT_EQ(tables["job_attempts"].size(), attempts.size());
  for (const auto& [name, want] : attempts) {
    EXPECT_EQ(tables["job_attempts"][name].type, want.type) << name;
    EXPECT_EQ(tables["job_attempts"][name].nullable, want.nullable) << name;
  }
  EXPECT_EQ(tables["ergon_schema_migrations"]["version"].type, integer);
  EXPECT_EQ(tables["ergon_schema_migrations"]["applied_at"].type, tstz);

  // The claim's indexes: partial, Pending rows only, in claim order; grouped jobs by group.
  auto index = [&](const std::string& name) {
    return psql.value("SELECT indexdef FROM pg_indexes WHERE schemaname = '" + schema_->name() +
                      "' AND indexname = '" + name + "'");
  };
  std::string claim_idx = index("jobs_claim_idx");
  EXPECT_NE(claim_idx.find("(priority, run_at, id) WHERE (((status)::text = 'Pending'::text) AND "
                           "(group_key IS NULL))"),
            std::string::npos)
      << claim_idx;
  std::string group_idx = index("jobs_group_claim_idx");
  EXPECT_NE(group_idx.find("(group_key, priority, run_at, id) WHERE (((status)::text = "
                           "'Pending'::text) AND (group_key IS NOT NULL))"),
            std::string::npos)
      << group_idx;
  EXPECT_NE(psql.value("SELECT indexdef FROM pg_indexes WHERE schemaname = '" + schema_->name() +
                       "' AND indexname = 'jobs_status_idx'")
                .find("(status, id)"),
            std::string::npos);
  // The tag filter's: GIN, tagged jobs only.
  std::string tags_idx = index("jobs_tags_idx");
  EXPECT_NE(tags_idx.find("USING gin (tags) WHERE (tags IS NOT NULL)"), std::string::npos)
      << tags_idx;
}

TEST_F(CliPostgresTest, EnqueueAndInspectOnAPostgresqlUrl) {
  // Before migrate, commands other than migrate refuse with the hint.
  auto early = ergon({"jobs", "list", "--db", db()});
  EXPECT_NE(early.status, 0);
  EXPECT_NE(early.err.find("ergon migrate"), std::string::npos) << early.err;

  ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0);
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

  auto list = ergon({"jobs", "list", "--json", "--status", "pending", "--db", db()});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 1u);

  // An unknown URL parameter is refused before anything connects.
  auto bad = ergon({"jobs", "list", "--db", pg_url_with(db(), "search_path=x")});
  EXPECT_NE(bad.status, 0);
  EXPECT_LT(bad.status, 128) << bad.err;
  EXPECT_NE(bad.err.find("search_path"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ergon::testing
