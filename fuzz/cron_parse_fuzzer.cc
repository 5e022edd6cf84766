// libFuzzer target for the cron parser and search.
//
// The first input byte picks the options (format, day matching, jitter seed); the rest is the
// expression text. Every input must either be rejected with CronError or give an expression whose
// canonical text is stable under a re-parse and whose searches terminate.
//
// Build and run (from the repository root):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
//     fuzz/cron_parse_fuzzer.cc src/cron/parser.cc src/cron/schedule.cc src/cron/occurrence.cc \
//     -lcctz -o /tmp/cron_parse_fuzzer
//   /tmp/cron_parse_fuzzer -max_total_time=300 -max_len=96
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ergon/cron.h"

namespace {

using ergon::cron::CronError;
using ergon::cron::CronExpression;
using ergon::cron::DayMatch;
using ergon::cron::Format;
using ergon::cron::ParseOptions;
using ergon::cron::TimeZone;

void check(bool ok) {
  if (!ok) std::abort();
}

void exercise(const CronExpression& expression) {
  // The canonical text is a fixed point: parsing it again prints it again.
  const std::string text = expression.to_string();
  ParseOptions again;
  again.format =
      std::count(text.begin(), text.end(), ' ') == 5 ? Format::kSeconds : Format::kStandard;
  check(CronExpression::parse(text, again).to_string() == text);

  static const TimeZone kZones[] = {TimeZone::utc(), TimeZone::load("America/New_York"),
                                    TimeZone::load("Australia/Lord_Howe")};
  using std::chrono::sys_days;
  using std::chrono::sys_seconds;
  const sys_seconds starts[] = {
      sys_seconds(sys_days(std::chrono::year(2024) / 3 / 10)) + std::chrono::hours(6),
      sys_seconds(sys_days(std::chrono::year(2024) / 11 / 3)) + std::chrono::hours(5),
      sys_seconds(sys_days(std::chrono::year(9999) / 12 / 31)),
      sys_seconds(sys_days(std::chrono::year(1) / 1 / 2)),
  };
  for (const TimeZone& tz : kZones) {
    for (const sys_seconds from : starts) {
      const auto next = expression.next(from, tz);
      if (next) check(*next > from);
      const auto previous = expression.previous(from, tz);
      if (previous) check(*previous < from);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ParseOptions options;
  options.format = (data[0] & 1) != 0 ? Format::kSeconds : Format::kStandard;
  options.day_match = (data[0] & 2) != 0 ? DayMatch::kOr : DayMatch::kAnd;
  if ((data[0] & 4) != 0) options.jitter_seed = static_cast<std::int32_t>(data[0]) * 7919 - 1000;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    exercise(CronExpression::parse(text, options));
  } catch (const CronError& e) {
    check(e.what() != nullptr && *e.what() != '\0');
  }
  return 0;
}
