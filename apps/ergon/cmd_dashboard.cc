// ergon dashboard — serves the web dashboard, its JSON API and /metrics until SIGINT/SIGTERM.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "common.h"
#include "ergon/dashboard.h"

namespace ergon::cli {
namespace {

// "ADDR:PORT" or "[IPv6]:PORT". Throws CLI::ValidationError.
std::pair<std::string, int> parse_listen(const std::string& text) {
  std::size_t colon = text.rfind(':');
  auto bad = [&] {
    return CLI::ValidationError("--listen", "'" + text +
                                                "' is not ADDR:PORT (e.g. 127.0.0.1:8080, "
                                                "[::1]:8080, 0.0.0.0:8080)");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) throw bad();
  std::string addr = text.substr(0, colon);
  if (addr.front() == '[') {
    if (addr.back() != ']' || addr.size() < 3) throw bad();
    addr = addr.substr(1, addr.size() - 2);
  } else if (addr.find(':') != std::string::npos) {
    throw bad();  // a bare IPv6 address needs brackets
  }
  std::string port_text = text.substr(colon + 1);
  int port = -1;
  if (port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos) {
    port = std::stoi(port_text);
  }
  if (port < 0 || port > 65535) throw bad();
  return {addr, port};
}

}  // namespace

void register_dashboard(CLI::App& app, Globals& g) {
  struct Args {
    std::string listen = "127.0.0.1:8080";
    std::string token;
    bool read_only = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("dashboard", "serve the web dashboard, its JSON API and /metrics");
  cmd->add_option("--listen", a->listen, "ADDR:PORT to listen on (default 127.0.0.1:8080)");
  cmd->add_option("--token", a->token,
                  "access token (default: $ERGON_DASHBOARD_TOKEN); required unless ADDR is a "
                  "loopback address");
  cmd->add_flag("--read-only", a->read_only, "refuse every action (retry, cancel, delete, ...)");
  cmd->callback([&g, a] {
    auto [address, port] = parse_listen(a->listen);
    DashboardOptions o;
    o.address = address;
    o.port = port;
    o.token = a->token;
    if (o.token.empty()) {
      if (const char* env = std::getenv("ERGON_DASHBOARD_TOKEN"); env) o.token = env;
    }
    o.read_only = a->read_only;
    // Checks the options (a public address without a token) before touching the database.
    auto store = open_existing(database_url(g));
    Dashboard dashboard(store, o);
    // Block the signals before the server's threads start, so that only sigwait sees them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    dashboard.start();
    std::cout << "dashboard: " << dashboard.url() << (o.read_only ? " (read-only)" : "")
              << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    dashboard.stop();
  });
}

}  // namespace ergon::cli
