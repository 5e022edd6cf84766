// A dashboard inside an application: open a store, enqueue a job, serve the dashboard on a free
// port of 127.0.0.1, then fetch its page and the job over HTTP as a browser would.
// Usage: dashboard_embed [DATABASE_URL]   (default: sqlite:dashboard_example.db)
// Exit status 0 when the page and the job's JSON came back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ergon/dashboard.h"
#include "ergon/ergon.h"

namespace {

// One HTTP/1.0 GET on 127.0.0.1:port; the whole response (status line, headers, body).
std::string http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
        response.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  return response;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string url = argc > 1 ? argv[1] : "sqlite:dashboard_example.db";
  auto store = ergon::open_store(url);
  ergon::JobRunner runner(store);
  const ergon::JobId id = runner.start_job_raw("example.hello", R"({"name":"dashboard"})");

  ergon::Dashboard dashboard(store, {.port = 0 /* any free port */, .read_only = true});
  dashboard.start();
  std::printf("serving %s\n", dashboard.url().c_str());

  const std::string page = http_get(dashboard.port(), "/");
  const std::string job = http_get(dashboard.port(), "/api/jobs/" + id.to_string());
  dashboard.stop();

  const bool page_ok = page.starts_with("HTTP/1.1 200") && page.find("<html") != std::string::npos;
  const bool job_ok =
      job.starts_with("HTTP/1.1 200") && job.find(id.to_string()) != std::string::npos;
  std::printf("page: %s, job %s: %s\n", page_ok ? "ok" : "FAILED", id.to_string().c_str(),
              job_ok ? "ok" : "FAILED");
  return page_ok && job_ok ? 0 : 1;
}
