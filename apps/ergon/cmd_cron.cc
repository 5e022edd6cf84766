// ergon cron next EXPR — evaluate a cron expression: the next N occurrences, one per line.
#include <iostream>
#include <sstream>

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

struct NextArgs {
  std::string expr;
  std::string tz = "UTC";
  std::string from;
  int count = 5;
  bool inclusive = false;
  bool seconds = false;
  bool vixie = false;
  bool json = false;
};

// One `cron next` query: its output on `out`, a message on `err`, and the exit status.
int next_occurrences(const NextArgs& a, std::ostream& out, std::ostream& err) {
  cron::ParseOptions o;
  o.format = a.seconds ? cron::Format::kSeconds : cron::Format::kStandard;
  o.day_match = a.vixie ? cron::DayMatch::kOr : cron::DayMatch::kAnd;
  try {
    auto expr = cron::CronExpression::parse(a.expr, o);
    auto tz = cron::TimeZone::load(a.tz);
    // In .NET's 100 ns ticks over Cronos's range: a --from of year 1 or 9999, or with a
    // fraction finer than a microsecond, is searched from exactly as Cronos would.
    WideTime from = to_wide(std::chrono::system_clock::now());
    if (!a.from.empty()) {
      auto t = parse_wide_timestamp(a.from);
      if (!t) {
        err << "--from: '" << a.from << "' is not an ISO-8601 instant\n";
        return kExitUsage;
      }
      if (*t < kCronEarliest || *t > kCronLatest) {
        err << "--from: '" << a.from
            << "' is outside the range of cron instants (0001-01-01T00:00:00Z to "
               "9999-12-31T23:59:59.9999999Z)\n";
        return kExitUsage;
      }
      from = *t;
    }
    auto t = expr.next(from, tz, a.inclusive);
    if (!t) {
      err << "ergon: '" << a.expr << "' has no occurrence " << (a.inclusive ? "from " : "after ")
          << format_wide_timestamp(from) << " up to 9999-12-31T23:59:59Z\n";
      return kExitNotFound;
    }
    nlohmann::json list = nlohmann::json::array();
    for (int i = 0; i < a.count && t; ++i) {
      if (a.json) {
        list.push_back(with_offset(*t, tz));
      } else {
        out << with_offset(*t, tz) << "\n";
      }
      t = expr.next(*t, tz, false);
    }
    if (a.json) out << list.dump(2) << "\n";
    return kExitOk;
  } catch (const cron::CronError& e) {
    err << "ergon: " << e.what() << "\n";
    return kExitError;
  }
}

// --batch: one query per line of stdin, a JSON object with the flags' names ({"expression":
// "0 3 * * *", "tz": "UTC", "from": "...", "count": 1, "inclusive": false, "seconds": false,
// "or_days": false}); one JSON line per query on stdout, {"exit": N, "out": "...", "err":
// "..."}, exactly what the command would print and return for those flags.
void next_batch() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    nlohmann::json q = nlohmann::json::parse(line, nullptr, false);
    std::ostringstream out, err;
    int status = kExitUsage;
    if (!q.is_object() || !q.contains("expression") || !q["expression"].is_string()) {
      err << "--batch: each line must be a JSON object with an \"expression\"\n";
    } else {
      NextArgs a;
      a.expr = q["expression"].get<std::string>();
      a.tz = q.value("tz", a.tz);
      a.from = q.value("from", a.from);
      a.count = q.value("count", a.count);
      a.inclusive = q.value("inclusive", false);
      a.seconds = q.value("seconds", false);
      a.vixie = q.value("or_days", false);
      if (a.count < 1 || a.count > 1000) {
        err << "--count: must be 1 to 1000\n";
      } else {
        status = next_occurrences(a, out, err);
      }
    }
    std::cout << nlohmann::json{{"exit", status}, {"out", out.str()}, {"err", err.str()}}.dump()
              << "\n";
  }
}

}  // namespace

void register_cron(CLI::App& app, Globals&) {
  auto* cron_cmd = app.add_subcommand("cron", "evaluate cron expressions");
  cron_cmd->require_subcommand(1);
  auto a = std::make_shared<NextArgs>();
  auto batch = std::make_shared<bool>(false);
  auto* next = cron_cmd->add_subcommand("next", "print the next occurrences of an expression");
  next->add_option("expression", a->expr, "cron expression, e.g. \"0 3 * * MON-FRI\"");
  next->add_option("--tz", a->tz, "IANA time zone (default UTC)");
  next->add_option("--from", a->from,
                   "start instant, ISO-8601, 0001-01-01 to 9999-12-31 (default now)");
  next->add_option("--count", a->count, "how many (1-1000, default 5)")->check(CLI::Range(1, 1000));
  next->add_flag("--inclusive", a->inclusive, "the start instant itself may be returned");
  next->add_flag("--seconds", a->seconds, "the expression has 6 fields, seconds first");
  next->add_flag("--json", a->json, "print a JSON array of ISO-8601 instants");
  next->add_flag("--or-days", a->vixie,
                 "day-of-month OR day-of-week, as Vixie cron (default: AND, as Cronos)");
  next->add_flag("--batch", *batch,
                 "read one query per line of stdin (JSON with the flags' names), print one "
                 "JSON result per line");
  next->callback([a, batch] {
    if (*batch) {
      next_batch();
      return;
    }
    if (a->expr.empty()) throw CLI::RequiredError("expression");
    std::ostringstream err;
    int status = next_occurrences(*a, std::cout, err);
    if (status == kExitOk) return;
    std::string message = err.str();
    if (status == kExitUsage) {
      message.pop_back();
      throw CLI::ValidationError(message);
    }
    std::cerr << message;
    throw CLI::RuntimeError(status);
  });
}

}  // namespace ergon::cli
