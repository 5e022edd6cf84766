// store/params.h — the parameters of the statements both backends run, in one order each:
// SQLite's ?N and PostgreSQL's $N number them the same way, and one binder here fills them on
// either. Store-internal: included only by the backends' files.
//
// A binder takes a parameter list P that appends the next parameter on each call: SQLite's
// Binder or PostgreSQL's PgParams, which share the method names text(), integer(), boolean(),
// time(), text_list() (a JSON array on SQLite, a text[] literal on PostgreSQL) and null().
// bind_values picks the method from each value's type, so a parameter's encoding follows the
// member it comes from.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "ergon/schedule.h"
#include "ergon/store.h"
#include "store/handled_types.h"
#include "store/rows.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {

// One parameter: a bool as a boolean, any other integer as an integer, an enum as its name, a
// time as a timestamp, a job id as its text, a list of text as a list, an empty optional as
// NULL, text as text.
template <class P, class T>
void bind_value(P& p, const T& v) {
  if constexpr (kIsOptional<T>) {
    if (v) {
      bind_value(p, *v);
    } else {
      p.null();
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    p.boolean(v);
  } else if constexpr (std::is_integral_v<T>) {
    p.integer(static_cast<std::int64_t>(v));
  } else if constexpr (std::is_enum_v<T>) {
    p.text(to_string(v));
  } else if constexpr (std::is_same_v<T, TimePoint>) {
    p.time(v);
  } else if constexpr (std::is_same_v<T, JobId>) {
    p.text(v.to_string());
  } else if constexpr (std::is_same_v<T, std::span<const std::string>>) {
    p.text_list(v);
  } else {
    p.text(v);
  }
}

// The next parameters, in order.
template <class P, class... T>
void bind_values(P& p, const T&... values) {
  (bind_value(p, values), ...);
}

// Optional text that is empty when unset (a unique key, a group key): NULL then.
inline std::optional<std::string_view> nonempty(std::string_view v) {
  if (v.empty()) return std::nullopt;
  return v;
}

// A list that is empty when unset (a job's tags): NULL then.
inline std::optional<std::span<const std::string>> nonempty(std::span<const std::string> v) {
  if (v.empty()) return std::nullopt;
  return v;
}

// A job's timeout as stored: whole milliseconds, at least 1.
inline std::optional<std::int64_t> timeout_ms(const std::optional<Duration>& timeout) {
  if (!timeout) return std::nullopt;
  return std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count());
}

// 1-12 of a job's insert: id, job_type, job_data, queue, priority, max_attempts, created_at,
// run_at, timeout_ms, group_key, tags, meta (NULL: none).
template <class P>
void bind_insert(P& p, const JobInsertParams& j) {
  bind_values(p, j.id, j.job_type, j.job_data, j.queue, j.priority, j.max_attempts, j.created_at,
              j.run_at, timeout_ms(j.timeout), nonempty(j.group_key), nonempty(j.tags),
              nonempty(j.meta));
}

// 13-15 of an insert that may hold a unique key: the key (NULL: none), unique_while_running,
// and unique_until, the end of the key's time window (NULL: none).
template <class P>
void bind_unique(P& p, const JobInsertParams& j) {
  std::optional<TimePoint> until;
  if (j.unique_period && !j.unique_key.empty()) until = j.created_at + *j.unique_period;
  bind_values(p, nonempty(j.unique_key), j.unique_while_running, until);
}

// The error message an outcome stores (NULL: none given): it comes from an exception or a
// command's stderr, so it is cleaned, and both stores keep the same text (store/text_rules.h).
inline std::optional<std::string> finish_error(const JobFinishParams& f) {
  if (!f.error_message) return std::nullopt;
  return clean_text(*f.error_message, kMaxErrorMessageBytes);
}

