// Proleptic Gregorian calendar arithmetic for the cron search (internal).
//
// Local wall-clock times are handled as "local seconds": seconds since 1970-01-01T00:00:00 of the
// same wall clock, ignoring any offset. They cover years 1..9999 comfortably in an int64.
#pragma once

#include <cstdint>

namespace ergon::cron::internal {

inline constexpr int kMinYear = 1;
inline constexpr int kMaxYear = 9999;
inline constexpr std::int64_t kSecondsPerDay = 86400;

constexpr bool is_leap_year(std::int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

constexpr int days_in_month(std::int64_t y, int m) {
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm, exact for all int64 years here).
constexpr std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;                                   // [0, 399]
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  // [0, 365]
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + doe - 719468;
}

struct Date {
  std::int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};

constexpr Date civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return Date{yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

// 0 = Sunday .. 6 = Saturday.
constexpr int weekday(std::int64_t y, int m, int d) {
  const std::int64_t z = days_from_civil(y, m, d);
  return static_cast<int>(((z + 4) % 7 + 7) % 7);
}

// A broken-down local wall-clock time.
struct LocalTime {
  std::int64_t year;
  int month, day, hour, minute, second;
};

constexpr std::int64_t to_local_seconds(const LocalTime& t) {
  return days_from_civil(t.year, t.month, t.day) * kSecondsPerDay + t.hour * 3600 + t.minute * 60 +
         t.second;
}

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

constexpr LocalTime from_local_seconds(std::int64_t s) {
  const std::int64_t days = floor_div(s, kSecondsPerDay);
  const auto tod = static_cast<int>(s - days * kSecondsPerDay);
  const Date date = civil_from_days(days);
  return LocalTime{date.year, date.month, date.day, tod / 3600, tod / 60 % 60, tod % 60};
}

inline constexpr std::int64_t kMinLocalSeconds = days_from_civil(kMinYear, 1, 1) * kSecondsPerDay;
inline constexpr std::int64_t kMaxLocalSeconds =
    days_from_civil(kMaxYear, 12, 31) * kSecondsPerDay + kSecondsPerDay - 1;

static_assert(weekday(1970, 1, 1) == 4);
static_assert(weekday(2017, 3, 22) == 3);
static_assert(weekday(1, 1, 1) == 1);
static_assert(to_local_seconds(from_local_seconds(-62135596800)) == -62135596800);
static_assert(kMinLocalSeconds == -62135596800);
static_assert(kMaxLocalSeconds == 253402300799);

}  // namespace ergon::cron::internal
