// store/rows.h — what a row of each record is, on every backend: the columns a read returns,
// in order, and the one reader that turns such a row into the record. Store-internal: included
// only by the backends' files.
//
// A reader takes a Row, a cursor over one result row that each backend provides (SQLite's over
// a sqlite3_stmt, PostgreSQL's over a binary PGresult row) and that reads the next column on
// each call: text(), json() (a JSON document; jsonb on PostgreSQL), text_list() (a list of text:
// a JSON array on SQLite, text[] on PostgreSQL), int32(), int64(), boolean(), time(), uuid(what)
// (Error(kStore) "malformed <what> in the database" where ids are stored as text); skip_null()
// is true, and passes the column, when it is NULL. A record's
// members are read by their types (read_values), so a column's decoder follows the member it
// fills. Cursors and readers are inlined templates: a job read on the claim path costs the
// column reads and no more.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "ergon/error.h"
#include "ergon/schedule.h"
#include "ergon/store.h"
#include "store/handled_types.h"

namespace ergon {

// The columns of each record's row, in the order its reader reads them. Both backends' SQL
// name them through these (PostgreSQL prefixing each with a table alias where it needs one).
inline constexpr std::string_view kJobColumns = R"sql(
  id, job_type, job_data, status, created_at, started_at, completed_at, error_message,
  progress_message, progress_percent, queue, priority, run_at, attempt, max_attempts,
  worker_id, heartbeat_at, timeout_ms, cancel_requested, rescue_count, unique_key,
  group_key, lease, result, tags, meta
)sql";
inline constexpr std::string_view kScheduleColumns = R"sql(
  id, name, job_type, job_data, cron_expression, with_seconds, time_zone, next_run_time,
  last_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue, priority,
  max_attempts, last_job_id, tags, meta
)sql";
inline constexpr std::string_view kWorkerColumns = R"sql(
  id, name, host, pid, started_at, heartbeat_at, boot_id, pid_namespace, process_start,
  job_types, relay
)sql";
inline constexpr std::string_view kAuditColumns = "id, at, actor, action, target, detail";
inline constexpr std::string_view kAttemptColumns = R"sql(
  job_id, attempt, lease, worker_id, started_at, finished_at, outcome, error_message
)sql";

// A Completed job's last attempt, from its own row in jobs, as kAttemptColumns
// (writes_attempt_row, store/params.h). A database written before that rule may already hold
// the row in job_attempts; the job_attempt_list statements then take that one.
inline constexpr std::string_view kCompletedAttempt = R"sql(
  id, attempt, lease, worker_id, started_at, completed_at, 'completed', NULL
)sql";

