// Cron expressions with the semantics of Cronos 0.13 (the .NET library HangfireIO/Cronos).
//
// A CronExpression is a parsed schedule: six sets of allowed values (second, minute, hour,
// day of month, month, day of week) plus the `L`, `W` and `#` modifiers. It answers three
// questions about a time zone: the next occurrence after an instant, the previous occurrence
// before an instant, and the occurrences inside a range. The search is done in the zone's local
// wall-clock time and then mapped to instants with the Cronos daylight-saving rules:
//
//   * a local time that a spring-forward transition skips fires once, at the instant the gap
//     ends (for previous(): see docs/cron.md, Cronos 0.13 moves it back instead);
//   * a local time that a fall-back transition repeats fires in the first (earlier) pass only,
//     unless the expression is an "interval" one (a `*`, `?`, range or step in the second,
//     minute or hour field), which fires in both passes.
//
// Syntax, the DST rules and the differences from Vixie cron are described in docs/cron.md.
//
// Ownership and thread-safety: CronExpression is a small value type (no heap memory); a parsed
// expression is immutable and may be shared and queried from any number of threads. TimeZone is a
// cheap-to-copy handle to immutable, reference-counted zone data (loaded from the system tz
// database, /usr/share/zoneinfo); copies may be used concurrently from any thread.
//
// Instants: every query takes a std::chrono::sys_time of any integral precision (seconds,
// microseconds, nanoseconds as returned by system_clock::now(), 100 ns ticks ...) and returns
// whole seconds (std::chrono::sys_seconds). The supported range is that of Cronos, i.e. of .NET
// DateTime: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. Use a precision that reaches the
// instants you need: system_clock::time_point (int64 nanoseconds) only covers 1677..2262, while
// sys_seconds or sys_time<microseconds> cover the whole range.
//
// Errors: parse() throws CronError (a std::invalid_argument) naming the field, the byte position
// and the offending text. TimeZone::load() throws CronError with field() == Field::kNone.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ergon::cron {

// Which fields the text holds. The format is always explicit: it is never guessed from the
// number of fields. Macros (`@daily` ...) ignore it.
enum class Format {
  kStandard,  // 5 fields: minute hour day-of-month month day-of-week (second is 0)
  kSeconds,   // 6 fields: second minute hour day-of-month month day-of-week
};

// How a restricted day-of-month and a restricted day-of-week combine.
enum class DayMatch {
  kAnd,  // Cronos (default): a day must satisfy both fields.
  kOr,   // Vixie cron: when neither field starts with `*` or `?`, a day satisfying either field
         // matches; when one of them starts with `*` or `?`, both must hold (as in Vixie cron).
};

// The field a parse error is about.
enum class Field { kNone, kSeconds, kMinutes, kHours, kDaysOfMonth, kMonths, kDaysOfWeek };

// Cronos's name of a field ("Seconds", "Minutes", "Hours", "Days of month", "Months",
// "Days of week"), or "" for Field::kNone.
std::string_view field_name(Field field) noexcept;

struct ParseOptions {
  Format format = Format::kStandard;
  DayMatch day_match = DayMatch::kAnd;
  // Seed for `H` (hash/jitter) values, resolved exactly like Cronos 0.12+ with .NET's seeded
  // System.Random. Without a seed an expression containing `H` is rejected. With a seed the
  // macros @every_minute, @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually are
  // jittered too (their fixed zero fields become `H`).
  std::optional<std::int32_t> jitter_seed{};
};

class CronError : public std::invalid_argument {
 public:
  static constexpr std::size_t kNoPosition = static_cast<std::size_t>(-1);

  CronError(Field field, std::size_t position, const std::string& message);

  // The field at fault, Field::kNone when the error is about the text as a whole (empty text,
  // unknown macro, trailing characters after the last field, unknown time zone).
  Field field() const noexcept { return field_; }
  // Byte offset of the offending character in the parsed text, kNoPosition when not applicable.
  std::size_t position() const noexcept { return position_; }

 private:
  Field field_;
  std::size_t position_;
};

// An IANA time zone (or UTC). Immutable; copies share the loaded data.
class TimeZone {
 public:
  // The UTC zone; also what a default-constructed TimeZone is.
  static TimeZone utc();
  // Loads `iana_name` (e.g. "Europe/Berlin"; "UTC" is accepted too) from the system tz database.
  // Throws CronError (Field::kNone) when the name is malformed or unknown.
  static TimeZone load(std::string_view iana_name);

  TimeZone();

  const std::string& name() const noexcept;
  // The zone's UTC offset at `instant` (local time = instant + offset).
  std::chrono::seconds utc_offset(std::chrono::sys_seconds instant) const;

  struct Impl;  // defined in src/cron; holds the cctz zone

 private:
  explicit TimeZone(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
  friend class CronExpression;
};

namespace detail {

// The parsed form of an expression; compared structurally by CronExpression::operator==.
struct Spec {
  std::uint64_t seconds = 0;         // bits 0..59
  std::uint64_t minutes = 0;         // bits 0..59
  std::uint32_t hours = 0;           // bits 0..23
  std::uint32_t days_of_month = 0;   // bits 1..31
  std::uint16_t months = 0;          // bits 1..12
  std::uint8_t days_of_week = 0;     // bits 0..7, Sunday is both 0 and 7
  std::uint8_t flags = 0;            // kFlag* below
  std::uint8_t nth_day_of_week = 0;  // 1..5 with kFlagNthDayOfWeek
  std::uint8_t last_day_offset = 0;  // n of `L-n`
  DayMatch day_match = DayMatch::kAnd;

