// ergon worker --config FILE — run a worker whose handlers are external commands, until
// SIGINT, SIGTERM or SIGHUP (then stop gracefully).
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <iostream>

#include "commands/command_handler.h"
#include "common.h"
#ifdef ERGON_HAVE_DASHBOARD
#include "ergon/dashboard.h"
#endif

namespace ergon::cli {
namespace {

// The worker's signals (docs/cli.md). SIGINT, SIGTERM and SIGHUP stop it gracefully: a hang-up
// (its terminal or ssh session closed, a supervisor's "reload") must not leave its jobs Running
// and their commands orphaned, which is what the default action, an immediate exit, did. SIGUSR1
// logs a status line. They are blocked before any thread exists (the store's and the
// dashboard's threads inherit the mask), so only the sigwait below receives them. SIGPIPE is
// ignored: with stdout or stderr closed by its reader (`ergon worker ... 2>&1 | head -1`) a log
// line fails to be written instead of killing the worker. Commands start with every signal at
// its default (commands/command_supervisor.cc).
sigset_t take_worker_signals() {
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void run_until_stop_signal(JobsWorker& worker, const sigset_t& signals) {
  worker.start();
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      spdlog::info("worker {}: running {} of at most {} job(s)", worker.worker_id(),
                   worker.running_jobs(), worker.max_concurrent_jobs());
      continue;
    }
    spdlog::info("received SIG{}, stopping gracefully", ::sigabbrev_np(sig));
    break;
  }
  worker.stop();
}

}  // namespace

void register_worker(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("worker", "run a worker with the command handlers of a config");
  struct Args {
    std::string config;
    bool migrate = false;
    std::string dashboard, dashboard_token, dashboard_token_file;
    bool dashboard_read_only = false, dashboard_behind_tls = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--config", args->config, "JSON configuration file")->required();
  cmd->add_flag("--migrate", args->migrate, "create or upgrade the schema before starting");
#ifdef ERGON_HAVE_DASHBOARD
  cmd->add_option("--dashboard", args->dashboard,
                  "also serve the dashboard and /metrics (with this worker's counters) on "
                  "ADDR:PORT");
  auto* token_file = cmd->add_option("--dashboard-token-file", args->dashboard_token_file,
                                     "read the dashboard's access token from FILE (default: "
                                     "$ERGON_DASHBOARD_TOKEN, then the config's Dashboard.Token)");
  cmd->add_option("--dashboard-token", args->dashboard_token,
                  "the dashboard's access token itself; `ps` shows it: prefer "
                  "--dashboard-token-file")
      ->excludes(token_file);
  cmd->add_flag("--dashboard-behind-tls", args->dashboard_behind_tls,
                "the dashboard is reached through a TLS proxy: its session cookie is Secure");
  cmd->add_flag("--dashboard-read-only", args->dashboard_read_only,
                "the dashboard refuses every action");
#endif
  cmd->callback([&g, args] {
    const sigset_t signals = take_worker_signals();
    commands::CliConfig config = commands::load_cli_config_file(args->config);
    if (config.handlers.empty()) {
      throw Error(ErrorCode::kConfig, args->config + ": no \"Handlers\": nothing to run");
    }
    std::string url = database_url(g, config.database);
    std::shared_ptr<Store> store;
    if (args->migrate) {
      store = open_store(url);
    } else {
      store = open_existing(url);
    }
    // The file's Limits: set (each type's limits replaced) before this worker claims anything.
    // Types the file does not name keep whatever limits they have.
    if (!config.limits.empty()) {
      JobRunner runner(store);
      for (const auto& l : config.limits) runner.set_type_limit(l);
    }
    HandlerRegistry handlers;
    commands::add_command_handlers(handlers, config);
    // The file's Logging section, unless the command line chose (--log-format, -v).
    LogOptions logging = config.logging;
    if (!g.log_format.empty()) logging.format = *parse_log_format(g.log_format);
    if (g.verbose) logging.level = "debug";
    configure_logging(logging);
    WorkerOptions options = config.worker;
#ifdef ERGON_HAVE_DASHBOARD
    // The file's Dashboard section, where the command line did not say.
    if (config.dashboard) {
      if (args->dashboard.empty()) args->dashboard = config.dashboard->listen;
      args->dashboard_read_only = args->dashboard_read_only || config.dashboard->read_only;
    }
    std::unique_ptr<Dashboard> dashboard;
    if (!args->dashboard.empty()) {
      auto [address, port] = parse_listen_address(
          args->dashboard, config.dashboard ? "--dashboard (or Dashboard.Listen)" : "--dashboard");
      auto metrics = std::make_shared<JobMetrics>();
      options.on_event = metrics_observer(metrics, std::move(options.on_event));
      options.on_schedule_fired = scheduler_lag_observer(metrics);
      DashboardOptions d;
      d.address = address;
      d.port = port;
      d.token =
          dashboard_token(args->dashboard_token_file, args->dashboard_token, "--dashboard-token",
                          config.dashboard ? config.dashboard->token : "");
      d.behind_tls = args->dashboard_behind_tls;
      d.read_only = args->dashboard_read_only;
      d.metrics = metrics;
      dashboard = std::make_unique<Dashboard>(store, d);
      dashboard->start();
      std::cout << "dashboard: " << dashboard->url() << std::endl;
    }
#endif
    JobsWorker worker(store, std::move(handlers), options);
    run_until_stop_signal(worker, signals);
  });
}

}  // namespace ergon::cli
