#include "guarded_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace ergon::dashboard {

namespace {

using Steady = std::chrono::steady_clock;

// One accepted connection. Closing it is its destruction.
struct Conn {
  Conn(int fd_, std::atomic<std::size_t>& open_) : fd(fd_), open(open_) { ++open; }
  ~Conn() {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    --open;
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void wait_for_head(std::chrono::milliseconds timeout) {
    waiting_since = Steady::now();
    deadline = waiting_since + timeout;
  }

  const int fd;
  std::atomic<std::size_t>& open;
  std::string buf;  // received and not yet parsed
  Steady::time_point waiting_since;
  Steady::time_point deadline;  // for the head it waits for
  std::size_t served = 0;
};

// Whether `buf` holds a whole request head. Blank lines before a request line (some clients
// send CRLF after a body) are dropped first.
bool head_complete(std::string& buf) {
  std::size_t start = buf.find_first_not_of("\r\n");
  buf.erase(0, start == std::string::npos ? buf.size() : start);
  return buf.find("\r\n\r\n") != std::string::npos || buf.find("\n\n") != std::string::npos;
}

// Best effort: the client may be gone or not reading.
void send_status(int fd, std::string_view status) {
  std::string s =
      "HTTP/1.1 " + std::string(status) + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  (void)::send(fd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

int poll_ms(Steady::duration d) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<decltype(ms)>(ms, 0, 60'000));
}

// The numeric address and port of a socket's peer (peer) or own end.
void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  char host[NI_MAXHOST] = "";
  char serv[NI_MAXSERV] = "";
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0 ||
      ::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    ip.clear();
    port = 0;
    return;
  }
  ip = host;
  port = std::atoi(serv);
}

// A request's view of its connection: the bytes already received first, then the socket, every
// wait bounded by one deadline for the whole request (body and answer).
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(Conn& c, Steady::time_point deadline) : c_(c), deadline_(deadline) {}

  bool is_readable() const override { return pos_ < c_.buf.size() || wait(POLLIN); }
  bool is_writable() const override { return wait(POLLOUT); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ == c_.buf.size()) {
      c_.buf.clear();
      pos_ = 0;
      char tmp[4096];
      for (;;) {
        if (!wait(POLLIN)) return -1;
        ssize_t n = ::recv(c_.fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
          c_.buf.assign(tmp, static_cast<std::size_t>(n));
          break;
        }
        if (n == 0) return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
      }
    }
    std::size_t n = std::min(size, c_.buf.size() - pos_);
    std::memcpy(ptr, c_.buf.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    std::size_t done = 0;
    while (done < size) {
      if (!wait(POLLOUT)) return -1;
      ssize_t n = ::send(c_.fd, ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return -1;
      }
      done += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(done);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address_of(c_.fd, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address_of(c_.fd, false, ip, port);
  }
  socket_t socket() const override { return c_.fd; }

  // What the request did not consume (the next pipelined request) stays with the connection.
  void keep_rest() {
    c_.buf.erase(0, pos_);
    pos_ = 0;
  }

 private:
  bool wait(short events) const {
    for (;;) {
      auto left = deadline_ - Steady::now();
      if (left <= Steady::duration::zero()) return false;
      pollfd p{c_.fd, events, 0};
      int r = ::poll(&p, 1, poll_ms(left));
      if (r > 0) return true;  // ready, or an error the next recv/send reports
      if (r < 0 && errno != EINTR) return false;
    }
  }

  Conn& c_;
  Steady::time_point deadline_;
  std::size_t pos_ = 0;
};

}  // namespace

// The TaskQueue httplib's accept loop hands connections to: it runs the hand-over inline (on the
// accept thread), then one thread waits for heads and `threads` threads serve requests.
class GuardedServer::Pool final : public httplib::TaskQueue {
 public:
  Pool(GuardedServer& server, ConnectionLimits limits) : server_(server), limits_(limits) {
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "dashboard: pipe");
    }
    waiter_ = std::thread([this] { wait_for_heads(); });
    for (std::size_t i = 0; i < limits_.threads; ++i) {
      servers_.emplace_back([this] { serve_requests(); });
    }
  }

  ~Pool() override {
    shutdown();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void enqueue(std::function<void()> fn) override { fn(); }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    ready_cv_.notify_all();
    wake();
    waiter_.join();
    for (auto& t : servers_) t.join();
    std::lock_guard lock(mu_);
    incoming_.clear();
    ready_.clear();
    server_.pool_ = nullptr;
  }

