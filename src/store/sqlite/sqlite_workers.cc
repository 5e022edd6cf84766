// The registry of live workers on SQLite.
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

void SqliteStore::worker_register(const WorkerRecord& w) {
  static const std::string sql = fill(R"sql(
    INSERT OR REPLACE INTO workers (@WORKER_COLUMNS@)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
  )sql");
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  bind_worker(b, w);
  b.run();
}

void SqliteStore::worker_heartbeat(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  worker_heartbeat_locked(id, now);
}

void SqliteStore::worker_heartbeat_locked(std::string_view id, TimePoint now) {
  static constexpr std::string_view sql = R"sql(
    UPDATE workers SET heartbeat_at = ? WHERE id = ?
  )sql";
  run_locked(sql, now, id);
}

void SqliteStore::worker_remove(std::string_view id) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM workers WHERE id = ?
  )sql";
  run(sql, id);
}

int SqliteStore::worker_prune(TimePoint stale_before, TimePoint) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM workers WHERE heartbeat_at < ?
  )sql";
  return run(sql, stale_before);
}

std::vector<WorkerRecord> SqliteStore::worker_list() {
  static const std::string sql = fill(R"sql(
    SELECT @WORKER_COLUMNS@ FROM workers ORDER BY started_at
  )sql");
  return select(sql, read_worker<Row>);
}

}  // namespace ergon::sqlite
