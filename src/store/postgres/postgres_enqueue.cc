// store/postgres/postgres_enqueue.cc — enqueueing: one job (with its unique key and group key),
// one job inside the caller's transaction, and many at once (COPY).
#include <algorithm>

#include "ergon/error.h"
#include "store/postgres/postgres_internal.h"

namespace ergon::postgres {
namespace {

// The predicate of jobs_unique_idx (migration 5), which ON CONFLICT must repeat to use it.
constexpr std::string_view kUniqueHeld = R"sql(unique_key IS NOT NULL AND (status = 'Pending' OR
(status = 'Running' AND unique_while_running)))sql";

// Inserts evaluate the base time once (the `clock` subquery, @BASE@) so created_at and run_at
// agree: @CREATED_AT@, @RUN_AT@ and @UNIQUE_UNTIL@ are the caller's $7, $8 and $15, or on the
// database clock that base plus the offset the caller meant (SqlContext::time). $1-$15 are
// bind_insert's and bind_unique's (store/params.h). The notification goes out in the same
// statement, hence the same transaction: PostgreSQL delivers it on commit and drops it on rollback,
// so no worker is woken for a row it cannot see yet. It returns the id, pg_notify's (empty) result
// and the due time as the notification's payload. $13 is the unique key (NULL: none) and $14
// unique_while_running: a key held by another job makes the insert do nothing (no row comes back,
// no notification). $15 is the end of the key's time window (NULL: none): the job holds its key
// until then, and a key whose window is open at this job's created_at makes the insert do nothing
// too. $16 is the channel.
constexpr std::string_view kInsert = R"sql(
WITH ins AS (
  INSERT INTO @SCHEMA@.jobs (id, job_type, job_data, status, queue, priority, max_attempts,
                             created_at, run_at, attempt, timeout_ms, group_key, tags, meta,
                             unique_key, unique_while_running, unique_until)
  SELECT $1::uuid, $2::varchar, $3::jsonb, 'Pending', $4::varchar, $5::integer, $6::integer,
         @CREATED_AT@, @RUN_AT@, 0, $9::bigint, $10::varchar, $11::text[], $12::jsonb,
         $13::varchar, $14::boolean, @UNIQUE_UNTIL@
  FROM (SELECT @BASE@ AS b) AS clock
  WHERE $13::varchar IS NULL OR NOT EXISTS (
      SELECT 1 FROM @SCHEMA@.jobs o
      WHERE o.unique_key = $13::varchar AND o.unique_until > @CREATED_AT@)
  ON CONFLICT (unique_key) WHERE @UNIQUE_HELD@ DO NOTHING
  RETURNING id, run_at)
SELECT id, @NOTIFY@, @PAYLOAD@ FROM ins)sql";

// The job holding a key: a Pending (or Running) holder first, else the newest open window (at
// $2, or the database's clock_timestamp()).
constexpr std::string_view kUniqueHolder = R"sql(
SELECT id FROM @SCHEMA@.jobs
WHERE unique_key = $1 AND ((@UNIQUE_HELD@) OR unique_until > @NOW@)
ORDER BY (@UNIQUE_HELD@) DESC, unique_until DESC
LIMIT 1)sql";

// COPY's text format: backslash escapes for the characters that delimit fields and rows.
void copy_field(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
}

// A nullable text field: empty is NULL (\N).
void copy_nullable(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += "\\N";
  } else {
    copy_field(out, v);
  }
}

// $1-$15 of the insert (bind_insert, bind_unique), then the channel ($16).
PgParams insert_params(const JobInsertParams& p, const std::string& channel) {
  PgParams params;
  bind_insert(params, p);
  bind_unique(params, p);
  params.text(channel);
  return params;
}

}  // namespace

