// The configuration file as the ergon CLI reads it: the library's sections and the CLI's own
// (Handlers, Limits, Logging, Dashboard) in one pass, with one report of every error.
#include "commands/cli_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>

#include "ergon/error.h"

namespace ergon::commands {
namespace {

using namespace std::chrono_literals;

// The text of the error parse_cli_config throws, or "no error".
std::string error_of(const std::string& json_text, const ConfigEnvironment& env = {}) {
  try {
    parse_cli_config(json_text, env);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    return e.what();
  }
  return "no error";
}

TEST(CliConfigTest, ReadsTheOriginalFileWithHandlers) {
  CliConfig c = parse_cli_config(R"({
    "Database": "sqlite:jobs.db",
    "JobsWorker": {"OrphanedJobThreshold": "00:30:00", "MaxConcurrentJobs": 3},
    "Handlers": {
      "resize": {"command": ["./resize.sh", "--fast"], "timeout": "00:05:00",
                 "env": {"LANG": "C"}, "maxAttempts": 2}
    }
  })");
  EXPECT_EQ(c.database, "sqlite:jobs.db");
  EXPECT_EQ(c.worker.orphaned_job_threshold, 30min);
  EXPECT_EQ(c.worker.max_concurrent_jobs, 3);
  ASSERT_EQ(c.handlers.count("resize"), 1u);
  const auto& h = c.handlers.at("resize");
  EXPECT_EQ(h.command, (std::vector<std::string>{"./resize.sh", "--fast"}));
  EXPECT_EQ(h.timeout, std::chrono::duration_cast<Duration>(5min));
  EXPECT_EQ(h.env.at("LANG"), "C");
  EXPECT_EQ(h.max_attempts, 2);
  EXPECT_TRUE(parse_cli_config("{}").handlers.empty());
}

// Each bad section names what is wrong.
TEST(CliConfigTest, RejectsBadHandlersWithTheKeyInTheMessage) {
  std::pair<std::string, const char*> cases[] = {
      {R"({"Handlers": []})", "Handlers: must be an object keyed by job type"},
      {R"({"Handlers": {"": {"command": "a"}}})", "Handlers: a job type name is empty"},
      {R"({"Handlers": {"x": {}}})", "Handlers.x: missing \"command\""},
      {R"({"Handlers": {"x": {"command": []}}})", "must not be empty"},
      {R"({"Handlers": {"x": {"command": [1]}}})", "array of strings"},
      {R"({"Handlers": {"x": {"command": "a", "timeout": "00:00:00"}}})", "greater than zero"},
      {R"({"Handlers": {"x": {"command": "a", "env": {"A": 1}}}})", "Handlers.x.env.A"},
      {R"({"Handlers": {"x": {"command": "a", "retries": 1}}})", "unknown key 'retries'"},
      {R"({"Handler": {}})", "unknown key 'Handler'"},
  };
  for (const auto& [json, expect] : cases) {
    EXPECT_NE(error_of(json).find(expect), std::string::npos) << expect << " | " << error_of(json);
  }
}

TEST(CliConfigTest, ReadsLimitsPerJobType) {
  CliConfig c = parse_cli_config(R"({"Limits": {
      "api": {"MaxRunning": 2, "RateLimit": 10, "RatePeriod": "00:00:01"},
      "sync": {"MaxRunning": 1, "PerGroup": true}}})");
  ASSERT_EQ(c.limits.size(), 2u);
  EXPECT_EQ(c.limits[0].job_type, "api");
  EXPECT_EQ(c.limits[0].max_running, 2);
  EXPECT_EQ(c.limits[0].rate_limit, 10);
  EXPECT_EQ(c.limits[0].rate_period, 1s);
  EXPECT_FALSE(c.limits[0].per_group);
  EXPECT_EQ(c.limits[1].job_type, "sync");
  EXPECT_FALSE(c.limits[1].rate_limit);
  EXPECT_TRUE(c.limits[1].per_group);
  // The effective configuration reads back.
  CliConfig back = parse_cli_config(cli_config_to_json(c));
  ASSERT_EQ(back.limits.size(), 2u);
  EXPECT_EQ(back.limits[0].rate_period, 1s);
  EXPECT_EQ(back.limits[1].max_running, 1);
}

