// A TCP proxy for fault injection: it listens on 127.0.0.1 (a free port) and forwards every
// connection to a target address, until the test cuts it. Cut, it closes every forwarded
// connection and refuses new ones (accepts and closes at once), as a database behind a broken
// network would look; restored, it forwards again. Tests point a store at url() to take the
// database away from a worker without touching the server that other tests share.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ergon::testing {

class TcpProxy {
 public:
  // Forwards to target_host:target_port (an IPv4 address such as 127.0.0.1).
  TcpProxy(std::string target_host, std::uint16_t target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  void cut();
  void restore();

 private:
  void run();

  std::string target_host_;
  std::uint16_t target_port_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// `url` (postgresql://user@host:port/db?...) with host:port replaced by 127.0.0.1:`port`.
std::string pg_url_via_port(const std::string& url, std::uint16_t port);
// The port of a postgresql:// URL.
std::uint16_t pg_url_port(const std::string& url);

}  // namespace ergon::testing
