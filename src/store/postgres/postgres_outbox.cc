// store/postgres/postgres_outbox.cc — the messaging outbox: the triggers that fill it, its
// state, and reading and removing its rows (docs/messaging.md).
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {

OutboxStatements::OutboxStatements(const SqlContext& sql) {
  peek = sql.statement("ergon_outbox_peek",
                       "SELECT id, job_id, due_at FROM @SCHEMA@.job_outbox ORDER BY id LIMIT $1");
  remove = sql.statement("ergon_outbox_remove",
                         "DELETE FROM @SCHEMA@.job_outbox WHERE id = ANY($1::bigint[])");
  // The outbox triggers: a job that becomes Pending (inserted so, or moved back from Running by
  // a retry, release or rescue) gets an outbox row in the same transaction. CREATE OR REPLACE
  // TRIGGER is idempotent, so every worker that uses messaging can run this at start.
  enable = sql.text(R"sql(
CREATE OR REPLACE TRIGGER jobs_outbox_insert AFTER INSERT ON @SCHEMA@.jobs
FOR EACH ROW WHEN (NEW.status = 'Pending') EXECUTE FUNCTION @SCHEMA@.ergon_job_outbox();
CREATE OR REPLACE TRIGGER jobs_outbox_pending AFTER UPDATE OF status ON @SCHEMA@.jobs
FOR EACH ROW WHEN (NEW.status = 'Pending' AND OLD.status <> 'Pending')
EXECUTE FUNCTION @SCHEMA@.ergon_job_outbox())sql");
  // One implicit transaction (a multi-statement simple query): all or nothing.
  disable = sql.text(R"sql(
DROP TRIGGER IF EXISTS jobs_outbox_insert ON @SCHEMA@.jobs;
DROP TRIGGER IF EXISTS jobs_outbox_pending ON @SCHEMA@.jobs;
DELETE FROM @SCHEMA@.job_outbox)sql");
  // $1: the jobs table's name.
  state = sql.text(R"sql(
SELECT EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgrelid = $1::regclass
                 AND tgname IN ('jobs_outbox_insert', 'jobs_outbox_pending')),
       (SELECT count(*) FROM @SCHEMA@.job_outbox))sql");
}

void PostgresStore::outbox_enable() {
  auto conn = pool_.acquire();
  conn->exec_script(sql_->outbox.enable);
}

void PostgresStore::outbox_disable() {
  auto conn = pool_.acquire();
  conn->exec_script(sql_->outbox.disable);
}

OutboxState PostgresStore::outbox_state() {
  PgResult r = pooled_exec(sql_->outbox.state, PgParams().text(quoted_schema_ + ".jobs"));
  return {pgbin::boolean(r.get(), 0, 0), pgbin::int8(r.get(), 0, 1)};
}

std::vector<OutboxRow> PostgresStore::outbox_peek(int limit) {
  PgResult r = pooled_run(sql_->outbox.peek, PgParams().integer(static_cast<std::int64_t>(limit)));
  std::vector<OutboxRow> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.push_back({pgbin::int8(r.get(), i, 0), pgbin::uuid(r.get(), i, 1),
                   pgbin::timestamptz(r.get(), i, 2)});
  }
  return out;
}

void PostgresStore::outbox_remove(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  std::string array = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) array += ',';
    array += std::to_string(ids[i]);
  }
  array += "}";
  pooled_run(sql_->outbox.remove, PgParams().text(array), Format::kText);
}

}  // namespace ergon::postgres