TEST(CliConfigTest, RejectsBadLimitsWithTheKeyInTheMessage) {
  std::pair<std::string, const char*> cases[] = {
      {R"({"Limits": []})", "Limits: must be an object keyed by job type"},
      {R"({"Limits": {"api": 2}})", "Limits.api: must be a JSON object"},
      {R"({"Limits": {"api": {"Max": 2}}})", "Limits.api.Max: unknown key"},
      {R"({"Limits": {"api": {"MaxRunning": -1}}})", "Limits.api.MaxRunning: must be between"},
      {R"({"Limits": {"api": {"RateLimit": 5}}})", "Limits.api: RateLimit needs a RatePeriod"},
      {R"({"Limits": {"api": {"RatePeriod": "00:00:01"}}})", "RatePeriod needs a RateLimit"},
      {R"({"Limits": {"api": {"RateLimit": 5, "RatePeriod": "soon"}}})", "Limits.api.RatePeriod:"},
      {R"({"Limits": {"api": {"RateLimit": 5, "RatePeriod": "00:00:00"}}})",
       "Limits.api: a rate limit's period must be 1 ms to 31 days"},
      {R"({"Limits": {"api": {}}})", "Limits.api: a limit needs a concurrency limit"},
      {R"({"Limits": {"": {"MaxRunning": 1}}})", "job type must be 1 to 200 bytes"},
      {R"({"Limits": {"api": {"MaxRunning": 1, "PerGroup": "yes"}}})",
       "Limits.api.PerGroup: expected true or false"},
  };
  for (const auto& [json, expect] : cases) {
    try {
      parse_cli_config(json);
      ADD_FAILURE() << "accepted: " << json;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig);
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos)
          << expect << " | " << e.what();
    }
  }
}

TEST(CliConfigTest, ReadsLoggingAndDashboardWithTheLibrarysSections) {
  CliConfig c = parse_cli_config(R"({"JobsWorker": {"PrefetchJobs": 200},
      "Logging": {"Format": "JSON", "Level": "warning"},
      "Dashboard": {"Listen": "0.0.0.0:9090", "Token": "t0ken", "ReadOnly": true}})");
  EXPECT_EQ(c.worker.prefetch_jobs, 200);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.logging.level, "warning");
  ASSERT_TRUE(c.dashboard);
  EXPECT_EQ(c.dashboard->listen, "0.0.0.0:9090");
  EXPECT_EQ(c.dashboard->token, "t0ken");
  EXPECT_TRUE(c.dashboard->read_only);
  std::string text = cli_config_to_json(c);
  EXPECT_EQ(text.find("t0ken"), std::string::npos) << text;  // the token is a secret
  CliConfig back = parse_cli_config(text);
  EXPECT_EQ(back.worker.prefetch_jobs, 200);
  EXPECT_EQ(back.logging.format, LogFormat::kJson);

  CliConfig d = parse_cli_config("{}");
  EXPECT_EQ(d.worker.prefetch_jobs, 0);
  EXPECT_EQ(d.logging.format, LogFormat::kText);
  EXPECT_EQ(d.logging.level, "info");
  EXPECT_FALSE(d.dashboard);

  CliConfig e = parse_cli_config("{}", {{"Logging__Format", "json"},
                                        {"Dashboard__Listen", "127.0.0.1:1"},
                                        {"JobsWorker__PrefetchJobs", "5"}});
  EXPECT_EQ(e.logging.format, LogFormat::kJson);
  ASSERT_TRUE(e.dashboard);
  EXPECT_EQ(e.dashboard->listen, "127.0.0.1:1");
  EXPECT_EQ(e.worker.prefetch_jobs, 5);

  EXPECT_NE(error_of(R"({"JobsWorker": {"PrefetchJobs": -1}})").find("JobsWorker.PrefetchJobs"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"Logging": {"Format": "xml"}})").find("Logging.Format"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"Logging": {"Level": "loud"}})").find("Logging.Level"), std::string::npos);
  EXPECT_NE(error_of(R"({"Logging": {"Colour": true}})").find("Colour"), std::string::npos);
  EXPECT_NE(error_of(R"({"Dashboard": {"ReadOnly": "yes"}})").find("Dashboard.ReadOnly"),
            std::string::npos);
  EXPECT_NE(error_of("{}", {{"Logging__Format__X", "json"}}).find("Logging__Format__X"),
            std::string::npos);
}

// The library's sections and the CLI's are one file: one report, in the order they are read.
TEST(CliConfigTest, ReportsEveryErrorOfEverySectionAtOnce) {
  std::string what = error_of(R"({"Extra": 1, "JobsWorker": {"MaxConcurrentJobs": "8"},
                                  "Logging": {"Format": "xml"}, "Handlers": {"x": {}}})");
  std::size_t at = 0;
  for (const char* expect :
       {"4 errors", "Extra: unknown key 'Extra'",
        "JobsWorker.MaxConcurrentJobs: expected an integer",
        "Logging.Format: expected \"text\" or \"json\"", "Handlers.x: missing \"command\""}) {
    auto found = what.find(expect, at);
    EXPECT_NE(found, std::string::npos) << expect << " | " << what;
    if (found != std::string::npos) at = found;
  }
}

