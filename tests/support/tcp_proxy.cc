#include "support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace ergon::testing {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("tcp proxy: ") + what + ": " + std::strerror(errno));
}

sockaddr_in address(const std::string& host, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    throw std::runtime_error("tcp proxy: not an IPv4 address: " + host);
  }
  return a;
}

// Copies what is readable on `from` to `to`; false when either side is finished.
bool pump(int from, int to) {
  char buf[16384];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

TcpProxy::TcpProxy(std::string target_host, std::uint16_t target_port)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = address("127.0.0.1", 0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
  if (::listen(listen_fd_, 64) != 0) fail("listen");
  socklen_t len = sizeof a;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) fail("getsockname");
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) fail("pipe");
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  char c = 's';
  (void)!::write(wake_pipe_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void TcpProxy::cut() {
  cut_ = true;
  char c = 'c';
  (void)!::write(wake_pipe_[1], &c, 1);
}

void TcpProxy::restore() { cut_ = false; }

// One thread, poll() over the listener, the wake pipe and both ends of every connection.
void TcpProxy::run() {
  std::vector<std::pair<int, int>> links;  // client, server
  auto close_all = [&] {
    for (auto [c, s] : links) {
      ::close(c);
      ::close(s);
    }
    links.clear();
  };
  while (!stop_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    for (auto [c, s] : links) {
      fds.push_back({c, POLLIN, 0});
      fds.push_back({s, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) {
      char buf[64];
      (void)!::read(wake_pipe_[0], buf, sizeof buf);
    }
    if (cut_) close_all();
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        int s = cut_ ? -1 : ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = address(target_host_, target_port_);
        if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          links.emplace_back(c, s);
        } else {
          if (s >= 0) ::close(s);
          ::close(c);
        }
      }
    }
    if (cut_) continue;
    // Pump the connections that poll() saw (the first links.size() entries after the two).
    std::vector<std::pair<int, int>> alive;
    for (std::size_t i = 0; i < fds.size() - 2 && i / 2 < links.size(); i += 2) {
      auto [c, s] = links[i / 2];
      bool ok = true;
      if (fds[2 + i].revents != 0) ok = pump(c, s);
      if (ok && fds[3 + i].revents != 0) ok = pump(s, c);
      if (ok) {
        alive.emplace_back(c, s);
      } else {
        ::close(c);
        ::close(s);
      }
    }
    // Connections accepted in this round were not polled yet: keep them.
    for (std::size_t k = (fds.size() - 2) / 2; k < links.size(); ++k) alive.push_back(links[k]);
    links = std::move(alive);
  }
  close_all();
}

std::uint16_t pg_url_port(const std::string& url) {
  // postgresql://user@host:port/db
  auto at = url.find('@');
  auto colon = url.find(':', at == std::string::npos ? url.find("//") + 2 : at);
  auto slash = url.find('/', colon);
  return static_cast<std::uint16_t>(std::stoi(url.substr(colon + 1, slash - colon - 1)));
}

std::string pg_url_via_port(const std::string& url, std::uint16_t port) {
  auto at = url.find('@');
  auto start = at == std::string::npos ? url.find("//") + 2 : at + 1;
  auto slash = url.find('/', start);
  return url.substr(0, start) + "127.0.0.1:" + std::to_string(port) + url.substr(slash);
}

}  // namespace ergon::testing
