// The `ergon` binary and what it reads from a store: untrusted text (docs/storage.md#text) on
// both stores, rows stored before the text rule, and SQLite files that read commands must
// open without changing anything beside them.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "ergon/job_runner.h"
#include "store/store.h"
#include "support/pg_test_db.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::string_literals;
namespace fs = std::filesystem;

const std::string kErgon = std::string(ERGON_BINARY_DIR) + "/apps/ergon/ergon";

// A handler's error and progress as they may come: invalid bytes, a NUL, terminal escapes.
const std::string kDirty = "bad \xff byte, nul \0, \x1b[31mred\x1b[0m, \x1b]0;title\x07"s;
const std::string kClean = "bad \uFFFD byte, nul \uFFFD, \x1b[31mred\x1b[0m, \x1b]0;title\x07";

// No byte that a terminal acts on, and none that is not UTF-8, reaches the output.
void expect_printable(const std::string& out, const std::string& what) {
  for (char c : {'\x1b', '\x07', '\xff', '\0'}) {
    EXPECT_EQ(out.find(c), std::string::npos)
        << what << " prints byte " << (c & 0xFF) << ":\n"
        << nlohmann::json(out).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  }
}

// Enqueues a job on the database at `url` and fails it through the store, as a worker whose
// handler wrote `error` (and `progress`) would.
JobId fail_a_job(const std::string& url, const std::string& error,
                 const std::optional<std::string>& progress = std::nullopt) {
  auto store = open_store(url, {.migrate = false});
  JobId id = JobRunner(store).start_job_raw("t", "{}");
  EXPECT_EQ(store->job_claim({"w", 1, store->clock().now()}).size(), 1u);
  JobFinishParams f;
  f.id = id;
  f.attempt = 1;
  f.worker_id = "w";
  f.status = JobStatus::kFailed;
  f.now = store->clock().now();
  f.error_message = error;
  f.progress_message = progress;
  EXPECT_TRUE(store->job_finish(f));
  return id;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class CliTextTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "postgres") return;
    std::string server = pg_test_server_url();
    if (server.empty()) GTEST_SKIP() << kNoPostgres;
    schema_ = std::make_unique<PgTestSchema>(server);
    db_url_ = schema_->url();
  }
  ProcessResult ergon(std::vector<std::string> args) {
    args.insert(args.begin(), kErgon);
    return run_process(args, "", {"ERGON_DATABASE_URL="});
  }
  std::string db() { return db_url_.empty() ? "sqlite:" + dir_.file("jobs.db") : db_url_; }
  void migrate() { ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0); }

  TempDir dir_;
  std::string db_url_;
  std::unique_ptr<PgTestSchema> schema_;
};

TEST_P(CliTextTest, AHandlersErrorTextIsStoredAndShownTheSameOnBothStores) {
  migrate();
  const JobId id = fail_a_job(db(), kDirty, kDirty);
  auto list = ergon({"jobs", "list", "--json", "--db", db()});
  ASSERT_EQ(list.status, 0) << list.err;
  auto rows = nlohmann::json::parse(list.out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["error_message"], kClean);
  EXPECT_EQ(rows[0]["progress_message"], kClean);
  auto show = ergon({"jobs", "show", id.to_string(), "--json", "--db", db()});
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_EQ(nlohmann::json::parse(show.out)["error_message"], kClean);
  for (auto args :
       std::vector<std::vector<std::string>>{{"stats", "--json"}, {"queues", "list", "--json"}}) {
    args.insert(args.end(), {"--db", db()});
    auto r = ergon(args);
    EXPECT_EQ(r.status, 0) << args[0] << ": " << r.err;
    EXPECT_TRUE(nlohmann::json::accept(r.out)) << args[0];
  }

  // For a person, the escapes are shown, not acted on.
  auto human = ergon({"jobs", "show", id.to_string(), "--db", db()});
  ASSERT_EQ(human.status, 0) << human.err;
  expect_printable(human.out, "jobs show");
  EXPECT_NE(human.out.find("\\x1b[31mred\\x1b[0m, \\x1b]0;title\\x07"), std::string::npos)
      << human.out;
  auto table = ergon({"jobs", "list", "--db", db()});
  ASSERT_EQ(table.status, 0) << table.err;
  expect_printable(table.out, "jobs list");
}

TEST_P(CliTextTest, IdentifiersAndPayloadsAreRefusedTheSameOnBothStores) {
  migrate();
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"enqueue", "\x1b[2J", "{}"}, "job type must not contain control characters"},
      {{"enqueue", "t\xff", "{}"}, "job type is not valid UTF-8"},
      {{"enqueue", "t", "{}", "--queue", "q\x1b]0;x\x07"}, "queue name must not contain control"},
      {{"enqueue", "t", "{}", "--unique-key", "k\x9b"}, "unique_key is not valid UTF-8"},
      {{"enqueue", "t", "{}", "--group", "g\x1b"}, "group_key must not contain control"},
      {{"enqueue", "t", std::string(10000, '[') + std::string(10000, ']')},
       "nested more than 128 levels deep"},
      {{"enqueue", "t", R"({"a":"\u0000"})"}, "NUL character"},
      {{"schedules", "add", "s\x1b[2J", "t", "* * * * *"}, "schedule name must not contain"},
      {{"queues", "pause", "q\x1b[2J"}, "queue name must not contain control"},
  };
  for (auto& c : cases) {
    c.args.insert(c.args.end(), {"--db", db()});
    auto r = ergon(c.args);
    EXPECT_EQ(r.status, 1) << c.expect << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.expect << " | " << r.err;
  }
  auto list = ergon({"jobs", "list", "--json", "--db", db()});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, CliTextTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& p) { return p.param; });

