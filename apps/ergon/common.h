// Shared pieces of the `ergon` commands: the database option, output helpers, errors.
#pragma once

#include <CLI/CLI.hpp>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "ergon/ergon.h"

namespace ergon::cli {

// Options every command shares. --db wins over ERGON_DATABASE_URL.
struct Globals {
  std::string db;
  bool verbose = false;
};

// The database URL from --db, else ERGON_DATABASE_URL, else `fallback`; throws a clear error
// if none is set.
std::string database_url(const Globals& g, const std::optional<std::string>& fallback = {});

// Opens an existing database whose schema is current; never creates or migrates anything
// (read and repair commands must not change a database they were pointed at by mistake).
std::shared_ptr<Store> open_existing(const std::string& url);

// "90s", "5m", "2h", "1d", "250ms" or a TimeSpan "hh:mm:ss[.fff]". Throws CLI::ValidationError.
Duration parse_cli_duration(const std::string& text);

// Local wall-clock-free rendering for tables: "2026-11-28 19:20:11Z".
std::string short_time(TimePoint t);

// "ADDR:PORT" or "[IPv6]:PORT" (port 0-65535). Throws CLI::ValidationError naming `option`.
std::pair<std::string, int> parse_listen_address(const std::string& text,
                                                 const std::string& option);
// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later), so that
// only a sigwait() sees them; returns that set.
sigset_t block_stop_signals();
// $ERGON_DASHBOARD_TOKEN, or "".
std::string dashboard_token_from_env();

void register_demo(CLI::App& app, Globals& g);
void register_migrate(CLI::App& app, Globals& g);
void register_queues(CLI::App& app, Globals& g);
void register_worker(CLI::App& app, Globals& g);
void register_enqueue(CLI::App& app, Globals& g);
void register_jobs(CLI::App& app, Globals& g);
void register_schedules(CLI::App& app, Globals& g);
void register_cron(CLI::App& app, Globals& g);
void register_workers(CLI::App& app, Globals& g);
void register_dashboard(CLI::App& app, Globals& g);  // when built with the dashboard

}  // namespace ergon::cli
