// The PostgreSQL backend of the tests (support/test_backend.h): one schema per database name
// on the ERGON_TEST_POSTGRES_URL server, dropped with the backend.
#include <map>
#include <mutex>

#include "store/postgres/pg_migrations.h"
#include "store/postgres/postgres_store.h"
#include "support/pg_test_db.h"
#include "support/test_backend.h"

namespace ergon::testing {
namespace {

class PgAppConnection final : public AppConnection {
 public:
  PgAppConnection(const std::string& server, const std::string& schema) : conn_(server) {
    if (conn_.get() == nullptr) return;
    char* quoted = PQescapeIdentifier(conn_.get(), schema.data(), schema.size());
    EXPECT_TRUE(conn_.exec(std::string("SET search_path TO ") + quoted)) << conn_.last_error();
    PQfreemem(quoted);
  }
  bool exec(const std::string& sql) override {
    bool ok = conn_.exec(sql);
    last_error_ = conn_.last_error();
    return ok;
  }
  std::string value(const std::string& sql) override { return conn_.value(sql); }
  bool begin() override { return exec("BEGIN"); }
  bool in_transaction() override { return PQtransactionStatus(conn_.get()) == PQTRANS_INTRANS; }
  pg_conn* postgres() override { return conn_.get(); }

 private:
  PgTestConnection conn_;
};

class PgBackend final : public TestBackend {
 public:
  explicit PgBackend(std::string server) : server_(std::move(server)) {}
  ~PgBackend() override {
    for (const auto& [db, schema] : schemas_) pg_drop_schema(server_, schema);
  }
  PgBackend(const PgBackend&) = delete;
  PgBackend& operator=(const PgBackend&) = delete;

  std::string url(const std::string& db) override {
    return pg_url_with(server_, "schema=" + schema(db));
  }
  std::unique_ptr<AppConnection> connect(const std::string& db) override {
    return std::make_unique<PgAppConnection>(server_, schema(db));
  }
  bool notifies_on_commit() const override { return true; }
  bool wait_listening(Store& store) override {
    auto* pg = dynamic_cast<postgres::PostgresStore*>(&store);
    return pg != nullptr && pg->listener_wait_ready(std::chrono::seconds(30));
  }
  std::size_t migration_count() const override { return postgres::migrations().size(); }
  void migrate_through(int version, const std::string& db) override {
    PgTestConnection conn(server_);
    const std::string name = schema(db);
    char* quoted = PQescapeIdentifier(conn.get(), name.data(), name.size());
    const std::string schema_sql_name = quoted;
    PQfreemem(quoted);
    auto exec = [&](const std::string& sql) { ASSERT_TRUE(conn.exec(sql)) << conn.last_error(); };
    exec("CREATE SCHEMA " + schema_sql_name);
    exec("CREATE TABLE " + schema_sql_name +
         ".ergon_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT "
         "NULL)");
    for (const auto& m : postgres::migrations()) {
      if (m.version > version) break;
      exec(postgres::schema_sql(m.sql, schema_sql_name));
      exec("INSERT INTO " + schema_sql_name + ".ergon_schema_migrations VALUES (" +
           std::to_string(m.version) + ", now())");
    }
  }

 private:
  std::string schema(const std::string& db) {
    std::lock_guard lock(mu_);
    auto [it, fresh] = schemas_.try_emplace(db);
    if (fresh) it->second = pg_random_schema();
    return it->second;
  }

  const std::string server_;
  std::mutex mu_;
  std::map<std::string, std::string> schemas_;  // database name → schema; guarded by mu_
};

}  // namespace

StoreBackend postgres_backend() {
  return {"postgres", [](const TempDir&) -> std::unique_ptr<TestBackend> {
            std::string server = pg_test_server_url();
            if (server.empty()) {
              []() { GTEST_SKIP() << kNoPostgres; }();
              return nullptr;
            }
            return std::make_unique<PgBackend>(server);
          }};
}

}  // namespace ergon::testing
