// Runs every Cronos 0.13.0 conformance vector (tests/cron/data/cronos-cases.jsonl, see the
// README and ATTRIBUTION.md beside it) against ergon::cron and reports per-kind pass counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ergon/cron.h"

namespace ergon::cron {
namespace {

using Json = nlohmann::json;
// Cronos works in 100 ns ticks; so do the vectors.
using Ticks = std::chrono::duration<std::int64_t, std::ratio<1, 10'000'000>>;
using TickTime = std::chrono::sys_time<Ticks>;

// Cases that ergon::cron deliberately does not reproduce, with the reason. Each one is reported by
// the test (it is not silently skipped) and documented in docs/cron.md. Empty: every vector,
// including the disputed `prev_gap_disputed` ones, is reproduced as Cronos 0.13.0 behaves.
const std::map<std::string, std::string>& known_wrong_cases() {
  static const std::map<std::string, std::string> kCases = {};
  return kCases;
}

struct Stamp {
  TickTime instant;
  std::chrono::seconds offset;
};

// "YYYY-MM-DDTHH:MM:SS[.fffffff](Z|+HH:MM|-HH:MM)"
std::optional<Stamp> parse_stamp(const std::string& s) {
  auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2),
             mi = digits(14, 2), se = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !se || s.size() < 20) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t fraction = 0;
  if (s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n == 7) return std::nullopt;
      fraction = fraction * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    for (; n < 7; ++n) fraction *= 10;
  }
  std::chrono::seconds offset{0};
  if (pos < s.size() && s[pos] == 'Z') {
    ++pos;
  } else {
    if (pos + 6 != s.size() || (s[pos] != '+' && s[pos] != '-')) return std::nullopt;
    const auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om) return std::nullopt;
    offset = std::chrono::hours(*oh) + std::chrono::minutes(*om);
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  }
  if (pos != s.size()) return std::nullopt;
  const std::chrono::sys_days day = std::chrono::year(*y) /
                                    std::chrono::month(static_cast<unsigned>(*mo)) /
                                    std::chrono::day(static_cast<unsigned>(*d));
  const TickTime local = TickTime(day) + std::chrono::hours(*h) + std::chrono::minutes(*mi) +
                         std::chrono::seconds(*se) + Ticks(fraction);
  return Stamp{local - offset, offset};
}

std::string format_instant(std::optional<std::chrono::sys_seconds> t) {
  if (!t) return "null";
  const auto day = std::chrono::floor<std::chrono::days>(*t);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss<std::chrono::seconds> tod(*t - day);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(tod.hours().count()),
                static_cast<long long>(tod.minutes().count()),
                static_cast<long long>(tod.seconds().count()));
  return buffer;
}

Format format_of(const Json& c, const char* key = "format") {
  return c.at(key).get<std::string>() == "seconds" ? Format::kSeconds : Format::kStandard;
}

ParseOptions options_of(const Json& c) {
  ParseOptions options;
  options.format = format_of(c);
  if (c.contains("jitter_seed")) options.jitter_seed = c.at("jitter_seed").get<std::int32_t>();
  return options;
}

const TimeZone& zone(const std::string& name) {
  static std::map<std::string, TimeZone> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, TimeZone::load(name)).first;
  return it->second;
}

struct Tally {
  int passed = 0;
  int failed = 0;
  int listed_wrong = 0;
};

std::map<std::string, Tally>& tallies() {
  static std::map<std::string, Tally> t;
  return t;
}

// Prints the per-kind counts once every test has run, whatever the order.
class SummaryPrinter : public testing::Environment {
 public:
  void TearDown() override {
    if (tallies().empty()) return;
    int passed = 0, failed = 0, wrong = 0;
    std::cout << "\nCronos conformance (cronos-cases.jsonl), per kind:\n";
    for (const auto& [kind, t] : tallies()) {
      std::cout << "  " << kind << ": " << t.passed << " passed, " << t.failed << " failed";
      if (t.listed_wrong != 0) std::cout << ", " << t.listed_wrong << " listed as wrong";
      std::cout << "\n";
      passed += t.passed;
      failed += t.failed;
      wrong += t.listed_wrong;
    }
    std::cout << "  total: " << passed << " passed, " << failed << " failed, " << wrong
              << " listed as wrong\n";
  }
};
testing::Environment* const kSummaryPrinter = testing::AddGlobalTestEnvironment(new SummaryPrinter);