  static constexpr std::uint8_t kFlagInterval = 1;        // `*`,`?`,range,step in s/m/h
  static constexpr std::uint8_t kFlagDayOfMonthLast = 2;  // `L`, `L-n`
  static constexpr std::uint8_t kFlagNearestWeekday = 4;  // `nW`, `LW`, `L-nW`
  static constexpr std::uint8_t kFlagDayOfWeekLast = 8;   // `nL`
  static constexpr std::uint8_t kFlagNthDayOfWeek = 16;   // `n#k`
  static constexpr std::uint8_t kFlagDomStar = 32;        // DayMatch::kOr only
  static constexpr std::uint8_t kFlagDowStar = 64;        // DayMatch::kOr only

  bool operator==(const Spec&) const = default;
};

// Splits an instant into whole seconds (floor) and whether a sub-second part was dropped.
template <class Duration>
constexpr std::pair<std::chrono::sys_seconds, bool> split_seconds(
    std::chrono::sys_time<Duration> t) {
  static_assert(std::is_integral_v<typename Duration::rep>,
                "cron instants need an integral representation");
  const auto whole = std::chrono::floor<std::chrono::seconds>(t);
  return {whole, whole != t};
}

}  // namespace detail

class CronExpression {
 public:
  // Parses `text`. Throws CronError on any syntax error, out-of-range value, or `H` without a
  // seed. Leading and trailing blanks/tabs are ignored; fields are separated by blanks/tabs.
  static CronExpression parse(std::string_view text, const ParseOptions& options = {});

  // The first occurrence at or after `from` (inclusive) or strictly after it (exclusive), or
  // nullopt when there is none up to 9999-12-31T23:59:59Z. A `from` with a sub-second part
  // behaves as the next whole second, whatever `inclusive` says (as in Cronos). As in Cronos the
  // search starts from the local time of `from`: from the instant a spring-forward gap ends, the
  // skipped local times that fired at that very instant are behind the search (docs/cron.md).
  template <class Duration>
  std::optional<std::chrono::sys_seconds> next(std::chrono::sys_time<Duration> from,
                                               const TimeZone& tz, bool inclusive = false) const {
    const auto [whole, fractional] = detail::split_seconds(from);
    return next_impl(whole, fractional, tz, inclusive);
  }

  // The last occurrence at or before `from` (inclusive) or strictly before it (exclusive), or
  // nullopt when there is none down to 0001-01-01T00:00:00Z. A `from` with a sub-second part
  // behaves as its whole second, inclusive.
  template <class Duration>
  std::optional<std::chrono::sys_seconds> previous(std::chrono::sys_time<Duration> from,
                                                   const TimeZone& tz,
                                                   bool inclusive = false) const {
    const auto [whole, fractional] = detail::split_seconds(from);
    return previous_impl(whole, fractional, tz, inclusive);
  }

  // The occurrences in [from, to] (bounds inclusive or not as asked), ascending, at most `limit`
  // of them: next(from, from_inclusive), then next(previous result, exclusive) ... like Cronos's
  // GetOccurrences. Throws std::invalid_argument when from > to.
  template <class D1, class D2>
  std::vector<std::chrono::sys_seconds> occurrences(std::chrono::sys_time<D1> from,
                                                    std::chrono::sys_time<D2> to,
                                                    const TimeZone& tz, bool from_inclusive = true,
                                                    bool to_inclusive = false,
                                                    std::size_t limit = 1000) const {
    if (from > to) throw std::invalid_argument("cron occurrences: `from` is later than `to`");
    const auto [from_whole, from_fractional] = detail::split_seconds(from);
    const auto [to_whole, to_fractional] = detail::split_seconds(to);
    // An occurrence (whole second) s lies before a fractional `to` iff s <= floor(to).
    return occurrences_impl(from_whole, from_fractional, to_whole, to_inclusive || to_fractional,
                            tz, from_inclusive, limit);
  }

  // Canonical text, as Cronos's ToString(): values listed in ascending order (`*` for a full
  // field), the seconds field omitted when it is exactly {0}.
  std::string to_string() const;

  // Structural equality (Cronos's Equals): the value sets, the L/W/# modifiers and whether the
  // expression counts as an interval; not the instants it fires at.
  bool operator==(const CronExpression& other) const = default;

  // Whether the expression is an "interval" one for the fall-back rule (see above).
  bool is_interval() const noexcept { return (spec_.flags & detail::Spec::kFlagInterval) != 0; }

 private:
  explicit CronExpression(const detail::Spec& spec) : spec_(spec) {}

  std::optional<std::chrono::sys_seconds> next_impl(std::chrono::sys_seconds from, bool fractional,
                                                    const TimeZone& tz, bool inclusive) const;
  std::optional<std::chrono::sys_seconds> previous_impl(std::chrono::sys_seconds from,
                                                        bool fractional, const TimeZone& tz,
                                                        bool inclusive) const;
  std::vector<std::chrono::sys_seconds> occurrences_impl(
      std::chrono::sys_seconds from, bool from_fractional, std::chrono::sys_seconds to,
      bool to_inclusive, const TimeZone& tz, bool from_inclusive, std::size_t limit) const;

  detail::Spec spec_;
};

}  // namespace ergon::cron
