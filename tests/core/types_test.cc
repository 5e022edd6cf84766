#include "ergon/types.h"

#include <gtest/gtest.h>

#include <set>

#include "ergon/options.h"
#include "support/test_support.h"

namespace ergon {
namespace {

TEST(JobIdTest, GeneratesVersion7WithRfcVariant) {
  JobId id = JobId::generate(testing::test_epoch());
  EXPECT_EQ(id.bytes()[6] >> 4, 7);
  EXPECT_EQ(id.bytes()[8] >> 6, 2);
  EXPECT_FALSE(id.is_nil());
}

TEST(JobIdTest, EmbedsTheMillisecondTimestamp) {
  TimePoint t = testing::test_epoch();
  JobId id = JobId::generate(t);
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | id.bytes()[i];
  EXPECT_EQ(
      ms, static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()));
}

TEST(JobIdTest, IdsOfOneProcessAreStrictlyIncreasingEvenWithinAMillisecond) {
  TimePoint t = testing::test_epoch() + std::chrono::hours(1);
  JobId prev = JobId::generate(t);
  for (int i = 0; i < 10000; ++i) {
    JobId next = JobId::generate(t);  // same instant every time
    ASSERT_LT(prev, next) << i;
    prev = next;
  }
}

TEST(JobIdTest, ParsesWhatItPrints) {
  JobId id = JobId::generate(testing::test_epoch());
  auto text = id.to_string();
  ASSERT_EQ(text.size(), 36u);
  auto parsed = JobId::parse(text);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id);
  std::string upper = text;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(JobId::parse(upper), id);
}

TEST(JobIdTest, RejectsMalformedText) {
  for (const char* bad :
       {"", "nope", "01a223a3-f984-716a-98ba-0e08a36a78e", "01a223a3-f984-716a-98ba-0e08a36a78edd",
        "01a223a3f984-716a-98ba-0e08a36a78ed0", "01a223a3-f984-716a-98ba-0e08a36a78eg",
        "01a223a3-f984-716a-98ba_0e08a36a78ed"}) {
    EXPECT_FALSE(JobId::parse(bad)) << bad;
  }
}

TEST(JobStatusTest, RoundTripsTheStoredSpelling) {
  for (auto s : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kCompleted,
                 JobStatus::kFailed, JobStatus::kCancelled}) {
    EXPECT_EQ(parse_job_status(to_string(s)), s);
  }
  EXPECT_EQ(parse_job_status("failed"), JobStatus::kFailed);
  EXPECT_FALSE(parse_job_status("Done"));
  EXPECT_TRUE(is_final(JobStatus::kCancelled));
  EXPECT_FALSE(is_final(JobStatus::kRunning));
}

// Events print as words, each its own (on_event callbacks log and count by them).
TEST(JobEventTest, KindsHaveDistinctNames) {
  using Kind = JobEvent::Kind;
  std::set<std::string_view> names;
  for (auto k :
       {Kind::kStarted, Kind::kCompleted, Kind::kRetryScheduled, Kind::kFailed, Kind::kReleased,
        Kind::kFenced, Kind::kCancelled, Kind::kRescued, Kind::kSnoozed}) {
    EXPECT_NE(to_string(k), "unknown");
    names.insert(to_string(k));
  }
  EXPECT_EQ(names.size(), 9u);
  EXPECT_EQ(to_string(Kind::kRetryScheduled), "retry_scheduled");
}

TEST(TimestampTest, FormatsUtcWithMicroseconds) {
  TimePoint t = testing::test_epoch() + std::chrono::microseconds(123456);
  EXPECT_EQ(format_timestamp(t), "2026-03-01T12:00:00.123456Z");
  EXPECT_EQ(parse_timestamp(format_timestamp(t)), t);
}

TEST(TimestampTest, ParsesOffsetsFractionsAndDates) {
  TimePoint noon = testing::test_epoch();
  EXPECT_EQ(parse_timestamp("2026-03-01T12:00:00Z"), noon);
  EXPECT_EQ(parse_timestamp("2026-03-01T13:30:00+01:30"), noon);
  EXPECT_EQ(parse_timestamp("2026-03-01T07:00:00-0500"), noon);
  EXPECT_EQ(parse_timestamp("2026-03-01T12:00:00.5Z"), noon + std::chrono::milliseconds(500));
  EXPECT_EQ(parse_timestamp("2026-03-01"), noon - std::chrono::hours(12));
}

TEST(TimestampTest, RejectsMalformedInstants) {
  for (const char* bad : {"", "2026", "2026-02-30T00:00:00Z", "2026-03-01T24:00:00Z",
                          "2026-03-01T12:00:00", "2026-03-01T12:00:00+25:00",
                          "2026-03-01T12:00:00Zjunk", "2026-03-01T12:00:00.Z", "tomorrow"}) {
    EXPECT_FALSE(parse_timestamp(bad)) << bad;
  }
}

}  // namespace
}  // namespace ergon
