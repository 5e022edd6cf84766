// The CLI's time flags at their extremes (docs/reliability.md#time), as a user runs them: every
// duration flag with 0, +-1 and the ends of int64 in every unit and .NET's TimeSpan.MaxValue,
// every instant flag with years 1 and 9999 and the 1677/2262 edges; the store is read
// afterwards to show that nothing was deleted or run early. Then `cron next` through the whole
// Cronos conformance file.
#include <gtest/gtest.h>

#include <fstream>

#include "ergon/ergon.h"
#include "store/store.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

ProcessResult ergon(std::vector<std::string> args) {
  args.insert(args.begin(), kErgon);
  return run_process(args, "", {"ERGON_DATABASE_URL="});
}

// Duration texts: 0, +-1 and the ends of int64 in every unit, and the TimeSpan edges.
std::vector<std::string> duration_texts() {
  std::vector<std::string> out;
  for (const char* unit : {"ns", "us", "ms", "s", "min", "m", "h", "d"}) {
    for (const char* n : {"0", "1", "-1", "9223372036854775807", "-9223372036854775808"}) {
      out.push_back(std::string(n) + unit);
    }
  }
  for (const char* t :
       {"106751d", "200000d", "00:00:00", "00:00:01", "-00:00:01", "10675199.02:48:05.4775807",
        "10675199.02:48:05.4775808", "200000.00:00:00", "99999999.23:59:59.9999999"}) {
    out.push_back(t);
  }
  return out;
}

// The oracle, independent of Ergon's parser: microseconds, or nullopt when the text is not a
// duration the CLI takes (units ms, s, m, h, d or a TimeSpan, 0 to TimeSpan.MaxValue).
std::optional<std::int64_t> oracle_us(const std::string& text) {
  long long ticks = 0;
  if (text.find(':') != std::string::npos) {
    if (text[0] == '-') return std::nullopt;
    long long d = 0, h = 0, m = 0, s = 0, f = 0;
    if (text.find('.') < text.find(':')) {
      std::sscanf(text.c_str(), "%lld.%lld:%lld:%lld.%lld", &d, &h, &m, &s, &f);
    } else {
      std::sscanf(text.c_str(), "%lld:%lld:%lld", &h, &m, &s);
    }
    if (__builtin_mul_overflow(d, 864'000'000'000LL, &ticks) ||
        __builtin_add_overflow(ticks, ((h * 60 + m) * 60 + s) * 10'000'000 + f, &ticks)) {
      return std::nullopt;
    }
    return ticks / 10;
  }
  if (text[0] == '-') return std::nullopt;
  std::size_t digits = text.find_first_not_of("0123456789");
  std::map<std::string, long long> per = {
      {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000LL}, {"d", 86400000000LL}};
  std::string unit = text.substr(digits);
  if (!per.count(unit) || digits > 18) return std::nullopt;  // 19 digits: more than 290 years
  long long us = 0;
  if (__builtin_mul_overflow(std::stoll(text.substr(0, digits)), per[unit], &us) ||
      us > kMaxDuration.count()) {
    return std::nullopt;
  }
  return us;
}

class CliTime : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0); }
  std::string db() { return "sqlite:" + dir_.file("jobs.db"); }
  nlohmann::json jobs(const std::string& status = "") {
    std::vector<std::string> args = {"jobs", "list", "--json", "--limit", "10000", "--db", db()};
    if (!status.empty()) args.insert(args.end(), {"--status", status});
    auto r = ergon(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }
  // A Completed job that finished `ago` before now, through the library (the CLI cannot
  // finish a job).
  void completed(Duration ago) {
    FakeClock clock(Clock::system().now() - ago);
    auto store = open_store(db(), {.clock = &clock});
    JobId id = JobRunner(store).start_job_raw("t", "{}");
    auto r = store->job_claim_id({"w", 1, clock.now()}, id);
    ASSERT_TRUE(r);
    JobFinishParams f;
    f.id = id;
    f.attempt = r->attempt;
    f.worker_id = "w";
    f.status = JobStatus::kCompleted;
    f.now = clock.now();
    ASSERT_TRUE(store->job_finish(f));
  }
  TempDir dir_;
};

