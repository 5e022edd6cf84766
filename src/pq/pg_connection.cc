#include "pq/pg_connection.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace ergon::pq {
namespace {

void log_notice(void*, const char* message) {
  spdlog::debug("postgresql: {}", pg_one_line(message));
}

// PostgreSQL's binary timestamps count microseconds from 2000-01-01T00:00:00Z.
constexpr std::int64_t kPgEpochUnixSeconds = 946684800;

const char* value(const PGresult* r, int row, int col, int expected_size) {
  if (PQgetisnull(r, row, col)) throw Error(ErrorCode::kStore, "unexpected NULL in the database");
  if (expected_size >= 0 && PQgetlength(r, row, col) != expected_size) {
    throw Error(ErrorCode::kStore, "malformed binary value from the database");
  }
  return PQgetvalue(r, row, col);
}

std::uint32_t be32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}

std::uint64_t be64(const char* p) {
  return (static_cast<std::uint64_t>(be32(p)) << 32) | be32(p + 4);
}

}  // namespace

std::string pg_one_line(const char* msg) {
  std::string s;
  for (const char* p = msg ? msg : ""; *p != '\0'; ++p) {
    bool space = *p == '\n' || *p == '\t' || *p == ' ';
    if (space && (s.empty() || s.back() == ' ')) continue;
    s += space ? ' ' : *p;
  }
  if (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

ConnKeywords::ConnKeywords(const ConnParams& params) {
  for (const auto& [k, v] : params) {
    keys_.push_back(k.c_str());
    values_.push_back(v.c_str());
  }
  keys_.push_back(nullptr);
  values_.push_back(nullptr);
}

PgConnPtr pg_connect(const ConnParams& params) {
  ConnKeywords keywords(params);
  PgConnPtr conn(PQconnectdbParams(keywords.keys(), keywords.values(), 0));
  if (!conn) throw Error(ErrorCode::kStore, "postgresql: out of memory while connecting");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string msg = pg_one_line(PQerrorMessage(conn.get()));
    bool missing_db = msg.find("database \"") != std::string::npos &&
                      msg.find("does not exist") != std::string::npos;
    throw Error(missing_db ? ErrorCode::kNotFound : ErrorCode::kStore,
                "postgresql: cannot connect: " + msg);
  }
  PQsetNoticeProcessor(conn.get(), log_notice, nullptr);
  return conn;
}

bool pg_connection_lost(PGconn* conn, const PGresult* r) {
  if (conn == nullptr || PQstatus(conn) == CONNECTION_BAD || r == nullptr) return true;
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  // No SQLSTATE: libpq itself failed (socket error, protocol trouble): the connection cannot be
  // trusted. Class 08 is "connection exception"; 57P01-57P03 are the server shutting down or
  // refusing (admin_shutdown, crash_shutdown, cannot_connect_now).
  if (state == nullptr) return true;
  std::string_view s(state);
  return s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03";
}

void pg_throw(PGconn* conn, const PGresult* r, std::string_view what) {
  std::string msg;
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (r && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) {
    msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) {
      msg += std::string(" (") + detail + ")";
    }
  } else {
    msg = pg_one_line(conn ? PQerrorMessage(conn) : "no connection");
  }
  std::string full = "postgresql: " + std::string(what) + ": " + msg;
  if (state) {
    std::string_view s(state);
    // undefined_table, invalid_schema_name: the schema was never created on this database.
    if (s == "42P01" || s == "3F000")
      throw Error(ErrorCode::kSchema, full + " (run `ergon migrate`)");
  }
  if (pg_connection_lost(conn, r)) full += " (connection lost; reconnecting on the next call)";
  throw Error(ErrorCode::kStore, full);
}

PgParams& PgParams::text(std::string_view v) {
  if (v.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument, "text for PostgreSQL contains a NUL byte");
  }
  values_.emplace_back(std::string(v));
  return *this;
}

PgParams& PgParams::text(const std::optional<std::string>& v) {
  if (!v) return null();
  return text(std::string_view(*v));
}

PgParams& PgParams::integer(std::int64_t v) {
  values_.emplace_back(std::to_string(v));
  return *this;
}