// Environment overrides of the CLI's sections and the library's apply in one pass.
TEST(CliConfigEnvTest, OverridesApplyToEverySection) {
  CliConfig c = parse_cli_config(
      R"({"JobsWorker": {"MaxConcurrentJobs": 2},
          "Handlers": {"resize": {"command": "./resize.sh"}}})",
      {{"jobsworker__maxconcurrentjobs", "7"},
       {"Handlers__resize__timeout", "00:00:30"},
       {"Handlers__resize__env__LANG", "C"},
       {"logging__level", "debug"}});
  EXPECT_EQ(c.worker.max_concurrent_jobs, 7);
  EXPECT_EQ(c.handlers.at("resize").timeout, std::chrono::duration_cast<Duration>(30s));
  EXPECT_EQ(c.handlers.at("resize").env.at("LANG"), "C");
  EXPECT_EQ(c.logging.level, "debug");
}

TEST(CliConfigEnvTest, ABadOverrideNamesTheVariable) {
  std::pair<ConfigEnvironment, const char*> cases[] = {
      {{{"Handlers__x__retries", "1"}},
       "Handlers__x__retries: unknown key 'retries' in Handlers.x"},
      {{{"Handlers__x", "1"}}, "Handlers__x: expected Handlers__TYPE__key"},
      {{{"Handlers__x__maxAttempts", "two"}}, "Handlers__x__maxAttempts=two: expected an integer"},
      {{{"Dashboard__ReadOnly", "yes"}}, "Dashboard__ReadOnly=yes: expected true or false"},
      {{{"Dashboard__Listen__X", "a"}}, "Dashboard__Listen__X: expected Dashboard__Key"},
      {{{"Logging__Colour", "red"}}, "Logging__Colour: unknown key 'Colour' in Logging"},
      {{{"Limits__api__MaxRunning", "1"}}, "Limits__api__MaxRunning: unknown section 'Limits'"},
      {{{"Worker__X", "1"}},
       "Worker__X: unknown section 'Worker' (known: JobsWorker, Messaging, Handlers, Logging, "
       "Dashboard)"},
      {{{"Logging__Level", "loud"}},
       "Logging.Level: expected trace, debug, info, warning, error, critical or off, got \"loud\" "
       "(set by environment variable Logging__Level)"},
  };
  for (const auto& [env, expect] : cases) {
    EXPECT_NE(error_of("{}", env).find(expect), std::string::npos)
        << expect << " | " << error_of("{}", env);
  }
}

TEST(CliConfigEnvTest, TheProcessEnvironmentIsReadByPrefix) {
  const std::map<std::string, std::string> vars = {{"Dashboard__Listen", "127.0.0.1:1"},
                                                   {"Handlers__x__timeout", "00:00:01"},
                                                   {"JobsWorker__DefaultMaxAttempts", "4"},
                                                   {"Limits__x__MaxRunning", "1"},
                                                   {"Logging__Level", "debug"},
                                                   {"ERGON_UNRELATED__X", "1"}};
  for (const auto& [name, value] : vars) ::setenv(name.c_str(), value.c_str(), 1);
  auto env = cli_config_environment();
  for (const auto& [name, value] : vars) ::unsetenv(name.c_str());
  EXPECT_EQ(env, (ConfigEnvironment{{"Dashboard__Listen", "127.0.0.1:1"},
                                    {"Handlers__x__timeout", "00:00:01"},
                                    {"JobsWorker__DefaultMaxAttempts", "4"},
                                    {"Logging__Level", "debug"}}));
}

TEST(CliConfigTest, TheEffectiveConfigurationReadsBackAndHidesSecrets) {
  CliConfig c = parse_cli_config(R"({"Database": "postgresql://app:s3cret@db/jobs",
      "JobsWorker": {"MaxConcurrentJobs": 3},
      "Handlers": {"h": {"command": ["a", "b"], "maxAttempts": 2}}})");
  std::string text = cli_config_to_json(c);
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  CliConfig back = parse_cli_config(text);
  EXPECT_EQ(back.database, "postgresql://app:***@db/jobs");
  EXPECT_EQ(back.worker.max_concurrent_jobs, 3);
  EXPECT_EQ(back.handlers.at("h").command, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(back.handlers.at("h").max_attempts, 2);
}

TEST(CliConfigTest, MissingFileIsAClearError) {
  try {
    load_cli_config_file("/nonexistent/ergon.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ergon.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace ergon::commands
