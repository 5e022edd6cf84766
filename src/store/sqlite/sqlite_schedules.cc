// Recurring jobs on SQLite: the schedules, and firing a slot exactly once.
#include <algorithm>
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

// The columns every read of a schedule returns, in the order read_schedule reads them.
constexpr std::string_view kScheduleColumns = R"sql(
  id, name, job_type, job_data, cron_expression, with_seconds, time_zone, next_run_time,
  last_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue, priority,
  max_attempts, last_job_id
)sql";

std::string schedule_sql(std::string_view sql) {
  return fill(sql, {{"SCHEDULE_COLUMNS", kScheduleColumns}});
}

ScheduleRecord read_schedule(sqlite3_stmt* s) {
  ScheduleRecord r;
  auto id = JobId::parse(text_column(s, 0));
  if (!id) throw Error(ErrorCode::kStore, "malformed schedule id in the database");
  r.id = *id;
  r.name = text_column(s, 1);
  r.job_type = text_column(s, 2);
  r.job_data = text_column(s, 3);
  r.cron_expression = text_column(s, 4);
  r.with_seconds = sqlite3_column_int(s, 5) != 0;
  r.time_zone = text_column(s, 6);
  r.next_run_time = time_column(s, 7);
  r.last_run_time = opt_time(s, 8);
  r.is_enabled = sqlite3_column_int(s, 9) != 0;
  auto misfire = parse_misfire_policy(text_column(s, 10));
  auto overlap = parse_overlap_policy(text_column(s, 12));
  if (!misfire || !overlap)
    throw Error(ErrorCode::kStore, "unknown schedule policy in the database");
  r.misfire = *misfire;
  r.misfire_limit = sqlite3_column_int(s, 11);
  r.overlap = *overlap;
  r.queue = text_column(s, 13);
  r.priority = sqlite3_column_int(s, 14);
  r.max_attempts = opt_int(s, 15);
  if (auto last = opt_text(s, 16)) r.last_job_id = JobId::parse(*last);
  return r;
}

}  // namespace

void SqliteStore::schedule_upsert(const ScheduleUpsertParams& p) {
  // On conflict every right-hand side sees the old row, so the CASE compares the stored
  // expression with the new one before either is overwritten.
  static constexpr std::string_view sql = R"sql(
    INSERT INTO scheduled_jobs (id, name, job_type, job_data, cron_expression, with_seconds,
                                time_zone, next_run_time, is_enabled, misfire_policy,
                                misfire_limit, overlap_policy, queue, priority, max_attempts)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
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
      max_attempts = excluded.max_attempts
  )sql";
  const ScheduleRecord& r = p.schedule;
  {
    std::lock_guard lock(mu_);
    Binder b(db_, prepared(sql).get());
    b.text(r.id.to_string())
        .text(r.name)
        .text(r.job_type)
        .text(r.job_data)
        .text(r.cron_expression)
        .integer(static_cast<std::int64_t>(r.with_seconds))
        .text(r.time_zone)
        .time(r.next_run_time)
        .integer(static_cast<std::int64_t>(r.is_enabled))
        .text(to_string(r.misfire))
        .integer(static_cast<std::int64_t>(r.misfire_limit))
        .text(to_string(r.overlap))
        .text(r.queue)
        .integer(static_cast<std::int64_t>(r.priority))
        .integer(r.max_attempts);
    b.run();
  }
  schedule_notifier().notify(r.next_run_time);
}

bool SqliteStore::schedule_remove(std::string_view name) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM scheduled_jobs WHERE name = ?
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.text(name).run();
  return sqlite3_changes(db_) == 1;
}

bool SqliteStore::schedule_set_enabled(std::string_view name, bool enabled) {
  static constexpr std::string_view sql = R"sql(
    UPDATE scheduled_jobs SET is_enabled = ? WHERE name = ?
  )sql";
  bool changed;
  {
    std::lock_guard lock(mu_);
    Binder b(db_, prepared(sql).get());
    b.integer(static_cast<std::int64_t>(enabled)).text(name).run();
    changed = sqlite3_changes(db_) == 1;
  }
  if (changed && enabled) schedule_notifier().notify(clock().now());
  return changed;
}

std::optional<ScheduleRecord> SqliteStore::schedule_get(std::string_view name) {
  static const std::string sql = schedule_sql(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs WHERE name = ?
  )sql");
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.text(name);
  if (!b.step()) return std::nullopt;
  return read_schedule(b.stmt());
}

std::vector<ScheduleRecord> SqliteStore::schedule_list() {
  static const std::string sql = schedule_sql(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs ORDER BY name
  )sql");
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  std::vector<ScheduleRecord> out;
  while (b.step()) out.push_back(read_schedule(b.stmt()));
  return out;
}

std::vector<ScheduleRecord> SqliteStore::schedule_due(TimePoint now, int limit) {
  static const std::string sql = schedule_sql(R"sql(
    SELECT @SCHEDULE_COLUMNS@ FROM scheduled_jobs
    WHERE is_enabled = 1 AND next_run_time <= ?
    ORDER BY next_run_time LIMIT ?
  )sql");
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.time(now).integer(static_cast<std::int64_t>(limit));
  std::vector<ScheduleRecord> out;
  while (b.step()) out.push_back(read_schedule(b.stmt()));
  return out;
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
    Binder b(db_, prepared(advance).get());
    b.time(p.new_next).time(p.last_run_time).text(new_last_job).text(p.name).time(p.expected_next);
    b.run();
    b.reset();
    tx.commit();
  }
  if (earliest) notifier().notify(*earliest);
  return result;
}

}  // namespace ergon::sqlite