class CliSqliteFileTest : public ::testing::Test {
 protected:
  ProcessResult ergon(std::vector<std::string> args, bool as_nobody = false) {
    args.insert(args.begin(), kErgon);
    // root reads and writes whatever the permissions say; the read-only tests run as nobody.
    if (as_nobody && geteuid() == 0) {
      args.insert(args.begin(),
                  {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"});
    }
    return run_process(args, "", {"ERGON_DATABASE_URL="});
  }
  std::string db() { return "sqlite:" + dir_.file("jobs.db"); }
  static std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
  }
  // Runs SQL on the file directly, as an older Ergon (or anything else) may have written it.
  void sql(const std::string& statement) {
    sqlite3* conn = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("jobs.db").c_str(), &conn), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(conn, statement.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(conn);
  }

  TempDir dir_;
};

const std::vector<std::vector<std::string>> kReadCommands = {
    {"jobs", "list"},
    {"jobs", "list", "--json"},
    {"stats"},
    {"stats", "--json"},
    {"queues", "list"},
    {"queues", "list", "--json"},
    {"workers", "list"},
    {"workers", "list", "--json"},
    {"schedules", "list"},
    {"schedules", "list", "--json"},
};

// Rows written before the text rule (or by hand) may hold anything: every read command still
// answers, JSON with U+FFFD for the bytes that are not UTF-8, tables with escapes.
TEST_F(CliSqliteFileTest, ReadCommandsAnswerOverTextStoredBeforeTheRule) {
  ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0);
  std::string id = trim(ergon({"enqueue", "t", "{}", "--db", db()}).out);
  ASSERT_EQ(ergon({"schedules", "add", "s", "t", "* * * * *", "--db", db()}).status, 0);
  const std::string bad = "'x\x1b[2J\xff\x07'";
  sql("UPDATE jobs SET job_type = " + bad + ", queue = " + bad + ", error_message = " + bad +
      ", progress_message = " + bad + ", worker_id = " + bad + ", status = 'Running'");
  sql("INSERT INTO workers (id, name, host, pid, started_at, heartbeat_at) SELECT " + bad + ", " +
      bad + ", " + bad + ", 1, created_at, created_at FROM jobs");
  sql("UPDATE scheduled_jobs SET name = " + bad + ", job_type = " + bad + ", queue = " + bad);
  const std::string replaced = "x\x1b[2J\uFFFD\x07";

  for (auto args : kReadCommands) {
    const bool json = args.back() == "--json";
    args.insert(args.end(), {"--db", db()});
    auto r = ergon(args);
    ASSERT_EQ(r.status, 0) << args[0] << " " << args[1] << ": " << r.err;
    if (json) {
      EXPECT_NE(r.out.find("\\u001b[2J\uFFFD\\u0007"), std::string::npos) << r.out;
      EXPECT_TRUE(nlohmann::json::accept(r.out)) << r.out;
    } else {
      expect_printable(r.out, args[0] + " " + args[1]);
    }
  }
  auto show = ergon({"jobs", "show", id, "--json", "--db", db()});
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_EQ(nlohmann::json::parse(show.out)["job_type"], replaced);
  auto human = ergon({"jobs", "show", id, "--db", db()});
  ASSERT_EQ(human.status, 0) << human.err;
  expect_printable(human.out, "jobs show");
  EXPECT_NE(human.out.find("x\\x1b[2J\\xff\\x07"), std::string::npos) << human.out;
}

