// ergon/time_range.h — the instants and durations Ergon can hold, and arithmetic on them that
// saturates instead of wrapping.
//
// A TimePoint counts nanoseconds in 64 bits, so it holds 1677-09-21T00:12:43.145224192Z to
// 2262-04-11T23:47:16.854775807Z; a Duration counts microseconds (about 292,000 years). A
// plain `now - keep` with a `keep` of 200,000 days leaves that range and wraps to a time in
// the future; every sum and difference of instants and durations in Ergon goes through the
// functions below, which stop at the ends of the range instead. What an end means is what
// the words say: a retention of 200,000 days prunes nothing, an orphan threshold of 200,000
// days rescues nothing, a filter "created after 2300" selects nothing.
//
// The ranges every entry point checks (docs/reliability.md#time):
//   * durations: 0 to kMaxDuration, .NET's TimeSpan.MaxValue (10675199.02:48:05.4775807,
//     kept to the microsecond); a longer or negative one is refused;
//   * run times (JobOptions::run_at, now + delay, `--run-at`): kEarliestRunTime to
//     kLatestRunTime, whole years inside TimePoint's range, so that every stored run time
//     reads back on both stores;
//   * cron instants (`ergon cron next --from`): Cronos's range, kCronEarliest to kCronLatest
//     (years 0001 to 9999, in .NET's 100 ns ticks), wider than TimePoint's.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ratio>
#include <string>
#include <string_view>

#include "ergon/types.h"

namespace ergon {

// .NET's unit of time (and Cronos's): 100 ns. A WideTime holds every instant of years 0001 to
// 9999 (and more: int64 ticks reach 29,000 years either side of 1970).
using Ticks = std::chrono::duration<std::int64_t, std::ratio<1, 10'000'000>>;
using WideTime = std::chrono::sys_time<Ticks>;

// .NET's TimeSpan.MaxValue, 9223372036854775807 ticks, truncated to microseconds.
inline constexpr Duration kMaxDuration{922'337'203'685'477'580};

inline constexpr TimePoint kEarliestRunTime{std::chrono::sys_days{
    std::chrono::year{1678} / std::chrono::January / 1}};  // 1678-01-01T00:00:00Z
inline constexpr TimePoint kLatestRunTime{std::chrono::sys_days{
    std::chrono::year{2262} / std::chrono::January / 1}};  // 2262-01-01T00:00:00Z

inline constexpr WideTime kCronEarliest{
    std::chrono::sys_days{std::chrono::year{1} / std::chrono::January / 1}};
inline constexpr WideTime kCronLatest{
    std::chrono::sys_days{std::chrono::year{10000} / std::chrono::January / 1} - Ticks{1}};

// t + d and t - d, stopping at TimePoint::min() and TimePoint::max().
[[nodiscard]] TimePoint saturating_add(TimePoint t, Duration d) noexcept;
[[nodiscard]] TimePoint saturating_sub(TimePoint t, Duration d) noexcept;
// a + b, stopping at Duration::min() and Duration::max().
[[nodiscard]] Duration saturating_add(Duration a, Duration b) noexcept;
// later - earlier in whole microseconds (rounded toward zero); never overflows, since two
// TimePoints are at most about 584 years apart.
[[nodiscard]] Duration elapsed(TimePoint earlier, TimePoint later) noexcept;

// A WideTime as a TimePoint: nullopt outside TimePoint's range (clamp_time() for filters).
[[nodiscard]] std::optional<TimePoint> to_time_point(WideTime t) noexcept;
// A WideTime stopped at TimePoint's ends: an instant past the range compares like one at its
// end with every instant Ergon holds, which is what a filter ("created after 2300") needs.
[[nodiscard]] TimePoint clamp_time(WideTime t) noexcept;
[[nodiscard]] WideTime to_wide(TimePoint t) noexcept;  // exact to the tick (rounded down)

// ISO-8601 as parse_timestamp() reads it (Z or an offset, a fraction of any length, a date
// alone), for any year 0000 to 9999, kept to the 100 ns tick; a fraction finer than a tick
// rounds up to the next tick, so that "later than the text" stays later. nullopt if malformed.
[[nodiscard]] std::optional<WideTime> parse_wide_timestamp(std::string_view text);
// "2300-01-01T00:00:00Z", with a fraction of up to 7 digits when there is one; years before
// 0001 or after 9999 are written with their sign as ISO-8601's expanded years are.
[[nodiscard]] std::string format_wide_timestamp(WideTime t);

// Error text for entry points: "'VALUE' is outside the run times Ergon stores
// (1678-01-01T00:00:00Z to 2262-01-01T00:00:00Z)".
[[nodiscard]] std::string run_time_range_error(std::string_view value);
// Checks a run time: throws Error(kInvalidArgument), "WHAT: " and run_time_range_error(), when
// `t` is outside [kEarliestRunTime, kLatestRunTime].
void check_run_time(TimePoint t, std::string_view what);
// Checks a duration: throws Error(kInvalidArgument) naming `what` when `d` is negative or
// longer than kMaxDuration.
void check_duration(Duration d, std::string_view what);
// " is longer than the longest duration Ergon holds (.NET's TimeSpan.MaxValue, ...)".
[[nodiscard]] std::string duration_too_long_error();

struct WorkerOptions;
// Throws Error(kInvalidArgument) naming the first duration of `options` that is negative or
// longer than kMaxDuration; the JobsWorker constructor calls it. A duration that reaches past
// 2262 from now is valid and means "never" where that makes sense: a retention of that length
// prunes nothing, an orphaned_job_threshold rescues nothing, a timeout or shutdown_timeout
// never runs out (docs/reliability.md#time).
void check_durations(const WorkerOptions& options);

}  // namespace ergon
