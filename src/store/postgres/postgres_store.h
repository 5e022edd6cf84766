// store/postgres/postgres_store.h — the PostgreSQL backend.
//
// Any number of processes on any number of hosts share one database. Claims use
// `FOR UPDATE SKIP LOCKED`, so claimers never block each other and never get the same job;
// every write is one statement (its own transaction) or one short explicit transaction, and
// no transaction outlives a call. Wake-ups travel with the data: each enqueue sends one
// pg_notify in its own transaction, delivered on commit to every process LISTENing (a
// PgListener per store, started with the first claim); concurrent single enqueues share one
// per round instead (a PgWaker per store, transport/pg_waker.h).
//
// Schemas: `?schema=NAME` in the URL puts Ergon's tables in schema NAME (default `public`), so
// two applications can share a database. Every statement names its tables schema-qualified
// and quoted (PQescapeIdentifier); the notification channel and the migration lock include
// the schema too.
//
// Time: with the system clock (the default, `Clock::system()`), the DATABASE clock decides:
// what is due is `run_at <= now()` on the server, and every time the store writes is the
// server's now() plus the offset the caller meant (run_at - created_at for an insert, run_at -
// now for a retry). Worker hosts with skewed clocks then agree on what is due. With any other
// Clock (a test's FakeClock) the times in the params are written as given and claims compare
// with the params' `now`, so the conformance suite's fake time works. On the database clock,
// heartbeats, rescues and cancellations are stamped with the server's now(), and a rescue's
// stale_before is taken relative to it; job_prune's cut-off is compared as given (retention is
// coarse); an operator's retry is due at the server's now(), and job_counts compare run_at with
// it too. A schedule's slot times (next_run_time, last_run_time) are instants computed by the
// cron engine and are stored as given, on either clock; schedule_due compares them with the
// scheduler's `now`. Exactly-once per slot does not depend on clocks: schedule_fire is
// conditional on the slot it read, under a row lock.
//
// Ownership: the store owns its pools of connections, its listener and its waker. Thread-safety:
// every method may be called from any thread at once (each call leases its own connection).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "pq/pg_connection.h"
#include "store/limited_types.h"
#include "store/postgres/pg_pool.h"
#include "store/store.h"
#include "transport/pg_listener.h"
#include "transport/pg_waker.h"

namespace ergon::postgres {

inline constexpr int kDefaultPoolSize = 4;

struct PostgresUrl {
  std::string schema = "public";
  int pool_size = kDefaultPoolSize;
  // What libpq is given: the URL's own parameters as PQconninfoParse read them (host, port,
  // dbname, user, ... and any libpq query parameter), then application_name=ergon and
  // connect_timeout=10 unless the URL set them, then client_encoding=UTF8 (always).
  pq::ConnParams conninfo;
};

// "postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]" (or postgres://).
// Ergon's own parameters are `schema` (1 to 63 bytes, percent-decoded) and `pool_size` (1 to
// 64); every other parameter goes to libpq, which must know it. Throws
// Error(kInvalidArgument) for anything else.
PostgresUrl parse_postgres_url(std::string_view url);

// The methods live by noun, as in the SQLite backend: postgres_store.cc (opening, the listener,
// job_get, job_list), postgres_enqueue.cc, postgres_claim.cc, postgres_outcomes.cc,
// postgres_workers.cc, postgres_outbox.cc, postgres_schedules.cc, postgres_flow.cc (limits and
// queues), postgres_ops.cc (operators' actions) and pg_migrations.cc. Each file holds its
// statements' SQL; postgres_internal.h has what they share.
class PostgresStore final : public Store {
 public:
  // Connects once (to fail fast on a bad URL or an unreachable server). Throws Error(kStore),
  // or kNotFound when the database does not exist. Does not touch the schema.
  PostgresStore(const PostgresUrl& url, Clock& clock);
  ~PostgresStore() override;

  std::string_view backend() const override { return "postgresql"; }
  // Throws Error(kSchema) unless the schema is at this build's version.
  void schema_check();

  // Every other method of Store.
#include "store/store_overrides.inc"

  [[nodiscard]] const std::string& schema() const { return schema_; }
  // The pg_notify channel of this store's schema.
  [[nodiscard]] const std::string& channel() const { return channel_; }
  [[nodiscard]] bool database_clock() const { return database_clock_; }

  // Starts the listener if it is not running yet and waits until it LISTENs (true) or
  // `timeout` passes (false).
  bool listener_wait_ready(std::chrono::milliseconds timeout);
  // LISTENs on the finish channel from now on (a connection and thread of their own, started by
  // the first call) and feeds finish_notifier(); its connection's application_name is the
  // channel, which tells completions in every process to notify (postgres_outcomes.cc).
  void watch_finishes() override;

