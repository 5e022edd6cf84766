// store/postgres/postgres_internal.h — what the PostgreSQL store's noun files share: the libpq
// helpers by their short names, the Row that store/rows.h reads records from, the statement
// tables, and the SQL fragments and parameter helpers that more than one noun uses. Private to
// src/store/postgres/.
//
// Statement text: each noun's file writes its SQL as raw string literals that name the schema
// @SCHEMA@, as the migrations do, and the parts that depend on the store's clock (see "Time" in
// postgres_store.h) as named holes such as @NOW@. SqlContext fills the holes and then the
// schema, once: for a noun's table when the store is built, for an operator's statement (whose
// shape depends on the filter) when it is called. A table's PgStatements are prepared on each
// connection the first time they run there (PgConnection::run); its plain strings run
// unprepared.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pq/pg_connection.h"
#include "store/params.h"
#include "store/postgres/postgres_store.h"
#include "store/rows.h"

namespace ergon::postgres {

using pq::Format;
using pq::PgConnection;
using pq::PgParams;
using pq::PgResult;
using pq::PgStatement;
namespace pgbin = pq::pgbin;

// Named holes of a statement (@NAME@) and the SQL that fills each.
using Holes = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// `raw` with each hole filled, in the order given: a hole's SQL may hold later holes, and
// @SCHEMA@, which is left for SqlContext::text.
std::string fill(std::string_view raw, Holes holes);

// What statement text is completed with: the store's schema and its clock rule.
struct SqlContext {
  std::string schema;  // quoted (PQescapeIdentifier)
  bool db_clock;       // "Time" in postgres_store.h

  // `raw` with its holes filled, then every @SCHEMA@; the schema last and once, since its
  // name may hold anything, a hole's name included.
  [[nodiscard]] std::string text(std::string_view raw, Holes holes = {}) const;
  [[nodiscard]] PgStatement statement(std::string name, std::string_view raw,
                                      Holes holes = {}) const {
    return {std::move(name), text(raw, holes)};
  }
  // A time the store writes: parameter $t as given on an injected clock; on the database
  // clock, `base` (the server's now) plus how far $t was from the caller's own now $n.
  [[nodiscard]] std::string time(std::string_view base, int t, int n) const;
  // The caller's now, parameter $n; on the database clock the server's now().
  [[nodiscard]] std::string now(int n) const { return time("now()", n, n); }
  // The condition "this heartbeat is stale": older than $t (on the database clock, taken
  // relative to the caller's now $n), and, on the database clock, not within that threshold of
  // a server restart: every heartbeat looks old right after an outage, and the workers need one
  // heartbeat interval to renew theirs. A worker that really died meanwhile waits at most one
  // more threshold.
  [[nodiscard]] std::string heartbeat_stale(int t, int n) const;
};

// A row of a binary-format result, read column by column (the Row of store/rows.h).
class Row {
 public:
  Row(const PGresult* r, int row) : r_(r), row_(row) {}

  bool skip_null() {
    if (!pgbin::is_null(r_, row_, col_)) return false;
    ++col_;
    return true;
  }
  std::string text() { return pgbin::text(r_, row_, col_++); }
  std::string json() { return pgbin::jsonb(r_, row_, col_++); }
  std::vector<std::string> text_list() { return pgbin::text_array(r_, row_, col_++); }
  int int32() { return pgbin::int4(r_, row_, col_++); }
  std::int64_t int64() { return pgbin::int8(r_, row_, col_++); }
  bool boolean() { return pgbin::boolean(r_, row_, col_++); }
  TimePoint time() { return pgbin::timestamptz(r_, row_, col_++); }
  // 16 bytes: no text that could fail to parse.
  JobId uuid(std::string_view /*what*/) { return pgbin::uuid(r_, row_, col_++); }

 private:
  const PGresult* r_;
  int row_;
  int col_ = 0;
};

// Every row of `r`, each read by `read` (a reader of store/rows.h).
template <class Read>
auto read_rows(const PgResult& r, Read read) {
  std::vector<std::invoke_result_t<Read, Row>> out;
  const int rows = PQntuples(r.get());
  out.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) out.push_back(read(Row(r.get(), i)));
  return out;
}

// The first row of `r`, if any, read by `read`.
template <class Read>
auto read_first(const PgResult& r, Read read) {
  std::optional<std::invoke_result_t<Read, Row>> out;
  if (PQntuples(r.get()) > 0) out = read(Row(r.get(), 0));
  return out;
}

// A list of columns of store/rows.h ("id, job_type, ..."), each prefixed (e.g. "j.").
std::string columns(std::string_view list, std::string_view prefix = "");

// A notification's payload: the due time, ISO-8601 UTC with microseconds — what
// parse_timestamp reads, and what a person running LISTEN in psql can read too.
inline constexpr std::string_view kRunAtPayload =
    R"sql(to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))sql";

