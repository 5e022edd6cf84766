// `ergon dashboard` refuses unsafe or malformed options before it serves anything.
#include <gtest/gtest.h>

#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

class DashboardCliTest : public ::testing::Test {
 protected:
  DashboardCliTest() { open_store(db_); }  // creates and migrates
  ProcessResult ergon(std::vector<std::string> args) {
    args.insert(args.begin(), kErgon);
    return run_process(args, "", {"ERGON_DATABASE_URL=", "ERGON_DASHBOARD_TOKEN="});
  }
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

}  // namespace
}  // namespace ergon::testing