  // Test hook: for each statement prepared on the store's connections (those a call gets now;
  // with pool_size=1 every one), how many times PostgreSQL planned it generically and how many
  // times for its parameters (pg_prepared_statements).
  struct PlanCounts {
    std::int64_t generic = 0;
    std::int64_t custom = 0;
  };
  std::map<std::string, PlanCounts> TEST_plan_counts();
  // Test hook: with false, no insert notifies in its own transaction; every wake-up of other
  // processes goes through the waker's thread (transport/pg_waker.h).
  void TEST_notify_inline(bool on);

 private:
  struct Statements;  // postgres_internal.h
  void listener_ensure();
  // A listener on `channel` over its own connection, relaying what other processes send.
  transport::PgListener::Options listener_options(const std::string& channel);
  // One statement on a connection of pool_, given back before the result is read: as a
  // prepared statement (run) or not (exec).
  pq::PgResult pooled_run(const pq::PgStatement& st, const pq::PgParams& params,
                          pq::Format format = pq::Format::kBinary);
  pq::PgResult pooled_exec(const std::string& sql, const pq::PgParams& params,
                           pq::Format format = pq::Format::kBinary);
  int schema_version(pq::PgConnection& conn);
  [[nodiscard]] pq::PgParams holder_params(const JobInsertParams& p) const;
  void claim_limited(const JobClaimParams& p, std::vector<JobRecord>& out, std::size_t count);
  // One limited type's claim on `conn`, inside its transaction.
  void claim_type(pq::PgConnection& conn, const JobClaimParams& p, const std::string& type,
                  int room, std::vector<JobRecord>& out);
  // One outcome on `conn`; a final state notifies the finish channel when `notify_finish`.
  bool finish_on(pq::PgConnection& conn, const JobFinishParams& p, bool notify_finish);
  // Whether some process waits for finished jobs: a session named after the finish channel
  // exists (watch_finishes). Looked up (a statement on a pool connection: call it holding none)
  // at most once a second and remembered. Only then do completions notify, as a notifying
  // transaction holds a lock that serializes the commits of every notifying transaction of the
  // cluster, and reading the server's session table costs each statement that reads it. A
  // waiter that appears meanwhile is not told for up to a second: its wait polls.
  bool someone_waits();
  // job_rescue and job_release_worker: runs `st`, then wakes the workers for what went back
  // to Pending.
  int rescue_run(const pq::PgStatement& st, const pq::PgParams& params, TimePoint now);
  // job_retry and job_retry_matching: runs the UPDATE ... RETURNING run_at, then wakes the
  // workers of every process. Returns how many jobs went back to Pending.
  int retry_run(const std::string& sql, const pq::PgParams& params, TimePoint now);

  const std::string schema_;
  const std::string channel_;
  const std::string finish_channel_;  // finish_channel_for: finished jobs, for JobRunner::wait
  std::atomic<std::int64_t> waiters_checked_ms_{0};  // someone_waits: when (steady ms; 0: never)
  std::atomic<bool> waiters_{false};                 // someone_waits: what it found then
  const bool database_clock_;                        // see "Time" above
  const pq::ConnParams conninfo_;
  PgPool pool_;
  // The claims' own connections (as many as claim at once: usually one, as a worker has one
  // producer; up to pool_size when workers share the store), which plan every statement
  // generically (plan_cache_mode = force_generic_plan): with a backlog the plan cache would
  // otherwise plan the claim for its parameters at every execution, which took about as long
  // as executing it (the generic plan's LIMIT $2 is costed at a tenth of the backlog, so it
  // never looks cheaper). The plain claim's generic plan reads jobs_claim_idx and jobs_pkey
  // with 50,000 and with 1,000,000 jobs due (EXPLAIN; postgres_store_test checks it); other
  // statements keep the default.
  PgPool claim_pool_;
  std::string quoted_schema_;  // set by the constructor, then constant
  std::unique_ptr<Statements> sql_;
  LimitedTypes limited_types_;

  std::mutex listener_mu_;
  std::atomic<bool> listener_started_{false};
  // Whether the last claim saw a grouped job Pending: the next claim is then the fair one
  // (round-robin across groups), otherwise the plain one. Starts fair.
  std::atomic<bool> grouped_pending_{true};
  std::unique_ptr<transport::PgListener> listener_;         // guarded by listener_mu_
  std::unique_ptr<transport::PgListener> finish_listener_;  // guarded by listener_mu_

  // Wake-ups of other processes for concurrent single inserts (job_insert); lends pool_'s
  // connections, so it is stopped first.
  transport::PgWaker waker_;
};

}  // namespace ergon::postgres
