// ergon-bench: the benchmarks of the performance issue, against one database URL.
//
//   ergon-bench --db URL [--runs N] [--jobs N] [--workers W] [--concurrency C] [--prefetch P]
//               [--only a,b,c] [--json FILE] ...            (--help lists every flag)
//
// URL: postgresql://... (any Ergon URL; its `schema` is ignored) or sqlite:PATH. Every run of
// every benchmark gets a fresh schema (PostgreSQL: ergon_bench_<pid>_<n>, dropped afterwards)
// or a fresh file (SQLite: PATH.ergon_bench_<pid>_<n>, deleted afterwards), so runs are
// independent. Each figure is the median of --runs runs, with min and max. Prints a table and,
// with --json, writes every run's figure to FILE.
//
// The benchmarks (docs/performance.md says how the published figures were taken):
//   bulk_enqueue    JobRunner::start_jobs of --jobs jobs in one call (COPY / one transaction)
//   single_enqueue  start_job one at a time (own transaction and wake-up each) from --threads
//                   threads for --single-seconds
//   processing      burn-down: --jobs no-op jobs enqueued first, then --workers JobsWorker
//                   objects (each with its own Store: its own pool on PostgreSQL) with
//                   --concurrency slots each; jobs/s from start() until the last Completed
//   latency         enqueue-to-start into an idle worker (as bench/latency.cc)
//   cron_lateness   a schedule of every second ("* * * * * *", the finest the cron parser
//                   takes) for --cron-seconds: job start minus slot time
//   idle            statements an idle worker sends per second, 1 s polling (PostgreSQL only)
//   backlog         processing with --backlog jobs pending: time to complete the first --jobs
//   history         processing of --jobs jobs with --history finished rows in the table,
//                   against the same run on an empty table
//   tag_filter      JobRunner::list_jobs by tag (`ergon jobs list --tag`) among --tag-rows
//                   jobs: a tag 10 of them carry, and one 10,000 carry (a page of 50)
//
// Flow control in use (docs/flow-control.md): --queues Q spreads the jobs of the processing
// benchmarks over queues q0..q(Q-1), which every worker lists; --priorities P gives job i the
// priority i % P; --groups G gives it the group key g(i % G).
#include <libpq-fe.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "ergon/ergon.h"

#ifndef ERGON_BENCH_BUILD_TYPE
#define ERGON_BENCH_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
using Millis = std::chrono::duration<double, std::milli>;

struct Noop {
  static constexpr std::string_view kJobType = "bench_noop";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Noop, n)

struct Config {
  std::string url;
  int runs = 3;
  int jobs = 20000;
  int workers = 1;
  int concurrency = 16;
  int prefetch = 0;
  int pool_size = 0;  // 0: the store's default
  int threads = 4;
  double single_seconds = 5;
  int latency_jobs = 200;
  int gap_ms = 5;
  double cron_seconds = 10;
  double idle_seconds = 10;
  int backlog = 200000;
  long long history = 1000000;
  int tag_rows = 1000000;
  bool vacuum = true;
  int queues = 0;      // 0: every job in "default", workers serve every queue
  int priorities = 1;  // 1: every job at priority 0
  int groups = 0;      // 0: no group keys
  std::string only;
  std::string json_file;
};

const std::vector<std::string> kAllBenchmarks = {"bulk_enqueue", "single_enqueue", "processing",
                                                 "latency",      "cron_lateness",  "idle",
                                                 "backlog",      "history",        "tag_filter"};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// ---------------------------------------------------------------------------------------------
// Statistics

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One figure of one benchmark: a value per run.
struct Figure {
  std::string bench;
  std::string metric;
  std::string unit;
  std::vector<double> runs;
  std::string note;
};

// ---------------------------------------------------------------------------------------------
// URLs and the fresh database of one run

bool is_sqlite(const std::string& url) { return url.starts_with("sqlite:"); }