// Whether T is a std::optional (a column that may be NULL, a parameter that may be).
template <class T>
inline constexpr bool kIsOptional = false;
template <class T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// One column into `v`, decoded as v's type says: NULL leaves an optional empty; a job id is
// read as one (uuid("job id")).
template <class Row, class T>
void read_value(Row& row, T& v) {
  if constexpr (kIsOptional<T>) {
    if (row.skip_null()) {
      v.reset();
    } else {
      read_value(row, v.emplace());
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    v = row.text();
  } else if constexpr (std::is_same_v<T, int>) {
    v = row.int32();
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    v = row.int64();
  } else if constexpr (std::is_same_v<T, bool>) {
    v = row.boolean();
  } else if constexpr (std::is_same_v<T, JobId>) {
    v = row.uuid("job id");
  } else {
    static_assert(std::is_same_v<T, TimePoint>, "no column type reads into this member");
    v = row.time();
  }
}

// The next columns into `values`, in order.
template <class Row, class... T>
void read_values(Row& row, T&... values) {
  (read_value(row, values), ...);
}

// A stored job status; Error(kStore) for text that names none.
inline JobStatus stored_status(std::string_view text) {
  auto status = parse_job_status(text);
  if (!status) throw Error(ErrorCode::kStore, "unknown job status in the database");
  return *status;
}

// A row of kJobColumns.
template <class Row>
JobRecord read_job(Row&& row) {
  JobRecord j;
  read_values(row, j.id, j.job_type);
  j.job_data = row.json();
  j.status = stored_status(row.text());
  read_values(row, j.created_at, j.started_at, j.completed_at, j.error_message, j.progress_message,
              j.progress_percent, j.queue, j.priority, j.run_at, j.attempt, j.max_attempts,
              j.worker_id, j.heartbeat_at);
  if (!row.skip_null()) j.timeout = std::chrono::milliseconds(row.int64());
  read_values(row, j.cancel_requested, j.rescue_count, j.unique_key, j.group_key, j.lease);
  if (!row.skip_null()) j.result = row.json();
  if (!row.skip_null()) j.tags = row.text_list();  // NULL: no tags
  if (!row.skip_null()) j.meta = row.json();
  return j;
}

// A row of kAttemptColumns.
template <class Row>
AttemptRecord read_attempt(Row&& row) {
  AttemptRecord a;
  read_values(row, a.job_id, a.attempt, a.lease, a.worker_id, a.started_at, a.finished_at);
  auto outcome = parse_attempt_outcome(row.text());
  if (!outcome) throw Error(ErrorCode::kStore, "unknown attempt outcome in the database");
  a.outcome = *outcome;
  read_values(row, a.error_message);
  return a;
}

// A row of kScheduleColumns.
template <class Row>
ScheduleRecord read_schedule(Row&& row) {
  ScheduleRecord s;
  s.id = row.uuid("schedule id");
  s.name = row.text();
  s.job_type = row.text();
  s.job_data = row.json();
  read_values(row, s.cron_expression, s.with_seconds, s.time_zone, s.next_run_time, s.last_run_time,
              s.is_enabled);
  auto misfire = parse_misfire_policy(row.text());
  s.misfire_limit = row.int32();
  auto overlap = parse_overlap_policy(row.text());
  if (!misfire || !overlap) {
    throw Error(ErrorCode::kStore, "unknown schedule policy in the database");
  }
  s.misfire = *misfire;
  s.overlap = *overlap;
  read_values(row, s.queue, s.priority, s.max_attempts, s.last_job_id);
  if (!row.skip_null()) s.tags = row.text_list();  // NULL: no tags
  if (!row.skip_null()) s.meta = row.json();
  return s;
}

// A row of kWorkerColumns.
template <class Row>
WorkerRecord read_worker(Row&& row) {
  WorkerRecord w;
  read_values(row, w.id, w.name, w.host, w.pid, w.started_at, w.heartbeat_at, w.boot_id,
              w.pid_namespace, w.process_start);
  if (!row.skip_null()) w.job_types = worker_types_parse(row.json());
  w.relay = row.boolean();
  return w;
}

// A row of kAuditColumns.
template <class Row>
AuditRecord read_audit(Row&& row) {
  AuditRecord a;
  read_values(row, a.id, a.at, a.actor, a.action, a.target, a.detail);
  return a;
}

// A type's limits as job_type_limits holds them: max_running, rate_limit, rate_period_ms,
// per_group (job_type and running are not among them: the claim reads the limits of a type it
// names).
template <class Row>
void read_limits(Row& row, TypeLimit& l) {
  read_values(row, l.max_running, l.rate_limit);
  l.rate_period = row.skip_null() ? Duration{} : std::chrono::milliseconds(row.int64());
  l.per_group = row.boolean();
}

// A row of limit_list: job_type, the limits (read_limits), then how many of the type run.
template <class Row>
TypeLimit read_type_limit(Row&& row) {
  TypeLimit l;
  l.job_type = row.text();
  read_limits(row, l);
  l.running = row.int64();
  return l;
}

// A row of queue_list: name, paused, how many Pending, how many Running.
template <class Row>
QueueRecord read_queue(Row&& row) {
  QueueRecord q;
  read_values(row, q.name, q.paused, q.pending, q.running);
  return q;
}

// A row of job_counts: queue, status, count, the oldest due run_at (Pending only).
template <class Row>
JobCount read_job_count(Row&& row) {
  JobCount c;
  c.queue = row.text();
  c.status = stored_status(row.text());
  read_values(row, c.count, c.oldest_due_run_at);
  return c;
}

// A row of job_pending_types: job_type, count.
template <class Row>
JobTypeCount read_type_count(Row&& row) {
  JobTypeCount c;
  read_values(row, c.job_type, c.pending);
  return c;
}

}  // namespace ergon
