// store/postgres/postgres_schedules.cc — recurring jobs: the schedules' rows and the firing of
// a slot (its jobs inserted and the schedule advanced in one transaction).
#include <algorithm>

#include "ergon/error.h"
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// Every schedule read: the columns of read_schedule (store/rows.h).
constexpr std::string_view kSelectSchedules = "SELECT @COLUMNS@ FROM @SCHEMA@.scheduled_jobs";

// ON CONFLICT (name): concurrent upserts of one schedule are safe. In DO UPDATE the bare column
// names are the stored row, so the CASE compares the stored expression with the new one before
// either is overwritten; is_enabled is not updated (an operator's choice stays).
constexpr std::string_view kUpsert = R"sql(
INSERT INTO @SCHEMA@.scheduled_jobs AS sj (id, name, job_type, job_data, cron_expression,
                                           with_seconds, time_zone, next_run_time, is_enabled,
                                           misfire_policy, misfire_limit, overlap_policy, queue,
                                           priority, max_attempts, tags, meta)
VALUES ($1::uuid, $2::varchar, $3::varchar, $4::jsonb, $5::varchar, $6::boolean, $7::varchar,
        $8::timestamptz, $9::boolean, $10::varchar, $11::integer, $12::varchar, $13::varchar,
        $14::integer, $15::integer, $16::text[], $17::jsonb)
ON CONFLICT (name) DO UPDATE
SET job_type = excluded.job_type,
    job_data = excluded.job_data,
    next_run_time = CASE WHEN sj.cron_expression = excluded.cron_expression
                          AND sj.with_seconds = excluded.with_seconds
                          AND sj.time_zone = excluded.time_zone
                         THEN sj.next_run_time ELSE excluded.next_run_time END,
    cron_expression = excluded.cron_expression, with_seconds = excluded.with_seconds,
    time_zone = excluded.time_zone, misfire_policy = excluded.misfire_policy,
    misfire_limit = excluded.misfire_limit, overlap_policy = excluded.overlap_policy,
    queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, tags = excluded.tags, meta = excluded.meta)sql";

// A slot's job, inside schedule_fire's transaction, which sends one notification at its end
// (the insert of postgres_enqueue.cc without the unique key and the notification).
constexpr std::string_view kInsertQuiet = R"sql(
INSERT INTO @SCHEMA@.jobs (id, job_type, job_data, status, created_at, queue, priority, run_at,
                           attempt, max_attempts, timeout_ms, group_key, tags, meta)
SELECT $1::uuid, $2::varchar, $3::jsonb, 'Pending', @CREATED_AT@, $4::varchar, $5::integer,
       @RUN_AT@, 0, $6::integer, $9::bigint, $10::varchar, $11::text[], $12::jsonb
FROM (SELECT now() AS b) AS clock
RETURNING run_at)sql";

}  // namespace

ScheduleStatements::ScheduleStatements(const SqlContext& sql) {
  const std::string schedule_columns = columns(kScheduleColumns);
  upsert = sql.statement("ergon_schedule_upsert", kUpsert);
  remove =
      sql.statement("ergon_schedule_remove", "DELETE FROM @SCHEMA@.scheduled_jobs WHERE name = $1");
  enable =
      sql.statement("ergon_schedule_enable",
                    "UPDATE @SCHEMA@.scheduled_jobs SET is_enabled = $1::boolean WHERE name = $2");
  get = sql.statement("ergon_schedule_get", "@SELECT@ WHERE name = $1",
                      {{"@SELECT@", kSelectSchedules}, {"@COLUMNS@", schedule_columns}});
  list = sql.statement("ergon_schedule_list", "@SELECT@ ORDER BY name",
                       {{"@SELECT@", kSelectSchedules}, {"@COLUMNS@", schedule_columns}});
  // Served by scheduled_jobs_due_idx (partial: enabled schedules only).
  due = sql.statement("ergon_schedule_due", R"sql(@SELECT@
WHERE is_enabled AND next_run_time <= $1::timestamptz ORDER BY next_run_time LIMIT $2)sql",
                      {{"@SELECT@", kSelectSchedules}, {"@COLUMNS@", schedule_columns}});
  next_due =
      sql.statement("ergon_schedule_next_due",
                    "SELECT min(next_run_time) FROM @SCHEMA@.scheduled_jobs WHERE is_enabled");
  // The slot's row lock. Schedulers racing for one slot queue here; when the winner commits,
  // the others' row is re-checked against the WHERE clause (READ COMMITTED), finds
  // next_run_time advanced, and drops out: they lose without inserting anything.
  lock = sql.statement("ergon_schedule_lock", R"sql(
SELECT last_job_id FROM @SCHEMA@.scheduled_jobs
WHERE name = $1 AND next_run_time = $2::timestamptz AND is_enabled
FOR UPDATE)sql");
  advance = sql.statement("ergon_schedule_advance", R"sql(
UPDATE @SCHEMA@.scheduled_jobs
SET next_run_time = $1::timestamptz, last_run_time = $2::timestamptz,
    last_job_id = coalesce($3::uuid, last_job_id)
WHERE name = $4 AND next_run_time = $5::timestamptz)sql");
  job_status =
      sql.statement("ergon_job_status", "SELECT status FROM @SCHEMA@.jobs WHERE id = $1::uuid");
  insert_quiet = sql.statement(
      "ergon_job_insert_quiet", kInsertQuiet,
      {{"@CREATED_AT@", sql.time("clock.b", 7, 7)}, {"@RUN_AT@", sql.time("clock.b", 8, 7)}});
}

