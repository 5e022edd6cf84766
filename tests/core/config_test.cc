#include "ergon/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>

#include "ergon/error.h"

namespace ergon {
namespace {

using namespace std::chrono_literals;

TEST(TimespanTest, ParsesDotNetTimeSpanStrings) {
  EXPECT_EQ(parse_timespan("00:01:00"), 1min);
  EXPECT_EQ(parse_timespan("00:30:00"), 30min);
  EXPECT_EQ(parse_timespan("1.02:03:04"), 26h + 3min + 4s);
  EXPECT_EQ(parse_timespan("00:00:00.250"), 250ms);
  EXPECT_EQ(parse_timespan("00:00:01.5"), 1500ms);
  EXPECT_EQ(parse_timespan("0:0:5"), 5s);
}

TEST(TimespanTest, RejectsMalformedDurations) {
  for (const char* bad : {"", "5", "5s", "00:60:00", "24:00:00", "-00:00:01", "00:00", "00:00:00.",
                          "00:00:00.12345678", "aa:bb:cc", "00:00:01 "}) {
    EXPECT_THROW(parse_timespan(bad), Error) << bad;
  }
}

TEST(TimespanTest, FormatsForMessages) {
  EXPECT_EQ(format_timespan(90s), "00:01:30");
  EXPECT_EQ(format_timespan(250ms), "00:00:00.25");
  EXPECT_EQ(format_timespan(26h), "1.02:00:00");
}

TEST(ConfigTest, ReadsTheOriginalJobsWorkerSection) {
  Config c = parse_config(R"({
    "Database": "sqlite:jobs.db",
    "JobsWorker": {
      "ScheduledJobsCheckInterval": "00:01:00",
      "OrphanedJobsCheckInterval": "00:05:00",
      "OrphanedJobThreshold": "00:30:00",
      "MaxConcurrentJobs": 3,
      "DefaultMaxAttempts": 4
    }
  })");
  EXPECT_EQ(c.database, "sqlite:jobs.db");
  EXPECT_EQ(c.worker.scheduled_jobs_check_interval, 1min);
  EXPECT_EQ(c.worker.orphaned_jobs_check_interval, 5min);
  EXPECT_EQ(c.worker.orphaned_job_threshold, 30min);
  EXPECT_EQ(c.worker.max_concurrent_jobs, 3);
  EXPECT_EQ(c.worker.default_max_attempts, 4);
}

TEST(ConfigTest, DefaultsMatchTheOriginal) {
  Config c = parse_config("{}");
  EXPECT_EQ(c.worker.scheduled_jobs_check_interval, 1min);
  EXPECT_EQ(c.worker.orphaned_jobs_check_interval, 5min);
  EXPECT_EQ(c.worker.orphaned_job_threshold, 30min);
  EXPECT_EQ(c.worker.default_max_attempts, 10);
}

// Each bad configuration names what is wrong.
TEST(ConfigTest, RejectsBadInputWithTheKeyInTheMessage) {
  struct Case {
    const char* json;
    const char* expect;
  } cases[] = {
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"JobWorker": {}})", "unknown key 'JobWorker'"},
      {R"({"JobsWorker": {"MaxConcurrentJob": 3}})", "unknown key 'MaxConcurrentJob'"},
      {R"({"JobsWorker": {"OrphanedJobThreshold": 30}})", "JobsWorker.OrphanedJobThreshold"},
      {R"({"JobsWorker": {"OrphanedJobThreshold": "30m"}})", "not a duration"},
      {R"({"JobsWorker": {"MaxConcurrentJobs": -1}})", "JobsWorker.MaxConcurrentJobs"},
      {R"({"JobsWorker": {"PollingInterval": "00:00:00"}})", "greater than zero"},
      // The CLI's sections are not the library's (tests/commands/cli_config_test.cc).
      {R"({"Handlers": {"x": {"command": "a"}}})", "unknown key 'Handlers'"},
      {R"({"Logging": {}})", "unknown key 'Logging'"},
      {R"({"Messaging": {}})", "Messaging.ConnectionString: is required"},
      {R"({"Messaging": {"Transport": "Kafka", "ConnectionString": "x"}})",
       "Messaging.Transport: unknown transport 'Kafka'"},
      {R"({"Messaging": {"ConnectionString": "x", "Queue": "q"}})", "unknown key 'Queue'"},
      {R"({"Messaging": {"ConnectionString": "x", "VisibilityTimeout": "00:00:00.500"}})",
       "Messaging.VisibilityTimeout"},
      {R"({"Messaging": {"ConnectionString": "x", "MaxDeliveries": 0}})",
       "Messaging.MaxDeliveries"},
  };
  for (const auto& c : cases) {
    try {
      parse_config(c.json);
      ADD_FAILURE() << "accepted: " << c.json;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig);
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.json << " -> " << e.what();
    }
  }
}

