// The outbox on SQLite: the jobs a messaging relay still has to send to the queue.
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

// The outbox triggers: a job that becomes Pending (inserted so, or moved back from Running by
// a retry, release or rescue) gets an outbox row in the same transaction.
void SqliteStore::outbox_enable() {
  std::lock_guard lock(mu_);
  exec(R"sql(
    CREATE TRIGGER IF NOT EXISTS jobs_outbox_insert AFTER INSERT ON jobs
    WHEN NEW.status = 'Pending' BEGIN
      INSERT INTO job_outbox (job_id, due_at) VALUES (NEW.id, NEW.run_at);
    END
  )sql");
  exec(R"sql(
    CREATE TRIGGER IF NOT EXISTS jobs_outbox_pending AFTER UPDATE OF status ON jobs
    WHEN NEW.status = 'Pending' AND OLD.status <> 'Pending' BEGIN
      INSERT INTO job_outbox (job_id, due_at) VALUES (NEW.id, NEW.run_at);
    END
  )sql");
}

void SqliteStore::outbox_disable() {
  std::lock_guard lock(mu_);
  WriteTransaction tx(*this);
  exec("DROP TRIGGER IF EXISTS jobs_outbox_insert");
  exec("DROP TRIGGER IF EXISTS jobs_outbox_pending");
  exec("DELETE FROM job_outbox");
  tx.commit();
}

OutboxState SqliteStore::outbox_state() {
  static constexpr std::string_view sql = R"sql(
    SELECT (SELECT count(*) FROM sqlite_schema
            WHERE type = 'trigger' AND name IN ('jobs_outbox_insert', 'jobs_outbox_pending')),
           (SELECT count(*) FROM job_outbox)
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.step();
  return {sqlite3_column_int(b.stmt(), 0) > 0, sqlite3_column_int64(b.stmt(), 1)};
}

std::vector<OutboxRow> SqliteStore::outbox_peek(int limit) {
  static constexpr std::string_view sql = R"sql(
    SELECT id, job_id, due_at FROM job_outbox ORDER BY id LIMIT ?1
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.integer(static_cast<std::int64_t>(limit));
  std::vector<OutboxRow> out;
  while (b.step()) {
    auto id = JobId::parse(text_column(b.stmt(), 1));
    if (!id) throw Error(ErrorCode::kStore, "malformed job id in job_outbox");
    out.push_back({sqlite3_column_int64(b.stmt(), 0), *id, time_column(b.stmt(), 2)});
  }
  return out;
}

void SqliteStore::outbox_remove(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  // One statement: the ids as a JSON array, unpacked by json_each.
  static constexpr std::string_view sql = R"sql(
    DELETE FROM job_outbox WHERE id IN (SELECT value FROM json_each(?1))
  )sql";
  std::lock_guard lock(mu_);
  std::string list = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) list += ',';
    list += std::to_string(ids[i]);
  }
  list += "]";
  Binder b(db_, prepared(sql).get());
  b.text(list);
  b.run();
}

}  // namespace ergon::sqlite
