#include "transport/pg_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

namespace ergon::transport {
namespace {

// libpq's connect_timeout only bounds blocking connects; this one is non-blocking.
constexpr auto kConnectTimeout = std::chrono::seconds(10);

void ignore_notice(void*, const char*) {}

}  // namespace

PgListener::PgListener(Options options, Notifier& notifier, Clock& clock)
    : options_(std::move(options)), notifier_(notifier), clock_(clock) {
  if (pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    spdlog::warn("postgresql listener: no pipe ({}); workers rely on polling", errno);
    return;
  }
  thread_ = std::thread([this] { run(); });
}

PgListener::~PgListener() {
  if (thread_.joinable()) {
    char byte = 1;
    // The pipe is non-blocking and holds at most this one byte: the write cannot fail but for
    // a full pipe, which already wakes the thread.
    [[maybe_unused]] auto n = write(stop_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

bool PgListener::listening_wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return listening_; });
}

void PgListener::listening_set(bool on) {
  std::lock_guard lock(mu_);
  listening_ = on;
  cv_.notify_all();
}

PgListener::Wake PgListener::wait_fd(int fd, short events, int timeout_ms) {
  pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, events, 0}};
  for (;;) {
    int rc = poll(fds, fd >= 0 ? 2 : 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Wake::kStop;  // cannot wait any more: give up rather than spin
    if (fds[0].revents != 0) return Wake::kStop;
    if (rc == 0) return Wake::kTimeout;
    return Wake::kReady;
  }
}

PgListener::Outcome PgListener::connect(pq::PgConnPtr& conn) {
  pq::ConnKeywords keywords(options_.conninfo);
  // Non-blocking connect (PQconnectStartParams + PQconnectPoll), so that a stop request is
  // seen while the server is slow to answer.
  conn.reset(PQconnectStartParams(keywords.keys(), keywords.values(), 0));
  if (!conn) {
    last_error_ = "out of memory";
    return Outcome::kLost;
  }
  auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (PQstatus(conn.get()) != CONNECTION_BAD) {
    if (state == PGRES_POLLING_OK) {
      PQsetNoticeProcessor(conn.get(), ignore_notice, nullptr);
      return Outcome::kOk;
    }
    if (state == PGRES_POLLING_FAILED) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      last_error_ = "timeout while connecting";
      return Outcome::kLost;
    }
    // The socket may change while libpq tries the hosts and addresses it was given.
    Wake w = wait_fd(PQsocket(conn.get()), state == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                     static_cast<int>(left.count()));
    if (w == Wake::kStop) return Outcome::kStop;
    if (w == Wake::kTimeout) continue;  // re-checks the deadline
    state = PQconnectPoll(conn.get());
  }
  last_error_ = pq::pg_one_line(PQerrorMessage(conn.get()));
  return Outcome::kLost;
}

PgListener::Outcome PgListener::listen(PGconn* conn) {
  char* quoted = PQescapeIdentifier(conn, options_.channel.data(), options_.channel.size());
  if (quoted == nullptr) {
    last_error_ = pq::pg_one_line(PQerrorMessage(conn));
    return Outcome::kLost;
  }
  std::string sql = std::string("LISTEN ") + quoted;
  PQfreemem(quoted);
  if (PQsendQuery(conn, sql.c_str()) != 1) {
    last_error_ = pq::pg_one_line(PQerrorMessage(conn));
    return Outcome::kLost;
  }
  Outcome outcome = Outcome::kOk;
  for (;;) {
    if (PQconsumeInput(conn) != 1) {
      last_error_ = pq::pg_one_line(PQerrorMessage(conn));
      return Outcome::kLost;
    }
    while (PQisBusy(conn) == 0) {
      PGresult* r = PQgetResult(conn);
      if (r == nullptr) return outcome;  // the command is complete
      if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        last_error_ = pq::pg_one_line(PQresultErrorMessage(r));
        outcome = PQstatus(conn) == CONNECTION_BAD ? Outcome::kLost : Outcome::kRefused;
      }
      PQclear(r);
    }
    if (wait_fd(PQsocket(conn), POLLIN, -1) == Wake::kStop) return Outcome::kStop;
  }
}

PgListener::Outcome PgListener::receive(PGconn* conn) {
  for (;;) {
    // Drain first: notifications may already be buffered (read along with LISTEN's reply).
    while (PGnotify* n = PQnotifies(conn)) {
      bool skip = options_.ignore_backend && options_.ignore_backend(n->be_pid);
      if (!skip) {
        auto due = parse_timestamp(n->extra ? n->extra : "");
        notifier_.notify(due ? *due : clock_.now());
      }
      PQfreemem(n);
    }
    if (PQstatus(conn) == CONNECTION_BAD) {
      last_error_ = pq::pg_one_line(PQerrorMessage(conn));
      return Outcome::kLost;
    }
    if (wait_fd(PQsocket(conn), POLLIN, -1) == Wake::kStop) return Outcome::kStop;
    if (PQconsumeInput(conn) != 1) {
      last_error_ = pq::pg_one_line(PQerrorMessage(conn));
      return Outcome::kLost;
    }
  }
}

void PgListener::run() {
  auto backoff = options_.backoff_min;
  bool troubled = false;  // a connection failed or was lost since the last LISTEN
  for (;;) {
    pq::PgConnPtr conn;
    Outcome o = connect(conn);
    if (o == Outcome::kOk) o = listen(conn.get());
    if (o == Outcome::kStop) break;
    if (o == Outcome::kRefused) {
      spdlog::warn("postgresql listener: LISTEN {} refused ({}); workers rely on polling",
                   options_.channel, last_error_);
      break;
    }
    if (o == Outcome::kOk) {
      listening_set(true);
      backoff = options_.backoff_min;
      if (troubled) {
        spdlog::info("postgresql listener: listening on {} again", options_.channel);
        // Notifications sent while we were away reached nobody: have the workers look again.
        notifier_.notify(clock_.now());
        troubled = false;
      }
      o = receive(conn.get());
      listening_set(false);
      if (o == Outcome::kStop) break;
    }
    // Lost, or could not connect: log once per outage, then retry with back-off.
    if (!troubled) {
      spdlog::warn("postgresql listener: no connection ({}); reconnecting, workers keep polling",
                   last_error_);
      troubled = true;
    }
    conn.reset();
    if (options_.on_disconnected) options_.on_disconnected();
    if (wait_fd(-1, 0, static_cast<int>(backoff.count())) == Wake::kStop) break;
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
  listening_set(false);
}

}  // namespace ergon::transport
