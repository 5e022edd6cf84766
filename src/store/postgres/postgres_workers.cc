// store/postgres/postgres_workers.cc — the workers registry: registration, heartbeats, removal,
// pruning of dead workers, and the listing.
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {

WorkerStatements::WorkerStatements(const SqlContext& sql) {
  register_worker = sql.statement("ergon_worker_register", R"sql(
INSERT INTO @SCHEMA@.workers (@COLUMNS@)
VALUES ($1, $2, $3, $4::integer, @STARTED_AT@, @NOW@, $7, $8::bigint, $9::bigint, $10::jsonb,
        $11::boolean)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
    boot_id = excluded.boot_id, pid_namespace = excluded.pid_namespace,
    process_start = excluded.process_start, job_types = excluded.job_types,
    relay = excluded.relay)sql",
                                  {{"@COLUMNS@", columns(kWorkerColumns)},
                                   {"@STARTED_AT@", sql.time("now()", 5, 6)},
                                   {"@NOW@", sql.now(6)}});
  heartbeat = sql.statement("ergon_worker_heartbeat",
                            "UPDATE @SCHEMA@.workers SET heartbeat_at = @NOW@ WHERE id = $1",
                            {{"@NOW@", sql.now(2)}});
  remove = sql.statement("ergon_worker_remove", "DELETE FROM @SCHEMA@.workers WHERE id = $1");
  // Staleness as the rescuer judges it.
  prune = sql.statement("ergon_worker_prune", "DELETE FROM @SCHEMA@.workers WHERE @STALE@",
                        {{"@STALE@", sql.heartbeat_stale(1, 2)}});
  list = sql.statement("ergon_worker_list",
                       "SELECT @COLUMNS@ FROM @SCHEMA@.workers ORDER BY started_at",
                       {{"@COLUMNS@", columns(kWorkerColumns)}});
}

void PostgresStore::worker_register(const WorkerRecord& w) {
  PgParams params;
  bind_worker(params, w);
  pooled_run(sql_->workers.register_worker, params, Format::kText);
}

void PostgresStore::worker_heartbeat(std::string_view id, TimePoint now) {
  PgParams params;
  params.text(id);
  if (!database_clock_) params.time(now);
  pooled_run(sql_->workers.heartbeat, params, Format::kText);
}

void PostgresStore::worker_remove(std::string_view id) {
  pooled_run(sql_->workers.remove, PgParams().text(id), Format::kText);
}

int PostgresStore::worker_prune(TimePoint stale_before, TimePoint now) {
  PgParams params;
  params.time(stale_before);
  if (database_clock_) params.time(now);
  auto r = pooled_run(sql_->workers.prune, params, Format::kText);
  return std::atoi(PQcmdTuples(r.get()));
}

std::vector<WorkerRecord> PostgresStore::worker_list() {
  return read_rows(pooled_run(sql_->workers.list, PgParams()), read_worker<Row>);
}

}  // namespace ergon::postgres