// Whether an outcome writes its attempt's row to job_attempts: every ended attempt but a
// completion. A Completed job is never claimed again (an operator's retry takes Failed and
// Cancelled jobs only), so its own row keeps its last attempt for good (attempt, lease,
// worker_id, started_at, completed_at), and job_attempt_list reads that attempt from there
// (kCompletedAttempt). The common path, a job that completes, so writes no more than the
// outcome: the row cost SQLite's burn-down about an eighth of its rate.
inline bool writes_attempt_row(const JobFinishParams& f) {
  return f.attempt_outcome && *f.attempt_outcome != AttemptOutcome::kCompleted;
}

// 1-12 of an outcome: status, whether it is final, now, run_at (NULL: keep the row's own, see
// JobFinishParams::keep_run_at), error_message (finish_error), the attempts given back,
// progress_message, progress_percent; then the fence: id, lease, worker_id; then the result
// (NULL unless the job completed). Progress messages are cleaned as errors are.
template <class P>
void bind_finish(P& p, const JobFinishParams& f) {
  std::optional<std::string> progress;
  if (f.progress_message) progress = clean_text(*f.progress_message, kMaxProgressMessageBytes);
  std::optional<int> percent;
  if (f.progress_percent) percent = std::clamp(*f.progress_percent, 0, 100);
  std::optional<TimePoint> run_at;
  if (!f.keep_run_at) run_at = f.run_at;
  const int given_back = f.give_back_attempt && f.status == JobStatus::kPending ? 1 : 0;
  std::optional<std::string_view> result;
  if (f.status == JobStatus::kCompleted && f.result) result = *f.result;
  bind_values(p, f.status, is_final(f.status), f.now, run_at, finish_error(f), given_back, progress,
              percent, f.id, f.attempt, f.worker_id, result);
}

// 1-5 of a progress report: message, percent, then the fence: id, lease, worker_id.
template <class P>
void bind_progress(P& p, const JobProgressParams& r) {
  std::optional<int> percent;
  if (r.percent) percent = std::clamp(*r.percent, 0, 100);
  bind_values(p, clean_text(r.message, kMaxProgressMessageBytes), percent, r.id, r.attempt,
              r.worker_id);
}

// 1-11 of a worker's registration, in kWorkerColumns order (job_types as a JSON array).
template <class P>
void bind_worker(P& p, const WorkerRecord& w) {
  bind_values(p, w.id, w.name, w.host, w.pid, w.started_at, w.heartbeat_at, w.boot_id,
              w.pid_namespace, w.process_start, worker_types_json(w), w.relay);
}

// 1-17 of schedule_upsert: id, name, job_type, job_data, cron_expression, with_seconds,
// time_zone, next_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue,
// priority, max_attempts, tags, meta (NULL: none).
template <class P>
void bind_schedule_upsert(P& p, const ScheduleRecord& s) {
  bind_values(p, s.id, s.name, s.job_type, s.job_data, s.cron_expression, s.with_seconds,
              s.time_zone, s.next_run_time, s.is_enabled, s.misfire, s.misfire_limit, s.overlap,
              s.queue, s.priority, s.max_attempts, nonempty(s.tags), s.meta);
}

// 1-5 of limit_set: job_type, max_running, rate_limit, rate_period_ms (NULL without a rate
// limit), per_group.
template <class P>
void bind_limit(P& p, const TypeLimit& l) {
  std::optional<std::int64_t> period_ms;
  if (l.rate_limit) {
    period_ms = std::chrono::duration_cast<std::chrono::milliseconds>(l.rate_period).count();
  }
  bind_values(p, l.job_type, l.max_running, l.rate_limit, period_ms, l.per_group);
}

// 1-5 of audit_insert: at, actor, action, target, detail (cleaned: they come from outside).
template <class P>
void bind_audit(P& p, const AuditRecord& a) {
  bind_values(p, a.at, clean_text(a.actor), clean_text(a.action), clean_text(a.target),
              clean_text(a.detail));
}

}  // namespace ergon
