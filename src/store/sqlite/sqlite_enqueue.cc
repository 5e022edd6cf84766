// Enqueueing on SQLite: one job, a batch, or one on the caller's connection in the caller's
// transaction; unique keys and group keys. A tagged job's job_tags rows are written by the
// trigger of migration 11, in the insert's statement.
#include <algorithm>
#include <string>

#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

// The predicate of jobs_unique_idx (migration 5), which ON CONFLICT must name to use it.
constexpr std::string_view kUniquePredicate = R"sql(
  unique_key IS NOT NULL
  AND (status = 'Pending' OR (status = 'Running' AND unique_while_running = 1))
)sql";

std::string enqueue_sql(std::string_view sql) {
  return fill(sql, {{"UNIQUE_PREDICATE", kUniquePredicate}});
}

// A unique key already held makes the insert do nothing (sqlite3_changes() == 0): by a
// Pending (or Running) job through jobs_unique_idx, or by a job whose time window
// (unique_until) is still open at the new job's created_at. The check and the insert are one
// statement under the write lock.
const std::string kInsertSql = enqueue_sql(R"sql(
  INSERT INTO jobs (id, job_type, job_data, status, queue, priority, max_attempts, created_at,
                    run_at, attempt, timeout_ms, group_key, tags, meta, unique_key,
                    unique_while_running, unique_until)
  SELECT ?1, ?2, ?3, 'Pending', ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?12, ?13, ?14, ?15
  WHERE ?13 IS NULL OR NOT EXISTS (SELECT 1 FROM jobs WHERE unique_key = ?13 AND unique_until > ?7)
  ON CONFLICT (unique_key) WHERE @UNIQUE_PREDICATE@ DO NOTHING
)sql");

// The job holding a key at ?2: a Pending (or Running) holder first, else the newest window.
const std::string kUniqueHolderSql = enqueue_sql(R"sql(
  SELECT id FROM jobs
  WHERE unique_key = ?1 AND ((@UNIQUE_PREDICATE@) OR unique_until > ?2)
  ORDER BY (@UNIQUE_PREDICATE@) DESC, unique_until DESC
  LIMIT 1
)sql");

// Runs the insert on `db` (the store's or the caller's connection, inside whatever transaction
// is open there). Returns p.id, or the id of the job that holds p.unique_key: the insert did
// nothing, and in the same transaction (so under the same write lock) the holder is found.
JobId insert_on(sqlite3* db, sqlite3_stmt* insert, sqlite3_stmt* holder, const JobInsertParams& p) {
  {
    Binder b(db, insert);
    bind_insert(b, p);
    bind_unique(b, p);
    b.run();
  }
  if (sqlite3_changes(db) == 1) return p.id;
  Binder h(db, holder);
  h.text(p.unique_key).time(p.created_at);
  if (!h.step()) {
    throw Error(ErrorCode::kStore,
                "unique key '" + std::string(p.unique_key) + "' conflicts, but no job holds it");
  }
  return Row(h.stmt()).uuid("job id");
}

}  // namespace

JobId SqliteStore::insert_locked(const JobInsertParams& p) {
  return insert_on(db_, prepared(kInsertSql).get(), prepared(kUniqueHolderSql).get(), p);
}

JobId SqliteStore::job_insert(const JobInsertParams& p) {
  JobId id;
  {
    std::lock_guard lock(mu_);
    if (p.unique_key.empty()) {
      // A single autocommit INSERT takes the write lock when it starts, so busy_timeout covers
      // contention with other processes; no explicit transaction is needed.
      id = insert_locked(p);
    } else {
      // The insert and, on a conflict, the look-up of the holder under one write lock: the
      // holder cannot finish in between.
      WriteTransaction tx(*this);
      id = insert_locked(p);
      tx.commit();
    }
  }
  if (id == p.id) notifier().notify(p.run_at);
  return id;
}

void SqliteStore::job_insert_many(const std::vector<JobInsertParams>& jobs) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mu_);
    WriteTransaction tx(*this);
    for (const auto& p : jobs) insert_locked(p);
    tx.commit();
  }
  TimePoint earliest = jobs.front().run_at;
  for (const auto& p : jobs) earliest = std::min(earliest, p.run_at);
  notifier().notify(earliest);  // one wake-up for the batch
}

JobId SqliteStore::job_insert_tx(NativeConnection native, const JobInsertParams& p) {
  sqlite3* conn = caller_connection(
      native, backend(), "start_job(conn, ...) needs an open transaction on conn (BEGIN first)");
  constexpr std::string_view what = "prepare insert on the caller's connection";
  Stmt insert(conn, kInsertSql, 0, what);
  Stmt holder(conn, kUniqueHolderSql, 0, what);
  return insert_on(conn, insert.get(), holder.get(), p);
}

}  // namespace ergon::sqlite