void PostgresStore::schedule_upsert(const ScheduleUpsertParams& p) {
  const ScheduleRecord& r = p.schedule;
  PgParams params;
  bind_schedule_upsert(params, r);
  pooled_run(sql_->schedules.upsert, params, Format::kText);
  schedule_notifier().notify(r.next_run_time);
}

bool PostgresStore::schedule_remove(std::string_view name) {
  auto r = pooled_run(sql_->schedules.remove, PgParams().text(name), Format::kText);
  return std::string_view(PQcmdTuples(r.get())) == "1";
}

bool PostgresStore::schedule_set_enabled(std::string_view name, bool enabled) {
  bool changed;
  {
    auto conn = pool_.acquire();
    auto r =
        conn->run(sql_->schedules.enable, PgParams().boolean(enabled).text(name), Format::kText);
    changed = std::string_view(PQcmdTuples(r.get())) == "1";
  }
  if (changed && enabled) schedule_notifier().notify(clock().now());
  return changed;
}

std::optional<ScheduleRecord> PostgresStore::schedule_get(std::string_view name) {
  return read_first(pooled_run(sql_->schedules.get, PgParams().text(name)), read_schedule<Row>);
}

std::vector<ScheduleRecord> PostgresStore::schedule_list() {
  return read_rows(pooled_run(sql_->schedules.list, PgParams()), read_schedule<Row>);
}

std::vector<ScheduleRecord> PostgresStore::schedule_due(TimePoint now, int limit) {
  PgResult r = pooled_run(sql_->schedules.due,
                          PgParams().time(now).integer(static_cast<std::int64_t>(limit)));
  return read_rows(r, read_schedule<Row>);
}

std::optional<TimePoint> PostgresStore::schedule_next_due() {
  auto r = pooled_run(sql_->schedules.next_due, PgParams());
  return pgbin::opt_timestamptz(r.get(), 0, 0);
}

ScheduleFireResult PostgresStore::schedule_fire(const ScheduleFireParams& p) {
  for (const auto& j : p.jobs) {
    require_no_nul(j.job_type, "job type");
    require_no_nul(j.job_data, "job_data");
    require_no_nul(j.queue, "queue");
  }
  ScheduleFireResult result = ScheduleFireResult::kFired;
  std::optional<TimePoint> earliest;  // on the caller's clock, for this process's workers
  {
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      // Check, inserts and advance are one transaction under the slot's row lock: of all the
      // schedulers that saw this slot, only the first finds next_run_time unchanged.
      auto slot = conn->run(sql_->schedules.lock, PgParams().text(p.name).time(p.expected_next));
      if (PQntuples(slot.get()) == 0) {
        conn->rollback();
        return ScheduleFireResult::kLost;
      }
      auto last_job = pgbin::opt_uuid(slot.get(), 0, 0);
      if (p.skip_if_previous_running && last_job) {
        auto st = conn->run(sql_->schedules.job_status, PgParams().text(last_job->to_string()),
                            Format::kText);
        if (PQntuples(st.get()) == 1) {
          std::string_view status = PQgetvalue(st.get(), 0, 0);
          if (status == "Pending" || status == "Running") {
            result = ScheduleFireResult::kSkippedOverlap;
          }
        }
      }
      std::optional<std::string> new_last_job;
      std::optional<TimePoint> earliest_stored;
      if (result == ScheduleFireResult::kFired) {
        for (const auto& j : p.jobs) {
          PgParams params;
          bind_insert(params, j);
          auto ins = conn->run(sql_->schedules.insert_quiet, params);
          TimePoint stored = pgbin::timestamptz(ins.get(), 0, 0);
          earliest_stored = earliest_stored ? std::min(*earliest_stored, stored) : stored;
          earliest = earliest ? std::min(*earliest, j.run_at) : j.run_at;
          new_last_job = j.id.to_string();
        }
      }
      PgParams advance;
      bind_values(advance, p.new_next, p.last_run_time, new_last_job, p.name, p.expected_next);
      conn->run(sql_->schedules.advance, advance, Format::kText);
      // One notification for the slot's jobs, sent on commit.
      if (earliest_stored) {
        conn->run(sql_->notify, PgParams().text(channel_).text(format_timestamp(*earliest_stored)),
                  Format::kText);
      }
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  if (earliest) notifier().notify(*earliest);
  return result;
}

}  // namespace ergon::postgres
