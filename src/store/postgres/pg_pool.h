// store/postgres/pg_pool.h — a small pool of PostgreSQL connections with RAII leases.
//
// A call takes a connection with acquire(), uses it, and gives it back when the Lease goes out
// of scope. At most `size` connections exist; they are opened lazily, so a CLI command that
// makes one call opens one. A caller that finds every connection leased waits for one.
//
// Failure: a connection that comes back broken (lost, or with a transaction that could not be
// rolled back) is closed, and so are the idle ones (also those of a pool linked with
// share_failures_with) — a lost connection usually means a server restart, which took the
// others with it — so the next acquire() reconnects instead of failing once per stale
// connection. When connecting fails, acquire() throws Error(kStore) and further
// attempts wait out a back-off (50 ms doubling up to 2 s, real time) during which acquire()
// fails at once: a worker polling a dead server does not hammer it.
//
// Never holds a transaction across calls: a lease returned inside a transaction is rolled back.
//
// Thread-safety: acquire() and owns_backend() may be called from any thread; a Lease belongs to
// the thread that acquired it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "pq/pg_connection.h"

namespace ergon::postgres {

class PgPool {
 public:
  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();

    pq::PgConnection& operator*() const { return *conn_; }
    pq::PgConnection* operator->() const { return conn_.get(); }

   private:
    friend class PgPool;
    Lease(PgPool* pool, std::unique_ptr<pq::PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    PgPool* pool_;
    std::unique_ptr<pq::PgConnection> conn_;
  };

  PgPool(pq::ConnParams params, int size);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // A connection for one call. Throws Error(kStore) (kNotFound: no such database) when a new
  // connection is needed and cannot be opened.
  Lease acquire();

  // True if `pid` is the server process of one of this pool's open connections.
  [[nodiscard]] bool owns_backend(int pid) const;

  // Two pools of one server (a store's own and its claims'): a broken connection in either
  // drops the idle connections of both. Call before either is used.
  void share_failures_with(PgPool& other);

 private:
  void release(std::unique_ptr<pq::PgConnection> conn);
  // Closes the idle connections (after a broken one: they most likely went down with it).
  void drop_idle();

  const pq::ConnParams params_;
  const int size_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pq::PgConnection>> idle_;  // guarded by mu_
  int leased_ = 0;                                  // leases out, or connecting; guarded by mu_
  std::set<int> pids_;                              // of open connections; guarded by mu_
  int failures_ = 0;                                // connect failures in a row; guarded by mu_
  std::chrono::steady_clock::time_point retry_at_;  // no connect attempt before; guarded by mu_
  std::string last_error_;                          // of the last failed connect; guarded by mu_
  std::vector<PgPool*> siblings_;  // share_failures_with; set before use, then constant
};

}  // namespace ergon::postgres
