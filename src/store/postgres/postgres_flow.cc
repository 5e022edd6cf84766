// store/postgres/postgres_flow.cc — flow control: the limits of job types and the pausing of
// queues, as operators set them (docs/flow-control.md); the claims apply them
// (postgres_claim.cc).
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {

FlowStatements::FlowStatements(const SqlContext& sql) {
  limit_set = sql.statement("ergon_limit_set", R"sql(
INSERT INTO @SCHEMA@.job_type_limits (job_type, max_running, rate_limit, rate_period_ms,
                                      per_group, changed_at)
VALUES ($1, $2::integer, $3::integer, $4::bigint, $5::boolean, @NOW@)
ON CONFLICT (job_type) DO UPDATE
SET max_running = excluded.max_running, rate_limit = excluded.rate_limit,
    rate_period_ms = excluded.rate_period_ms, per_group = excluded.per_group,
    changed_at = excluded.changed_at)sql",
                            {{"@NOW@", sql.now(6)}});
  limit_remove = sql.statement("ergon_limit_remove",
                               "DELETE FROM @SCHEMA@.job_type_limits WHERE job_type = $1");
  limit_list = sql.statement("ergon_limit_list", R"sql(
SELECT l.job_type, l.max_running, l.rate_limit, l.rate_period_ms, l.per_group,
       (SELECT count(*) FROM @SCHEMA@.jobs j
        WHERE j.job_type = l.job_type AND j.status = 'Running')
FROM @SCHEMA@.job_type_limits l ORDER BY l.job_type)sql");
  // The rate limit's log of starts (postgres_claim.cc), dropped with the rate limit.
  starts_clear = sql.statement("ergon_starts_clear",
                               "DELETE FROM @SCHEMA@.job_type_starts WHERE job_type = $1");
  queue_set_paused = sql.statement("ergon_queue_set_paused", R"sql(
INSERT INTO @SCHEMA@.queues (name, paused, changed_at) VALUES ($1, $2::boolean, @NOW@)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at)sql",
                                   {{"@NOW@", sql.now(3)}});
  // Every queue that has jobs waiting or running, or a row of its own (paused once).
  queue_list = sql.statement("ergon_queue_list", R"sql(
SELECT n.name, coalesce(q.paused, false),
       (SELECT count(*) FROM @SCHEMA@.jobs WHERE queue = n.name AND status = 'Pending'),
       (SELECT count(*) FROM @SCHEMA@.jobs WHERE queue = n.name AND status = 'Running')
FROM (SELECT queue AS name FROM @SCHEMA@.jobs WHERE status IN ('Pending', 'Running')
      UNION SELECT name FROM @SCHEMA@.queues) AS n
LEFT JOIN @SCHEMA@.queues q ON q.name = n.name
ORDER BY n.name)sql");
}

void PostgresStore::limit_set(const TypeLimit& l, TimePoint now) {
  check_type_limit(l);
  PgParams params;
  bind_limit(params, l);
  if (!database_clock_) params.time(now);
  {
    auto conn = pool_.acquire();
    transaction(*conn, [&] {
      conn->run(sql_->flow.limit_set, params, Format::kText);
      // A type without a rate limit keeps no start log (a rate set later counts afresh).
      if (!l.rate_limit)
        conn->run(sql_->flow.starts_clear, PgParams().text(l.job_type), Format::kText);
    });
  }
  limited_types_.invalidate();
  notifier().notify(now);  // a raised or changed limit may let waiting jobs start
}

void PostgresStore::limit_remove(std::string_view job_type, TimePoint now) {
  require_no_nul(job_type, "job type");
  {
    auto conn = pool_.acquire();
    transaction(*conn, [&] {
      conn->run(sql_->flow.limit_remove, PgParams().text(job_type), Format::kText);
      conn->run(sql_->flow.starts_clear, PgParams().text(job_type), Format::kText);
    });
  }
  limited_types_.invalidate();
  notifier().notify(now);  // waiting jobs of the type may start
}

std::vector<TypeLimit> PostgresStore::limit_list() {
  return read_rows(pooled_run(sql_->flow.limit_list, PgParams()), read_type_limit<Row>);
}

void PostgresStore::queue_set_paused(std::string_view name, bool paused, TimePoint now) {
  require_no_nul(name, "queue");
  PgParams params;
  params.text(name).boolean(paused);
  if (!database_clock_) params.time(now);
  pooled_run(sql_->flow.queue_set_paused, params, Format::kText);
}

std::vector<QueueRecord> PostgresStore::queue_list() {
  return read_rows(pooled_run(sql_->flow.queue_list, PgParams()), read_queue<Row>);
}

}  // namespace ergon::postgres
