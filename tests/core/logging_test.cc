// Log lines about jobs: the text form names the job, the JSON form is one valid JSON object
// per line with the job's fields of their own, whatever the message contains.
#include "ergon/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/log.h"
#include "ergon/error.h"

namespace ergon::testing {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  LoggingTest() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("ergon", sink));
  }
  ~LoggingTest() override { spdlog::set_default_logger(previous_); }

  std::vector<std::string> lines() {
    std::vector<std::string> v;
    std::string line;
    std::istringstream in(out_.str());
    while (std::getline(in, line)) v.push_back(line);
    return v;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(LoggingTest, JsonLinesCarryTheJobsFieldsAndSurviveAnyMessage) {
  configure_logging({LogFormat::kJson, "debug"});
  JobId id = JobId::generate(TimePoint{} + std::chrono::hours(500000));
  log::job(spdlog::level::warn, id, "send_email", 3, "handler said {}", "\"quoted\"\n\t\\ \x01");
  spdlog::info("a line about no job");
  log::job(spdlog::level::trace, id, "send_email", 3, "below the level: not written");
  auto v = lines();
  ASSERT_EQ(v.size(), 2u);
  auto first = nlohmann::json::parse(v[0]);
  EXPECT_EQ(first["level"], "warning");
  EXPECT_EQ(first["logger"], "ergon");
  EXPECT_EQ(first["job_id"], id.to_string());
  EXPECT_EQ(first["job_type"], "send_email");
  EXPECT_EQ(first["attempt"], 3);
  EXPECT_EQ(first["msg"], "job " + id.to_string() +
                              " (send_email, attempt 3): handler said \"quoted\"\n\t\\ \x01");
  EXPECT_TRUE(first["time"].get<std::string>().ends_with("Z"));
  auto second = nlohmann::json::parse(v[1]);
  EXPECT_EQ(second["msg"], "a line about no job");
  EXPECT_FALSE(second.contains("job_id"));  // the fields belong to job lines only
}

TEST_F(LoggingTest, TextLinesNameTheJob) {
  configure_logging({LogFormat::kText, "info"});
  JobId id = JobId::generate(TimePoint{} + std::chrono::hours(500000));
  log::job(spdlog::level::info, id, "report", 1, "done in {} ms", 12);
  auto v = lines();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("job " + id.to_string() + " (report, attempt 1): done in 12 ms"),
            std::string::npos);
}

// A message from a handler or a command may hold terminal escapes and line breaks: the text
// form writes them as escapes, one record per line.
TEST_F(LoggingTest, TextLinesEscapeControlCharacters) {
  configure_logging({LogFormat::kText, "info"});
  JobId id = JobId::generate(TimePoint{} + std::chrono::hours(500000));
  log::job(spdlog::level::warn, id, "report", 2, "failed: {}", "\x1b[2J\x07two\nlines\ttab\x7f");
  auto v = lines();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("failed: \\x1b[2J\\x07two\\nlines\ttab\\x7f"), std::string::npos) << v[0];
  EXPECT_EQ(v[0].find('\x1b'), std::string::npos);
}

TEST_F(LoggingTest, BadLevelsAndFormatsAreRefused) {
  EXPECT_THROW(configure_logging({LogFormat::kText, "loud"}), Error);
  EXPECT_TRUE(is_log_level("WARN"));
  EXPECT_TRUE(is_log_level("off"));
  EXPECT_FALSE(is_log_level(""));
  EXPECT_EQ(parse_log_format("JSON"), LogFormat::kJson);
  EXPECT_EQ(parse_log_format("text"), LogFormat::kText);
  EXPECT_FALSE(parse_log_format("xml"));
}

}  // namespace
}  // namespace ergon::testing