PgParams& PgParams::integer(std::optional<int> v) {
  if (!v) return null();
  return integer(static_cast<std::int64_t>(*v));
}

PgParams& PgParams::boolean(bool v) {
  values_.emplace_back(v ? "t" : "f");
  return *this;
}

PgParams& PgParams::time(TimePoint t) {
  values_.emplace_back(format_timestamp(t));
  return *this;
}

PgParams& PgParams::null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

PgParams& PgParams::text_list(std::span<const std::string> values) {
  PgArray a;
  for (const auto& v : values) a.add(v);
  return text(a.str());
}

PgArray& PgArray::add(std::string_view element) {
  if (!body_.empty()) body_ += ',';
  body_ += '"';
  for (char c : element) {
    if (c == '"' || c == '\\') body_ += '\\';
    body_ += c;
  }
  body_ += '"';
  return *this;
}

PgArray& PgArray::null() {
  if (!body_.empty()) body_ += ',';
  body_ += "NULL";
  return *this;
}

const char* const* PgParams::values() const {
  pointers_.clear();
  for (const auto& v : values_) pointers_.push_back(v ? v->c_str() : nullptr);
  return pointers_.data();
}

PgConnection::PgConnection(PgConnPtr conn)
    : conn_(std::move(conn)), pid_(PQbackendPID(conn_.get())) {}

void PgConnection::fail(const PGresult* r, std::string_view what) {
  if (pg_connection_lost(conn_.get(), r)) broken_ = true;
  pg_throw(conn_.get(), r, what);
}

PgResult PgConnection::check(PgResult r, std::string_view what) {
  if (!r) fail(nullptr, what);
  auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(r.get(), what);
  return r;
}

PgResult PgConnection::run(const PgStatement& st, const PgParams& params, Format format) {
  for (int tries = 0;; ++tries) {
    if (!prepared_.contains(st.name)) {
      check(PgResult(PQprepare(conn_.get(), st.name.c_str(), st.sql.c_str(), 0, nullptr)),
            "prepare " + st.name);
      prepared_.insert(st.name);
    }
    PgResult r(PQexecPrepared(conn_.get(), st.name.c_str(), params.size(), params.values(), nullptr,
                              nullptr, static_cast<int>(format)));
    // 26000 invalid_sql_statement_name: something (DISCARD ALL, a pooler) dropped the
    // session's prepared statements. Prepare again, once.
    if (r && tries == 0 && PQresultStatus(r.get()) == PGRES_FATAL_ERROR) {
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      if (state && std::string_view(state) == "26000" &&
          PQtransactionStatus(conn_.get()) == PQTRANS_IDLE) {
        prepared_.clear();
        continue;
      }
    }
    return check(std::move(r), st.name);
  }
}

PgResult PgConnection::exec(const std::string& sql, const PgParams& params, Format format) {
  return check(PgResult(PQexecParams(conn_.get(), sql.c_str(), params.size(), nullptr,
                                     params.values(), nullptr, nullptr, static_cast<int>(format))),
               "statement");
}

void PgConnection::exec_script(const std::string& sql) {
  check(PgResult(PQexec(conn_.get(), sql.c_str())), "statement");
}

void PgConnection::copy_in(const std::string& copy_sql, std::string_view data) {
  PgResult start(PQexec(conn_.get(), copy_sql.c_str()));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN) fail(start.get(), "copy");
  constexpr std::size_t kChunk = 256 * 1024;
  bool sent = true;
  for (std::size_t off = 0; off < data.size() && sent; off += kChunk) {
    auto n = std::min(kChunk, data.size() - off);
    sent = PQputCopyData(conn_.get(), data.data() + off, static_cast<int>(n)) == 1;
  }
  if (!sent || PQputCopyEnd(conn_.get(), nullptr) != 1) {
    broken_ = true;
    pg_throw(conn_.get(), nullptr, "copy");
  }
  // The COPY's outcome, then the end of the results (always drain them all).
  PgResult outcome(PQgetResult(conn_.get()));
  while (PgResult extra{PQgetResult(conn_.get())}) {
  }
  check(std::move(outcome), "copy");
}

void PgConnection::rollback() noexcept {
  if (PQtransactionStatus(conn_.get()) == PQTRANS_IDLE) return;
  PgResult r(PQexec(conn_.get(), "ROLLBACK"));
  if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) broken_ = true;
}