// Splits "base?k=v&k=v" into base and parameters.
std::pair<std::string, std::vector<std::pair<std::string, std::string>>> split_url(
    const std::string& url) {
  auto q = url.find('?');
  std::vector<std::pair<std::string, std::string>> params;
  if (q == std::string::npos) return {url, params};
  std::stringstream rest(url.substr(q + 1));
  std::string kv;
  while (std::getline(rest, kv, '&')) {
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    params.emplace_back(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
  }
  return {url.substr(0, q), params};
}

std::string join_url(const std::string& base,
                     const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out = base;
  char sep = '?';
  for (const auto& [k, v] : params) {
    out += sep + k + "=" + v;
    sep = '&';
  }
  return out;
}

// A raw connection for what the public API does not offer: counting rows, loading history,
// VACUUM, reading server settings.
class Sql {
 public:
  virtual ~Sql() = default;
  virtual void exec(const std::string& sql) = 0;
  virtual std::string scalar(const std::string& sql) = 0;
  long long count(const std::string& sql) { return std::stoll(scalar(sql)); }
};

class PgSql final : public Sql {
 public:
  explicit PgSql(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      PQfinish(conn_);
      fail("cannot connect: " + msg);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~PgSql() override { PQfinish(conn_); }
  PgSql(const PgSql&) = delete;
  PgSql& operator=(const PgSql&) = delete;

  void exec(const std::string& sql) override { PQclear(run(sql)); }
  std::string scalar(const std::string& sql) override {
    PGresult* r = run(sql);
    std::string v = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return v;
  }

 private:
  PGresult* run(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      fail("SQL failed: " + msg + " in: " + sql.substr(0, 200));
    }
    return r;
  }
  PGconn* conn_;
};

class LiteSql final : public Sql {
 public:
  explicit LiteSql(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      fail("cannot open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 30000);
  }
  ~LiteSql() override { sqlite3_close(db_); }
  LiteSql(const LiteSql&) = delete;
  LiteSql& operator=(const LiteSql&) = delete;

  void exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      fail("SQL failed: " + msg + " in: " + sql.substr(0, 200));
    }
  }
  std::string scalar(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      fail(std::string("SQL failed: ") + sqlite3_errmsg(db_) + " in: " + sql.substr(0, 200));
    }
    std::string v;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

// The fresh database of one run: a schema of its own (PostgreSQL) or a file of its own
// (SQLite), dropped or deleted when the run ends. Open stores on store_url(); destroy them
// before the Scratch.
class Scratch {
 public:
  Scratch(const Config& cfg, int pool_size) {
    static std::atomic<int> counter{0};
    name_ = "ergon_bench_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
    auto [base, params] = split_url(cfg.url);
    if (is_sqlite(cfg.url)) {
      sqlite_ = true;
      std::string path = base.substr(std::string_view("sqlite:").size());
      if (path.starts_with("//")) path = path.substr(2);
      path_ = path + "." + name_;
      remove_files();
      store_url_ = join_url("sqlite:" + path_, params);
      table_ = "jobs";
    } else {
      // The admin connection takes the URL without Ergon's own parameters.
      std::vector<std::pair<std::string, std::string>> libpq, store;
      for (const auto& [k, v] : params) {
        if (k == "schema") continue;
        if (k == "pool_size" && pool_size > 0) continue;
        store.emplace_back(k, v);
        if (k != "pool_size") libpq.emplace_back(k, v);
      }
      conninfo_ = join_url(base, libpq);
      store.emplace_back("schema", name_);
      if (pool_size > 0) store.emplace_back("pool_size", std::to_string(pool_size));
      store_url_ = join_url(base, store);
      table_ = "\"" + name_ + "\".jobs";
    }
  }
  ~Scratch() {
    sql_.reset();
    try {
      if (sqlite_) {
        remove_files();
      } else {
        PgSql(conninfo_).exec("DROP SCHEMA IF EXISTS \"" + name_ + "\" CASCADE");
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ergon-bench: cleanup of %s failed: %s\n", name_.c_str(), e.what());
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& store_url() const { return store_url_; }
  [[nodiscard]] const std::string& table() const { return table_; }
  [[nodiscard]] bool sqlite() const { return sqlite_; }
  [[nodiscard]] const std::string& conninfo() const { return conninfo_; }
  // Opens a store (which creates the schema or file, migrated). Call it first.
  std::shared_ptr<ergon::Store> open() const { return ergon::open_store(store_url_); }
  // The raw connection; the schema or file must exist (open() once before).
  Sql& sql() {
    if (!sql_) {
      if (sqlite_) {
        sql_ = std::make_unique<LiteSql>(path_);
      } else {
        sql_ = std::make_unique<PgSql>(conninfo_);
      }
    }
    return *sql_;
  }
  long long count_status(const char* status) {
    return sql().count("SELECT count(*) FROM " + table_ + " WHERE status = '" + status + "'");
  }
  // What autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) does to a table in steady
  // state: statistics, visibility map, hint bits. Applied after loading, before timing. On
  // PostgreSQL a CHECKPOINT follows: the WAL of the load (and of the runs before) could
  // otherwise start one during the timed window, and every page first written after a
  // checkpoint starts goes to the WAL whole (full_page_writes), weighing on whichever run
  // comes next. Needs superuser or pg_checkpoint; without, a warning, once.
  void settle() {
    if (sqlite_) {
      sql().exec("ANALYZE");
      return;
    }
    sql().exec("VACUUM (ANALYZE) " + table_);
    try {
      sql().exec("CHECKPOINT");
    } catch (const std::exception& e) {
      static bool warned = false;
      if (!std::exchange(warned, true)) {
        std::fprintf(stderr, "ergon-bench: no CHECKPOINT before timing: %s\n", e.what());
      }
    }
  }

 private:
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ec;
      std::filesystem::remove(path_ + suffix, ec);
    }
  }

  std::string name_;
  bool sqlite_ = false;
  std::string path_;
  std::string conninfo_;
  std::string store_url_;
  std::string table_;
  std::unique_ptr<Sql> sql_;
};

// ---------------------------------------------------------------------------------------------
// Helpers shared by the benchmarks

// "q3", "g17": built by appending; g++ 12 at -O3 warns falsely on "q" + std::to_string(i).
std::string numbered(char prefix, int i) {
  std::string s(1, prefix);
  s += std::to_string(i);
  return s;
}

// The queues every worker lists with --queues (empty: every queue).
std::vector<std::string> bench_queues(const Config& cfg) {
  std::vector<std::string> q;
  for (int i = 0; i < cfg.queues; ++i) q.push_back(numbered('q', i));
  return q;
}

// Enqueues `n` no-op jobs in batches of at most 50k, one start_jobs call per batch and
// combination of queue, priority and group (--queues, --priorities, --groups).
void enqueue_bulk(ergon::JobRunner& runner, long long n, const Config& cfg) {
  constexpr long long kBatch = 50000;
  for (long long done = 0; done < n;) {
    long long k = std::min(kBatch, n - done);
    std::map<std::tuple<int, int, int>, std::vector<Noop>> batches;
    for (long long i = done; i < done + k; ++i) {
      auto key = std::make_tuple(cfg.queues > 0 ? static_cast<int>(i % cfg.queues) : -1,
                                 static_cast<int>(i % cfg.priorities),
                                 cfg.groups > 0 ? static_cast<int>(i % cfg.groups) : -1);
      batches[key].push_back(Noop{static_cast<int>(i)});
    }
    for (const auto& [key, batch] : batches) {
      ergon::JobOptions o;
      auto [queue, priority, group] = key;
      if (queue >= 0) o.queue = numbered('q', queue);
      o.priority = priority;
      if (group >= 0) o.group_key = numbered('g', group);
      runner.start_jobs(batch, o);
    }
    done += k;
  }
}

// Counts Completed events of any number of workers and wakes a waiter at a target.
class CompletionCounter {
 public:
  explicit CompletionCounter(long long target) : target_(target) {}
  void on_event(const ergon::JobEvent& e) {
    if (e.kind == ergon::JobEvent::Kind::kCompleted) {
      if (done_.fetch_add(1, std::memory_order_relaxed) + 1 == target_) {
        std::lock_guard lock(mu_);
        reached_at_ = Clock::now();
        reached_ = true;
        cv_.notify_all();
      }
    } else if (e.kind != ergon::JobEvent::Kind::kStarted &&
               e.kind != ergon::JobEvent::Kind::kReleased) {
      unexpected_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Waits until the target is reached; fails if no job completes for `stall`.
  Clock::time_point wait(std::chrono::seconds stall) {
    std::unique_lock lock(mu_);
    long long last = -1;
    while (!reached_) {
      long long now_done = done_.load();
      if (now_done == last) {
        fail("no job completed for " + std::to_string(stall.count()) + " s (" +
             std::to_string(now_done) + " of " + std::to_string(target_) + " done)");
      }
      last = now_done;
      cv_.wait_for(lock, stall, [&] { return reached_; });
    }
    return reached_at_;
  }
  long long unexpected() const { return unexpected_.load(); }

 private:
  long long target_;
  std::atomic<long long> done_{0};
  std::atomic<long long> unexpected_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool reached_ = false;
  Clock::time_point reached_at_;
};

ergon::HandlerRegistry noop_handlers() {
  ergon::HandlerRegistry h;
  h.add<Noop>([](const Noop&, ergon::JobContext&) {});
  return h;
}

// Loads `rows` Completed jobs that finished during the last hour (inside the default
// retention, so the pruner leaves them alone), with time-ordered UUIDv7-shaped ids older than
// any new job's, as years of history would look. One INSERT ... SELECT.
void load_history(Scratch& s, long long rows) {
  if (rows <= 0) return;
  std::string n = std::to_string(rows);
  if (!s.sqlite()) {
    s.sql().exec(
        "INSERT INTO " + s.table() +
        " (id, job_type, job_data, status, created_at, started_at, completed_at, run_at, "
        "attempt, worker_id, heartbeat_at) "
        "SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || "
        "lpad(to_hex((g >> 12) & 4095), 3, '0') || '8' || lpad(to_hex(g & 4095), 3, '0') || "
        "lpad(to_hex(g), 12, '0'))::uuid, 'bench_noop', '{\"n\": 0}', 'Completed', t, t, t, t, "
        "1, 'history', t "
        "FROM (SELECT g, now() - interval '1 hour' + g * (interval '3600 seconds' / " +
        n + ") AS t FROM generate_series(1::bigint, " + n + ") AS g) AS h");
  } else {
    long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::string start = std::to_string(now_ms - 3600000);
    // Ergon's text timestamps: ISO-8601 UTC with microseconds.
    std::string ts = "strftime('%Y-%m-%dT%H:%M:%f', ms / 1000.0, 'unixepoch') || '000Z'";
    s.sql().exec(
        "INSERT INTO jobs (id, job_type, job_data, status, created_at, started_at, "
        "completed_at, run_at, attempt, worker_id, heartbeat_at) "
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < " +
        n + "), h(x, ms) AS (SELECT x, " + start + " + x * 3600000 / " + n +
        " FROM g) "
        "SELECT printf('%08x-%04x-7%03x-8%03x-%012x', ms >> 16, ms & 65535, (x >> 12) & 4095, "
        "x & 4095, x), 'bench_noop', '{\"n\":0}', 'Completed', " +
        ts + ", " + ts + ", " + ts + ", " + ts + ", 1, 'history', " + ts + " FROM h");
  }
}

// Server-wide counters read around a timed window (PostgreSQL): transactions committed or
// rolled back in this database, and WAL flushes to disk (pg_stat_wal.wal_sync: one per
// durable commit, unless several commits share one flush: group commit). Backends report
// their statistics at exit at the latest, so read the second snapshot after the stores are
// destroyed. On a private cluster only this program's work is counted.
struct ServerCounters {
  long long xacts = 0;
  long long wal_syncs = 0;
};

ServerCounters read_counters(const Scratch& s) {
  PgSql admin(s.conninfo());
  admin.exec("SELECT pg_stat_clear_snapshot()");
  ServerCounters c;
  c.xacts = admin.count(
      "SELECT xact_commit + xact_rollback FROM pg_stat_database "
      "WHERE datname = current_database()");
  c.wal_syncs = admin.count("SELECT wal_sync FROM pg_stat_wal");
  return c;
}

struct BurnDown {
  double rate = 0;                // jobs/s
  double xacts_per_job = -1;      // PostgreSQL only; -1: not measured
  double wal_syncs_per_job = -1;  // PostgreSQL only
};

// One burn-down: `history` finished rows and `pending` no-op jobs are loaded (not timed), the
// table is settled, then `workers` workers start and the time until `target` jobs have
// completed is measured.
BurnDown burn_down(const Config& cfg, long long pending, long long history, long long target) {
  Scratch s(cfg, cfg.pool_size);
  {
    auto store = s.open();
    ergon::JobRunner runner(store);
    load_history(s, history);
    enqueue_bulk(runner, pending, cfg);
  }
  if (cfg.vacuum) s.settle();
  CompletionCounter counter(target);
  std::vector<std::shared_ptr<ergon::Store>> stores;
  std::vector<std::unique_ptr<ergon::JobsWorker>> workers;
  for (int w = 0; w < cfg.workers; ++w) {
    stores.push_back(s.open());
    ergon::WorkerOptions o;
    o.max_concurrent_jobs = cfg.concurrency;
    o.prefetch_jobs = cfg.prefetch;
    o.queues = bench_queues(cfg);
    o.run_scheduler = false;
    o.on_event = [&counter](const ergon::JobEvent& e) { counter.on_event(e); };
    workers.push_back(std::make_unique<ergon::JobsWorker>(stores.back(), noop_handlers(), o));
  }
  ServerCounters before;
  if (!s.sqlite()) before = read_counters(s);
  auto t0 = Clock::now();
  for (auto& w : workers) w->start();
  auto t1 = counter.wait(std::chrono::seconds(60));
  for (auto& w : workers) w->stop();
  workers.clear();
  stores.clear();
  BurnDown out;
  out.rate = static_cast<double>(target) / Seconds(t1 - t0).count();
  if (!s.sqlite()) {
    // Let the exiting backends (and the WAL writer, which reports about once a second) flush
    // their statistics.
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    ServerCounters after = read_counters(s);
    out.xacts_per_job =
        static_cast<double>(after.xacts - before.xacts) / static_cast<double>(target);
    out.wal_syncs_per_job =
        static_cast<double>(after.wal_syncs - before.wal_syncs) / static_cast<double>(target);
  }
  if (counter.unexpected() > 0) {
    fail(std::to_string(counter.unexpected()) + " jobs did not complete (see the log)");
  }
  long long completed = s.count_status("Completed") - history;
  if (completed < target) {
    fail("only " + std::to_string(completed) + " jobs are Completed, expected " +
         std::to_string(target));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The benchmarks. Each returns the figures of one run.

std::vector<Figure> bench_bulk_enqueue(const Config& cfg) {
  Scratch s(cfg, cfg.pool_size);
  auto store = s.open();
  ergon::JobRunner runner(store);
  std::vector<Noop> jobs(static_cast<std::size_t>(cfg.jobs));
  for (int i = 0; i < cfg.jobs; ++i) jobs[static_cast<std::size_t>(i)].n = i;
  auto t0 = Clock::now();
  runner.start_jobs(jobs);  // one call: COPY in one transaction / one SQLite transaction
  auto t1 = Clock::now();
  if (s.count_status("Pending") != cfg.jobs) fail("bulk_enqueue: row count does not match");
  return {{"bulk_enqueue",
           "enqueue",
           "jobs/s",
           {cfg.jobs / Seconds(t1 - t0).count()},
           std::to_string(cfg.jobs) + " jobs, one start_jobs call"}};
}

std::vector<Figure> bench_single_enqueue(const Config& cfg) {
  // Each thread needs a connection of its own, as an application's request threads would.
  Scratch s(cfg, cfg.pool_size > 0 ? cfg.pool_size : std::max(4, cfg.threads));
  auto store = s.open();
  ergon::JobRunner runner(store);
  runner.start_job(Noop{-1});  // opens a first connection outside the timing
  std::atomic<bool> go{false};
  std::atomic<long long> total{0};
  std::vector<std::thread> threads;
  std::exception_ptr error;
  std::mutex error_mu;
  auto deadline_for = [&](Clock::time_point t0) {
    return t0 + std::chrono::duration_cast<Clock::duration>(Seconds(cfg.single_seconds));
  };
  Clock::time_point t0;
  for (int t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      auto deadline = deadline_for(t0);
      long long n = 0;
      try {
        while (Clock::now() < deadline) {
          runner.start_job(Noop{t});
          ++n;
        }
      } catch (...) {
        std::lock_guard lock(error_mu);
        error = std::current_exception();
      }
      total += n;
    });
  }
  t0 = Clock::now();
  go = true;
  for (auto& th : threads) th.join();
  auto t1 = Clock::now();
  if (error) std::rethrow_exception(error);
  if (s.count_status("Pending") != total + 1) fail("single_enqueue: row count does not match");
  return {{"single_enqueue",
           "enqueue",
           "jobs/s",
           {static_cast<double>(total) / Seconds(t1 - t0).count()},
           std::to_string(cfg.threads) + " threads"}};
}

std::vector<Figure> bench_processing(const Config& cfg) {
  BurnDown b = burn_down(cfg, cfg.jobs, 0, cfg.jobs);
  std::string note = std::to_string(cfg.jobs) + " jobs, " + std::to_string(cfg.workers) +
                     " worker(s) x " + std::to_string(cfg.concurrency) +
                     (cfg.prefetch > 0 ? " + prefetch " + std::to_string(cfg.prefetch) : "");
  if (cfg.queues > 0) note += ", " + std::to_string(cfg.queues) + " queues";
  if (cfg.priorities > 1) note += ", " + std::to_string(cfg.priorities) + " priorities";
  if (cfg.groups > 0) note += ", " + std::to_string(cfg.groups) + " groups";
  std::vector<Figure> out = {{"processing", "burn-down", "jobs/s", {b.rate}, note}};
  if (b.xacts_per_job >= 0) {
    out.push_back({"processing",
                   "xacts per job",
                   "xacts",
                   {b.xacts_per_job},
                   "pg_stat_database, whole window"});
    out.push_back({"processing",
                   "WAL syncs per job",
                   "syncs",
                   {b.wal_syncs_per_job},
                   "pg_stat_wal.wal_sync"});
  }
  return out;
}

// Enqueue-to-start into an idle worker, as bench/latency.cc measures it.
std::vector<Figure> bench_latency(const Config& cfg) {
  Scratch s(cfg, cfg.pool_size);
  auto worker_store = s.open();
  // PostgreSQL: a second store, so the wake-up travels through NOTIFY on commit and the
  // worker's LISTEN connection, as from another process. SQLite: the in-process wake-up.
  auto producer_store = s.sqlite() ? worker_store : s.open();
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  Clock::time_point started_at;
  ergon::HandlerRegistry handlers;
  handlers.add<Noop>([&](const Noop&, ergon::JobContext&) {
    auto now = Clock::now();
    std::lock_guard lock(mu);
    started_at = now;
    ++started;
    cv.notify_all();
  });
  ergon::WorkerOptions o;
  o.max_concurrent_jobs = 4;
  o.polling_interval = std::chrono::seconds(10);  // only a wake-up starts a job quickly
  o.run_scheduler = false;
  ergon::JobsWorker worker(worker_store, std::move(handlers), o);
  worker.start();
  ergon::JobRunner runner(producer_store);
  runner.start_job(Noop{-1});  // let the worker reach its idle wait and its LISTEN
  {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return started == 1; })) {
      fail("latency: the first job did not start within 30 s");
    }
  }
  std::vector<double> ms;
  for (int i = 0; i < cfg.latency_jobs; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(cfg.gap_ms));
    auto t0 = Clock::now();
    runner.start_job(Noop{i});
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return started == i + 2; })) {
      fail("latency: job " + std::to_string(i) + " did not start within 30 s");
    }
    ms.push_back(Millis(started_at - t0).count());
  }
  worker.stop();
  std::string note = std::to_string(cfg.latency_jobs) + " jobs, " +
                     (s.sqlite() ? "in-process wake-up" : "LISTEN/NOTIFY");
  return {{"latency", "p50", "ms", {percentile(ms, 0.5)}, note},
          {"latency", "p90", "ms", {percentile(ms, 0.9)}, note},
          {"latency", "p99", "ms", {percentile(ms, 0.99)}, note},
          {"latency", "max", "ms", {*std::max_element(ms.begin(), ms.end())}, note}};
}

