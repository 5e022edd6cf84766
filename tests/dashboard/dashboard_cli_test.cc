// `ergon dashboard` refuses unsafe or malformed options before it serves anything.
#include <gtest/gtest.h>

#include <fstream>

#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

class DashboardCliTest : public ::testing::Test {
 protected:
  DashboardCliTest() { open_store(db_); }  // creates and migrates
  ProcessResult ergon(std::vector<std::string> args, const std::string& env_token = "") {
    args.insert(args.begin(), kErgon);
    return run_process(args, "", {"ERGON_DATABASE_URL=", "ERGON_DASHBOARD_TOKEN=" + env_token});
  }
  std::string token_file(const std::string& content) {
    std::string path = dir_.file("token");
    std::ofstream(path, std::ios::trunc) << content;
    // Only its owner reads it, as it should be (else the dashboard warns).
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path;
  }
  // A database that does not exist: the command stops there (status 3), after the token
  // checks, so a run that gets that far accepted its token without serving anything.
  std::string missing_db() { return "sqlite:" + dir_.file("none.db"); }
  TempDir dir_;
  std::string db_ = sqlite_url(dir_);
};

TEST_F(DashboardCliTest, APublicAddressWithoutATokenIsRefused) {
  auto r = ergon({"dashboard", "--db", db_, "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("access token"), std::string::npos) << r.err;
}

TEST_F(DashboardCliTest, MalformedListenAddressesAreRefused) {
  for (const char* bad : {"8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "::1:80",
                          "127.0.0.1:http", "[::1:80"}) {
    SCOPED_TRACE(bad);
    auto r = ergon({"dashboard", "--db", db_, "--listen", bad});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("ADDR:PORT"), std::string::npos) << r.err;
  }
}

TEST_F(DashboardCliTest, AMissingDatabaseIsNotCreated) {
  auto r =
      ergon({"dashboard", "--db", "sqlite:" + dir_.file("none.db"), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("none.db")));
}

TEST_F(DashboardCliTest, AShortTokenIsRefusedAtStart) {
  for (const auto& [args, env] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--token", "x"}, ""},
           {{"--token-file", token_file("short\n")}, ""},
           {{}, "0123456789abcde"}}) {
    std::vector<std::string> argv = {"dashboard", "--db", db_, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = ergon(argv, env);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("at least 16 characters"), std::string::npos) << r.err;
  }
}

TEST_F(DashboardCliTest, TheTokenComesFromAFileOrTheEnvironment) {
  std::string good = "0123456789abcdef-from-file";
  auto from_file = ergon({"dashboard", "--db", missing_db(), "--listen", "0.0.0.0:0",
                          "--token-file", token_file(good + "\n")});
  EXPECT_EQ(from_file.status, 3) << from_file.err;
  EXPECT_EQ(from_file.err.find("token"), std::string::npos) << from_file.err;
  std::filesystem::permissions(dir_.file("token"), std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto readable = ergon({"dashboard", "--db", missing_db(), "--token-file", dir_.file("token")});
  EXPECT_EQ(readable.status, 3) << readable.err;
  EXPECT_NE(readable.err.find("readable by other users"), std::string::npos) << readable.err;
  auto from_env =
      ergon({"dashboard", "--db", missing_db(), "--listen", "0.0.0.0:0"}, good + "-env");
  EXPECT_EQ(from_env.status, 3) << from_env.err;
  EXPECT_EQ(from_env.err.find("token"), std::string::npos) << from_env.err;
  auto missing = ergon({"dashboard", "--db", db_, "--token-file", dir_.file("nope")});
  EXPECT_EQ(missing.status, 1) << missing.err;
  EXPECT_NE(missing.err.find(dir_.file("nope")), std::string::npos) << missing.err;
  auto both = ergon({"dashboard", "--db", db_, "--token", good, "--token-file", token_file(good)});
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.err.find("--token"), std::string::npos) << both.err;
}

TEST_F(DashboardCliTest, ATokenInArgvWorksWithAWarning) {
  auto r = ergon({"dashboard", "--db", missing_db(), "--listen", "0.0.0.0:0", "--token",
                  "0123456789abcdef-in-argv"});
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.err.find("--token-file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ps"), std::string::npos) << r.err;
}

TEST_F(DashboardCliTest, TheWorkersDashboardTakesItsTokenFromAFile) {
  std::string config = dir_.file("ergon.json");
  std::ofstream(config) << R"({"Handlers": {"t": {"command": ["true"]}}})";
  auto r = ergon({"worker", "--config", config, "--db", db_, "--dashboard", "127.0.0.1:0",
                  "--dashboard-token-file", token_file("short")});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("at least 16 characters"), std::string::npos) << r.err;
  auto argv = ergon({"worker", "--config", config, "--db", db_, "--dashboard", "127.0.0.1:0",
                     "--dashboard-token", "short"});
  EXPECT_NE(argv.err.find("--dashboard-token-file"), std::string::npos) << argv.err;
}

}  // namespace
}  // namespace ergon::testing