void require_no_nul(std::string_view v, std::string_view what);

// Refuses a caller's connection that is not inside an open transaction: writing on it would
// commit at once (autocommit), which is exactly what a transactional twin must not do.
void require_transaction(PGconn* conn, std::string_view call);

// Runs `sql` unprepared on the caller's connection: a prepared statement would outlive the call
// on a connection Ergon does not own.
PgResult exec_on_caller(PGconn* conn, const std::string& sql, const PgParams& params,
                        std::string_view what);

// Runs `body` on `conn` between `begin` and COMMIT; if anything throws, rolls back (a
// connection that cannot be rolled back is marked broken) and rethrows.
template <class Body>
void transaction(PgConnection& conn, Body&& body, const std::string& begin = "BEGIN") {
  conn.exec_script(begin);
  try {
    body();
    conn.exec_script("COMMIT");
  } catch (...) {
    conn.rollback();
    throw;
  }
}

// Throws Error(kInvalidArgument) unless an operator's listing asks for 1 to 10000 rows.
void check_limit(int limit);

// A statement's parameters and the $n placeholders that name them, numbered as they are added.
class Params {
 public:
  std::string add_text(std::string_view v) {
    params_.text(v);
    return next();
  }
  std::string add_time(TimePoint t) {
    params_.time(t);
    return next() + "::timestamptz";
  }
  std::string add_integer(std::int64_t v) {
    params_.integer(v);
    return next() + "::bigint";
  }
  [[nodiscard]] const PgParams& params() const { return params_; }

 private:
  // Built by appending: g++ 12 -O3 warns (falsely, -Wstringop-overflow) on "$" + to_string().
  std::string next() {
    std::string placeholder = "$";
    placeholder += std::to_string(params_.size());
    return placeholder;
  }
  PgParams params_;
};

// The conditions of a JobFilter (limit aside) on the jobs row `t`, ANDed; "true" when none
// (postgres_store.cc, which says which index serves what).
std::string filter_sql(const JobFilter& f, Params& p, std::string_view t = "");

// FNV-1a, for names derived from the schema (the channel, the migration lock).
std::uint64_t fnv1a(std::string_view s);

// The statement tables, one per noun, each built in its noun's file.

struct EnqueueStatements {
  explicit EnqueueStatements(const SqlContext& sql);
  PgStatement insert;         // one job, with its pg_notify unless $15 says not (the waker's)
  PgStatement unique_holder;  // the job that holds a unique key
  std::string insert_tx;      // unprepared, on the caller's connection
  std::string copy;           // COPY ... FROM STDIN for job_insert_many
};

struct ClaimStatements {
  explicit ClaimStatements(const SqlContext& sql);
  PgStatement fair, fair_renew, plain, plain_renew;  // job_claim (renew: the worker's heartbeat)
  PgStatement by_id;                                 // job_claim_id
  // One limited type's claim (claim_type), and what it reads and writes around it.
  PgStatement limited, limit_lock, limit_types, limit_get, starts_log, starts_prune;
};

struct OutcomeStatements {
  explicit OutcomeStatements(const SqlContext& sql);
  PgStatement finish, finish_retry;
  PgStatement finish_completed_many;       // job_finish_many's plain completions
  PgStatement waiters;                     // someone_waits
  std::string finish_tx, finish_retry_tx;  // unprepared, on the caller's connection
  PgStatement progress, heartbeat, rescue, release_worker, cancel_pending, cancel_running,
      job_exists, prune;
};

struct WorkerStatements {
  explicit WorkerStatements(const SqlContext& sql);
  PgStatement register_worker, heartbeat, remove, prune, list;
};

struct OutboxStatements {
  explicit OutboxStatements(const SqlContext& sql);
  PgStatement peek, remove;
  std::string enable, disable, state;  // unprepared
};

struct ScheduleStatements {
  explicit ScheduleStatements(const SqlContext& sql);
  PgStatement upsert, remove, enable, get, list, due, next_due, lock, advance, job_status;
  PgStatement insert_quiet;  // a slot's job, inside schedule_fire's transaction
};

struct FlowStatements {
  explicit FlowStatements(const SqlContext& sql);
  PgStatement limit_set, limit_remove, limit_list, starts_clear, queue_set_paused, queue_list;
};

struct PostgresStore::Statements {
  explicit Statements(const SqlContext& sql);
  SqlContext context;        // for the statements built per call (operators', migrations')
  PgStatement get;           // job_get
  PgStatement attempt_list;  // job_attempt_list
  PgStatement notify;  // a pg_notify on its own, inside a caller's transaction or after a write
  EnqueueStatements enqueue;
  ClaimStatements claim;
  OutcomeStatements outcomes;
  WorkerStatements workers;
  OutboxStatements outbox;
  ScheduleStatements schedules;
  FlowStatements flow;
};

}  // namespace ergon::postgres