// A schedule of every second. The jobs do not record their slot, so the slot is taken as the
// whole second at or before the job's created_at (the fire time): exact while firing is less
// than a second late, which `slots fired` checks (a slot missed or merged would show there).
std::vector<Figure> bench_cron_lateness(const Config& cfg) {
  Scratch s(cfg, cfg.pool_size);
  auto store = s.open();
  ergon::JobRunner runner(store);
  ergon::ScheduleOptions so;
  so.name = "bench_every_second";
  so.with_seconds = true;
  runner.add_or_update_scheduled_job(Noop{0}, "* * * * * *", so);
  std::mutex mu;
  std::vector<std::pair<ergon::JobId, ergon::TimePoint>> starts;
  ergon::HandlerRegistry handlers;
  handlers.add<Noop>([&](const Noop&, ergon::JobContext& ctx) {
    auto now = std::chrono::system_clock::now();
    std::lock_guard lock(mu);
    starts.emplace_back(ctx.job_id(), now);
  });
  ergon::WorkerOptions o;
  o.max_concurrent_jobs = 4;
  o.run_scheduler = true;
  ergon::JobsWorker worker(store, std::move(handlers), o);
  auto begin = std::chrono::system_clock::now();
  worker.start();
  std::this_thread::sleep_for(Seconds(cfg.cron_seconds));
  auto end = std::chrono::system_clock::now();
  worker.stop();
  using std::chrono::floor;
  using std::chrono::seconds;
  std::vector<double> start_ms, fire_ms;
  std::set<long long> slots;
  for (const auto& [id, started] : starts) {
    auto job = runner.get_job(id);
    if (!job) fail("cron_lateness: a started job vanished");
    auto slot = floor<seconds>(job->created_at);
    slots.insert(slot.time_since_epoch().count());
    fire_ms.push_back(Millis(job->created_at - slot).count());
    start_ms.push_back(Millis(started - slot).count());
  }
  if (start_ms.empty()) fail("cron_lateness: no job started");
  // Slots strictly inside (begin, end - 1 s]: the last second may not have been started yet.
  auto first = floor<seconds>(begin) + seconds(1);
  auto last = floor<seconds>(end) - seconds(1);
  long long expected = std::max<long long>(0, (last - first).count() + 1);
  long long fired = 0;
  for (long long x : slots) {
    if (x >= first.time_since_epoch().count() && x <= last.time_since_epoch().count()) ++fired;
  }
  std::string note = std::to_string(fired) + "/" + std::to_string(expected) + " slots fired";
  return {
      {"cron_lateness", "start p50", "ms", {percentile(start_ms, 0.5)}, note},
      {"cron_lateness", "start p99", "ms", {percentile(start_ms, 0.99)}, note},
      {"cron_lateness",
       "start max",
       "ms",
       {*std::max_element(start_ms.begin(), start_ms.end())},
       note},
      {"cron_lateness", "fire p50", "ms", {percentile(fire_ms, 0.5)}, note},
      {"cron_lateness", "slots missed", "slots", {static_cast<double>(expected - fired)}, note}};
}

