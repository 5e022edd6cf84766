// The registry of live workers on SQLite.
#include <string>

#include "store/handled_types.h"
#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {

void SqliteStore::worker_register(const WorkerRecord& w) {
  static constexpr std::string_view sql = R"sql(
    INSERT OR REPLACE INTO workers (id, name, host, pid, started_at, heartbeat_at, boot_id,
                                    pid_namespace, process_start, job_types, relay)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.text(w.id)
      .text(w.name)
      .text(w.host)
      .integer(static_cast<std::int64_t>(w.pid))
      .time(w.started_at)
      .time(w.heartbeat_at)
      .text(w.boot_id)
      .integer(w.pid_namespace)
      .integer(w.process_start);
  if (auto types = worker_types_json(w)) {
    b.text(*types);
  } else {
    b.null();
  }
  b.integer(static_cast<std::int64_t>(w.relay)).run();
}

void SqliteStore::worker_heartbeat(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  worker_heartbeat_locked(id, now);
}

void SqliteStore::worker_heartbeat_locked(std::string_view id, TimePoint now) {
  static constexpr std::string_view sql = R"sql(
    UPDATE workers SET heartbeat_at = ? WHERE id = ?
  )sql";
  Binder b(db_, prepared(sql).get());
  b.time(now).text(id).run();
}

void SqliteStore::worker_remove(std::string_view id) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM workers WHERE id = ?
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.text(id).run();
}

int SqliteStore::worker_prune(TimePoint stale_before, TimePoint) {
  static constexpr std::string_view sql = R"sql(
    DELETE FROM workers WHERE heartbeat_at < ?
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  b.time(stale_before).run();
  return sqlite3_changes(db_);
}

std::vector<WorkerRecord> SqliteStore::worker_list() {
  static constexpr std::string_view sql = R"sql(
    SELECT id, name, host, pid, started_at, heartbeat_at, boot_id, pid_namespace, process_start,
           job_types, relay
    FROM workers ORDER BY started_at
  )sql";
  std::lock_guard lock(mu_);
  Binder b(db_, prepared(sql).get());
  std::vector<WorkerRecord> out;
  while (b.step()) {
    WorkerRecord w;
    w.id = text_column(b.stmt(), 0);
    w.name = text_column(b.stmt(), 1);
    w.host = text_column(b.stmt(), 2);
    w.pid = sqlite3_column_int(b.stmt(), 3);
    w.started_at = time_column(b.stmt(), 4);
    w.heartbeat_at = time_column(b.stmt(), 5);
    w.boot_id = text_column(b.stmt(), 6);
    w.pid_namespace = sqlite3_column_int64(b.stmt(), 7);
    w.process_start = sqlite3_column_int64(b.stmt(), 8);
    if (auto types = opt_text(b.stmt(), 9)) w.job_types = worker_types_parse(*types);
    w.relay = sqlite3_column_int(b.stmt(), 10) != 0;
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace ergon::sqlite
