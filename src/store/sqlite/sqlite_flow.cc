// Flow control on SQLite: the limits per job type, and paused queues (docs/flow-control.md).
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

void SqliteStore::limit_set(const TypeLimit& l, TimePoint now) {
  // Every column is written: the type's row becomes this limit, whatever it held.
  static constexpr std::string_view sql = R"sql(
    INSERT OR REPLACE INTO job_type_limits (job_type, max_running, rate_limit, rate_period_ms,
                                            per_group, changed_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
  )sql";
  check_type_limit(l);
  {
    std::lock_guard lock(mu_);
    WriteTransaction tx(*this);
    {
      Binder b(db_, prepared(sql).get());
      bind_limit(b, l);
      b.time(now).run();
    }
    if (!l.rate_limit) clear_starts_locked(l.job_type);
    tx.commit();
  }
  notifier().notify(now);  // a raised or changed limit may let waiting jobs start
}

void SqliteStore::limit_remove(std::string_view job_type, TimePoint now) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM job_type_limits WHERE job_type = ?1
  )sql";
  {
    std::lock_guard lock(mu_);
    WriteTransaction tx(*this);
    run_locked(sql, job_type);
    clear_starts_locked(job_type);
    tx.commit();
  }
  notifier().notify(now);  // waiting jobs of the type may start
}

// A type without a rate limit keeps no start log (a rate set later starts counting afresh).
void SqliteStore::clear_starts_locked(std::string_view job_type) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM job_type_starts WHERE job_type = ?1
  )sql";
  run_locked(sql, job_type);
}

std::vector<TypeLimit> SqliteStore::limit_list() {
  static constexpr std::string_view sql = R"sql(
    SELECT l.job_type, l.max_running, l.rate_limit, l.rate_period_ms, l.per_group,
           (SELECT count(*) FROM jobs j WHERE j.job_type = l.job_type AND j.status = 'Running')
    FROM job_type_limits l ORDER BY l.job_type
  )sql";
  return select(sql, read_type_limit<Row>);
}

void SqliteStore::queue_set_paused(std::string_view name, bool paused, TimePoint now) {
  static constexpr std::string_view sql = R"sql(
    INSERT INTO queues (name, paused, changed_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at
  )sql";
  run(sql, name, paused, now);
}

std::vector<QueueRecord> SqliteStore::queue_list() {
  // The queues with jobs waiting or running (jobs_claim_idx and jobs_running_idx hold them),
  // and every queue ever paused or resumed.
  static constexpr std::string_view sql = R"sql(
    SELECT n.name, coalesce(q.paused, 0),
           (SELECT count(*) FROM jobs WHERE queue = n.name AND status = 'Pending'),
           (SELECT count(*) FROM jobs WHERE queue = n.name AND status = 'Running')
    FROM (SELECT queue AS name FROM jobs WHERE status IN ('Pending', 'Running')
          UNION SELECT name FROM queues) AS n
    LEFT JOIN queues q ON q.name = n.name
    ORDER BY n.name
  )sql";
  return select(sql, read_queue<Row>);
}

}  // namespace ergon::sqlite
