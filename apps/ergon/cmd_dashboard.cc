// ergon dashboard — serves the web dashboard, its JSON API and /metrics until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "common.h"
#include "ergon/dashboard.h"

namespace ergon::cli {

std::string dashboard_token(const std::string& file, const std::string& flag_value,
                            std::string_view flag, const std::string& fallback) {
  if (!file.empty()) return read_dashboard_token_file(file);
  if (!flag_value.empty()) {
    spdlog::warn(
        "{} puts the dashboard token in the command line, which `ps` shows to every "
        "user of this machine: prefer {}-file FILE or $ERGON_DASHBOARD_TOKEN",
        flag, flag);
    return flag_value;
  }
  if (const char* env = std::getenv("ERGON_DASHBOARD_TOKEN"); env && *env) return env;
  return fallback;
}

void register_dashboard(CLI::App& app, Globals& g) {
  struct Args {
    std::string listen = "127.0.0.1:8080";
    std::string token, token_file;
    bool read_only = false;
    bool behind_tls = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("dashboard", "serve the web dashboard, its JSON API and /metrics");
  cmd->add_option("--listen", a->listen, "ADDR:PORT to listen on (default 127.0.0.1:8080)");
  auto* file = cmd->add_option("--token-file", a->token_file,
                               "read the access token (at least 16 characters) from FILE "
                               "(default: $ERGON_DASHBOARD_TOKEN); required unless ADDR is a "
                               "loopback address");
  cmd->add_option("--token", a->token,
                  "the access token itself; `ps` shows it to every user of this machine: prefer "
                  "--token-file or $ERGON_DASHBOARD_TOKEN")
      ->excludes(file);
  cmd->add_flag("--read-only", a->read_only, "refuse every action (retry, cancel, delete, ...)");
  cmd->add_flag("--behind-tls", a->behind_tls,
                "clients come through a proxy that terminates TLS: mark the session cookie Secure");
  cmd->callback([&g, a] {
    auto [address, port] = parse_listen_address(a->listen, "--listen");
    DashboardOptions o;
    o.address = address;
    o.port = port;
    o.token = dashboard_token(a->token_file, a->token, "--token");
    o.read_only = a->read_only;
    o.behind_tls = a->behind_tls;
    // The options are refused before the database is touched: a public address without a
    // token, a short or malformed token.
    Dashboard::check_options(o);
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