class CronosConformance : public testing::Test {
 protected:
  static const std::vector<Json>& cases() {
    static const std::vector<Json> kCases = [] {
      std::vector<Json> out;
      std::ifstream in(std::string(ERGON_CONFORMANCE_DIR) + "/cronos-cases.jsonl");
      std::string line;
      while (std::getline(in, line)) {
        if (!line.empty()) out.push_back(Json::parse(line));
      }
      return out;
    }();
    return kCases;
  }

  // Runs `check` on every case of `kind`; it returns an error text, empty when the case passes.
  template <class Check>
  void run_kind(const std::string& kind, Check check) {
    ASSERT_FALSE(cases().empty()) << "no vectors found under " << ERGON_CONFORMANCE_DIR;
    Tally& tally = tallies()[kind];
    tally = Tally{};
    int seen = 0;
    for (const Json& c : cases()) {
      if (c.at("kind").get<std::string>() != kind) continue;
      ++seen;
      const std::string id = c.at("id").get<std::string>();
      std::string error;
      try {
        error = check(c);
      } catch (const std::exception& e) {
        error = std::string("unexpected exception: ") + e.what();
      }
      const auto wrong = known_wrong_cases().find(id);
      if (wrong != known_wrong_cases().end()) {
        ++tally.listed_wrong;
        std::cout << "[listed as wrong] " << id << ": " << wrong->second
                  << (error.empty() ? " (note: it passes now)" : "") << "\n";
        continue;
      }
      if (error.empty()) {
        ++tally.passed;
      } else {
        ++tally.failed;
        ADD_FAILURE() << id << " (" << kind << ") expr='" << c.at("expr").get<std::string>()
                      << "': " << error;
      }
    }
    EXPECT_GT(seen, 0) << "no '" << kind << "' cases";
  }
};

// next / prev share everything but the direction.
std::string check_search(const Json& c, bool forward) {
  const TimeZone& tz = zone(c.at("tz").get<std::string>());
  const auto from = parse_stamp(c.at("from").get<std::string>());
  if (!from) return "bad 'from'";
  const bool inclusive = c.at("inclusive").get<bool>();
  std::optional<Stamp> expected;
  if (!c.at("expected").is_null()) {
    expected = parse_stamp(c.at("expected").get<std::string>());
    if (!expected) return "bad 'expected'";
  }

  std::vector<std::pair<std::string, CronExpression>> variants;
  variants.emplace_back("expr",
                        CronExpression::parse(c.at("expr").get<std::string>(), options_of(c)));
  if (c.contains("expr_without_jitter")) {
    ParseOptions plain;
    plain.format = format_of(c, "format_without_jitter");
    variants.emplace_back(
        "expr_without_jitter",
        CronExpression::parse(c.at("expr_without_jitter").get<std::string>(), plain));
    if (!(variants[0].second == variants[1].second)) {
      return "H resolved to '" + variants[0].second.to_string() + "', expected '" +
             variants[1].second.to_string() + "'";
    }
  }
  for (const auto& [label, expression] : variants) {
    const std::optional<std::chrono::sys_seconds> got =
        forward ? expression.next(from->instant, tz, inclusive)
                : expression.previous(from->instant, tz, inclusive);
    const std::optional<std::chrono::sys_seconds> want =
        expected ? std::optional(std::chrono::floor<std::chrono::seconds>(expected->instant))
                 : std::nullopt;
    if (got != want) {
      return label + ": got " + format_instant(got) + ", expected " + format_instant(want) + " (" +
             c.at("expected").dump() + ")";
    }
    // The offset written in `expected` is the zone's offset at that instant, except for the
    // prev cases whose note says the upstream test wrote another one.
    const bool offset_as_written =
        c.contains("note") && c.at("note").get<std::string>().find(
                                  "at that instant the zone offset is") != std::string::npos;
    if (got && !offset_as_written && tz.utc_offset(*got) != expected->offset) {
      return label + ": zone offset at the result is " +
             std::to_string(tz.utc_offset(*got).count()) + "s, expected " +
             std::to_string(expected->offset.count()) + "s";
    }
  }
  return "";
}