  void adopt(int fd) {
    auto c = std::make_unique<Conn>(fd, open_);
    c->wait_for_head(limits_.header_timeout);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      incoming_.push_back(std::move(c));
    }
    wake();
  }

 private:
  void wake() {
    char b = 1;
    if (::write(wake_[1], &b, 1) < 0) {
      // EAGAIN: the pipe is full, so the waiter will wake anyway.
    }
  }

  void drain_wake() {
    char b[64];
    while (::read(wake_[0], b, sizeof b) > 0) {
    }
  }

  void hand_over(std::unique_ptr<Conn> c) {
    {
      std::lock_guard lock(mu_);
      ready_.push_back(std::move(c));
    }
    ready_cv_.notify_one();
  }

  // Reads what has arrived. False when the connection is to be closed: the peer closed it
  // before a whole head, or it failed.
  static bool receive(Conn& c) {
    char tmp[4096];
    while (c.buf.size() <= kMaxHeadBytes) {
      ssize_t n = ::recv(c.fd, tmp, sizeof tmp, MSG_DONTWAIT);
      if (n > 0) {
        c.buf.append(tmp, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return head_complete(c.buf);  // a request then a half-close is still served
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
    return true;
  }

  // The waiting thread: owns the connections that wait for a head.
  void wait_for_heads() {
    std::vector<std::unique_ptr<Conn>> waiting;
    std::vector<pollfd> fds;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        for (auto& c : incoming_) waiting.push_back(std::move(c));
        incoming_.clear();
      }
      // A head that came with the previous request (pipelining) is served at once.
      std::erase_if(waiting, [&](std::unique_ptr<Conn>& c) {
        if (!head_complete(c->buf)) return false;
        hand_over(std::move(c));
        return true;
      });
      while (open_ > limits_.max_connections && !waiting.empty()) {
        auto longest = std::min_element(waiting.begin(), waiting.end(), [](auto& a, auto& b) {
          return a->waiting_since < b->waiting_since;
        });
        waiting.erase(longest);
      }

      fds.assign(1, pollfd{wake_[0], POLLIN, 0});
      auto first_deadline = Steady::time_point::max();
      for (auto& c : waiting) {
        fds.push_back(pollfd{c->fd, POLLIN, 0});
        first_deadline = std::min(first_deadline, c->deadline);
      }
      int timeout = waiting.empty() ? -1 : poll_ms(first_deadline - Steady::now());
      // On a failure (EINTR, ENOMEM) no revents are set: only the deadlines below are applied.
      (void)::poll(fds.data(), fds.size(), timeout);
      if (fds[0].revents != 0) drain_wake();

      auto now = Steady::now();
      std::vector<std::unique_ptr<Conn>> still;
      for (std::size_t i = 0; i < waiting.size(); ++i) {
        auto& c = waiting[i];
        if (fds[i + 1].revents != 0) {
          if (!receive(*c)) continue;
          if (head_complete(c->buf)) {
            hand_over(std::move(c));
            continue;
          }
          if (c->buf.size() > kMaxHeadBytes) {
            send_status(c->fd, "431 Request Header Fields Too Large");
            continue;
          }
        }
        if (now >= c->deadline) {
          // A connection that never started a request (or an idle kept-alive one) just ends.
          if (!c->buf.empty()) send_status(c->fd, "408 Request Timeout");
          continue;
        }
        still.push_back(std::move(c));
      }
      waiting = std::move(still);
    }
  }

  // A request thread: serves one request of a connection whose head has arrived, then gives the
  // connection back to the waiting thread (or closes it).
  void serve_requests() {
    for (;;) {
      std::unique_ptr<Conn> c;
      {
        std::unique_lock lock(mu_);
        ready_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
        if (stopping_) return;
        c = std::move(ready_.front());
        ready_.pop_front();
      }
      ConnStream stream(*c, Steady::now() + limits_.request_timeout);
      bool last = ++c->served >= kMaxRequestsPerConnection;
      bool closed = false;
      if (!server_.serve_one(stream, last, closed) || closed || last) continue;
      stream.keep_rest();
      c->wait_for_head(limits_.header_timeout);
      {
        std::lock_guard lock(mu_);
        if (stopping_) continue;
        incoming_.push_back(std::move(c));
      }
      wake();
    }
  }

  GuardedServer& server_;
  const ConnectionLimits limits_;
  int wake_[2] = {-1, -1};  // the self-pipe that interrupts the waiting thread's poll
  std::atomic<std::size_t> open_{0};

  std::mutex mu_;
  std::condition_variable ready_cv_;
  bool stopping_ = false;                        // guarded by mu_
  std::vector<std::unique_ptr<Conn>> incoming_;  // new or returned; guarded by mu_
  std::deque<std::unique_ptr<Conn>> ready_;      // whole head received; guarded by mu_

  std::thread waiter_;
  std::vector<std::thread> servers_;
};

GuardedServer::GuardedServer(ConnectionLimits limits) : limits_(limits) {
  new_task_queue = [this] {
    pool_ = new Pool(*this, limits_);
    return pool_;
  };
  // Only for the Keep-Alive header httplib writes; the pool enforces both.
  set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(limits_.header_timeout).count()));
  set_keep_alive_max_count(kMaxRequestsPerConnection);
}

GuardedServer::~GuardedServer() = default;

void GuardedServer::raise_backlog() {
  // listen() again on a listening socket only changes its backlog (Linux, BSD).
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, SOMAXCONN);
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  if (pool_ != nullptr) {
    pool_->adopt(sock);
  } else {
    ::close(sock);
  }
  return true;
}

bool GuardedServer::serve_one(httplib::Stream& strm, bool close_connection,
                              bool& connection_closed) {
  return process_request(strm, close_connection, connection_closed, nullptr);
}

}  // namespace ergon::dashboard