// What one idle worker (1 s polling, scheduler on, defaults otherwise) asks of the database:
// transactions per second, counted by the server (pg_stat_database) in a database created for
// the measurement, so nothing else is counted with the worker (autovacuum, the other
// benchmarks' schemas). Every statement Ergon sends outside BEGIN ... COMMIT is a transaction
// of its own, and an idle worker's are all of that kind, so on this path transactions are
// statements. Backends report their statistics when they exit, so each measurement closes the
// worker's store; start-up and shutdown (registration, recovery, LISTEN, preparing each
// statement once on each connection) cancel out by taking the difference of a 6 s and a
// longer idle period. 6 s is past the first heartbeat, so both runs prepare the same
// statements. The database is migrated before either.
std::vector<Figure> bench_idle(const Config& cfg) {
  Scratch s(cfg, cfg.pool_size);  // for the admin connection and the URL's parameters
  std::string db = s.name();
  PgSql admin(s.conninfo());
  admin.exec("CREATE DATABASE \"" + db + "\"");
  // The store's URL with the database replaced: postgresql://host[:port]/db?params.
  auto [base, params] = split_url(s.store_url());
  std::string url =
      join_url(base.substr(0, base.find('/', base.find("://") + 3)) + "/" + db, params);
  auto xacts = [&] {
    admin.exec("SELECT pg_stat_clear_snapshot()");
    return admin.count(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '" + db + "'");
  };
  auto measure = [&](double secs) {
    long long before = xacts();
    {
      auto store = ergon::open_store(url);
      ergon::WorkerOptions o;
      o.max_concurrent_jobs = cfg.concurrency;
      o.prefetch_jobs = cfg.prefetch;
      ergon::JobsWorker worker(store, noop_handlers(), o);
      worker.start();
      std::this_thread::sleep_for(Seconds(secs));
      worker.stop();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // backends exit and flush
    return static_cast<double>(xacts() - before);
  };
  double per_second = 0;
  try {
    ergon::open_store(url).reset();  // migrates
    double short_run = measure(6);
    double long_run = measure(6 + cfg.idle_seconds);
    per_second = (long_run - short_run) / cfg.idle_seconds;
  } catch (...) {
    admin.exec("DROP DATABASE IF EXISTS \"" + db + "\" WITH (FORCE)");
    throw;
  }
  admin.exec("DROP DATABASE IF EXISTS \"" + db + "\" WITH (FORCE)");
  return {{"idle",
           "queries per second",
           "stmts/s",
           {per_second},
           "1 worker, polling 1 s, heartbeat 5 s, scheduler on; transactions in its own database"}};
}

std::vector<Figure> bench_backlog(const Config& cfg) {
  double rate = burn_down(cfg, cfg.backlog, 0, cfg.jobs).rate;
  return {{"backlog",
           "first " + std::to_string(cfg.jobs),
           "jobs/s",
           {rate},
           std::to_string(cfg.backlog) + " pending"}};
}

// Jobs in batches of 10,000 that share a tag (batch:B), and 10 that carry customer:42; then
// the first page of each tag's listing, newest first, as `ergon jobs list --tag` asks for it.
std::vector<Figure> bench_tag_filter(const Config& cfg) {
  Scratch s(cfg, cfg.pool_size);
  auto store = s.open();
  ergon::JobRunner runner(store);
  const int batch = 10000;
  std::vector<Noop> jobs(static_cast<std::size_t>(batch));
  for (int done = 0, b = 0; done < cfg.tag_rows; done += batch, ++b) {
    ergon::JobOptions o;
    o.tags = {"batch:" + std::to_string(b)};
    runner.start_jobs(jobs, o);
    if (b == cfg.tag_rows / batch / 2) {
      ergon::JobOptions rare;
      rare.tags = {"customer:42"};
      runner.start_jobs(std::vector<Noop>(10), rare);
    }
  }
  if (!s.sqlite()) s.sql().exec("ANALYZE " + s.table());
  auto time_page = [&](const std::string& tag, std::size_t expected) {
    std::vector<double> ms;
    for (int i = 0; i < 21; ++i) {
      ergon::JobFilter f;
      f.tag = tag;
      f.limit = 50;
      auto t0 = Clock::now();
      auto page = runner.list_jobs(f);
      ms.push_back(Millis(Clock::now() - t0).count());
      if (page.size() != expected) fail("tag_filter: " + tag + " found the wrong jobs");
    }
    return ms;
  };
  std::vector<double> rare = time_page("customer:42", 10);
  std::vector<double> common = time_page("batch:7", 50);
  std::string note = std::to_string(cfg.tag_rows) + " jobs, 21 listings";
  return {{"tag_filter", "10 of N p50", "ms", {percentile(rare, 0.5)}, note},
          {"tag_filter", "10 of N max", "ms", {*std::max_element(rare.begin(), rare.end())}, note},
          {"tag_filter", "10k of N p50", "ms", {percentile(common, 0.5)}, note}};
}

std::vector<Figure> bench_history(const Config& cfg) {
  // Interleaved, so that drift of a shared machine hits both alike.
  double empty = burn_down(cfg, cfg.jobs, 0, cfg.jobs).rate;
  double full = burn_down(cfg, cfg.jobs, cfg.history, cfg.jobs).rate;
  std::string hist = std::to_string(cfg.history) + " finished rows";
  return {{"history", "empty table", "jobs/s", {empty}, std::to_string(cfg.jobs) + " jobs"},
          {"history", "with history", "jobs/s", {full}, hist},
          {"history", "ratio", "%", {100.0 * full / empty}, "with history / empty"}};
}

// ---------------------------------------------------------------------------------------------

std::string format_value(double v) {
  char buf[64];
  if (v >= 1000) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
  }
  return buf;
}

std::string server_info(const Config& cfg) {
  if (is_sqlite(cfg.url)) {
    auto [base, params] = split_url(cfg.url);
    std::string sync = "full";
    for (const auto& [k, v] : params)
      if (k == "synchronous") sync = v;
    return std::string("SQLite ") + sqlite3_libversion() + ", synchronous=" + sync;
  }
  Scratch s(cfg, 0);
  PgSql admin(s.conninfo());
  return admin.scalar("SELECT split_part(version(), ' on ', 1)") +
         ", fsync=" + admin.scalar("SHOW fsync") +
         ", synchronous_commit=" + admin.scalar("SHOW synchronous_commit") +
         ", full_page_writes=" + admin.scalar("SHOW full_page_writes");
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"ergon-bench: Ergon's benchmarks against one database (docs/performance.md)"};
  app.add_option("--db", cfg.url, "postgresql://... or sqlite:PATH")->required();
  app.add_option("--runs", cfg.runs, "runs per benchmark (median, min, max)")
      ->check(CLI::Range(1, 100));
  app.add_option("--jobs", cfg.jobs,
                 "jobs per bulk enqueue, per burn-down, and processed in backlog/history")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--workers", cfg.workers, "JobsWorker objects, each with its own Store")
      ->check(CLI::Range(1, 64));
  app.add_option("--concurrency", cfg.concurrency, "MaxConcurrentJobs per worker")
      ->check(CLI::Range(1, 1024));
  app.add_option("--prefetch", cfg.prefetch, "WorkerOptions::prefetch_jobs per worker")
      ->check(CLI::Range(0, 100000));
  app.add_option("--pool-size", cfg.pool_size,
                 "PostgreSQL pool_size per store (default: the store's, 4)")
      ->check(CLI::Range(0, 64));
  app.add_option("--threads", cfg.threads, "single_enqueue threads")->check(CLI::Range(1, 64));
  app.add_option("--single-seconds", cfg.single_seconds, "single_enqueue duration")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--latency-jobs", cfg.latency_jobs, "latency samples per run")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--gap-ms", cfg.gap_ms, "latency: pause before each enqueue")
      ->check(CLI::Range(0, 10000));
  app.add_option("--cron-seconds", cfg.cron_seconds, "cron_lateness duration")
      ->check(CLI::Range(3.0, 3600.0));
  app.add_option("--idle-seconds", cfg.idle_seconds, "idle: measured idle period")
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--backlog", cfg.backlog, "backlog: pending jobs (1000000 for the issue's)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--history", cfg.history, "history: finished rows (10000000 for the issue's)")
      ->check(CLI::Range(1LL, 1000000000LL));
  app.add_option("--tag-rows", cfg.tag_rows, "tag_filter: jobs in the table")
      ->check(CLI::Range(20000, 100000000));
  bool no_vacuum = false;
  app.add_flag("--no-settle", no_vacuum,
               "burn-downs: skip VACUUM ANALYZE (SQLite: ANALYZE) after loading");
  app.add_option("--queues", cfg.queues, "processing: jobs spread over this many queues")
      ->check(CLI::Range(0, 1000));
  app.add_option("--priorities", cfg.priorities, "processing: job i gets priority i % P")
      ->check(CLI::Range(1, 1000));
  app.add_option("--groups", cfg.groups, "processing: job i gets group key g(i % G)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--only", cfg.only, "comma-separated benchmarks (default: all)");
  app.add_option("--json", cfg.json_file, "write the results as JSON to FILE");
  CLI11_PARSE(app, argc, argv);
  cfg.vacuum = !no_vacuum;
  if (cfg.backlog < cfg.jobs) {
    std::fprintf(stderr, "ergon-bench: --backlog must be at least --jobs\n");
    return 2;
  }

  spdlog::set_default_logger(spdlog::stderr_color_mt("ergon"));
  spdlog::set_level(spdlog::level::warn);

  std::vector<std::string> selected;
  if (cfg.only.empty()) {
    selected = kAllBenchmarks;
  } else {
    std::stringstream ss(cfg.only);
    std::string b;
    while (std::getline(ss, b, ',')) {
      if (std::find(kAllBenchmarks.begin(), kAllBenchmarks.end(), b) == kAllBenchmarks.end()) {
        std::fprintf(stderr, "ergon-bench: unknown benchmark '%s'\n", b.c_str());
        return 2;
      }
      selected.push_back(b);
    }
  }
  if (is_sqlite(cfg.url)) {
    std::erase(selected, std::string("idle"));  // needs the server's statistics
  }

  std::map<std::string, std::function<std::vector<Figure>(const Config&)>> benches = {
      {"bulk_enqueue", bench_bulk_enqueue},
      {"single_enqueue", bench_single_enqueue},
      {"processing", bench_processing},
      {"latency", bench_latency},
      {"cron_lateness", bench_cron_lateness},
      {"idle", bench_idle},
      {"backlog", bench_backlog},
      {"history", bench_history},
      {"tag_filter", bench_tag_filter}};

  std::vector<Figure> figures;
  std::string info;
  auto started = std::chrono::system_clock::now();
  try {
    info = server_info(cfg);
    std::printf("ergon-bench: %s, build %s, %d run(s) each\n", info.c_str(), ERGON_BENCH_BUILD_TYPE,
                cfg.runs);
    for (const auto& name : selected) {
      std::vector<Figure> merged;
      for (int r = 0; r < cfg.runs; ++r) {
        std::fprintf(stderr, "  %s run %d/%d ...\n", name.c_str(), r + 1, cfg.runs);
        auto got = benches.at(name)(cfg);
        if (merged.empty()) {
          merged = got;
        } else {
          for (std::size_t i = 0; i < got.size(); ++i) {
            merged[i].runs.push_back(got[i].runs.front());
            if (got[i].note != merged[i].note) merged[i].note += "; " + got[i].note;
          }
        }
      }
      figures.insert(figures.end(), merged.begin(), merged.end());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ergon-bench: %s\n", e.what());
    return 1;
  }

  std::printf("\n%-15s %-18s %12s %12s %12s  %-7s %s\n", "benchmark", "metric", "median", "min",
              "max", "unit", "notes");
  for (const auto& f : figures) {
    std::printf("%-15s %-18s %12s %12s %12s  %-7s %s\n", f.bench.c_str(), f.metric.c_str(),
                format_value(median(f.runs)).c_str(),
                format_value(*std::min_element(f.runs.begin(), f.runs.end())).c_str(),
                format_value(*std::max_element(f.runs.begin(), f.runs.end())).c_str(),
                f.unit.c_str(), f.note.c_str());
  }

  if (!cfg.json_file.empty()) {
    nlohmann::json j;
    j["tool"] = "ergon-bench";
    j["started_at"] = ergon::format_timestamp(started);
    j["store"] = is_sqlite(cfg.url) ? "sqlite" : "postgresql";
    j["server"] = info;
    j["build_type"] = ERGON_BENCH_BUILD_TYPE;
    j["config"] = {{"runs", cfg.runs},
                   {"jobs", cfg.jobs},
                   {"workers", cfg.workers},
                   {"concurrency", cfg.concurrency},
                   {"prefetch", cfg.prefetch},
                   {"pool_size", cfg.pool_size},
                   {"threads", cfg.threads},
                   {"single_seconds", cfg.single_seconds},
                   {"latency_jobs", cfg.latency_jobs},
                   {"gap_ms", cfg.gap_ms},
                   {"cron_seconds", cfg.cron_seconds},
                   {"idle_seconds", cfg.idle_seconds},
                   {"backlog", cfg.backlog},
                   {"history", cfg.history},
                   {"settle", cfg.vacuum}};
    auto& results = j["results"] = nlohmann::json::array();
    for (const auto& f : figures) {
      results.push_back({{"bench", f.bench},
                         {"metric", f.metric},
                         {"unit", f.unit},
                         {"median", median(f.runs)},
                         {"min", *std::min_element(f.runs.begin(), f.runs.end())},
                         {"max", *std::max_element(f.runs.begin(), f.runs.end())},
                         {"runs", f.runs},
                         {"note", f.note}});
    }
    std::ofstream out(cfg.json_file);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "ergon-bench: cannot write %s\n", cfg.json_file.c_str());
      return 1;
    }
  }
  return 0;
}
