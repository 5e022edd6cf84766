// transport/pg_listener.h — wake-ups across processes: PostgreSQL LISTEN feeding a Notifier.
//
// A PgListener owns one thread and one connection of its own. The thread LISTENs on a channel
// and, for every notification, calls notifier.notify(due), `due` being the notification's
// payload (an ISO-8601 UTC time; the clock's now if it is not one). Writers send the
// notification inside the transaction that makes a job due, so it arrives exactly when the job
// becomes visible: on commit, never before, and never for a rolled-back job.
//
// When the connection is lost the thread reconnects with back-off (50 ms doubling up to 2 s
// by default)
// and, once LISTENing again, calls notify(now) once: whatever was enqueued while it was away
// sent its notification to nobody, so the workers should look again. If LISTEN itself fails
// with an error (a proxy or configuration that forbids it), the listener logs it once and
// stops; the workers' polling carries on alone, as it always does between notifications.
//
// Stopping is prompt: every wait of the thread (connecting, LISTEN, idle, back-off) also
// watches a self-pipe that the destructor writes to. Only a host name that needs a slow DNS
// lookup could delay it (libpq resolves names synchronously).
//
// Thread-safety: construct and destroy from one thread; listening_wait() from any thread.
// The notifier and the clock must outlive the listener.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "ergon/clock.h"
#include "pq/pg_connection.h"
#include "transport/notifier.h"

namespace ergon::transport {

class PgListener {
 public:
  struct Options {
    // libpq connection keywords and values (PQconnectdbParams); later ones override earlier.
    pq::ConnParams conninfo;
    std::string channel;  // as pg_notify() names it; quoted for LISTEN by the listener
    // Notifications from these server processes are skipped: the store's own connections,
    // whose writers already woke this process synchronously. May be empty.
    std::function<bool(int backend_pid)> ignore_backend;
    // Called on the listener thread whenever connecting fails or the connection is lost, just
    // before the back-off wait (for metrics and tests). May be empty.
    std::function<void()> on_disconnected;
    // Reconnection back-off: doubles from min to max.
    std::chrono::milliseconds backoff_min{50};
    std::chrono::milliseconds backoff_max{2000};
  };

  PgListener(Options options, Notifier& notifier, Clock& clock);
  ~PgListener();
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Waits until the channel is LISTENed to (true), or `timeout` passes (false).
  bool listening_wait(std::chrono::milliseconds timeout);

 private:
  enum class Wake { kReady, kTimeout, kStop };
  enum class Outcome { kOk, kRefused, kLost, kStop };

  void run();
  Wake wait_fd(int fd, short events, int timeout_ms);
  Outcome connect(pq::PgConnPtr& conn);
  Outcome listen(PGconn* conn);
  Outcome receive(PGconn* conn);
  void listening_set(bool on);

  const Options options_;
  Notifier& notifier_;
  Clock& clock_;
  int stop_pipe_[2] = {-1, -1};
  std::string last_error_;  // the listener thread's only

  std::mutex mu_;
  std::condition_variable cv_;
  bool listening_ = false;  // guarded by mu_

  std::thread thread_;  // last: starts once everything above is set up
};

}  // namespace ergon::transport