TEST(ConfigTest, ReadsTheQueuesAWorkerServes) {
  Config c = parse_config(R"({"JobsWorker": {"Queues": ["mail", "reports"]}})");
  EXPECT_EQ(c.worker.queues, (std::vector<std::string>{"mail", "reports"}));
  EXPECT_TRUE(parse_config("{}").worker.queues.empty());
  for (const char* bad :
       {R"({"JobsWorker": {"Queues": "mail"}})", R"({"JobsWorker": {"Queues": [""]}})",
        R"({"JobsWorker": {"Queues": [1]}})"}) {
    try {
      parse_config(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("JobsWorker.Queues"), std::string::npos) << e.what();
    }
  }
}

TEST(ConfigTest, ReadsQueueLimits) {
  Config c = parse_config(R"({"JobsWorker": {"Queues": ["mail", "reports", "default"],
                                              "QueueLimits": {"mail": 2, "reports": 0}}})");
  EXPECT_EQ(c.worker.queue_limits, (std::map<std::string, int>{{"mail", 2}, {"reports", 0}}));
  EXPECT_TRUE(parse_config("{}").worker.queue_limits.empty());
  // The effective configuration reads back.
  EXPECT_EQ(parse_config(config_to_json(c)).worker.queue_limits, c.worker.queue_limits);
  // JobsWorker__QueueLimits__QUEUE overrides one queue's limit, or adds one.
  Config e = parse_config(
      R"({"JobsWorker": {"Queues": ["mail", "reports"],
                                              "QueueLimits": {"mail": 2}}})",
      {{"JobsWorker__QueueLimits__mail", "3"}, {"jobsworker__queuelimits__reports", "1"}});
  EXPECT_EQ(e.worker.queue_limits, (std::map<std::string, int>{{"mail", 3}, {"reports", 1}}));
}

TEST(ConfigTest, RejectsBadQueueLimitsWithTheKeyInTheMessage) {
  struct Case {
    std::string json;
    ConfigEnvironment env;
    const char* expect;
  } cases[] = {
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": ["mail"]}})",
       {},
       "JobsWorker.QueueLimits: expected an object of queue names and limits"},
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": {"mail": -1}}})",
       {},
       "JobsWorker.QueueLimits.mail: must be between 0 and 100000"},
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": {"mail": 100001}}})",
       {},
       "JobsWorker.QueueLimits.mail: must be between 0 and 100000"},
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": {"mail": "2"}}})",
       {},
       "JobsWorker.QueueLimits.mail: expected an integer"},
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": {"": 2}}})",
       {},
       "JobsWorker.QueueLimits: each queue name must be 1 to 100 bytes"},
      {R"({"JobsWorker": {"Queues": ["mail"], "QueueLimits": {")" + std::string(101, 'q') +
           R"(": 1}}})",
       {},
       "JobsWorker.QueueLimits: each queue name must be 1 to 100 bytes"},
      {R"({"JobsWorker": {"QueueLimits": {"mail": 2}}})",
       {},
       "JobsWorker.QueueLimits: needs JobsWorker.Queues"},
      {R"({"JobsWorker": {"Queues": ["bills"], "QueueLimits": {"mail": 2}}})",
       {},
       "JobsWorker.QueueLimits.mail: queue 'mail' is not in JobsWorker.Queues"},
      {R"({"JobsWorker": {"Queues": ["mail"]}})",
       {{"JobsWorker__QueueLimits__mail", "lots"}},
       "JobsWorker__QueueLimits__mail=lots: expected an integer"},
      {R"({"JobsWorker": {"Queues": ["mail"]}})",
       {{"JobsWorker__QueueLimits__mail", "-1"}},
       "JobsWorker.QueueLimits.mail: must be between 0 and 100000 (set by environment variable "
       "JobsWorker__QueueLimits__mail)"},
      {R"({"JobsWorker": {"Queues": ["mail"]}})",
       {{"JobsWorker__QueueLimits", "2"}},
       "JobsWorker__QueueLimits: expected JobsWorker__QueueLimits__QUEUE"},
  };
  for (const auto& c : cases) {
    try {
      parse_config(c.json, c.env);
      ADD_FAILURE() << "accepted: " << c.json;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig);
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.expect << " | " << e.what();
    }
  }
}