EnqueueStatements::EnqueueStatements(const SqlContext& sql) {
  // `base`: the time the insert measures from (see insert_tx).
  auto insert_sql = [&](std::string_view base, std::string_view notify) {
    return sql.text(kInsert, {{"@CREATED_AT@", sql.time("clock.b", 7, 7)},
                              {"@RUN_AT@", sql.time("clock.b", 8, 7)},
                              {"@UNIQUE_UNTIL@", sql.time("clock.b", 15, 7)},
                              {"@BASE@", base},
                              {"@UNIQUE_HELD@", kUniqueHeld},
                              {"@NOTIFY@", notify},
                              {"@PAYLOAD@", kRunAtPayload}});
  };
  // now() is the statement's start here (every insert is its own transaction). The
  // notification only if $17 (see job_insert).
  insert = {"ergon_job_insert",
            insert_sql("now()", "CASE WHEN $17::boolean THEN pg_notify($16, @PAYLOAD@) END")};
  // On the caller's connection now() would be the start of the caller's transaction, which
  // may be long before this insert: a delay would then be measured from BEGIN. The statement's
  // own clock_timestamp() measures it from the start_job call, as the caller meant.
  insert_tx = insert_sql("clock_timestamp()", "pg_notify($16, @PAYLOAD@)");
  unique_holder = sql.statement(
      "ergon_job_unique_holder", kUniqueHolder,
      {{"@UNIQUE_HELD@", kUniqueHeld},
       {"@NOW@", sql.db_clock ? std::string_view("clock_timestamp()") : "$2::timestamptz"}});
  copy = sql.text(R"sql(
COPY @SCHEMA@.jobs (id, job_type, job_data, status, created_at, queue, priority, run_at, attempt,
                    max_attempts, timeout_ms, group_key, tags, meta)
FROM STDIN)sql");
}

// The unique-holder look-up's parameters: the key, and the time of the insert on the
// caller's clock.
PgParams PostgresStore::holder_params(const JobInsertParams& p) const {
  PgParams params;
  params.text(p.unique_key);
  if (!database_clock_) params.time(p.created_at);
  return params;
}

JobId PostgresStore::job_insert(const JobInsertParams& p) {
  if (!p.unique_key.empty()) require_no_nul(p.unique_key, "unique key");
  PgParams params = insert_params(p, channel_);
  // Wake-ups coalesced (transport/pg_waker.h): one insert at a time per store notifies in its
  // own transaction; one that starts while another is notifying commits without, and the
  // waker notifies for it once it has committed, one notification for all that came meanwhile.
  const bool notify_inline = waker_.inline_begin();
  struct InlineEnd {
    transport::PgWaker& waker;
    bool on;
    ~InlineEnd() {
      if (on) waker.inline_end();
    }
  } inline_end{waker_, notify_inline};
  params.boolean(notify_inline);  // $17
  // A conflict returns no row: find the holder. If it finished in between (the look-up runs on
  // a newer snapshot), the key is free again: insert again. Each round means another job
  // holding and then freeing the key, so a few rounds are plenty.
  bool inserted = false;
  for (int round = 0; round < 10 && !inserted; ++round) {
    auto conn = pool_.acquire();
    auto r = conn->run(sql_->enqueue.insert, params, Format::kText);
    inserted = PQntuples(r.get()) == 1;
    if (inserted) {
      if (!notify_inline) waker_.later(PQgetvalue(r.get(), 0, 2));
      break;
    }
    auto h = conn->run(sql_->enqueue.unique_holder, holder_params(p));
    if (PQntuples(h.get()) == 1) return pgbin::uuid(h.get(), 0, 0);
  }
  if (!inserted) {
    throw Error(ErrorCode::kStore,
                "unique key '" + std::string(p.unique_key) + "' keeps changing hands; try again");
  }
  // This process's workers learn it now; other processes through the pg_notify above, or the
  // waker's.
  notifier().notify(p.run_at);
  return p.id;
}

