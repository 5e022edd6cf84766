// Recurring jobs on SQLite: the schedules, and firing a slot exactly once.
#include <algorithm>
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

void SqliteStore::schedule_upsert(const ScheduleUpsertParams& p) {
  // On conflict every right-hand side sees the old row, so the CASE compares the stored
  // expression with the new one before either is overwritten.
  static constexpr std::string_view sql = R"sql(
    INSERT INTO scheduled_jobs (id, name, job_type, job_data, cron_expression, with_seconds,
                                time_zone, next_run_time, is_enabled, misfire_policy,
                                misfire_limit, overlap_policy, queue, priority, max_attempts,
                                tags, meta)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
    ON CONFLICT (name) DO UPDATE SET
      job_type = excluded.job_type,
      job_data = excluded.job_data,
      next_run_time = CASE WHEN cron_expression = excluded.cron_expression
                             AND with_seconds = excluded.with_seconds
                             AND time_zone = excluded.time_zone
                           THEN next_run_time ELSE excluded.next_run_time END,
      cron_expression = excluded.cron_expression,
      with_seconds = excluded.with_seconds,
      time_zone = excluded.time_zone,
      misfire_policy = excluded.misfire_policy,
      misfire_limit = excluded.misfire_limit,
      overlap_policy = excluded.overlap_policy,
      queue = excluded.queue,
      priority = excluded.priority,
      max_attempts = excluded.max_attempts,
      tags = excluded.tags,
      meta = excluded.meta
  )sql";
  const ScheduleRecord& r = p.schedule;
  {
    std::lock_guard lock(mu_);
    Binder b(db_, prepared(sql).get());
    bind_schedule_upsert(b, r);
    b.run();
  }
  schedule_notifier().notify(r.next_run_time);
}

bool SqliteStore::schedule_remove(std::string_view name) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM scheduled_jobs WHERE name = ?
  )sql";
  return run(sql, name) == 1;
}

bool SqliteStore::schedule_set_enabled(std::string_view name, bool enabled) {
  static constexpr std::string_view sql = R"sql(
    UPDATE scheduled_jobs SET is_enabled = ? WHERE name = ?
  )sql";
  const bool changed = run(sql, enabled, name) == 1;
  if (changed && enabled) schedule_notifier().notify(clock().now());
  return changed;
}

std::optional<ScheduleRecord> SqliteStore::schedule_get(std::string_view name) {
  static const std::string sql = fill(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs WHERE name = ?
  )sql");
  return select_one(sql, read_schedule<Row>, name);
}

std::vector<ScheduleRecord> SqliteStore::schedule_list() {
  static const std::string sql = fill(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs ORDER BY name
  )sql");
  return select(sql, read_schedule<Row>);
}

std::vector<ScheduleRecord> SqliteStore::schedule_due(TimePoint now, int limit) {
  static const std::string sql = fill(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs
    WHERE is_enabled = 1 AND next_run_time <= ?
    ORDER BY next_run_time LIMIT ?
  )sql");
  return select(sql, read_schedule<Row>, now, limit);
}

std::optional<TimePoint> SqliteStore::schedule_next_due() {
  static constexpr std::string_view sql = R"sql(
    SELECT min(next_run_time) FROM scheduled_jobs WHERE is_enabled = 1
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  if (!b.step()) return std::nullopt;
  return opt_time(b.stmt(), 0);
}

ScheduleFireResult SqliteStore::schedule_fire(const ScheduleFireParams& p) {
  // The slot is still this one's to fire, and the job the previous slot enqueued.
  static constexpr std::string_view slot = R"sql(
    SELECT last_job_id FROM scheduled_jobs
    WHERE name = ? AND next_run_time = ? AND is_enabled = 1
  )sql";
  static constexpr std::string_view previous = R"sql(
    SELECT status FROM jobs WHERE id = ?
  )sql";
  static constexpr std::string_view advance = R"sql(
    UPDATE scheduled_jobs
    SET next_run_time = ?, last_run_time = ?, last_job_id = coalesce(?, last_job_id)
    WHERE name = ? AND next_run_time = ?
  )sql";
  ScheduleFireResult result = ScheduleFireResult::kFired;
  std::optional<TimePoint> earliest;
  {
    std::lock_guard lock(mu_);
    // The write lock is taken before the check, so the check, the inserts and the advance are
    // one atomic step for every connection and process on this file: of all the schedulers
    // that saw this slot, only the first finds next_run_time unchanged.
    WriteTransaction tx(*this);
    std::optional<std::string> last_job;
    {
      Binder b(db_, prepared(slot).get());
      b.text(p.name).time(p.expected_next);
      if (!b.step()) {
        result = ScheduleFireResult::kLost;
      } else {
        last_job = opt_text(b.stmt(), 0);
      }
    }
    if (result != ScheduleFireResult::kLost && p.skip_if_previous_running && last_job) {
      Binder b(db_, prepared(previous).get());
      b.text(*last_job);
      if (b.step()) {
        std::string status = text_column(b.stmt(), 0);
        if (status == "Pending" || status == "Running") {
          result = ScheduleFireResult::kSkippedOverlap;
        }
      }
    }
    if (result == ScheduleFireResult::kLost) {
      tx.rollback();
      return result;
    }
    std::optional<std::string> new_last_job;
    if (result == ScheduleFireResult::kFired) {
      for (const auto& j : p.jobs) {
        insert_locked(j);
        new_last_job = j.id.to_string();
        earliest = earliest ? std::min(*earliest, j.run_at) : j.run_at;
      }
    }
    run_locked(advance, p.new_next, p.last_run_time, new_last_job, p.name, p.expected_next);
    tx.commit();
  }
  if (earliest) notifier().notify(*earliest);
  return result;
}

}  // namespace ergon::sqlite