// A failed job whose error text holds bytes that are not UTF-8 (written by an older Ergon, or
// by hand, past the store's own cleaning): `jobs show --json` and `jobs list --json` print valid
// JSON with each such byte replaced, as the dashboard does (both render through ops/render.h).
TEST_F(CliSqliteFileTest, JobsShowJsonPrintsAnErrorTextThatIsNotUtf8) {
  ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0);
  const JobId id = fail_a_job(db(), "exit 1");
  // "smtp \xff down \xc3( \xed\xa0\x80": a stray byte, a cut sequence, a surrogate.
  sql("UPDATE jobs SET error_message = CAST(X'736d747020ff20646f776e20c32820eda080' AS TEXT)");
  const std::string replaced = "smtp \uFFFD down \uFFFD( \uFFFD\uFFFD\uFFFD";

  auto show = ergon({"jobs", "show", id.to_string(), "--json", "--db", db()});
  ASSERT_EQ(show.status, 0) << show.err;
  auto job = nlohmann::json::parse(show.out);  // strict: throws on bytes that are not UTF-8
  EXPECT_EQ(job["error_message"], replaced);
  EXPECT_EQ(job["status"], "Failed");
  EXPECT_EQ(show.out.find('\xff'), std::string::npos) << show.out;

  auto list = ergon({"jobs", "list", "--json", "--db", db()});
  ASSERT_EQ(list.status, 0) << list.err;
  auto rows = nlohmann::json::parse(list.out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["id"], id.to_string());
  EXPECT_EQ(rows[0]["error_message"], replaced);

  // A person sees the stored bytes as escapes.
  auto human = ergon({"jobs", "show", id.to_string(), "--db", db()});
  ASSERT_EQ(human.status, 0) << human.err;
  EXPECT_NE(human.out.find("smtp \\xff down \\xc3( \\xed\\xa0\\x80"), std::string::npos)
      << human.out;
}

// A read command pointed at something that is not a database says so and creates nothing:
// not /dev/null-journal beside a device, not a journal beside a text file.
TEST_F(CliSqliteFileTest, ReadCommandsRefuseWhatIsNotADatabaseAndCreateNothing) {
  for (const char* junk : {"/dev/null-journal", "/dev/null-wal", "/dev/null-shm"}) {
    std::error_code ec;
    fs::remove(junk, ec);  // left by an earlier build that created them
  }
  std::ofstream(dir_.file("notes.txt")) << "not a database, just some words that go on a bit\n";
  fs::create_directory(dir_.file("dir"));
  const auto before = listing(dir_.path());
  struct Target {
    std::string url, expect;
  } targets[] = {
      {"sqlite:/dev/null", "is not a database file"},
      {"sqlite:" + dir_.file("dir"), "is not a database file"},
      {"sqlite:" + dir_.file("notes.txt"), "is not an SQLite database"},
  };
  for (const auto& t : targets) {
    for (auto args : kReadCommands) {
      args.insert(args.end(), {"--db", t.url});
      auto r = ergon(args);
      EXPECT_EQ(r.status, 1) << t.url << " " << args[0] << ": " << r.out << r.err;
      EXPECT_NE(r.err.find(t.expect), std::string::npos) << t.url << " | " << r.err;
    }
  }
  EXPECT_FALSE(fs::exists("/dev/null-journal"));
  EXPECT_FALSE(fs::exists("/dev/null-wal"));
  EXPECT_EQ(listing(dir_.path()), before);
  EXPECT_TRUE(listing(dir_.file("dir")).empty());
}

// A database its reader may not write (a read-only file, or a file in a read-only directory,
// as a backup or another user's database is) can still be listed, and nothing is created.
TEST_F(CliSqliteFileTest, AReadOnlyDatabaseCanBeListed) {
  ASSERT_EQ(ergon({"migrate", "--db", db()}).status, 0);
  std::string id = trim(ergon({"enqueue", "t", "{}", "--db", db()}).out);
  ASSERT_EQ(ergon({"schedules", "add", "s", "t", "* * * * *", "--db", db()}).status, 0);
  using fs::perms;
  struct Mode {
    perms file, dir;
  } modes[] = {
      // The read-only directories first: a -shm file left by a reader before them would let
      // them pass even if a reader there tried to create one.
      {perms::owner_read | perms::owner_write | perms::group_read | perms::others_read,
       perms::owner_read | perms::owner_exec | perms::group_read | perms::group_exec |
           perms::others_read | perms::others_exec},
      {perms::owner_read | perms::group_read | perms::others_read,
       perms::owner_read | perms::owner_exec | perms::group_read | perms::group_exec |
           perms::others_read | perms::others_exec},
      {perms::owner_read | perms::group_read | perms::others_read, perms::all},
  };
  for (const auto& m : modes) {
    fs::permissions(dir_.file("jobs.db"), m.file);
    fs::permissions(dir_.path(), m.dir);
    const auto before = listing(dir_.path());
    for (auto args : kReadCommands) {
      args.insert(args.end(), {"--db", db()});
      auto r = ergon(args, true);
      EXPECT_EQ(r.status, 0) << args[0] << " " << args[1] << ": " << r.err;
    }
    auto list = ergon({"jobs", "list", "--json", "--db", db()}, true);
    ASSERT_EQ(list.status, 0) << list.err;
    EXPECT_EQ(nlohmann::json::parse(list.out).size(), 1u);
    auto show = ergon({"jobs", "show", id, "--db", db()}, true);
    EXPECT_EQ(show.status, 0) << show.err;
    EXPECT_EQ(listing(dir_.path()), before);
    // Writing is refused with an error, not a crash.
    auto write = ergon({"enqueue", "t", "{}", "--db", db()}, true);
    EXPECT_EQ(write.status, 1) << write.err;
  }
  fs::permissions(dir_.path(), perms::owner_all);
}

}  // namespace
}  // namespace ergon::testing
