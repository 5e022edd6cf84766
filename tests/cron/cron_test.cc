// Unit and property tests of ergon::cron: parsing, the day-of-month/day-of-week rules, DST
// handling checked against an independent brute-force model, ranges, jitter and errors.
#include "ergon/cron.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ergon::cron {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

sys_seconds utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_seconds(
             sys_days(std::chrono::year(y) / std::chrono::month(mo) / std::chrono::day(d))) +
         hours(h) + minutes(mi) + seconds(s);
}

CronExpression parse(std::string_view text, Format format = Format::kStandard) {
  ParseOptions options;
  options.format = format;
  return CronExpression::parse(text, options);
}

// ---------------------------------------------------------------------------------------------
// Parsing, printing, equality

TEST(CronParse, ErrorsNameTheFieldAndThePosition) {
  try {
    CronExpression::parse("0 0 32 * *");
    FAIL() << "accepted day 32";
  } catch (const CronError& e) {
    EXPECT_EQ(e.field(), Field::kDaysOfMonth);
    EXPECT_EQ(e.position(), 4U);
    EXPECT_NE(std::string(e.what()).find("Days of month"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("between 1 and 31"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'32'"), std::string::npos) << e.what();
  }
  try {
    CronExpression::parse("*/5 * * *");
    FAIL() << "accepted 4 fields";
  } catch (const CronError& e) {
    EXPECT_EQ(e.field(), Field::kMonths);
    EXPECT_NE(std::string(e.what()).find("Days of week field is missing"), std::string::npos)
        << e.what();
  }
  try {
    CronExpression::parse("* * * * * *");
    FAIL() << "accepted 6 fields in the standard format";
  } catch (const CronError& e) {
    EXPECT_EQ(e.field(), Field::kNone);
    EXPECT_EQ(e.position(), 10U);
  }
  EXPECT_THROW(CronExpression::parse(std::string_view("* * * * *\0", 10)), CronError);
  EXPECT_THROW(CronExpression::parse("* * * * *\n"), CronError);
  const std::invalid_argument& as_base = CronError(Field::kHours, 3, "x");
  EXPECT_STREQ(as_base.what(), "x");
}

TEST(CronParse, FormatIsExplicit) {
  EXPECT_EQ(parse("1 2 3 4 5 6", Format::kSeconds).to_string(), "1 2 3 4 5 6");
  EXPECT_THROW(parse("1 2 3 4 5 6"), CronError);
  EXPECT_THROW(parse("1 2 3 4 5", Format::kSeconds), CronError);
  // Macros ignore the format.
  EXPECT_EQ(parse("@hourly", Format::kSeconds), parse("0 * * * *"));
  EXPECT_EQ(parse("@every_second"), parse("* * * * * *", Format::kSeconds));
}

TEST(CronParse, SyntaxForms) {
  EXPECT_EQ(parse("\t 5,10-12 22-2/2 ? JAN-mar,dec sat-Tue  ").to_string(),
            "5,10,11,12 0,2,22 * 1,2,3,12 0,1,2,6");
  EXPECT_EQ(parse("0 0 L-3W * FRIL").to_string(), "0 0 L-3W * 5L");
  EXPECT_EQ(parse("0 0 15W * 7#2").to_string(), "0 0 15W * 0#2");
  EXPECT_EQ(parse("0 0 * * 7"), parse("0 0 * * SUN"));
  EXPECT_EQ(parse("@weekly"), parse("0 0 * * 0"));
  EXPECT_EQ(parse("@MIDNIGHT"), parse("0 0 * * *"));
  EXPECT_EQ(parse("@annually"), parse("0 0 1 1 *"));
  EXPECT_TRUE(parse("*/15 * * * *").is_interval());
  EXPECT_TRUE(parse("0 1-2 * * *").is_interval());
  EXPECT_FALSE(parse("0,30 2 * * *").is_interval());
  EXPECT_FALSE(parse("0 0 */2 * *").is_interval());  // only s/m/h make an interval
}

TEST(CronParse, JitterNeedsASeedAndFollowsDotNetRandom) {
  EXPECT_THROW(CronExpression::parse("H * * * *"), CronError);
  ParseOptions seeded;
  seeded.jitter_seed = 3;
  EXPECT_EQ(CronExpression::parse("H * * * *", seeded).to_string(), "17 * * * *");
  EXPECT_EQ(CronExpression::parse("H/30 * * * *", seeded), parse("8-59/30 * * * *"));
  EXPECT_EQ(CronExpression::parse("@daily", seeded).to_string(), "17 41 20 * * *");
  EXPECT_EQ(CronExpression::parse("@every_second", seeded), parse("* * * * * *", Format::kSeconds));
  // The same seed gives the same schedule; another seed (usually) another one.
  EXPECT_EQ(CronExpression::parse("H H * * *", seeded), CronExpression::parse("H H * * *", seeded));
  seeded.jitter_seed = -2147483647 - 1;  // int.MinValue is valid for .NET's Random too
  EXPECT_NO_THROW(CronExpression::parse("H H H H H", seeded));
}

// ---------------------------------------------------------------------------------------------
// Day matching

TEST(CronDays, AndIsTheDefaultOrIsVixieCron) {
  const TimeZone tz = TimeZone::utc();
  const CronExpression cronos = parse("0 0 13 * FRI");
  EXPECT_EQ(cronos.next(utc(2024, 9, 1), tz), utc(2024, 9, 13));
  EXPECT_EQ(cronos.next(utc(2024, 9, 13), tz), utc(2024, 12, 13));

  ParseOptions vixie;
  vixie.day_match = DayMatch::kOr;
  const CronExpression either = CronExpression::parse("0 0 13 * FRI", vixie);
  EXPECT_NE(either, cronos);
  EXPECT_EQ(either.occurrences(utc(2024, 9, 1), utc(2024, 10, 15), tz),
            (std::vector<sys_seconds>{utc(2024, 9, 6), utc(2024, 9, 13), utc(2024, 9, 20),
                                      utc(2024, 9, 27), utc(2024, 10, 4), utc(2024, 10, 11),
                                      utc(2024, 10, 13)}));
  // As in Vixie cron, a field starting with `*` makes the other one decide alone.
  const CronExpression fridays = CronExpression::parse("0 0 * * FRI", vixie);
  EXPECT_EQ(fridays.next(utc(2024, 9, 1), tz), utc(2024, 9, 6));
  // `*/10` starts with `*`: AND, as Vixie's DOM_STAR rule; Monday the 21st of October 2024 is
  // the first Monday that is the 1st, 11th, 21st or 31st.
  EXPECT_EQ(CronExpression::parse("0 0 */10 * MON", vixie).next(utc(2024, 9, 1), tz),
            utc(2024, 10, 21));
}

TEST(CronDays, LastAndNearestWeekday) {
  const TimeZone tz = TimeZone::utc();
  // 2024-06-01 is a Saturday, 2024-06-30 a Sunday, 2024-03-31 a Sunday.
  EXPECT_EQ(parse("0 0 1W * *").next(utc(2024, 5, 31), tz), utc(2024, 6, 3));
  EXPECT_EQ(parse("0 0 LW * *").next(utc(2024, 6, 1), tz), utc(2024, 6, 28));
  EXPECT_EQ(parse("0 0 L-1 * *").next(utc(2024, 2, 1), tz), utc(2024, 2, 28));
  EXPECT_EQ(parse("0 0 L * *").next(utc(2024, 2, 1), tz), utc(2024, 2, 29));
  EXPECT_EQ(parse("0 0 * * 0L").next(utc(2024, 3, 1), tz), utc(2024, 3, 31));
  EXPECT_EQ(parse("0 0 * * MON#5").next(utc(2024, 1, 1), tz), utc(2024, 1, 29));
  EXPECT_EQ(parse("0 0 31W * *").next(utc(2024, 4, 1), tz), utc(2024, 5, 31));  // no April 31
  EXPECT_EQ(parse("0 0 L-30 * *").next(utc(2024, 2, 1), tz), utc(2024, 3, 1));
}

TEST(CronDays, PathologicalExpressionsAreFast) {
  const TimeZone tz = TimeZone::load("America/New_York");
  const auto started = std::chrono::steady_clock::now();
  // February 29th that is a Monday: 2044, then 2072.
  const CronExpression leap_monday = parse("0 0 29 2 MON");
  EXPECT_EQ(leap_monday.next(utc(2024, 3, 1), tz), utc(2044, 2, 29, 5));
  EXPECT_EQ(leap_monday.next(utc(2044, 2, 29, 5), tz), utc(2072, 2, 29, 5));
  EXPECT_EQ(leap_monday.previous(utc(2044, 2, 29, 5), tz), utc(2016, 2, 29, 5));
  // Never: the search gives up after one 400-year calendar cycle.
  for (const char* never : {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 1 * 1#2", "0 0 L-30 2,4 *"}) {
    EXPECT_EQ(parse(never).next(utc(2024, 1, 1), tz), std::nullopt) << never;
    EXPECT_EQ(parse(never).previous(utc(2024, 1, 1), tz), std::nullopt) << never;
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_LT(elapsed, std::chrono::seconds(2));  // generous: sanitizers, shared CPU
}

// ---------------------------------------------------------------------------------------------
// Instants, ranges, limits

TEST(CronInstants, PrecisionAndRange) {
  const TimeZone tz = TimeZone::utc();
  const CronExpression every_second = parse("* * * * * *", Format::kSeconds);
  // A fractional `from` behaves as the next whole second for next(), inclusive or not.
  const auto fractional = std::chrono::sys_time<std::chrono::nanoseconds>(utc(2024, 1, 1)) +
                          std::chrono::nanoseconds(1);
  EXPECT_EQ(every_second.next(fractional, tz, false), utc(2024, 1, 1, 0, 0, 1));
  EXPECT_EQ(every_second.next(fractional, tz, true), utc(2024, 1, 1, 0, 0, 1));
  EXPECT_EQ(every_second.previous(fractional, tz, false), utc(2024, 1, 1));
  EXPECT_EQ(every_second.next(std::chrono::system_clock::now(), tz).has_value(), true);
  // Year 1 and year 9999 are reachable with sys_seconds.
  EXPECT_EQ(every_second.next(utc(9999, 12, 31, 23, 59, 58), tz), utc(9999, 12, 31, 23, 59, 59));
  EXPECT_EQ(every_second.next(utc(9999, 12, 31, 23, 59, 59), tz), std::nullopt);
  EXPECT_EQ(every_second.previous(utc(1, 1, 1), tz, true), utc(1, 1, 1));
  EXPECT_EQ(every_second.previous(utc(1, 1, 1), tz), std::nullopt);
  EXPECT_EQ(parse("0 0 1 1 *").next(utc(1, 1, 1) - days(400), tz, true), utc(1, 1, 1));
  // Local times after 9999-12-31T23:59:59Z (a negative offset) are out of range.
  EXPECT_EQ(parse("0 22 31 12 *").next(utc(9999, 12, 1), TimeZone::load("America/New_York")),
            std::nullopt);
}

TEST(CronInstants, Occurrences) {
  const TimeZone tz = TimeZone::utc();
  const CronExpression quarter = parse("*/15 * * * *");
  const auto from = utc(2024, 5, 1, 10);
  EXPECT_EQ(
      quarter.occurrences(from, from + hours(1), tz),
      (std::vector<sys_seconds>{from, from + minutes(15), from + minutes(30), from + minutes(45)}));
  EXPECT_EQ(quarter.occurrences(from, from + hours(1), tz, false, true).back(), from + hours(1));
  EXPECT_EQ(quarter.occurrences(from, from + days(1), tz, true, false, 3).size(), 3U);
  EXPECT_TRUE(quarter.occurrences(from, from, tz, false, false).empty());
  EXPECT_THROW(quarter.occurrences(from, from - seconds(1), tz), std::invalid_argument);
}

TEST(CronTimeZone, LoadErrors) {
  EXPECT_EQ(TimeZone::load("UTC").name(), "UTC");
  EXPECT_EQ(TimeZone().name(), "UTC");
  EXPECT_EQ(TimeZone::load("Europe/Berlin").utc_offset(utc(2024, 7, 1)), hours(2));
  for (const char* bad : {"", "Nowhere/Atlantis", "../../etc/passwd", "/etc/localtime",
                          "Europe//Berlin", "Europe/Berlin\n"}) {
    try {
      TimeZone::load(bad);
      ADD_FAILURE() << "loaded '" << bad << "'";
    } catch (const CronError& e) {
      EXPECT_EQ(e.field(), Field::kNone);
    }
  }
}

TEST(CronThreads, SharedExpressionAndZone) {
  const TimeZone tz = TimeZone::load("Europe/Berlin");
  const CronExpression expression = parse("*/7 1-3 * * *");
  std::vector<sys_seconds> expected;
  for (auto t = utc(2024, 10, 26); t < utc(2024, 10, 28); t += minutes(11)) {
    expected.push_back(*expression.next(t, tz));
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      std::size_t k = 0;
      for (auto t = utc(2024, 10, 26); t < utc(2024, 10, 28); t += minutes(11), ++k) {
        if (expression.next(t, tz) != expected[k]) ++mismatches[i];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---------------------------------------------------------------------------------------------
// Daylight saving time, explicit cases

TEST(CronDst, SpringForward) {
  const TimeZone ny = TimeZone::load("America/New_York");  // 2024-03-10 02:00 EST -> 03:00 EDT
  const CronExpression fixed = parse("30 2 * * *");
  EXPECT_EQ(fixed.next(utc(2024, 3, 10, 6), ny), utc(2024, 3, 10, 7));  // at the gap's end
  EXPECT_EQ(fixed.next(utc(2024, 3, 10, 7), ny), utc(2024, 3, 11, 6, 30));
  // previous() follows Cronos 0.13.0: the last second before the gap.
  EXPECT_EQ(fixed.previous(utc(2024, 3, 10, 8), ny), utc(2024, 3, 10, 6, 59, 59));

  const CronExpression interval = parse("*/30 * * * *");
  EXPECT_EQ(interval.occurrences(utc(2024, 3, 10, 6), utc(2024, 3, 10, 8), ny),
            (std::vector<sys_seconds>{utc(2024, 3, 10, 6), utc(2024, 3, 10, 6, 30),
                                      utc(2024, 3, 10, 7), utc(2024, 3, 10, 7, 30)}));

  const TimeZone berlin = TimeZone::load("Europe/Berlin");  // 2024-03-31 02:00 CET -> 03:00 CEST
  EXPECT_EQ(fixed.next(utc(2024, 3, 31), berlin), utc(2024, 3, 31, 1));
  EXPECT_EQ(parse("0 * * * *").occurrences(utc(2024, 3, 30, 23), utc(2024, 3, 31, 3), berlin),
            (std::vector<sys_seconds>{utc(2024, 3, 30, 23), utc(2024, 3, 31, 0),
                                      utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)}));

  // Lord Howe jumps by 30 minutes: 2024-10-06 02:00 +10:30 -> 02:30 +11:00 (15:30Z).
  const TimeZone lord_howe = TimeZone::load("Australia/Lord_Howe");
  EXPECT_EQ(parse("15 2 * * *").next(utc(2024, 10, 5, 12), lord_howe), utc(2024, 10, 5, 15, 30));
  EXPECT_EQ(parse("45 2 * * *").next(utc(2024, 10, 5, 12), lord_howe), utc(2024, 10, 5, 15, 45));
}

TEST(CronDst, FallBack) {
  const TimeZone ny = TimeZone::load("America/New_York");  // 2024-11-03 02:00 EDT -> 01:00 EST
  const CronExpression fixed = parse("30 1 * * *");
  EXPECT_EQ(fixed.next(utc(2024, 11, 3, 4), ny), utc(2024, 11, 3, 5, 30));  // first pass only
  EXPECT_EQ(fixed.next(utc(2024, 11, 3, 5, 30), ny), utc(2024, 11, 4, 6, 30));
  EXPECT_EQ(fixed.previous(utc(2024, 11, 4), ny), utc(2024, 11, 3, 5, 30));

  const CronExpression interval = parse("*/30 * * * *");
  EXPECT_EQ(interval.occurrences(utc(2024, 11, 3, 4), utc(2024, 11, 3, 8), ny),
            (std::vector<sys_seconds>{utc(2024, 11, 3, 4), utc(2024, 11, 3, 4, 30),
                                      utc(2024, 11, 3, 5), utc(2024, 11, 3, 5, 30),
                                      utc(2024, 11, 3, 6), utc(2024, 11, 3, 6, 30),
                                      utc(2024, 11, 3, 7), utc(2024, 11, 3, 7, 30)}));
  EXPECT_EQ(interval.previous(utc(2024, 11, 3, 6), ny), utc(2024, 11, 3, 5, 30));
  // From inside the second pass, a fixed-time expression waits for the next day...
  EXPECT_EQ(fixed.next(utc(2024, 11, 3, 6, 10), ny), utc(2024, 11, 4, 6, 30));
  // ...and 02:00, the first local time after the repeated hour, still fires.
  EXPECT_EQ(parse("0 2 * * *").next(utc(2024, 11, 3, 6, 10), ny), utc(2024, 11, 3, 7));

  const TimeZone berlin = TimeZone::load("Europe/Berlin");  // 2024-10-27 03:00 CEST -> 02:00 CET
  const CronExpression berlin_fixed = parse("30 2 * * *");
  EXPECT_EQ(berlin_fixed.next(utc(2024, 10, 26, 23), berlin), utc(2024, 10, 27, 0, 30));
  EXPECT_EQ(berlin_fixed.next(utc(2024, 10, 27, 0, 30), berlin), utc(2024, 10, 28, 1, 30));
  EXPECT_EQ(parse("0 * * * *").occurrences(utc(2024, 10, 26, 23), utc(2024, 10, 27, 3), berlin),
            (std::vector<sys_seconds>{utc(2024, 10, 26, 23), utc(2024, 10, 27, 0),
                                      utc(2024, 10, 27, 1), utc(2024, 10, 27, 2)}));
}

// ---------------------------------------------------------------------------------------------
// Property tests against a brute-force model of the Cronos rules
//
// The model enumerates every local minute of a window, maps it to instants using only
// TimeZone::utc_offset (transitions located by bisection), and lists the occurrence instants:
// unique local times once, repeated ones in the first pass and, for interval expressions, in the
// second pass too, skipped ones at the gap's end (for next) or as Cronos 0.13 does for previous
// (last second before the gap, or with a gap at midnight the wall time read with the post-gap
// offset, which a backward search sees only once it starts at or after the gap's end).

struct Transition {
  sys_seconds at;
  seconds before;
  seconds after;
};

std::vector<Transition> find_transitions(const TimeZone& tz, sys_seconds from, sys_seconds to) {
  std::vector<Transition> out;
  for (sys_seconds t = from; t < to; t += hours(1)) {
    const seconds a = tz.utc_offset(t), b = tz.utc_offset(t + hours(1));
    if (a == b) continue;
    sys_seconds lo = t, hi = t + hours(1);  // offset(lo) == a, offset(hi) == b
    while (hi - lo > seconds(1)) {
      const sys_seconds mid = lo + (hi - lo) / 2;
      (tz.utc_offset(mid) == a ? lo : hi) = mid;
    }
    out.push_back({hi, a, b});
  }
  return out;
}

// A skipped local time as previous() reports it: a search started at t sees it when t > at and
// t >= visible_from (the gap's end).
struct GapEntry {
  sys_seconds at;
  sys_seconds visible_from;
};

struct Model {
  std::vector<sys_seconds> next;      // sorted
  std::vector<sys_seconds> previous;  // sorted, without the skipped local times
  std::vector<GapEntry> previous_gap;
};

// What an expression matches in local time: a day predicate and the minutes of a matching day.
struct LocalMatch {
  std::function<bool(const std::chrono::year_month_day&)> day;
  std::vector<int> minutes_of_day;
};

std::vector<int> every_nth_minute(int n) {
  std::vector<int> out;
  for (int m = 0; m < 24 * 60; m += n) out.push_back(m);
  return out;
}

Model build_model(const std::vector<Transition>& transitions, seconds offset_before_all,
                  sys_days first_local_day, sys_days last_local_day, const LocalMatch& matches,
                  bool interval) {
  // Offsets in force: before the first transition, then after each.
  std::vector<std::pair<sys_seconds, seconds>> regimes;  // start, offset
  regimes.emplace_back(sys_seconds::min(), offset_before_all);
  for (const Transition& t : transitions) regimes.emplace_back(t.at, t.after);
  auto offset_at = [&](sys_seconds u) {
    auto it = std::upper_bound(regimes.begin(), regimes.end(), u,
                               [](sys_seconds v, const auto& r) { return v < r.first; });
    return std::prev(it)->second;
  };

  Model model;
  for (sys_days day = first_local_day; day <= last_local_day; day += days(1)) {
    if (!matches.day(std::chrono::year_month_day(day))) continue;
    // Far from any transition a local time has exactly one instant.
    const bool near_transition =
        std::any_of(transitions.begin(), transitions.end(), [&](const Transition& t) {
          return t.at > sys_seconds(day) - days(2) && t.at < sys_seconds(day) + days(2);
        });
    const seconds day_offset = offset_at(sys_seconds(day) + hours(12));
    for (const int minute_of_day : matches.minutes_of_day) {
      const sys_seconds local = sys_seconds(day) + minutes(minute_of_day);  // wall clock as UTC
      if (!near_transition) {
        model.next.push_back(local - day_offset);
        model.previous.push_back(local - day_offset);
        continue;
      }
      std::array<sys_seconds, 2> instants{};
      std::size_t count = 0;
      for (const auto& regime : regimes) {
        const sys_seconds u = local - regime.second;
        if (offset_at(u) != regime.second) continue;
        if (std::find(instants.begin(), instants.begin() + count, u) != instants.begin() + count) {
          continue;
        }
        if (count == instants.size()) {
          ADD_FAILURE() << "model: a local time with more than two instants";
          break;
        }
        instants[count++] = u;
      }
      if (count == 2 && instants[1] < instants[0]) std::swap(instants[0], instants[1]);
      if (count == 1) {
        model.next.push_back(instants[0]);
        model.previous.push_back(instants[0]);
      } else if (count == 2) {
        model.next.push_back(instants[0]);
        model.previous.push_back(instants[0]);
        if (interval) {
          model.next.push_back(instants[1]);
          model.previous.push_back(instants[1]);
        }
      } else {
        // Skipped: the transition whose gap holds this wall time.
        const Transition* gap = nullptr;
        for (const Transition& t : transitions) {
          if (local >= t.at + t.before && local < t.at + t.after) gap = &t;
        }
        if (gap == nullptr) {
          ADD_FAILURE() << "model: local time without instant outside any gap";
          continue;
        }
        model.next.push_back(gap->at);
        const sys_seconds last_before_gap_local = gap->at - seconds(1) + gap->before;
        const bool same_day =
            std::chrono::floor<days>(last_before_gap_local) == std::chrono::floor<days>(local);
        model.previous_gap.push_back(
            {same_day ? gap->at - seconds(1) : local - gap->after, gap->at});
      }
    }
  }
  // Generated in local-time order, the lists are sorted but for the few entries around each
  // transition: insertion sort costs next to nothing on such input (unlike std::sort in a debug,
  // sanitized build).
  auto sort_nearly_sorted = [](std::vector<sys_seconds>& v) {
    for (std::size_t i = 1; i < v.size(); ++i) {
      for (std::size_t j = i; j > 0 && v[j] < v[j - 1]; --j) std::swap(v[j], v[j - 1]);
    }
  };
  sort_nearly_sorted(model.next);
  model.next.erase(std::unique(model.next.begin(), model.next.end()), model.next.end());
  sort_nearly_sorted(model.previous);
  return model;
}

std::optional<sys_seconds> model_next(const Model& m, sys_seconds t) {
  const auto it = std::upper_bound(m.next.begin(), m.next.end(), t);
  if (it == m.next.end()) return std::nullopt;
  return *it;
}

std::optional<sys_seconds> model_previous(const Model& m, sys_seconds t) {
  std::optional<sys_seconds> best;
  const auto it = std::lower_bound(m.previous.begin(), m.previous.end(), t);
  if (it != m.previous.begin()) best = *std::prev(it);
  for (const GapEntry& e : m.previous_gap) {
    if (e.at < t && e.visible_from <= t && (!best || e.at > *best)) best = e.at;
  }
  return best;
}

struct PropertyExpression {
  const char* text;
  std::optional<LocalMatch> matches;  // none: too rare for the model, see previous(next(t))
  bool interval;
  days model_margin;  // how far beyond the sampled year the model must reach
};

const std::vector<PropertyExpression>& property_expressions() {
  const auto any_day = [](const std::chrono::year_month_day&) { return true; };
  static const std::vector<PropertyExpression> kExpressions = {
      {"* * * * *", LocalMatch{any_day, every_nth_minute(1)}, true, days(2)},
      {"0 2 * * *", LocalMatch{any_day, {2 * 60}}, false, days(3)},
      {"30 2 * * *", LocalMatch{any_day, {2 * 60 + 30}}, false, days(3)},
      {"*/15 * * * *", LocalMatch{any_day, every_nth_minute(15)}, true, days(2)},
      {"0 0 L * *",
       LocalMatch{[](const std::chrono::year_month_day& d) {
                    return d.day() == std::chrono::year_month_day_last(d.year() / d.month() /
                                                                       std::chrono::last)
                                          .day();
                  },
                  {0}},
       false, days(40)},
      {"0 0 29 2 MON", std::nullopt, false, days(0)},
  };
  return kExpressions;
}

class CronDstProperties : public testing::TestWithParam<const char*> {};

TEST_P(CronDstProperties, NextAndPreviousMatchTheModel) {
  const TimeZone tz = TimeZone::load(GetParam());
  const sys_seconds year_start = utc(2024, 1, 1), year_end = utc(2025, 1, 1);
  const std::vector<Transition> transitions =
      find_transitions(tz, year_start - days(45), year_end + days(45));
  ASSERT_GE(transitions.size(), 2U) << "expected DST in " << GetParam();

  // Sample instants: the year stepped by an odd number of minutes, plus a dense band around
  // every transition (every 7 minutes within 3 hours, and the seconds right at it).
  std::vector<sys_seconds> samples;
  for (sys_seconds t = year_start; t < year_end; t += minutes(997)) samples.push_back(t);
  for (const Transition& tr : transitions) {
    if (tr.at < year_start || tr.at >= year_end) continue;
    for (sys_seconds t = tr.at - hours(3); t <= tr.at + hours(3); t += minutes(7)) {
      samples.push_back(t);
    }
    for (int d = -2; d <= 2; ++d) samples.push_back(tr.at + seconds(d));
  }
  std::sort(samples.begin(), samples.end());

  for (const PropertyExpression& pe : property_expressions()) {
    SCOPED_TRACE(pe.text);
    const CronExpression expression = parse(pe.text);
    ASSERT_EQ(expression.is_interval(), pe.interval);
    std::optional<Model> model;
    if (pe.matches) {
      model = build_model(transitions, transitions.front().before,
                          std::chrono::floor<days>(year_start) - pe.model_margin,
                          std::chrono::floor<days>(year_end) + pe.model_margin, *pe.matches,
                          pe.interval);
    }
    std::optional<sys_seconds> last_next;
    int failures = 0;
    for (const sys_seconds t : samples) {
      if (failures > 5) break;
      const std::optional<sys_seconds> next = expression.next(t, tz);
      const std::optional<sys_seconds> previous = expression.previous(t, tz);
      if (!next || *next <= t) {
        ++failures;
        ADD_FAILURE() << "next(" << t.time_since_epoch().count() << ") is not later";
        continue;
      }
      if (!previous || *previous >= t) {
        ++failures;
        ADD_FAILURE() << "previous(" << t.time_since_epoch().count() << ") is not earlier";
        continue;
      }
      if (last_next && *next < *last_next) {
        ++failures;
        ADD_FAILURE() << "next() went backwards at " << t.time_since_epoch().count();
      }
      last_next = next;
      // An inclusive search from an occurrence returns it, except at the end of a
      // spring-forward gap: like Cronos, a search starting there looks at local times from the
      // gap's end on, so the skipped times that fired at that instant are behind it.
      const bool at_gap_end = tz.utc_offset(*next - seconds(1)) < tz.utc_offset(*next);
      if (!at_gap_end && expression.next(*next, tz, true) != next) {
        ++failures;
        ADD_FAILURE() << "next(next(t), inclusive) != next(t) at " << t.time_since_epoch().count();
      }
      if (model) {
        if (next != model_next(*model, t)) {
          ++failures;
          ADD_FAILURE() << "next(" << t.time_since_epoch().count()
                        << ") = " << next->time_since_epoch().count() << ", model says "
                        << model_next(*model, t).value_or(sys_seconds{}).time_since_epoch().count();
        }
        if (previous != model_previous(*model, t)) {
          ++failures;
          ADD_FAILURE()
              << "previous(" << t.time_since_epoch().count()
              << ") = " << previous->time_since_epoch().count() << ", model says "
              << model_previous(*model, t).value_or(sys_seconds{}).time_since_epoch().count();
        }
      } else {
        // Nothing strictly between t and next(t).
        const std::optional<sys_seconds> back = expression.previous(*next, tz);
        if (!back || *back > t) {
          ++failures;
          ADD_FAILURE() << "an occurrence between " << t.time_since_epoch().count() << " and "
                        << next->time_since_epoch().count();
        }
        if (expression.next(*previous, tz) < t) {
          ++failures;
          ADD_FAILURE() << "an occurrence between previous(t) and t at "
                        << t.time_since_epoch().count();
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zones, CronDstProperties,
                         testing::Values("America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
                                         "America/Santiago"),
                         [](const testing::TestParamInfo<const char*>& param) {
                           std::string name = param.param;
                           std::replace(name.begin(), name.end(), '/', '_');
                           return name;
                         });

}  // namespace
}  // namespace ergon::cron
