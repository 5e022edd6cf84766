// ergon/dashboard.h — the web dashboard: a JSON API, a single-page UI and /metrics.
//
//   ergon::DashboardOptions o;            // 127.0.0.1:8080, no token, read-write
//   ergon::Dashboard dashboard(store, o);
//   dashboard.start();                    // serves on its own threads
//   ...
//   dashboard.stop();
//
// The page and its scripts are embedded in the library (no files, no CDN). docs/dashboard.md
// describes the pages, the API and the security model:
//   * it listens on 127.0.0.1 by default; any other address needs `token`, and the
//     constructor refuses to build a dashboard without one;
//   * with a token (at least kDashboardMinTokenLength characters), every request must carry
//     it: Authorization: Bearer (the scheme in any case), or the session cookie that
//     GET /login?token=... sets, which is derived from the token (HMAC-SHA256), not the token;
//   * repeated wrong tokens from one address are answered 429 for a while;
//   * actions are POST only and must carry the header X-Ergon-Request; a request from another
//     site (Origin or Sec-Fetch-Site says so) is refused;
//   * read_only refuses every action with 403;
//   * a connection must deliver its request head within header_timeout, and at most
//     max_connections are open: slow clients cannot hold the request threads.
// Every operator action is written to the audit log (actor "dashboard:<remote address>").
//
// The Dashboard holds a shared_ptr to its Store and takes "now" for the failed-attempt limit
// from the store's clock. Thread-safety: start() and stop() may be called from any thread, not
// concurrently with each other; the destructor calls stop().
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "ergon/metrics.h"
#include "ergon/store.h"

namespace ergon {

// The shortest access token a dashboard accepts.
inline constexpr std::size_t kDashboardMinTokenLength = 16;

struct DashboardOptions {
  std::string address = "127.0.0.1";  // IPv4/IPv6 address or host name to listen on
  int port = 8080;                    // 0: any free port (see Dashboard::port())
  // The access token. Required unless address is a loopback address (127.0.0.0/8, ::1,
  // localhost); when set it is required on every request, loopback or not. At least
  // kDashboardMinTokenLength printable ASCII characters without spaces, quotes, commas,
  // semicolons or backslashes. read_dashboard_token_file() reads one from a file.
  std::string token{};
  bool read_only = false;  // refuse every action (retry, cancel, delete, ...) with 403
  // Clients reach it through a proxy that terminates TLS: the session cookie is marked Secure
  // (it is also when a request says X-Forwarded-Proto: https).
  bool behind_tls = false;
  // After this many wrong tokens from one client address within failed_attempts_window
  // (counted from the first of them), every request from that address is answered 429 with
  // Retry-After until the window has passed. 0: no limit.
  int max_failed_attempts = 10;
  Duration failed_attempts_window = std::chrono::minutes(1);
  // Open connections at most; a new connection beyond it closes the connection that has waited
  // longest for its next request head (never one whose request is being served).
  std::size_t max_connections = 256;
  std::size_t threads = 8;  // requests served at once
  // The time a connection has to deliver a whole request line and headers (and to send the
  // next request on a kept-alive connection); then it is answered 408 and closed.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // Counters and histograms of workers in this process, for /metrics; null: gauges only.
  std::shared_ptr<JobMetrics> metrics{};
};

class Dashboard {
 public:
  // Throws Error(kInvalidArgument) for a port outside 0-65535, a non-loopback address without
  // a token, a token that is too short or holds characters a header or cookie cannot carry, or
  // limits of 0 (max_connections, threads, header_timeout) or a header_timeout over 24 hours.
  Dashboard(std::shared_ptr<Store> store, DashboardOptions options);
  ~Dashboard();
  // The constructor's checks of the options alone, for callers that want to refuse them before
  // they open a store.
  static void check_options(const DashboardOptions& options);
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Binds and starts serving on background threads. Throws Error(kInvalidArgument) when the
  // address cannot be bound (in use, not local).
  void start();
  // Stops accepting, finishes the requests under way and joins the threads. Idempotent.
  void stop();

  // The port it listens on (the chosen one when options.port was 0); 0 before start().
  [[nodiscard]] int port() const;
  // "http://ADDRESS:PORT/".
  [[nodiscard]] std::string url() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The access token in the file at `path`: its content without trailing whitespace (a final
// newline). Keeps the token out of the process's command line, which `ps` shows to every user.
// Throws Error(kInvalidArgument) when the file cannot be read, is not a regular file, or is
// larger than 4 KiB; the content itself is checked by Dashboard's constructor.
[[nodiscard]] std::string read_dashboard_token_file(const std::string& path);

// True for addresses that only this machine can reach: 127.0.0.0/8, ::1, localhost.
[[nodiscard]] bool is_loopback_address(const std::string& address);

}  // namespace ergon
