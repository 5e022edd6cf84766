// dashboard/guarded_server.h — an httplib::Server that slow or idle clients cannot starve.
//
// httplib's own server gives each accepted connection a pool thread for as long as it lives. A
// client that sends its request head a byte at a time, or holds it half sent, keeps that thread
// (the read timeout restarts with every byte), and a few dozen such clients stop every other
// request (slowloris). Here one thread waits, with poll(), for the request heads of all
// connections; a connection reaches a request thread only once its whole head has arrived, and
// goes back to the waiting thread between requests (keep-alive). So:
//   * a head must arrive within header_timeout of the connection's start (or of the previous
//     answer on it), else the connection is answered 408 and closed;
//   * a head is at most kMaxHeadBytes, else 431 and closed;
//   * at most max_connections are open: a new one beyond that closes the connection that has
//     waited longest for a head (one whose request is being served is never closed);
//   * a request thread reads the body and writes the answer within request_timeout.
// Everything else (parsing, routing, handlers) is httplib's process_request.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>

namespace ergon::dashboard {

struct ConnectionLimits {
  std::size_t threads = 8;
  std::size_t max_connections = 256;
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds request_timeout = std::chrono::seconds(30);
};

class GuardedServer : public httplib::Server {
 public:
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;
  static constexpr std::size_t kMaxRequestsPerConnection = 100;

  explicit GuardedServer(ConnectionLimits limits);
  ~GuardedServer() override;
  GuardedServer(const GuardedServer&) = delete;
  GuardedServer& operator=(const GuardedServer&) = delete;

  // httplib listens with a backlog of 5: a burst of connections beyond it waits for SYN
  // retransmits (a second or more). Call after bind_to_port / bind_to_any_port.
  void raise_backlog();

  class Pool;

 private:
  friend class Pool;
  // Called by httplib's accept loop for each new connection: hands it to the pool.
  bool process_and_close_socket(socket_t sock) override;
  bool serve_one(httplib::Stream& strm, bool close_connection, bool& connection_closed);

  const ConnectionLimits limits_;
  Pool* pool_ = nullptr;  // the pool of the listen under way; only its accept thread reads it
};

}  // namespace ergon::dashboard
