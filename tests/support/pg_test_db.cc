#include "support/pg_test_db.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

namespace ergon::testing {

std::string pg_test_server_url() {
  const char* url = std::getenv("ERGON_TEST_POSTGRES_URL");
  return url ? url : "";
}

std::string pg_random_schema() {
  std::random_device rd;
  std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  char buf[24];
  std::snprintf(buf, sizeof buf, "t_%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string pg_url_with(const std::string& url, const std::string& param) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

void pg_drop_schema(const std::string& server_url, const std::string& schema) {
  PgTestConnection conn(server_url);
  if (conn.get() == nullptr) return;
  char* quoted = PQescapeIdentifier(conn.get(), schema.data(), schema.size());
  if (quoted == nullptr) return;
  std::string sql = std::string("DROP SCHEMA IF EXISTS ") + quoted + " CASCADE";
  PQfreemem(quoted);
  EXPECT_TRUE(conn.exec(sql)) << conn.last_error();
}

PgTestConnection::PgTestConnection(const std::string& url) {
  conn_ = PQconnectdb(url.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to " << url << ": " << PQerrorMessage(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    return;
  }
  // "drop cascades to ..." and friends are not news in a test log.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

PgTestConnection::~PgTestConnection() {
  if (conn_) PQfinish(conn_);
}

bool PgTestConnection::exec(const std::string& sql) {
  if (conn_ == nullptr) return false;
  PGresult* r = PQexec(conn_, sql.c_str());
  auto status = PQresultStatus(r);
  bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  last_error_ = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  return ok;
}

std::vector<std::vector<std::optional<std::string>>> PgTestConnection::query(
    const std::string& sql) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (conn_ == nullptr) return rows;
  PGresult* r = PQexec(conn_, sql.c_str());
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
  } else {
    for (int i = 0; i < PQntuples(r); ++i) {
      auto& row = rows.emplace_back();
      for (int c = 0; c < PQnfields(r); ++c) {
        if (PQgetisnull(r, i, c)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(PQgetvalue(r, i, c));
        }
      }
    }
  }
  PQclear(r);
  return rows;
}

std::string PgTestConnection::value(const std::string& sql) {
  auto rows = query(sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0]) return "";
  return *rows[0][0];
}

PgTestSchema::PgTestSchema(std::string server_url)
    : server_url_(std::move(server_url)), name_(pg_random_schema()) {}

PgTestSchema::~PgTestSchema() { pg_drop_schema(server_url_, name_); }

}  // namespace ergon::testing
