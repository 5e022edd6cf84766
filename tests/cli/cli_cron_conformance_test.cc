// `ergon cron next` through every next-occurrence case of the Cronos conformance file
// (tests/cron/data/cronos-cases.jsonl) as a real process: the library passes them in
// tests/cron, and this shows that the CLI's reading of --from (years 1 to 9999, fractions to
// the 100 ns tick, offsets) and its printing keep Cronos's answers. Cases with `H` need a
// jitter seed, which the CLI does not take; they are counted apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using Json = nlohmann::json;

const std::string kErgonBinary = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

std::vector<Json> next_cases(int& with_seed) {
  std::ifstream in(std::string(ERGON_CONFORMANCE_DIR) + "/cronos-cases.jsonl");
  std::vector<Json> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json c = Json::parse(line);
    if (c.at("kind") != "next") continue;
    if (c.contains("jitter_seed")) {
      ++with_seed;
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

// The query of a case, as `cron next --batch` reads it.
Json query(const Json& c) {
  return {{"expression", c.at("expr")},     {"tz", c.at("tz")},
          {"from", c.at("from")},           {"count", 1},
          {"inclusive", c.at("inclusive")}, {"seconds", c.at("format") == "seconds"}};
}

// "" when the command's exit status and output are the case's answer, else what differs.
std::string mismatch(const Json& c, int status, const std::string& out, const std::string& err) {
  const Json& expected = c.at("expected");
  std::string want = expected.is_null() ? "" : expected.get<std::string>() + "\n";
  int want_status = expected.is_null() ? 3 : 0;
  if (status == want_status && out == want) return "";
  return c.at("id").get<std::string>() + ": expected exit " + std::to_string(want_status) + " '" +
         want + "', got exit " + std::to_string(status) + " '" + out + "' " + err;
}

// Every case in one process (`--batch`, the command's own code for each line): spawning 1146
// ASan processes takes about a minute, one takes a second.
TEST(CliCronConformance, EveryNextCaseThroughTheCli) {
  int with_seed = 0;
  const std::vector<Json> cases = next_cases(with_seed);
  ASSERT_EQ(cases.size(), 1146u) << "cases without a jitter seed under " << ERGON_CONFORMANCE_DIR;
  EXPECT_EQ(with_seed, 46);
  std::string input;
  for (const Json& c : cases) input += query(c).dump() + "\n";
  ProcessResult r =
      run_process({kErgonBinary, "cron", "next", "--batch"}, input, {"ERGON_DATABASE_URL="});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::size_t i = 0, failed = 0;
  while (std::getline(lines, line) && i < cases.size()) {
    Json got = Json::parse(line);
    std::string m = mismatch(cases[i++], got.at("exit").get<int>(),
                             got.at("out").get<std::string>(), got.at("err").get<std::string>());
    if (!m.empty()) {
      ++failed;
      ADD_FAILURE() << m;
    }
  }
  EXPECT_EQ(i, cases.size()) << "answers";
  EXPECT_EQ(failed, 0u) << "of " << cases.size();
}

// A sample of the cases as separate commands, the way a person types them: the batch and the
// command line answer alike. Every 100th case, every case with a fractional or year-1/9999
// `from`, and every eighth with no occurrence: about 50 processes.
TEST(CliCronConformance, SampledCasesAsSeparateCommands) {
  int with_seed = 0;
  const std::vector<Json> cases = next_cases(with_seed);
  std::size_t run = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    const auto& tags = c.at("tags");
    auto tagged = [&](const char* t) {
      return std::find(tags.begin(), tags.end(), t) != tags.end();
    };
    if (i % 100 != 0 && !tagged("fractional_seconds_from") && !tagged("datetime_range_limit") &&
        !tagged("no_occurrence")) {
      continue;
    }
    if (tagged("no_occurrence") && i % 8 != 0) continue;
    std::vector<std::string> args = {kErgonBinary,
                                     "cron",
                                     "next",
                                     c.at("expr").get<std::string>(),
                                     "--tz",
                                     c.at("tz").get<std::string>(),
                                     "--from=" + c.at("from").get<std::string>(),
                                     "--count",
                                     "1"};
    if (c.at("format") == "seconds") args.push_back("--seconds");
    if (c.at("inclusive").get<bool>()) args.push_back("--inclusive");
    ProcessResult r = run_process(args, "", {"ERGON_DATABASE_URL="});
    EXPECT_EQ(mismatch(c, r.status, r.out, r.err), "");
    ++run;
  }
  EXPECT_GT(run, 30u);
}

}  // namespace
}  // namespace ergon::testing