TEST_F(CliTime, EnqueueDelayRunsNeitherEarlyNorWrapped) {
  std::size_t accepted = 0;
  for (const std::string& text : duration_texts()) {
    auto want = oracle_us(text);
    const TimePoint before = Clock::system().now();
    bool fits = want && *want <= elapsed(before, kLatestRunTime).count() - 60'000'000;
    bool past_end = want && *want > elapsed(before, kLatestRunTime).count() + 60'000'000;
    auto r = ergon({"enqueue", "t", "--delay=" + text, "--db", db()});
    const TimePoint after = Clock::system().now();
    if (!fits && !past_end) continue;  // within a minute of 2262: either answer is right
    SCOPED_TRACE(text);
    if (!fits) {
      EXPECT_EQ(r.status, 2) << r.out << r.err;
      EXPECT_NE(r.err.find("--delay"), std::string::npos) << r.err;
      continue;
    }
    ASSERT_EQ(r.status, 0) << r.err;
    ++accepted;
    std::string id = r.out.substr(0, 36);
    auto show = nlohmann::json::parse(ergon({"jobs", "show", id, "--json", "--db", db()}).out);
    TimePoint run_at = *parse_timestamp(show["run_at"].get<std::string>());
    EXPECT_GE(run_at, floor<microseconds>(before) + Duration(*want));
    EXPECT_LE(run_at, after + Duration(*want));
  }
  EXPECT_EQ(accepted, 12u);  // 0 and 1 in ms, s, m, h and d, 00:00:00 and 00:00:01
  EXPECT_EQ(jobs("Pending").size(), accepted);
}

TEST_F(CliTime, EnqueueRunAtOutsideTheStoredRangeIsRefused) {
  const std::pair<const char*, bool> cases[] = {{"0001-01-01T00:00:00Z", false},
                                                {"1677-09-21T00:12:43.145224192Z", false},
                                                {"1677-12-31T23:59:59.999999Z", false},
                                                {"1678-01-01T00:00:00Z", true},
                                                {"2262-01-01T00:00:00Z", true},
                                                {"2262-01-01T00:00:00.000001Z", false},
                                                {"2262-04-11T23:47:16.854775807Z", false},
                                                {"2300-01-01T00:00:00Z", false},
                                                {"9999-12-31T23:59:59.9999999Z", false}};
  std::size_t accepted = 0;
  for (const auto& [text, ok] : cases) {
    auto r = ergon({"enqueue", "t", "--run-at", text, "--db", db()});
    EXPECT_EQ(r.status, ok ? 0 : 2) << text << ": " << r.err;
    if (!ok) {
      EXPECT_NE(r.err.find("outside the run times"), std::string::npos) << r.err;
    }
    accepted += ok ? 1 : 0;
  }
  auto all = jobs();
  ASSERT_EQ(all.size(), accepted);
  for (const auto& j : all) {
    std::string run_at = j["run_at"].get<std::string>();
    EXPECT_TRUE(run_at == "1678-01-01T00:00:00.000000Z" || run_at == "2262-01-01T00:00:00.000000Z")
        << run_at;
  }
}

TEST_F(CliTime, PurgeOlderThanDeletesOnlyWhatIsThatOld) {
  const Duration ages[] = {duration_cast<Duration>(days(400)), 1h};
  for (Duration age : ages) completed(age);
  for (const std::string& text : duration_texts()) {
    SCOPED_TRACE(text);
    auto want = oracle_us(text);
    auto r = ergon({"purge", "--status", "Completed", "--older-than=" + text, "--db", db()});
    std::size_t left = jobs("Completed").size();
    if (!want) {
      EXPECT_EQ(r.status, 2) << r.err;
      EXPECT_EQ(left, 2u);
      continue;
    }
    ASSERT_EQ(r.status, 0) << r.err;
    std::size_t keep = 0;
    // The jobs are older at the purge than at their making: one exactly `want` old goes.
    for (Duration age : ages) keep += *want > age.count() ? 1 : 0;
    EXPECT_EQ(left, keep);
    if (left < 2) {  // start again from both jobs
      ergon({"jobs", "delete", "--status", "Completed", "--all-matching", "--db", db()});
      for (Duration age : ages) completed(age);
    }
  }
}