JobId PostgresStore::job_insert_tx(NativeConnection native, const JobInsertParams& p) {
  pg_conn* conn = native_handle<pg_conn>(native, backend());
  // The caller's transaction is theirs: Ergon writes inside it and never begins, commits or
  // rolls back.
  require_transaction(conn, "start_job(conn, ...)");
  if (!p.unique_key.empty()) require_no_nul(p.unique_key, "unique key");
  PgParams params = insert_params(p, channel_);
  // The notification is queued in the caller's transaction: sent if they commit, dropped if
  // they roll back. No local notify here: the row is invisible until the commit, when this
  // store's listener relays the notification like any other process's.
  auto r =
      exec_on_caller(conn, sql_->enqueue.insert_tx, params, "insert on the caller's connection");
  if (PQntuples(r.get()) == 1) return p.id;
  // The key is held. (A holder that finished since the insert's snapshot leaves nothing to
  // find: the caller's transaction then fails, rather than silently inserting nothing.)
  auto h = exec_on_caller(conn, sql_->enqueue.unique_holder.sql, holder_params(p),
                          "unique key look-up on the caller's connection");
  if (PQntuples(h.get()) == 1) return *JobId::parse(PQgetvalue(h.get(), 0, 0));
  throw Error(ErrorCode::kStore, "unique key '" + std::string(p.unique_key) +
                                     "' was held by a job that has just finished; try again");
}

void PostgresStore::job_insert_many(const std::vector<JobInsertParams>& jobs) {
  if (jobs.empty()) return;
  for (const auto& p : jobs) {
    require_no_nul(p.job_type, "job type");
    require_no_nul(p.job_data, "job_data");
    require_no_nul(p.queue, "queue");
    require_no_nul(p.meta, "meta");
    for (const auto& tag : p.tags) require_no_nul(tag, "tag");
  }
  TimePoint earliest = jobs.front().run_at;  // on the caller's clock
  for (const auto& p : jobs) earliest = std::min(earliest, p.run_at);
  {
    auto conn = pool_.acquire();
    transaction(*conn, [&] {
      // On the database clock every row is stamped with the transaction's now(), read once
      // (it is constant within the transaction), plus the offset the caller meant.
      std::optional<TimePoint> base;
      if (database_clock_) {
        auto r = conn->exec("SELECT now()", PgParams());
        base = pgbin::timestamptz(r.get(), 0, 0);
      }
      auto stored = [&](TimePoint t, TimePoint caller_now) {
        return base ? *base + (t - caller_now) : t;
      };
      // COPY: one stream of rows, the fastest way into a table; it fails as a whole.
      std::string data;
      data.reserve(jobs.size() * 160);
      TimePoint earliest_stored = stored(jobs.front().run_at, jobs.front().created_at);
      for (const auto& p : jobs) {
        TimePoint run_at = stored(p.run_at, p.created_at);
        earliest_stored = std::min(earliest_stored, run_at);
        data += p.id.to_string();
        data += '\t';
        copy_field(data, p.job_type);
        data += '\t';
        copy_field(data, p.job_data);
        data += "\tPending\t";
        data += format_timestamp(stored(p.created_at, p.created_at));
        data += '\t';
        copy_field(data, p.queue);
        data += '\t';
        data += std::to_string(p.priority);
        data += '\t';
        data += format_timestamp(run_at);
        data += "\t0\t";
        data += p.max_attempts ? std::to_string(*p.max_attempts) : "\\N";
        data += '\t';
        const auto timeout = timeout_ms(p.timeout);
        data += timeout ? std::to_string(*timeout) : "\\N";
        data += '\t';
        copy_nullable(data, p.group_key);
        data += '\t';
        if (p.tags.empty()) {
          data += "\\N";
        } else {
          pq::PgArray tags;
          for (const auto& t : p.tags) tags.add(t);
          copy_field(data, tags.str());
        }
        data += '\t';
        copy_nullable(data, p.meta);
        data += '\n';
      }
      conn->copy_in(sql_->enqueue.copy, data);
      // One notification for the whole batch, with its earliest due time, sent on commit.
      conn->exec(sql_->notify.sql,
                 PgParams().text(channel_).text(format_timestamp(earliest_stored)), Format::kText);
    });
  }
  notifier().notify(earliest);  // one wake-up for the batch
}

}  // namespace ergon::postgres