namespace pgbin {

bool is_null(const PGresult* r, int row, int col) { return PQgetisnull(r, row, col) != 0; }

std::string text(const PGresult* r, int row, int col) {
  const char* p = value(r, row, col, -1);
  return std::string(p, static_cast<std::size_t>(PQgetlength(r, row, col)));
}

std::optional<std::string> opt_text(const PGresult* r, int row, int col) {
  if (is_null(r, row, col)) return std::nullopt;
  return text(r, row, col);
}

std::int32_t int4(const PGresult* r, int row, int col) {
  return static_cast<std::int32_t>(be32(value(r, row, col, 4)));
}

std::optional<int> opt_int4(const PGresult* r, int row, int col) {
  if (is_null(r, row, col)) return std::nullopt;
  return int4(r, row, col);
}

std::int64_t int8(const PGresult* r, int row, int col) {
  return static_cast<std::int64_t>(be64(value(r, row, col, 8)));
}

bool boolean(const PGresult* r, int row, int col) { return value(r, row, col, 1)[0] != 0; }

TimePoint timestamptz(const PGresult* r, int row, int col) {
  auto us = static_cast<std::int64_t>(be64(value(r, row, col, 8)));
  // 'infinity' and '-infinity' are the extreme values; Ergon never writes them.
  if (us == INT64_MAX || us == INT64_MIN) {
    throw Error(ErrorCode::kStore, "infinite timestamp in the database");
  }
  using namespace std::chrono;
  return TimePoint(
      duration_cast<TimePoint::duration>(seconds(kPgEpochUnixSeconds) + microseconds(us)));
}

std::optional<TimePoint> opt_timestamptz(const PGresult* r, int row, int col) {
  if (is_null(r, row, col)) return std::nullopt;
  return timestamptz(r, row, col);
}

JobId uuid(const PGresult* r, int row, int col) {
  const char* p = value(r, row, col, 16);
  std::array<std::uint8_t, 16> bytes;
  std::memcpy(bytes.data(), p, 16);
  return JobId(bytes);
}

std::optional<JobId> opt_uuid(const PGresult* r, int row, int col) {
  if (is_null(r, row, col)) return std::nullopt;
  return uuid(r, row, col);
}

std::string jsonb(const PGresult* r, int row, int col) {
  const char* p = value(r, row, col, -1);
  int len = PQgetlength(r, row, col);
  // Binary jsonb is a version byte (1) followed by the JSON text.
  if (len < 1 || p[0] != 1) throw Error(ErrorCode::kStore, "unknown jsonb format version");
  return compact_json(std::string_view(p + 1, static_cast<std::size_t>(len - 1)));
}

std::vector<std::string> text_array(const PGresult* r, int row, int col) {
  // Binary arrays (array_send): the number of dimensions, a has-NULLs flag and the element
  // type's oid; per dimension its length and lower bound; then each element as a length
  // (-1: NULL) and its bytes. An empty array has no dimensions.
  const char* p = value(r, row, col, -1);
  const auto len = static_cast<std::size_t>(PQgetlength(r, row, col));
  auto malformed = [] { return Error(ErrorCode::kStore, "malformed array from the database"); };
  std::size_t at = 0;
  auto next_int = [&] {
    if (at + 4 > len) throw malformed();
    auto v = static_cast<std::int32_t>(be32(p + at));
    at += 4;
    return v;
  };
  const std::int32_t dims = next_int();
  next_int();  // has NULLs
  next_int();  // element type
  std::vector<std::string> out;
  if (dims == 0) return out;
  if (dims != 1) throw malformed();
  const std::int32_t n = next_int();
  next_int();  // lower bound
  if (n < 0) throw malformed();
  out.reserve(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    const std::int32_t size = next_int();
    if (size < 0 || at + static_cast<std::size_t>(size) > len) throw malformed();
    out.emplace_back(p + at, static_cast<std::size_t>(size));
    at += static_cast<std::size_t>(size);
  }
  return out;
}

}  // namespace pgbin

std::string compact_json(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      out += c;
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    if (c == '"') in_string = true;
    out += c;
  }
  return out;
}

}  // namespace ergon::pq
