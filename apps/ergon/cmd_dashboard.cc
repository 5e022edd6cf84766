// ergon dashboard — serves the web dashboard, its JSON API and /metrics until SIGINT/SIGTERM.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "common.h"
#include "ergon/dashboard.h"

namespace ergon::cli {

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
    auto [address, port] = parse_listen_address(a->listen, "--listen");
    DashboardOptions o;
    o.address = address;
    o.port = port;
    o.token = a->token.empty() ? dashboard_token_from_env() : a->token;
    o.read_only = a->read_only;
    // A public address without a token is refused before the database is touched.
    if (!is_loopback_address(o.address) && o.token.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the dashboard would listen on " + o.address +
                      ", which other machines can reach: give it an access token (--token or "
                      "ERGON_DASHBOARD_TOKEN), or listen on 127.0.0.1");
    }
    auto store = open_existing(database_url(g));
    Dashboard dashboard(store, o);
    // Block the signals before the server's threads start, so that only sigwait sees them.
    sigset_t set = block_stop_signals();
    dashboard.start();
    std::cout << "dashboard: " << dashboard.url() << (o.read_only ? " (read-only)" : "")
              << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    dashboard.stop();
  });
}

}  // namespace ergon::cli
