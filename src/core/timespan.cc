// .NET TimeSpan strings, the durations of the configuration file (ergon/config.h).
#include <cctype>
#include <charconv>
#include <cstdio>

#include "ergon/config.h"
#include "ergon/error.h"
#include "ergon/time_range.h"

namespace ergon {

Duration parse_timespan(std::string_view text) {
  // .NET TimeSpan's invariant format: [-][d.]hh:mm:ss[.fffffff]. Negative spans make no
  // sense for intervals, so they are refused.
  auto fail = [&](const std::string& why = {}) -> Duration {
    throw Error(ErrorCode::kConfig,
                "'" + std::string(text) + "' " +
                    (why.empty() ? "is not a duration; expected hh:mm:ss, hh:mm:ss.fff or "
                                   "d.hh:mm:ss"
                                 : why));
  };
  std::string_view s = text;
  if (!s.empty() && s[0] == '-') return fail("is negative; a duration must not be");
  auto read_int = [&](long long& out, std::size_t max_digits) {
    std::size_t n = 0;
    while (n < s.size() && n < max_digits + 1 && std::isdigit(static_cast<unsigned char>(s[n]))) {
      ++n;
    }
    if (n == 0 || n > max_digits) return false;
    std::from_chars(s.data(), s.data() + n, out);
    s.remove_prefix(n);
    return true;
  };
  long long days = 0, h = 0, m = 0, sec = 0, frac_ticks = 0;
  long long first = 0;
  if (!read_int(first, 8)) return fail();
  if (!s.empty() && s[0] == '.') {
    days = first;
    s.remove_prefix(1);
    if (!read_int(h, 2)) return fail();
  } else {
    h = first;
  }
  if (s.empty() || s[0] != ':') return fail();
  s.remove_prefix(1);
  if (!read_int(m, 2) || s.empty() || s[0] != ':') return fail();
  s.remove_prefix(1);
  if (!read_int(sec, 2)) return fail();
  if (!s.empty()) {
    if (s[0] != '.') return fail();
    s.remove_prefix(1);
    int digits = 0;
    while (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
      if (digits < 7) frac_ticks = frac_ticks * 10 + (s[0] - '0');
      ++digits;
      s.remove_prefix(1);
    }
    if (digits == 0 || digits > 7 || !s.empty()) return fail();
    for (int i = digits; i < 7; ++i) frac_ticks *= 10;
  }
  if (h > 23 || m > 59 || sec > 59) return fail();
  // In .NET's ticks, where TimeSpan.MaxValue is the largest int64: eight digits of days reach
  // past it.
  constexpr long long kTicksPerDay = 864'000'000'000LL;
  const long long rest = ((h * 60 + m) * 60 + sec) * 10'000'000 + frac_ticks;
  long long ticks = 0;
  if (days > INT64_MAX / kTicksPerDay ||
      __builtin_add_overflow(days * kTicksPerDay, rest, &ticks)) {
    return fail(duration_too_long_error());
  }
  return std::chrono::duration_cast<Duration>(Ticks(ticks));
}

std::string format_timespan(Duration d) {
  // Unsigned, so that the magnitude of Duration::min() exists.
  unsigned long long us = d.count() < 0 ? 0ULL - static_cast<unsigned long long>(d.count())
                                        : static_cast<unsigned long long>(d.count());
  const char* sign = d.count() < 0 ? "-" : "";
  unsigned long long days = us / 86'400'000'000ULL;
  us %= 86'400'000'000ULL;
  char buf[96];
  std::string day_part = days ? std::to_string(days) + "." : "";
  int n = std::snprintf(buf, sizeof buf, "%s%s%02llu:%02llu:%02llu", sign, day_part.c_str(),
                        us / 3'600'000'000ULL, us / 60'000'000 % 60, us / 1'000'000 % 60);
  std::string out(buf, static_cast<std::size_t>(n));
  if (unsigned long long frac = us % 1'000'000) {
    std::snprintf(buf, sizeof buf, ".%06llu", frac);
    std::string fs = buf;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  return out;
}

}  // namespace ergon