TEST(ConfigTest, ReadsTheMessagingSection) {
  Config c = parse_config(R"({"Messaging": {"ConnectionString": "UseDevelopmentStorage=true",
      "QueueName": "jobs", "Relay": false, "VisibilityTimeout": "00:01:00", "MaxDeliveries": 3}})");
  ASSERT_TRUE(c.worker.messaging);
  EXPECT_EQ(c.worker.messaging->transport, "AzureStorageQueues");
  EXPECT_EQ(c.worker.messaging->connection_string, "UseDevelopmentStorage=true");
  EXPECT_EQ(c.worker.messaging->queue_name, "jobs");
  EXPECT_FALSE(c.worker.messaging->relay);
  EXPECT_TRUE(c.worker.messaging->consume);
  EXPECT_EQ(c.worker.messaging->visibility_timeout, 1min);
  EXPECT_EQ(c.worker.messaging->max_deliveries, 3);
  EXPECT_FALSE(parse_config("{}").worker.messaging);
}

TEST(ConfigTest, MissingFileIsAClearError) {
  try {
    load_config_file("/nonexistent/ergon.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ergon.json"), std::string::npos);
  }
}

// Environment overrides, named as .NET names them, apply after the file with each key's type.
TEST(ConfigEnvTest, OverridesApplyAfterTheFileWithTheKeysOwnType) {
  Config c = parse_config(
      R"({"JobsWorker": {"OrphanedJobThreshold": "00:10:00", "MaxConcurrentJobs": 2},
          "Messaging": {"ConnectionString": "UseDevelopmentStorage=true"}})",
      {{"JobsWorker__OrphanedJobThreshold", "00:02:00"},
       {"jobsworker__maxconcurrentjobs", "7"},  // any case, as .NET
       {"JobsWorker__RunScheduler", "False"},
       {"JobsWorker__Queues", "mail, reports"},
       {"JobsWorker__Messaging__MaxDeliveries", "3"}});
  EXPECT_EQ(c.worker.orphaned_job_threshold, 2min);
  EXPECT_EQ(c.worker.max_concurrent_jobs, 7);
  EXPECT_FALSE(c.worker.run_scheduler);
  EXPECT_EQ(c.worker.queues, (std::vector<std::string>{"mail", "reports"}));
  ASSERT_TRUE(c.worker.messaging);
  EXPECT_EQ(c.worker.messaging->max_deliveries, 3);
  // Overrides alone can configure a section the file does not have.
  Config m = parse_config("{}", {{"Messaging__ConnectionString", "UseDevelopmentStorage=true"}});
  ASSERT_TRUE(m.worker.messaging);
}

TEST(ConfigEnvTest, ABadOverrideNamesTheVariable) {
  struct Case {
    ConfigEnvironment env;
    const char* expect;
  } cases[] = {
      {{{"JobsWorker__MaxConcurrentJobs", "many"}},
       "JobsWorker__MaxConcurrentJobs=many: expected an integer"},
      {{{"JobsWorker__OrphanedJobThreshold", "2m"}},
       "JobsWorker__OrphanedJobThreshold=2m: '2m' is not a duration"},
      {{{"JobsWorker__RunScheduler", "yes"}}, "JobsWorker__RunScheduler=yes: expected true"},
      {{{"JobsWorker__PollingIntervall", "00:00:01"}},
       "JobsWorker__PollingIntervall: unknown key 'PollingIntervall' in JobsWorker"},
      {{{"JobsWorker__Messaging__Queue", "q"}}, "JobsWorker__Messaging__Queue: unknown key"},
      {{{"JobsWorker__Messaging", "x"}}, "JobsWorker__Messaging: expected"},
      {{{"Worker__X", "1"}}, "Worker__X: unknown section 'Worker' (known: JobsWorker, Messaging)"},
      {{{"Handlers__x__timeout", "00:00:01"}}, "Handlers__x__timeout: unknown section 'Handlers'"},
      {{{"JobsWorker__MaxConcurrentJobs", "-1"}},
       "JobsWorker.MaxConcurrentJobs: must be between 0 and 10000 (set by environment variable "
       "JobsWorker__MaxConcurrentJobs)"},
  };
  for (const auto& c : cases) {
    try {
      parse_config("{}", c.env);
      ADD_FAILURE() << "accepted: " << c.env[0].first;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig);
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.expect << " | " << e.what();
    }
  }
}

