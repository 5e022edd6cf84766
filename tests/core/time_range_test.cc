// The time range and the saturating arithmetic (ergon/time_range.h), and the text forms of
// instants and durations at its edges.
#include "ergon/time_range.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "ergon/config.h"
#include "ergon/error.h"

namespace ergon {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

constexpr auto kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr auto kI64Min = std::numeric_limits<std::int64_t>::min();

TimePoint at(const char* text) { return *parse_timestamp(text); }

TEST(TimeRange, SumsAndDifferencesStopAtTheEndsInsteadOfWrapping) {
  const TimePoint now = at("2026-03-01T12:00:00Z");
  EXPECT_EQ(saturating_add(now, 1h), now + 1h);
  EXPECT_EQ(saturating_sub(now, 1h), now - 1h);
  EXPECT_EQ(saturating_add(now, -1h), now - 1h);
  EXPECT_EQ(saturating_sub(now, -1h), now + 1h);
  // 106751 days (292 years) passes 2262 going forward, not 1677 going back.
  const Duration d106751 = duration_cast<Duration>(days(106751));
  EXPECT_EQ(saturating_add(now, d106751), TimePoint::max());
  EXPECT_EQ(saturating_sub(now, d106751), now - d106751);
  for (Duration d : {Duration::max(), kMaxDuration, duration_cast<Duration>(days(200000))}) {
    EXPECT_EQ(saturating_add(now, d), TimePoint::max()) << d.count();
    EXPECT_EQ(saturating_sub(now, d), TimePoint::min()) << d.count();
    EXPECT_EQ(saturating_sub(now, -d), TimePoint::max()) << d.count();
    EXPECT_EQ(saturating_add(now, -d), TimePoint::min()) << d.count();
  }
  EXPECT_EQ(saturating_add(now, Duration::min()), TimePoint::min());
  EXPECT_EQ(saturating_sub(now, Duration::min()), TimePoint::max());
  EXPECT_EQ(saturating_add(TimePoint::max(), 1us), TimePoint::max());
  EXPECT_EQ(saturating_sub(TimePoint::min(), 1us), TimePoint::min());
  EXPECT_EQ(saturating_add(TimePoint::max(), -1us), TimePoint::max() - 1us);
  EXPECT_EQ(saturating_add(Duration::max(), 1us), Duration::max());
  EXPECT_EQ(saturating_add(Duration::min(), -1us), Duration::min());
  EXPECT_EQ(saturating_add(1us, 2us), 3us);
}

TEST(TimeRange, ElapsedHoldsTheDistanceOfTheRangesTwoEnds) {
  const TimePoint now = at("2026-03-01T12:00:00Z");
  EXPECT_EQ(elapsed(now, now + 90s), 90s);
  EXPECT_EQ(elapsed(now + 90s, now), -90s);
  // 2^64 ns, more than a TimePoint's own difference can hold.
  EXPECT_EQ(elapsed(TimePoint::min(), TimePoint::max()), Duration(18'446'744'073'709'551LL));
  EXPECT_EQ(elapsed(TimePoint::max(), TimePoint::min()), Duration(-18'446'744'073'709'551LL));
}

TEST(TimeRange, WideInstantsCoverCronosYearsAndClampIntoTimePoint) {
  auto year1 = parse_wide_timestamp("0001-01-01T00:00:00Z");
  ASSERT_TRUE(year1);
  EXPECT_EQ(*year1, kCronEarliest);
  auto last = parse_wide_timestamp("9999-12-31T23:59:59.9999999Z");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, kCronLatest);
  EXPECT_FALSE(to_time_point(*year1));
  EXPECT_EQ(clamp_time(*year1), TimePoint::min());
  EXPECT_EQ(clamp_time(*last), TimePoint::max());
  EXPECT_EQ(clamp_time(*parse_wide_timestamp("2300-01-01T00:00:00Z")), TimePoint::max());
  // Ticks: seven digits are kept, a finer fraction rounds up to the next tick.
  auto t = parse_wide_timestamp("2016-03-18T12:00:00.0000001Z");
  EXPECT_EQ(*t - *parse_wide_timestamp("2016-03-18T12:00:00Z"), Ticks(1));
  auto finer = parse_wide_timestamp("2016-03-18T12:00:00.00000001Z");
  EXPECT_EQ(*finer - *parse_wide_timestamp("2016-03-18T12:00:00Z"), Ticks(1));
  EXPECT_EQ(format_wide_timestamp(*year1), "0001-01-01T00:00:00Z");
  EXPECT_EQ(format_wide_timestamp(*last), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(format_wide_timestamp(*t), "2016-03-18T12:00:00.0000001Z");
  // The nanosecond edges: the last instant a TimePoint holds, and the next one.
  EXPECT_TRUE(to_time_point(*parse_wide_timestamp("2262-04-11T23:47:16.8547758Z")));
  EXPECT_FALSE(to_time_point(*parse_wide_timestamp("2262-04-11T23:47:16.8547759Z")));
  EXPECT_TRUE(to_time_point(*parse_wide_timestamp("1677-09-21T00:12:43.1452242Z")));
  EXPECT_FALSE(to_time_point(*parse_wide_timestamp("1677-09-21T00:12:43.1452241Z")));
}

TEST(TimeRange, ParseTimestampRefusesWhatATimePointCannotHold) {
  EXPECT_FALSE(parse_timestamp("2300-01-01T00:00:00Z"));
  EXPECT_FALSE(parse_timestamp("0001-01-01T00:00:00Z"));
  EXPECT_FALSE(parse_timestamp("9999-12-31T23:59:59Z"));
  // Just inside the lower end: rounding down to the microsecond must not leave the range.
  EXPECT_FALSE(parse_timestamp("1677-09-21T00:12:43.1452242Z"));
  EXPECT_TRUE(parse_timestamp("1677-09-21T00:12:43.145225Z"));
  EXPECT_TRUE(parse_timestamp("2262-04-11T23:47:16.854775Z"));
  EXPECT_EQ(parse_timestamp(format_timestamp(TimePoint::max())),
            floor<microseconds>(TimePoint::max()));
}

TEST(TimeRange, RunTimesAndDurationsAreCheckedAgainstOneRange) {
  EXPECT_NO_THROW(check_run_time(kEarliestRunTime, "run_at"));
  EXPECT_NO_THROW(check_run_time(kLatestRunTime, "run_at"));
  EXPECT_THROW(check_run_time(kLatestRunTime + 1us, "run_at"), Error);
  EXPECT_THROW(check_run_time(kEarliestRunTime - 1us, "run_at"), Error);
  EXPECT_THROW(check_run_time(TimePoint::max(), "run_at"), Error);
  EXPECT_NO_THROW(check_duration(0us, "d"));
  EXPECT_NO_THROW(check_duration(kMaxDuration, "d"));
  EXPECT_THROW(check_duration(kMaxDuration + 1us, "d"), Error);
  EXPECT_THROW(check_duration(-1us, "d"), Error);
  EXPECT_THROW(check_duration(Duration::min(), "d"), Error);
  try {
    check_run_time(TimePoint::max(), "run_at");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "run_at: '2262-04-11T23:47:16.8547758Z' is outside the run times Ergon stores "
                 "(1678-01-01T00:00:00Z to 2262-01-01T00:00:00Z)");
  }
}

TEST(TimeSpan, DotNetMaxValueIsTheLongestDuration) {
  EXPECT_EQ(parse_timespan("10675199.02:48:05.4775807"), kMaxDuration);
  EXPECT_EQ(parse_timespan("200000.00:00:00"), duration_cast<Duration>(days(200000)));
  for (const char* beyond : {"10675199.02:48:05.4775808", "10675199.02:48:06", "10675200.00:00:00",
                             "99999999.23:59:59.9999999"}) {
    EXPECT_THROW(parse_timespan(beyond), Error) << beyond;
  }
  try {
    parse_timespan("-00:00:01");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("negative"), std::string::npos) << e.what();
  }
  EXPECT_EQ(format_timespan(kMaxDuration), "10675199.02:48:05.47758");
  EXPECT_EQ(format_timespan(Duration::min()), "-106751991.04:00:54.775808");
  EXPECT_EQ(format_timespan(Duration::max()), "106751991.04:00:54.775807");
  (void)kI64Max;
  (void)kI64Min;
}

}  // namespace
}  // namespace ergon
