// Search of matching local wall-clock times for a parsed cron expression (internal).
//
// The search never steps second by second or minute by minute: the time of day is found with
// bit tricks on the second/minute/hour sets, and days are found per month by enumerating only the
// candidate days of that month (the set bits of the day-of-month field, or the single day an
// `L`/`W` form designates). The calendar repeats every 400 years (146097 days, a whole number of
// weeks), so a day pattern that matches nothing in 400 consecutive years never matches: the day
// search gives up after that, which bounds the cost of impossible expressions like `0 0 30 2 *`.
#pragma once

#include <cstdint>
#include <optional>

#include "calendar.h"
#include "ergon/cron.h"

namespace ergon::cron::internal {

class Matcher {
 public:
  explicit Matcher(const detail::Spec& spec) : spec_(spec) {}

  // The smallest matching local second >= t, if any, within years 1..9999.
  std::optional<std::int64_t> next_local(std::int64_t t) const;
  // The largest matching local second <= t, if any, within years 1..9999.
  std::optional<std::int64_t> prev_local(std::int64_t t) const;

  // Whether the calendar day (y, m, d) matches the month and day fields.
  bool day_matches(std::int64_t y, int m, int d) const;

 private:
  bool dom_matches(std::int64_t y, int m, int d, int dim) const;
  bool dow_matches(std::int64_t y, int m, int d, int dim) const;
  bool day_fields_match(std::int64_t y, int m, int d, int dim) const;
  // The day-of-month an `L`/`W` form designates in (y, m), or 0 when it designates none.
  int designated_day(std::int64_t y, int m, int dim) const;
  bool uses_designated_day() const;
  bool uses_or() const;

  // First/last matching day of month (y, m) within [from, dim] / [1, to]; 0 when none.
  int first_day_in_month(std::int64_t y, int m, int from) const;
  int last_day_in_month(std::int64_t y, int m, int to) const;
  // The first matching date strictly after / last strictly before (y, m, d).
  std::optional<Date> next_day_after(std::int64_t y, int m, int d) const;
  std::optional<Date> prev_day_before(std::int64_t y, int m, int d) const;

  // Smallest (h, m, s) >= the given time of day in the time fields; false when none today.
  bool next_time_of_day(int& h, int& m, int& s) const;
  bool prev_time_of_day(int& h, int& m, int& s) const;

  detail::Spec spec_;
};

}  // namespace ergon::cron::internal
