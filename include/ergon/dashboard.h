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
//   * with a token, every request must carry it (Authorization: Bearer, or the cookie that
//     GET /login?token=... sets);
//   * actions are POST only and must carry the header X-Ergon-Request; a request from another
//     site (Origin or Sec-Fetch-Site says so) is refused;
//   * read_only refuses every action with 403.
// Every operator action is written to the audit log (actor "dashboard:<remote address>").
//
// The Dashboard holds a shared_ptr to its Store. Thread-safety: start() and stop() may be
// called from any thread, not concurrently with each other; the destructor calls stop().
#pragma once

#include <memory>
#include <string>

#include "ergon/metrics.h"
#include "ergon/store.h"

namespace ergon {

struct DashboardOptions {
  std::string address = "127.0.0.1";  // IPv4/IPv6 address or host name to listen on
  int port = 8080;                    // 0: any free port (see Dashboard::port())
  // The access token. Required unless address is a loopback address (127.0.0.0/8, ::1,
  // localhost); when set it is required on every request, loopback or not.
  std::string token;
  bool read_only = false;  // refuse every action (retry, cancel, delete, ...) with 403
  // Counters and histograms of workers in this process, for /metrics; null: gauges only.
  std::shared_ptr<JobMetrics> metrics;
};

class Dashboard {
 public:
  // Throws Error(kInvalidArgument) for a port outside 0-65535, or a non-loopback address
  // without a token.
  Dashboard(std::shared_ptr<Store> store, DashboardOptions options);
  ~Dashboard();
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

// True for addresses that only this machine can reach: 127.0.0.0/8, ::1, localhost.
[[nodiscard]] bool is_loopback_address(const std::string& address);

}  // namespace ergon