TEST_F(CronosConformance, Next) {
  run_kind("next", [](const Json& c) { return check_search(c, true); });
}

TEST_F(CronosConformance, Prev) {
  run_kind("prev", [](const Json& c) { return check_search(c, false); });
}

TEST_F(CronosConformance, Parse) {
  run_kind("parse", [](const Json& c) -> std::string {
    const std::string expr = c.at("expr").get<std::string>();
    const bool valid = c.at("valid").get<bool>();
    try {
      CronExpression::parse(expr, options_of(c));
    } catch (const CronError& e) {
      if (valid) return std::string("rejected: ") + e.what();
      if (c.contains("error_field") &&
          std::string(field_name(e.field())) != c.at("error_field").get<std::string>()) {
        return "error names field '" + std::string(field_name(e.field())) + "', expected '" +
               c.at("error_field").get<std::string>() + "': " + e.what();
      }
      if (c.contains("error_message_contains") &&
          std::string(e.what()).find(c.at("error_message_contains").get<std::string>()) ==
              std::string::npos) {
        return std::string("message lacks the expected fragment: ") + e.what();
      }
      if (e.field() != Field::kNone && e.position() == CronError::kNoPosition) {
        return "error without a position";
      }
      return "";
    }
    return valid ? "" : "accepted an invalid expression";
  });
}

TEST_F(CronosConformance, ToString) {
  run_kind("to_string", [](const Json& c) -> std::string {
    const std::string got =
        CronExpression::parse(c.at("expr").get<std::string>(), options_of(c)).to_string();
    const std::string want = c.at("expected_string").get<std::string>();
    if (got != want) return "got '" + got + "', expected '" + want + "'";
    // The canonical text parses back to the same expression (the format it needs: 5 fields
    // when the seconds field was left out).
    const std::size_t fields =
        static_cast<std::size_t>(std::count(got.begin(), got.end(), ' ')) + 1;
    ParseOptions again;
    again.format = fields == 6 ? Format::kSeconds : Format::kStandard;
    if (!(CronExpression::parse(got, again) ==
          CronExpression::parse(c.at("expr").get<std::string>(), options_of(c)))) {
      return "'" + got + "' does not parse back to the same expression";
    }
    return "";
  });
}

TEST_F(CronosConformance, Equal) {
  run_kind("equal", [](const Json& c) -> std::string {
    const CronExpression a = CronExpression::parse(c.at("expr").get<std::string>());
    const CronExpression b = CronExpression::parse(c.at("other_expr").get<std::string>());
    const bool want = c.at("equal").get<bool>();
    if ((a == b) != want || (b == a) != want) {
      return "equality is " + std::string(a == b ? "true" : "false") + " ('" + a.to_string() +
             "' vs '" + b.to_string() + "')";
    }
    return "";
  });
}

TEST_F(CronosConformance, Progress) {
  run_kind("progress", [](const Json& c) -> std::string {
    const CronExpression expression =
        CronExpression::parse(c.at("expr").get<std::string>(), options_of(c));
    const TimeZone& tz = zone(c.at("tz").get<std::string>());
    const auto from = parse_stamp(c.at("from").get<std::string>());
    if (!from) return "bad 'from'";
    const bool inclusive = c.at("inclusive").get<bool>();
    const Ticks step(c.at("add_ticks_before_each_call").get<std::int64_t>());
    TickTime current = from->instant;
    for (int i = 0; i < c.at("iterations").get<int>(); ++i) {
      current += step;
      const auto found = expression.next(current, tz, inclusive);
      if (!found) return "iteration " + std::to_string(i) + ": no occurrence";
      if (!(TickTime(*found) > current)) {
        return "iteration " + std::to_string(i) + ": no progress, got " + format_instant(found);
      }
      current = TickTime(*found);
    }
    return "";
  });
}

}  // namespace
}  // namespace ergon::cron
