// pq/pg_connection.h — libpq with RAII: results, connections, prepared statements, statement
// parameters, and decoding of binary result columns. A leaf module: the PostgreSQL store and the
// transport's listener and waker use it; it uses nothing else of Ergon's but its public headers.
//
// PgConnection owns one PGconn and the names of the statements prepared on it (PQprepare once
// per connection, then PQexecPrepared). Parameters travel as text, results come back in binary
// format: binary timestamps are exact integers (no DateStyle or TimeZone settings to depend
// on) and uuids are their 16 bytes.
//
// Errors: every failure throws ergon::Error. kSchema when a table or the schema is missing
// ("run `ergon migrate`"), kStore otherwise. A failure that means the connection itself is gone
// (lost socket, server shutdown, SQLSTATE class 08) also marks the PgConnection broken, so that
// the pool discards it instead of handing it out again.
//
// Thread-safety: a PgConnection is used by one thread at a time (the pool hands it out).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ergon/error.h"
#include "ergon/types.h"

namespace ergon::pq {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

// libpq connection parameters (keyword, value), in the order PQconnectdbParams takes them; a
// later keyword overrides an earlier one.
using ConnParams = std::vector<std::pair<std::string, std::string>>;

// The two NULL-terminated arrays (keywords, values) that PQconnectdbParams and
// PQconnectStartParams take, pointing into `params`, which must outlive them.
class ConnKeywords {
 public:
  explicit ConnKeywords(const ConnParams& params);
  [[nodiscard]] const char* const* keys() const { return keys_.data(); }
  [[nodiscard]] const char* const* values() const { return values_.data(); }

 private:
  std::vector<const char*> keys_;
  std::vector<const char*> values_;
};

// Opens a connection (blocking, bounded by connect_timeout). Notices (e.g. "relation already
// exists, skipping") go to the debug log instead of stderr. Throws Error(kNotFound) when the
// database does not exist, Error(kStore) for any other failure.
PgConnPtr pg_connect(const ConnParams& params);

// A libpq message (which ends in a newline and may span lines) as one line.
std::string pg_one_line(const char* msg);

// True when a failed call means the connection is unusable, not just that one statement failed.
bool pg_connection_lost(PGconn* conn, const PGresult* r);

// Throws the Error for a failed call (r may be null): kSchema for a missing table or schema,
// kStore otherwise.
[[noreturn]] void pg_throw(PGconn* conn, const PGresult* r, std::string_view what);

enum class Format { kText = 0, kBinary = 1 };

// An array literal ({"a","b\"c",NULL}), element by element: each one quoted (a backslash
// before each " and \ in it), so that any text (a comma, a brace, the word NULL) is one
// element. Numbers and timestamps go in as their text.
class PgArray {
 public:
  PgArray& add(std::string_view element);
  PgArray& null();
  [[nodiscard]] std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

// Statement parameters, all sent as text (PostgreSQL casts them to the column types).
class PgParams {
 public:
  // Throws Error(kInvalidArgument) for a NUL byte: PostgreSQL text cannot hold one, and a C
  // string would silently cut the value there.
  PgParams& text(std::string_view v);
  PgParams& text(const std::string& v) { return text(std::string_view(v)); }
  PgParams& text(const char* v) { return text(std::string_view(v)); }
  PgParams& text(const std::optional<std::string>& v);
  PgParams& integer(std::int64_t v);
  PgParams& integer(std::optional<int> v);
  PgParams& boolean(bool v);
  PgParams& time(TimePoint t);  // ISO-8601 UTC with microseconds
  PgParams& null();
  // A text[] (or varchar[]) literal of `values` (PgArray).
  PgParams& text_list(std::span<const std::string> values);

  [[nodiscard]] int size() const { return static_cast<int>(values_.size()); }
  [[nodiscard]] const char* const* values() const;

 private:
  std::vector<std::optional<std::string>> values_;
  mutable std::vector<const char*> pointers_;
};

// A named statement, prepared on each connection the first time it runs there.
struct PgStatement {
  std::string name;
  std::string sql;
};

class PgConnection {
 public:
  explicit PgConnection(PgConnPtr conn);

  [[nodiscard]] PGconn* get() const { return conn_.get(); }
  // The server process serving this connection (kept after the connection is lost).
  [[nodiscard]] int backend_pid() const { return pid_; }
  // Lost, or left in a state that cannot be trusted: the pool closes it instead of reusing it.
  [[nodiscard]] bool broken() const { return broken_ || PQstatus(conn_.get()) != CONNECTION_OK; }

  // Runs `st` (preparing it on this connection first if needed).
  PgResult run(const PgStatement& st, const PgParams& params, Format format = Format::kBinary);
  // Runs `sql` unprepared, with parameters (one statement).
  PgResult exec(const std::string& sql, const PgParams& params, Format format = Format::kBinary);
  // Runs `sql` unprepared, without parameters (may hold several statements).
  void exec_script(const std::string& sql);
  // COPY ... FROM STDIN with `data` in COPY's text format.
  void copy_in(const std::string& copy_sql, std::string_view data);
  // Ends whatever transaction is open; on failure the connection is marked broken.
  void rollback() noexcept;

 private:
  [[noreturn]] void fail(const PGresult* r, std::string_view what);
  PgResult check(PgResult r, std::string_view what);

  PgConnPtr conn_;
  int pid_;
  std::set<std::string, std::less<>> prepared_;
  bool broken_ = false;
};

// Decoding of binary-format result columns. All throw Error(kStore) on a malformed value.
namespace pgbin {
bool is_null(const PGresult* r, int row, int col);
std::string text(const PGresult* r, int row, int col);
std::optional<std::string> opt_text(const PGresult* r, int row, int col);
std::int32_t int4(const PGresult* r, int row, int col);
std::optional<int> opt_int4(const PGresult* r, int row, int col);
std::int64_t int8(const PGresult* r, int row, int col);
bool boolean(const PGresult* r, int row, int col);
TimePoint timestamptz(const PGresult* r, int row, int col);
std::optional<TimePoint> opt_timestamptz(const PGresult* r, int row, int col);
JobId uuid(const PGresult* r, int row, int col);
std::optional<JobId> opt_uuid(const PGresult* r, int row, int col);
// jsonb as compact JSON text (see compact_json).
std::string jsonb(const PGresult* r, int row, int col);
// A one-dimensional text[] (or varchar[]) without NULL elements.
std::vector<std::string> text_array(const PGresult* r, int row, int col);
}  // namespace pgbin

// JSON text without the whitespace between tokens. jsonb prints `{"n": 1}`; Ergon hands out
// `{"n":1}`, as the caller wrote it (key order stays jsonb's own).
std::string compact_json(std::string_view json);

}  // namespace ergon::pq
