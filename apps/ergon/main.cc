// ergon — the command-line tool: migrate the schema, run a worker whose handlers are external
// commands, enqueue and inspect jobs, and run the embedded demo. One file per command.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "common.h"

int main(int argc, char** argv) {
  CLI::App app{"ergon: durable background jobs and cron"};
  app.require_subcommand(1);
  app.fallthrough();  // --db may come before or after the command
  ergon::cli::Globals g;
  app.add_option("--db", g.db, "database URL (sqlite:PATH); default: $ERGON_DATABASE_URL");
  app.add_flag("-v,--verbose", g.verbose, "log debug messages");
  app.add_option("--log-format", g.log_format,
                 "text or json (one JSON object per line; default: the config's Logging.Format)")
      ->check(CLI::IsMember({"text", "json"}));
  app.set_version_flag("--version", "ergon 0.1.0");

  ergon::cli::register_demo(app, g);
  ergon::cli::register_migrate(app, g);
  ergon::cli::register_worker(app, g);
  ergon::cli::register_enqueue(app, g);
  ergon::cli::register_jobs(app, g);
  ergon::cli::register_schedules(app, g);
  ergon::cli::register_cron(app, g);
  ergon::cli::register_workers(app, g);
  ergon::cli::register_queues(app, g);
  ergon::cli::register_limits(app, g);
  ergon::cli::register_stats(app, g);
  ergon::cli::register_purge(app, g);
  ergon::cli::register_audit(app, g);
  ergon::cli::register_config(app, g);
#ifdef ERGON_HAVE_DASHBOARD
  ergon::cli::register_dashboard(app, g);
#endif

  // Logs go to stderr: stdout carries the commands' output (ids, tables, JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt("ergon"));
  spdlog::set_level(spdlog::level::warn);
  app.parse_complete_callback([&] {
    if (g.verbose) spdlog::set_level(spdlog::level::debug);
    if (g.log_format == "json") {
      auto level = spdlog::level::to_string_view(spdlog::get_level());
      ergon::configure_logging({ergon::LogFormat::kJson, std::string(level.data(), level.size())});
    }
  });
  // CLI11 reports an unknown command as "A subcommand is required"; say what is wrong instead.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("-")) {
      // A global option's value (`--log-format json`, `--db URL`) is not a command.
      const CLI::Option* option = app.get_option_no_throw(arg);
      if (option != nullptr && option->get_items_expected_min() > 0 &&
          arg.find('=') == std::string::npos) {
        ++i;
      }
      continue;
    }
    auto known = app.get_subcommands([&](const CLI::App* sub) { return sub->check_name(arg); });
    if (known.empty()) {
      std::cerr << "ergon: unknown command '" << arg
                << "' (commands: demo, migrate, worker, enqueue, jobs, schedules, cron, workers, "
                   "queues, limits, stats, purge, audit, config, dashboard; see --help)\n";
      return ergon::cli::kExitUsage;
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command that reported its own outcome (docs/cli.md)
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any malformed command line is a usage error.
    return app.exit(e) == 0 ? ergon::cli::kExitOk : ergon::cli::kExitUsage;
  } catch (const ergon::Error& e) {
    std::cerr << "ergon: " << e.what() << "\n";
    return e.code() == ergon::ErrorCode::kNotFound ? ergon::cli::kExitNotFound
                                                   : ergon::cli::kExitError;
  } catch (const std::exception& e) {
    std::cerr << "ergon: " << e.what() << "\n";
    return ergon::cli::kExitError;
  }
  return ergon::cli::kExitOk;
}
