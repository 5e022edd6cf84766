// Configuration input at its edges: durations up to .NET's TimeSpan.MaxValue, the keys where
// that means "never", heartbeats derived from a threshold, and files that are not files
// (directories, devices, binary content, trailing bytes).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ergon/config.h"
#include "ergon/error.h"
#include "ergon/time_range.h"
#include "support/test_support.h"

namespace ergon {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

std::string error_of(std::string_view json) {
  try {
    parse_config(json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigInput, ForeverInTheKeysWhereItMeansNever) {
  // What .NET users write for "forever", and a span that reaches past 2262 from now.
  for (const char* forever : {"10675199.02:48:05.4775807", "200000.00:00:00"}) {
    std::string json = std::string(R"({"JobsWorker": {"CompletedJobsRetention": ")") + forever +
                       R"(", "FailedJobsRetention": ")" + forever +
                       R"(", "OrphanedJobThreshold": ")" + forever + R"("}})";
    Config c = parse_config(json);
    EXPECT_EQ(c.worker.completed_jobs_retention, parse_timespan(forever));
    EXPECT_EQ(c.worker.orphaned_job_threshold, parse_timespan(forever));
    EXPECT_NO_THROW(check_durations(c.worker));
  }
  EXPECT_NE(error_of(R"({"JobsWorker": {"FailedJobsRetention": "10675199.02:48:05.4775808"}})")
                .find("JobsWorker.FailedJobsRetention: '10675199.02:48:05.4775808' is longer "
                      "than the longest duration"),
            std::string::npos);
}

TEST(ConfigInput, OnlyAThresholdBelowTheDefaultHeartbeatDerivesTheHeartbeat) {
  Config c = parse_config(R"({"JobsWorker": {"OrphanedJobThreshold": "00:00:03"}})");
  EXPECT_EQ(c.worker.orphaned_job_threshold, 3s);
  EXPECT_EQ(c.worker.heartbeat_interval, 1s);
  // A long threshold keeps the default heartbeat.
  c = parse_config(R"({"JobsWorker": {"OrphanedJobThreshold": "00:02:00"}})");
  EXPECT_EQ(c.worker.heartbeat_interval, 5s);
  // Both set: they are checked against each other, and the message names the key that was set.
  EXPECT_NE(error_of(R"({"JobsWorker": {"OrphanedJobThreshold": "00:00:03",
                                         "HeartbeatInterval": "00:00:05"}})")
                .find("HeartbeatInterval: must be shorter than OrphanedJobThreshold"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"JobsWorker": {"OrphanedJobThreshold": "00:00:00.000002"}})")
                .find("JobsWorker.OrphanedJobThreshold"),
            std::string::npos);
}

TEST(ConfigInput, ANulByteOrBytesAfterTheDocumentAreRefused) {
  using namespace std::string_literals;
  std::string with_nul = R"({"JobsWorker": {}})"s + '\0' + R"(garbage)";
  EXPECT_NE(error_of(with_nul).find("NUL byte"), std::string::npos) << error_of(with_nul);
  EXPECT_NE(error_of(R"({"JobsWorker": {}} {"x": 1})"), "");
  EXPECT_NE(error_of(R"({"JobsWorker": {}}])"), "");
}

std::string load_error(const std::string& path) {
  try {
    load_config_file(path, {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigInput, FilesThatAreNotConfigurationFilesAreRefusedClearly) {
  TempDir dir;
  EXPECT_NE(load_error(dir.path().string()).find("is a directory"), std::string::npos);
  // A device that never ends: the read stops at the limit.
  EXPECT_NE(load_error("/dev/zero").find("larger than 1048576 bytes"), std::string::npos);
  auto big = dir.path() / "big.json";
  {
    std::ofstream out(big);
    out << R"({"Database": ")" << std::string(1024 * 1024, 'x') << R"("})";
  }
  EXPECT_NE(load_error(big.string()).find("larger than"), std::string::npos);
  auto nul = dir.path() / "nul.json";
  {
    std::ofstream out(nul, std::ios::binary);
    out << R"({"JobsWorker": {}})" << '\0' << R"({"JobsWorker": {"PollingInterval": 5}})";
  }
  EXPECT_NE(load_error(nul.string()).find("NUL byte"), std::string::npos);
  auto ok = dir.path() / "ok.json";
  {
    std::ofstream out(ok);
    out << R"({"JobsWorker": {"PollingInterval": "00:00:02"}})";
  }
  EXPECT_EQ(load_config_file(ok.string(), {}).worker.polling_interval, 2s);
}

}  // namespace
}  // namespace ergon