TEST_F(CliTime, JobsDeleteSinceAndUntilSelectWhatTheWordsSay) {
  // Jobs created now; an instant filter past 2262 or before 1677 selects all or nothing.
  const std::pair<const char*, int> since[] = {
      {"2300-01-01T00:00:00Z", 0},           {"9999-12-31T23:59:59.9999999Z", 0},
      {"2262-04-11T23:47:16.854775807Z", 0}, {"200000d", 2},
      {"10675199.02:48:05.4775807", 2},      {"0001-01-01T00:00:00Z", 2}};
  const std::pair<const char*, int> until[] = {{"0001-01-01T00:00:00Z", 0},
                                               {"1677-09-21T00:12:43.145224191Z", 0},
                                               {"200000d", 0},
                                               {"10675199.02:48:05.4775807", 0},
                                               {"2300-01-01T00:00:00Z", 2}};
  for (const auto& [flag, cases] :
       {std::pair{"--since", std::vector(std::begin(since), std::end(since))},
        std::pair{"--until", std::vector(std::begin(until), std::end(until))}}) {
    for (const auto& [text, n] : cases) {
      SCOPED_TRACE(std::string(flag) + " " + text);
      while (jobs().size() < 2) ASSERT_EQ(ergon({"enqueue", "t", "--db", db()}).status, 0);
      auto list = ergon({"jobs", "list", "--json", std::string(flag) + "=" + text, "--db", db()});
      ASSERT_EQ(list.status, 0) << list.err;
      EXPECT_EQ(nlohmann::json::parse(list.out).size(), static_cast<std::size_t>(n));
      auto del =
          ergon({"jobs", "delete", std::string(flag) + "=" + text, "--all-matching", "--db", db()});
      EXPECT_EQ(del.status, n == 0 ? 3 : 0) << del.out << del.err;
      EXPECT_EQ(jobs().size(), static_cast<std::size_t>(2 - n));
    }
  }
  while (jobs().size() < 2) ASSERT_EQ(ergon({"enqueue", "t", "--db", db()}).status, 0);
  for (const char* bad : {"9223372036854775807ms", "-1s", "10675199.02:48:05.4775808"}) {
    auto del =
        ergon({"jobs", "delete", std::string("--since=") + bad, "--all-matching", "--db", db()});
    EXPECT_EQ(del.status, 2) << bad << ": " << del.err;
  }
  EXPECT_EQ(jobs().size(), 2u);
}

TEST(CliCron, FromCoversCronosRangeAndNothingElse) {
  auto year1 = ergon({"cron", "next", "0 0 1 1 *", "--from", "0001-01-01T00:00:00Z", "--count", "1",
                      "--inclusive"});
  EXPECT_EQ(year1.status, 0) << year1.err;
  EXPECT_EQ(year1.out, "0001-01-01T00:00:00+00:00\n");
  auto later =
      ergon({"cron", "next", "0 0 1 1 *", "--from", "2300-01-01T00:00:00Z", "--count", "2"});
  EXPECT_EQ(later.out, "2301-01-01T00:00:00+00:00\n2302-01-01T00:00:00+00:00\n");
  auto last = ergon({"cron", "next", "* * * * *", "--from", "9999-12-31T23:59:00Z", "--count", "3",
                     "--inclusive"});
  EXPECT_EQ(last.status, 0) << last.err;
  EXPECT_EQ(last.out, "9999-12-31T23:59:00+00:00\n");
  for (const char* outside : {"0000-12-31T23:59:59Z", "0001-01-01T00:30:00+01:00"}) {
    auto r = ergon({"cron", "next", "* * * * *", "--from", outside});
    EXPECT_EQ(r.status, 2) << outside << ": " << r.out;
    EXPECT_NE(r.err.find("outside the range of cron instants"), std::string::npos) << r.err;
  }
  auto none = ergon({"cron", "next", "* * * * *", "--from", "9999-12-31T23:59:00Z"});
  EXPECT_EQ(none.status, 3);
  EXPECT_NE(none.err.find("has no occurrence"), std::string::npos) << none.err;
}

TEST(CliCron, AnImpossibleExpressionHasNoOccurrenceAndNoSchedule) {
  auto r = ergon({"cron", "next", "0 0 31 2 *", "--from", "2026-01-01T00:00:00Z"});
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("'0 0 31 2 *' has no occurrence after 2026-01-01T00:00:00Z"),
            std::string::npos)
      << r.err;
  TempDir dir;
  std::string db = "sqlite:" + dir.file("jobs.db");
  ASSERT_EQ(ergon({"migrate", "--db", db}).status, 0);
  auto add = ergon({"schedules", "add", "never", "t", "0 0 31 2 *", "--db", db});
  EXPECT_EQ(add.status, 1);
  EXPECT_NE(add.err.find("never fires"), std::string::npos) << add.err;
  auto list = ergon({"schedules", "list", "--json", "--db", db});
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 0u);
}

}  // namespace
}  // namespace ergon::testing
