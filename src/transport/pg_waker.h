// transport/pg_waker.h — wake-ups of other processes for concurrent single enqueues on
// PostgreSQL: one pg_notify per round instead of one per insert.
//
// Why: a transaction that sends pg_notify holds a database-wide lock from the start of its
// commit to its end, WAL flush included, so notifying inserts commit one at a time, a flush
// each, where plain ones share flushes (bench/pgbench-ceiling.sh with 16 clients: 1,745 one-row
// transactions per second with their notifications against 5,709 without). So one insert at a
// time per store notifies in its own transaction (inline_begin() says whether this one may): in
// an idle system every enqueue does, and other processes hear of it with no extra round trip.
// An insert that starts while another is notifying commits without, and hands its due time to
// later(); the waker's thread then sends one notification for every such insert that committed
// meanwhile, with the earliest due time among them.
//
// The notification goes out on a connection the owner lends for the call (a PostgreSQL store
// lends one of its pool), in a transaction of its own that does not wait for a WAL flush.
//
// Ownership: the owner (the PostgreSQL store) owns the waker and stops it before the
// connections it lends go away. The thread starts with the first later(). Thread-safety: every
// method may be called from any thread at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "pq/pg_connection.h"

namespace ergon::transport {

class PgWaker {
 public:
  // Runs `use` on a connection lent for the duration of the call; throws when none can be had.
  using Borrow = std::function<void(const std::function<void(pq::PgConnection&)>& use)>;

  // `channel`: as pg_notify() names it.
  PgWaker(std::string channel, Borrow borrow);
  ~PgWaker();
  PgWaker(const PgWaker&) = delete;
  PgWaker& operator=(const PgWaker&) = delete;

  // Whether the caller's insert notifies in its own transaction; true means the caller must
  // call inline_end() once that insert is done (committed or not).
  bool inline_begin();
  void inline_end();
  // An insert that committed without a notification, due at `due` (the notification's
  // payload: ISO-8601 UTC, fixed width). Announced by the thread.
  void later(std::string due);
  // Announces what is still pending, then stops the thread. Idempotent.
  void stop();

  // Test hook: with false, inline_begin() always says no, so every wake-up of other processes
  // goes through the thread.
  void TEST_inline(bool on);

 private:
  void run();

  const std::string channel_;
  const Borrow borrow_;
  const pq::PgStatement notify_;

  // Guarded by mu_:
  std::mutex mu_;
  std::condition_variable cv_;
  bool inline_busy_ = false;  // an insert is notifying in its own transaction
  bool inline_off_ = false;   // TEST_inline(false)
  bool stop_ = false;
  std::string pending_;  // the earliest due of quiet inserts not yet announced; "": none
  std::thread thread_;   // started by the first later()
};

}  // namespace ergon::transport
