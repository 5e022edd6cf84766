// ergon cron next EXPR — evaluate a cron expression: the next N occurrences, one per line.
#include <iostream>

#include "common.h"

namespace ergon::cli {
namespace {

// "2026-03-08T03:00:00-04:00": the instant with the zone's offset at that instant.
std::string with_offset(std::chrono::sys_seconds t, const cron::TimeZone& tz) {
  using namespace std::chrono;
  auto offset = tz.utc_offset(t);
  auto local = t + offset;
  auto day = floor<days>(local);
  year_month_day ymd{day};
  hh_mm_ss<seconds> hms{local - day};
  long off = static_cast<long>(offset.count());
  char sign = off < 0 ? '-' : '+';
  off = off < 0 ? -off : off;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02ld:%02ld", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()), sign, off / 3600,
                off / 60 % 60);
  return buf;
}

}  // namespace

void register_cron(CLI::App& app, Globals&) {
  auto* cron_cmd = app.add_subcommand("cron", "evaluate cron expressions");
  cron_cmd->require_subcommand(1);
  struct Args {
    std::string expr;
    std::string tz = "UTC";
    std::string from;
    int count = 5;
    bool inclusive = false;
    bool seconds = false;
    bool vixie = false;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* next = cron_cmd->add_subcommand("next", "print the next occurrences of an expression");
  next->add_option("expression", a->expr, "cron expression, e.g. \"0 3 * * MON-FRI\"")->required();
  next->add_option("--tz", a->tz, "IANA time zone (default UTC)");
  next->add_option("--from", a->from, "start instant, ISO-8601 (default now)");
  next->add_option("--count", a->count, "how many (1-1000, default 5)")->check(CLI::Range(1, 1000));
  next->add_flag("--inclusive", a->inclusive, "the start instant itself may be returned");
  next->add_flag("--seconds", a->seconds, "the expression has 6 fields, seconds first");
  next->add_flag("--json", a->json, "print a JSON array of ISO-8601 instants");
  next->add_flag("--or-days", a->vixie,
                 "day-of-month OR day-of-week, as Vixie cron (default: AND, as Cronos)");
  next->callback([a] {
    cron::ParseOptions o;
    o.format = a->seconds ? cron::Format::kSeconds : cron::Format::kStandard;
    o.day_match = a->vixie ? cron::DayMatch::kOr : cron::DayMatch::kAnd;
    try {
      auto expr = cron::CronExpression::parse(a->expr, o);
      auto tz = cron::TimeZone::load(a->tz);
      // In .NET's 100 ns ticks over Cronos's range: a --from of year 1 or 9999, or with a
      // fraction finer than a microsecond, is searched from exactly as Cronos would.
      WideTime from = to_wide(std::chrono::system_clock::now());
      if (!a->from.empty()) {
        auto t = parse_wide_timestamp(a->from);
        if (!t) {
          throw CLI::ValidationError("--from", "'" + a->from + "' is not an ISO-8601 instant");
        }
        if (*t < kCronEarliest || *t > kCronLatest) {
          throw CLI::ValidationError(
              "--from", "'" + a->from +
                            "' is outside the range of cron instants (0001-01-01T00:00:00Z to "
                            "9999-12-31T23:59:59.9999999Z)");
        }
        from = *t;
      }
      auto t = expr.next(from, tz, a->inclusive);
      if (!t) {
        std::cerr << "ergon: '" << a->expr << "' has no occurrence "
                  << (a->inclusive ? "from " : "after ") << format_wide_timestamp(from)
                  << " up to 9999-12-31T23:59:59Z\n";
        throw CLI::RuntimeError(kExitNotFound);
      }
      nlohmann::json out = nlohmann::json::array();
      for (int i = 0; i < a->count && t; ++i) {
        if (a->json) {
          out.push_back(with_offset(*t, tz));
        } else {
          std::cout << with_offset(*t, tz) << "\n";
        }
        t = expr.next(*t, tz, false);
      }
      if (a->json) std::cout << out.dump(2) << "\n";
    } catch (const cron::CronError& e) {
      throw Error(ErrorCode::kInvalidArgument, e.what());
    }
  });
}

}  // namespace ergon::cli