TEST(ConfigEnvTest, TheProcessEnvironmentIsReadByPrefix) {
  ::setenv("JobsWorker__DefaultMaxAttempts", "4", 1);
  ::setenv("ERGON_UNRELATED__X", "1", 1);
  ::setenv("Handlers__x__timeout", "00:00:01", 1);  // the CLI's section, not the library's
  auto env = config_environment();
  ::unsetenv("JobsWorker__DefaultMaxAttempts");
  ::unsetenv("ERGON_UNRELATED__X");
  ::unsetenv("Handlers__x__timeout");
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0], (std::pair<std::string, std::string>{"JobsWorker__DefaultMaxAttempts", "4"}));
}

// Every error of a file is reported at once, each with its key's path.
TEST(ConfigTest, ReportsEveryErrorWithItsPath) {
  try {
    parse_config(R"({"Database": 5, "Extra": 1,
                     "JobsWorker": {"MaxConcurrentJobs": "8", "PollingInterval": 1,
                                    "Messaging": {"ConnectionString": "x", "MaxDeliveries": "3"}}})");
    ADD_FAILURE();
  } catch (const Error& e) {
    std::string what = e.what();
    for (const char* expect :
         {"5 errors", "Database: expected a string", "Extra: unknown key 'Extra'",
          "JobsWorker.MaxConcurrentJobs: expected an integer",
          "JobsWorker.PollingInterval: expected a TimeSpan string",
          "JobsWorker.Messaging.MaxDeliveries: expected an integer"}) {
      EXPECT_NE(what.find(expect), std::string::npos) << expect << " | " << what;
    }
  }
  EXPECT_THROW(parse_config(R"({"Messaging": {"ConnectionString": "x"},
                                "JobsWorker": {"Messaging": {"ConnectionString": "y"}}})"),
               Error);
}

TEST(ConfigTest, TheEffectiveConfigurationReadsBackAndHidesSecrets) {
  Config c = parse_config(R"({"Database": "postgresql://app:s3cret@db/jobs",
      "JobsWorker": {"MaxConcurrentJobs": 3, "Queues": ["a"]},
      "Messaging": {"ConnectionString": "AccountName=x;AccountKey=k3y;QueueEndpoint=http://q"}})");
  std::string text = config_to_json(c);
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_EQ(text.find("k3y"), std::string::npos) << text;
  Config back = parse_config(text);
  EXPECT_EQ(back.database, "postgresql://app:***@db/jobs");
  EXPECT_EQ(back.worker.max_concurrent_jobs, 3);
  EXPECT_EQ(back.worker.queues, std::vector<std::string>{"a"});
  EXPECT_EQ(back.worker.orphaned_job_threshold, c.worker.orphaned_job_threshold);
  EXPECT_EQ(back.worker.messaging->connection_string,
            "AccountName=x;AccountKey=***;QueueEndpoint=http://q");
}

TEST(ConfigTest, ReadsPrefetchJobs) {
  Config c = parse_config(R"({"JobsWorker": {"PrefetchJobs": 200}})");
  EXPECT_EQ(c.worker.prefetch_jobs, 200);
  EXPECT_EQ(parse_config(config_to_json(c)).worker.prefetch_jobs, 200);
  EXPECT_EQ(parse_config("{}").worker.prefetch_jobs, 0);
  EXPECT_EQ(parse_config("{}", {{"JobsWorker__PrefetchJobs", "5"}}).worker.prefetch_jobs, 5);
  try {
    parse_config(R"({"JobsWorker": {"PrefetchJobs": -1}})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("JobsWorker.PrefetchJobs"), std::string::npos);
  }
}

}  // namespace
}  // namespace ergon
