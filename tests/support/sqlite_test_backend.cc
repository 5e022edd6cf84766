// The SQLite backend of the tests (support/test_backend.h): files in the test's TempDir.
#include <sqlite3.h>

#include "store/sqlite/sqlite_migrations.h"
#include "support/test_backend.h"

namespace ergon::testing {
namespace {

class SqliteAppConnection final : public AppConnection {
 public:
  explicit SqliteAppConnection(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    // The store's connections (a worker's among them) may be writing.
    sqlite3_busy_timeout(db_, 10000);
  }
  ~SqliteAppConnection() override { sqlite3_close(db_); }
  SqliteAppConnection(const SqliteAppConnection&) = delete;
  SqliteAppConnection& operator=(const SqliteAppConnection&) = delete;

  bool exec(const std::string& sql) override {
    char* err = nullptr;
    bool ok = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK;
    last_error_ = ok ? "" : (err ? err : sqlite3_errmsg(db_));
    sqlite3_free(err);
    return ok;
  }
  std::string value(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(s, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
    } else if (rc != SQLITE_DONE) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(s);
    return out;
  }
  bool begin() override { return exec("BEGIN IMMEDIATE"); }
  bool in_transaction() override { return sqlite3_get_autocommit(db_) == 0; }
  sqlite3* sqlite() override { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteBackend final : public TestBackend {
 public:
  explicit SqliteBackend(const TempDir& dir) : dir_(dir) {}
  std::string url(const std::string& db) override { return sqlite_url(dir_, db + ".db"); }
  std::unique_ptr<AppConnection> connect(const std::string& db) override {
    return std::make_unique<SqliteAppConnection>(dir_.file(db + ".db"));
  }
  bool notifies_on_commit() const override { return false; }
  bool wait_listening(Store&) override { return true; }
  std::size_t migration_count() const override { return sqlite::migrations().size(); }
  void migrate_through(int version, const std::string& db) override {
    auto app = connect(db);
    auto exec = [&](const std::string& sql) { ASSERT_TRUE(app->exec(sql)) << app->last_error(); };
    exec("CREATE TABLE ergon_schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)");
    for (const auto& m : sqlite::migrations()) {
      if (m.version > version) break;
      exec(m.sql);
      exec("INSERT INTO ergon_schema_migrations VALUES (" + std::to_string(m.version) + ", 'x')");
    }
  }

 private:
  const TempDir& dir_;
};

}  // namespace

StoreBackend sqlite_backend() {
  return {"sqlite", [](const TempDir& dir) -> std::unique_ptr<TestBackend> {
            return std::make_unique<SqliteBackend>(dir);
          }};
}

}  // namespace ergon::testing
