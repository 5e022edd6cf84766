// Shared pieces of the `ergon` commands: the database option, output helpers, errors.
#pragma once

#include <CLI/CLI.hpp>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ergon/ergon.h"
#include "ops/audit.h"
#include "store/text_rules.h"  // printable(): text from the store, shown to a person

namespace ergon::cli {

// Options every command shares. --db wins over ERGON_DATABASE_URL.
struct Globals {
  std::string db;
  bool verbose = false;
  std::string log_format;  // "", "text" or "json" (--log-format)
};

// The database URL from --db, else ERGON_DATABASE_URL, else `fallback`; throws a clear error
// if none is set.
std::string database_url(const Globals& g, const std::optional<std::string>& fallback = {});

// Opens an existing database whose schema is current; never creates or migrates anything
// (read and repair commands must not change a database they were pointed at by mistake).
std::shared_ptr<Store> open_existing(const std::string& url);

// "90s", "5m", "2h", "1d", "250ms" or a TimeSpan "hh:mm:ss[.fff]". Throws CLI::ValidationError
// naming `option`.
Duration parse_cli_duration(const std::string& text, const std::string& option = "duration");

// Local wall-clock-free rendering for tables: "2026-11-28 19:20:11Z".
std::string short_time(TimePoint t);
// Stored text as one table cell: on one line, shown and not acted on by the terminal
// (printable), cut to at most n bytes with "..." when longer.
std::string cut(std::string s, std::size_t n);

// --tag (repeatable) and --meta of a command that starts jobs; `whose` names those jobs in the
// help. The library checks the values (JobOptions::tags and meta).
void add_tag_meta_options(CLI::App* cmd, std::vector<std::string>& tags, std::string& meta,
                          const std::string& whose);

// Exit statuses (docs/cli.md#exit-status).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;     // the database or the library refused or failed
inline constexpr int kExitUsage = 2;     // a malformed command line: nothing was done
inline constexpr int kExitNotFound = 3;  // the job, schedule or database named does not exist,
                                         // or a bulk action matched no job
inline constexpr int kExitTimedOut = 4;  // `jobs wait`, `enqueue --wait`: the job had not ended

// A job id argument; throws CLI::ValidationError ("not a job id") naming `what`.
JobId parse_job_id_arg(const std::string& text, const std::string& what = "id");
// A status name in any case; throws CLI::ValidationError naming `option`.
JobStatus parse_status_arg(const std::string& text, const std::string& option = "--status");

// The job filter options of `jobs list` and of the bulk `jobs retry|delete --all-matching`.
struct FilterArgs {
  std::string status, type, queue, since, until, text, before, tag;
};
void add_filter_options(CLI::App* cmd, FilterArgs& a);
// Checks every option (CLI::ValidationError naming the option; the rules are ops/filter.h's)
// and builds the filter. --since and --until take an ISO-8601 instant or a duration back from
// `now` (e.g. 2h).
JobFilter make_filter(const FilterArgs& a, TimePoint now);

// Who the audit log says acted: "cli:" + $USER, or "cli".
std::string cli_actor();
// A command fails when the audit record of what it did could not be written (the action is
// done; the error says why the record is missing).
void require_audited(const ops::Audited& audited);
// Writes one audit record for a state-changing command that src/ops does not carry out
// (enqueue); require_audited's rule.
void audit(const std::shared_ptr<Store>& store, std::string_view action, std::string_view target,
           std::string_view detail = {});
// "ADDR:PORT" or "[IPv6]:PORT" (port 0-65535). Throws CLI::ValidationError naming `option`.
std::pair<std::string, int> parse_listen_address(const std::string& text,
                                                 const std::string& option);
// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later), so that
// only a sigwait() sees them; returns that set.
sigset_t block_stop_signals();
// The dashboard's access token: the content of `file` when given; else `flag_value`, with a
// warning that `flag` shows it to every user of the machine (ps); else $ERGON_DASHBOARD_TOKEN;
// else `fallback` (a config file's Token). Defined in cmd_dashboard.cc.
std::string dashboard_token(const std::string& file, const std::string& flag_value,
                            std::string_view flag, const std::string& fallback = "");

// open_existing for a command that only reads (listings, show, stats): on SQLite the file is
// opened read-only (`mode=ro`), so a database its user may not write can still be read and
// nothing is created beside the file.
std::shared_ptr<Store> open_for_reading(const std::string& url);
// Prints JSON indented. The renderings of ops/render.h hold only UTF-8; any other text that is
// not comes out as U+FFFD instead of failing the whole output.
void print_json(const nlohmann::json& j);

void register_demo(CLI::App& app, Globals& g);
void register_migrate(CLI::App& app, Globals& g);
void register_queues(CLI::App& app, Globals& g);
void register_limits(CLI::App& app, Globals& g);
void register_worker(CLI::App& app, Globals& g);
void register_enqueue(CLI::App& app, Globals& g);
void register_jobs(CLI::App& app, Globals& g);
void register_schedules(CLI::App& app, Globals& g);
void register_cron(CLI::App& app, Globals& g);
void register_workers(CLI::App& app, Globals& g);
void register_jobs_repair(CLI::App* jobs, Globals& g);  // jobs retry|delete
void register_jobs_wait(CLI::App* jobs, Globals& g);    // jobs wait
// Waits up to `timeout` for job `id` to end (JobRunner::wait). Completed: prints its result as
// JSON (null: none) and returns kExitOk; Failed or Cancelled: says so on stderr, kExitError;
// still running: kExitTimedOut.
int wait_and_print(const std::shared_ptr<Store>& store, const JobId& id, Duration timeout);
void register_stats(CLI::App& app, Globals& g);
void register_purge(CLI::App& app, Globals& g);
void register_audit(CLI::App& app, Globals& g);
void register_config(CLI::App& app, Globals& g);
void register_dashboard(CLI::App& app, Globals& g);  // when built with the dashboard

}  // namespace ergon::cli
