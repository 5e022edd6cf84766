#include "schedule.h"

#include <algorithm>
#include <bit>

namespace ergon::cron::internal {
namespace {

using Spec = detail::Spec;

// Smallest set bit index >= from, or -1.
int next_bit(std::uint64_t mask, int from) {
  if (from > 63) return -1;
  if (from < 0) from = 0;
  const std::uint64_t m = mask & (~std::uint64_t{0} << from);
  return m == 0 ? -1 : std::countr_zero(m);
}

// Largest set bit index <= to, or -1.
int prev_bit(std::uint64_t mask, int to) {
  if (to < 0) return -1;
  const std::uint64_t m = to >= 63 ? mask : mask & ((std::uint64_t{1} << (to + 1)) - 1);
  return m == 0 ? -1 : 63 - std::countl_zero(m);
}

int first_bit(std::uint64_t mask) { return next_bit(mask, 0); }
int last_bit(std::uint64_t mask) { return prev_bit(mask, 63); }

// The weekday nearest to `day` within the month (the `W` rule): a Saturday moves to the Friday
// before, unless that leaves the month (the 1st), then to the Monday after; a Sunday moves to the
// Monday after, unless that leaves the month (the last day), then to the Friday before.
int nearest_weekday(std::int64_t y, int m, int day, int dim) {
  switch (weekday(y, m, day)) {
    case 6:
      return day == 1 ? day + 2 : day - 1;
    case 0:
      return day == dim ? day - 2 : day + 1;
    default:
      return day;
  }
}

// The 400-year Gregorian cycle: a day pattern absent from 401 consecutive years is absent forever.
constexpr std::int64_t kCycleYears = 401;

}  // namespace

bool Matcher::uses_designated_day() const {
  return (spec_.flags & (Spec::kFlagDayOfMonthLast | Spec::kFlagNearestWeekday)) != 0;
}

bool Matcher::uses_or() const {
  return spec_.day_match == DayMatch::kOr &&
         (spec_.flags & (Spec::kFlagDomStar | Spec::kFlagDowStar)) == 0;
}

int Matcher::designated_day(std::int64_t y, int m, int dim) const {
  int day;
  if ((spec_.flags & Spec::kFlagDayOfMonthLast) != 0) {
    day = dim - spec_.last_day_offset;
    if (day < 1) return 0;  // `L-30` in February: no such day
  } else {
    day = first_bit(spec_.days_of_month);  // `nW` holds exactly one day
    if (day > dim) return 0;               // `31W` in a 30-day month
  }
  if ((spec_.flags & Spec::kFlagNearestWeekday) != 0) day = nearest_weekday(y, m, day, dim);
  return day;
}

bool Matcher::dom_matches(std::int64_t y, int m, int d, int dim) const {
  if (uses_designated_day()) return d == designated_day(y, m, dim);
  return ((spec_.days_of_month >> d) & 1U) != 0;
}

bool Matcher::dow_matches(std::int64_t y, int m, int d, int dim) const {
  if ((spec_.flags & Spec::kFlagDayOfWeekLast) != 0 && d + 7 <= dim) return false;
  if ((spec_.flags & Spec::kFlagNthDayOfWeek) != 0 && (d - 1) / 7 + 1 != spec_.nth_day_of_week) {
    return false;
  }
  if (spec_.days_of_week == 0xFF) return true;
  return ((spec_.days_of_week >> weekday(y, m, d)) & 1U) != 0;
}

bool Matcher::day_fields_match(std::int64_t y, int m, int d, int dim) const {
  if (uses_or()) return dom_matches(y, m, d, dim) || dow_matches(y, m, d, dim);
  return dom_matches(y, m, d, dim) && dow_matches(y, m, d, dim);
}

bool Matcher::day_matches(std::int64_t y, int m, int d) const {
  if (((spec_.months >> m) & 1U) == 0) return false;
  return day_fields_match(y, m, d, days_in_month(y, m));
}

int Matcher::first_day_in_month(std::int64_t y, int m, int from) const {
  const int dim = days_in_month(y, m);
  if (uses_or()) {
    for (int d = std::max(from, 1); d <= dim; ++d) {
      if (day_fields_match(y, m, d, dim)) return d;
    }
    return 0;
  }
  if (uses_designated_day()) {
    const int d = designated_day(y, m, dim);
    return d != 0 && d >= from && dow_matches(y, m, d, dim) ? d : 0;
  }
  for (int d = next_bit(spec_.days_of_month, from); d > 0 && d <= dim;
       d = next_bit(spec_.days_of_month, d + 1)) {
    if (dow_matches(y, m, d, dim)) return d;
  }
  return 0;
}

int Matcher::last_day_in_month(std::int64_t y, int m, int to) const {
  const int dim = days_in_month(y, m);
  to = std::min(to, dim);
  if (uses_or()) {
    for (int d = to; d >= 1; --d) {
      if (day_fields_match(y, m, d, dim)) return d;
    }
    return 0;
  }
  if (uses_designated_day()) {
    const int d = designated_day(y, m, dim);
    return d != 0 && d <= to && dow_matches(y, m, d, dim) ? d : 0;
  }
  for (int d = prev_bit(spec_.days_of_month, to); d > 0; d = prev_bit(spec_.days_of_month, d - 1)) {
    if (dow_matches(y, m, d, dim)) return d;
  }
  return 0;
}

std::optional<Date> Matcher::next_day_after(std::int64_t y, int m, int d) const {
  const std::int64_t last_year = std::min<std::int64_t>(kMaxYear, y + kCycleYears);
  int from_day = d + 1;
  int month = ((spec_.months >> m) & 1U) != 0 ? m : next_bit(spec_.months, m + 1);
  if (month != m) from_day = 1;
  while (true) {
    if (month < 0) {
      if (++y > last_year) return std::nullopt;
      month = first_bit(spec_.months);
      from_day = 1;
    }
    if (const int day = first_day_in_month(y, month, from_day); day != 0) {
      return Date{y, month, day};
    }
    month = next_bit(spec_.months, month + 1);
    from_day = 1;
  }
}

std::optional<Date> Matcher::prev_day_before(std::int64_t y, int m, int d) const {
  const std::int64_t first_year = std::max<std::int64_t>(kMinYear, y - kCycleYears);
  int to_day = d - 1;
  int month = ((spec_.months >> m) & 1U) != 0 ? m : prev_bit(spec_.months, m - 1);
  if (month != m) to_day = 31;
  while (true) {
    if (month < 1) {
      if (--y < first_year) return std::nullopt;
      month = last_bit(spec_.months);
      to_day = 31;
    }
    if (const int day = last_day_in_month(y, month, to_day); day != 0) {
      return Date{y, month, day};
    }
    month = prev_bit(spec_.months, month - 1);
    to_day = 31;
  }
}

bool Matcher::next_time_of_day(int& h, int& m, int& s) const {
  int hour = next_bit(spec_.hours, h);
  if (hour < 0) return false;
  if (hour == h) {
    int minute = next_bit(spec_.minutes, m);
    if (minute == m) {
      if (const int second = next_bit(spec_.seconds, s); second >= 0) {
        s = second;
        return true;
      }
      minute = next_bit(spec_.minutes, m + 1);
    }
    if (minute >= 0) {
      m = minute;
      s = first_bit(spec_.seconds);
      return true;
    }
    hour = next_bit(spec_.hours, h + 1);
    if (hour < 0) return false;
  }
  h = hour;
  m = first_bit(spec_.minutes);
  s = first_bit(spec_.seconds);
  return true;
}

bool Matcher::prev_time_of_day(int& h, int& m, int& s) const {
  int hour = prev_bit(spec_.hours, h);
  if (hour < 0) return false;
  if (hour == h) {
    int minute = prev_bit(spec_.minutes, m);
    if (minute == m) {
      if (const int second = prev_bit(spec_.seconds, s); second >= 0) {
        s = second;
        return true;
      }
      minute = prev_bit(spec_.minutes, m - 1);
    }
    if (minute >= 0) {
      m = minute;
      s = last_bit(spec_.seconds);
      return true;
    }
    hour = prev_bit(spec_.hours, h - 1);
    if (hour < 0) return false;
  }
  h = hour;
  m = last_bit(spec_.minutes);
  s = last_bit(spec_.seconds);
  return true;
}

std::optional<std::int64_t> Matcher::next_local(std::int64_t t) const {
  if (t > kMaxLocalSeconds) return std::nullopt;
  t = std::max(t, kMinLocalSeconds);
  LocalTime lt = from_local_seconds(t);
  if (day_matches(lt.year, lt.month, lt.day) && next_time_of_day(lt.hour, lt.minute, lt.second)) {
    return to_local_seconds(lt);
  }
  const std::optional<Date> date = next_day_after(lt.year, lt.month, lt.day);
  if (!date) return std::nullopt;
  return to_local_seconds(LocalTime{date->year, date->month, date->day, first_bit(spec_.hours),
                                    first_bit(spec_.minutes), first_bit(spec_.seconds)});
}

std::optional<std::int64_t> Matcher::prev_local(std::int64_t t) const {
  if (t < kMinLocalSeconds) return std::nullopt;
  t = std::min(t, kMaxLocalSeconds);
  LocalTime lt = from_local_seconds(t);
  if (day_matches(lt.year, lt.month, lt.day) && prev_time_of_day(lt.hour, lt.minute, lt.second)) {
    return to_local_seconds(lt);
  }
  const std::optional<Date> date = prev_day_before(lt.year, lt.month, lt.day);
  if (!date) return std::nullopt;
  return to_local_seconds(LocalTime{date->year, date->month, date->day, last_bit(spec_.hours),
                                    last_bit(spec_.minutes), last_bit(spec_.seconds)});
}

}  // namespace ergon::cron::internal
