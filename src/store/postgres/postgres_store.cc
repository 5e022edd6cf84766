// store/postgres/postgres_store.cc — the PostgreSQL store's frame: the URL, the connections, the
// listener and the waker, what the noun files share (statement text, rows, the filter), job_get
// and job_list.
#include "store/postgres/postgres_store.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <system_error>

#include "ergon/error.h"
#include "store/postgres/pg_migrations.h"
#include "store/postgres/postgres_internal.h"
#include "store/text_rules.h"

namespace ergon::postgres {
namespace {

// The schema name's hash: 16 hex digits.
std::string schema_hash(const std::string& schema) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(schema)));
  return hash;
}

// "ergon:<schema>" (channel names are identifiers: at most 63 bytes). A longer schema name
// keeps its start and gets a hash of the whole name, so two long names still differ.
std::string channel_for(const std::string& schema) {
  std::string channel = "ergon:" + schema;
  if (channel.size() <= 63) return channel;
  return "ergon:" + truncate_utf8(schema, 63 - 6 - 17) + ":" + schema_hash(schema);
}

// "ergon-wait:<hash of the schema>": the channel of finished jobs, and the application_name of
// the connection that listens on it, by which completions know that somebody waits
// (postgres_outcomes.cc). A hash, as a session's application_name keeps only printable ASCII.
std::string finish_channel_for(const std::string& schema) {
  return "ergon-wait:" + schema_hash(schema);
}

std::string percent_decode(std::string_view v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '%') {
      out += v[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= v.size()) {
      throw Error(ErrorCode::kInvalidArgument, "postgresql URL: bad %-escape");
    }
    auto [end, ec] = std::from_chars(v.data() + i + 1, v.data() + i + 3, value, 16);
    if (ec != std::errc() || end != v.data() + i + 3) {
      throw Error(ErrorCode::kInvalidArgument, "postgresql URL: bad %-escape");
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// `conninfo` with `option` added to its server options (the `options` keyword, which
// parse_postgres_url always sets), before the URL's own: a user's setting still wins.
pq::ConnParams with_server_option(pq::ConnParams conninfo, const std::string& option) {
  for (auto& [key, value] : conninfo) {
    if (key == "options") value = option + " " + value;
  }
  return conninfo;
}

}  // namespace

std::string fill(std::string_view raw, Holes holes) {
  std::string out(raw);
  for (const auto& [hole, sql] : holes) out = replace_placeholder(out, hole, sql);
  return out;
}

std::string SqlContext::text(std::string_view raw, Holes holes) const {
  return schema_sql(fill(raw, holes), schema);
}

std::string SqlContext::time(std::string_view base, int t, int n) const {
  std::string pt = "$" + std::to_string(t) + "::timestamptz";
  if (!db_clock) return pt;
  if (t == n) return std::string(base);
  return "(" + std::string(base) + " + (" + pt + " - $" + std::to_string(n) + "::timestamptz))";
}

std::string SqlContext::heartbeat_stale(int t, int n) const {
  std::string stale = time("now()", t, n);
  return "heartbeat_at < " + stale +
         (db_clock ? " AND pg_postmaster_start_time() < " + stale : std::string());
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

void require_no_nul(std::string_view v, std::string_view what) {
  if (v.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " contains a NUL byte");
  }
}

void require_transaction(PGconn* conn, std::string_view call) {
  if (conn == nullptr) throw Error(ErrorCode::kInvalidArgument, "null PostgreSQL connection");
  switch (PQtransactionStatus(conn)) {
    case PQTRANS_INTRANS:
      return;
    case PQTRANS_INERROR:
      throw Error(ErrorCode::kNoTransaction,
                  std::string(call) + ": the transaction on conn has failed; roll it back");
    case PQTRANS_ACTIVE:
      throw Error(ErrorCode::kNoTransaction,
                  std::string(call) + ": conn is busy with another command");
    default:
      throw Error(ErrorCode::kNoTransaction,
                  std::string(call) + " needs an open transaction on conn (BEGIN first)");
  }
}

PgResult exec_on_caller(PGconn* conn, const std::string& sql, const PgParams& params,
                        std::string_view what) {
  PgResult r(PQexecParams(conn, sql.c_str(), params.size(), nullptr, params.values(), nullptr,
                          nullptr, 0));
  auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) pq::pg_throw(conn, r.get(), what);
  return r;
}

std::string columns(std::string_view list, std::string_view prefix) {
  std::string out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view column = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    column.remove_prefix(std::min(column.find_first_not_of(" \n"), column.size()));
    column = column.substr(0, column.find_last_not_of(" \n") + 1);
    if (column.empty()) continue;
    if (!out.empty()) out += ", ";
    out += prefix;
    out += column;
  }
  return out;
}

PostgresStore::Statements::Statements(const SqlContext& sql)
    : context(sql),
      get(sql.statement("ergon_job_get", "SELECT @COLUMNS@ FROM @SCHEMA@.jobs WHERE id = $1::uuid",
                        {{"@COLUMNS@", columns(kJobColumns)}})),
      // The rows of job_attempts, and a Completed job's last attempt from its own row
      // (writes_attempt_row), in lease order: the order they ran.
      attempt_list(sql.statement(
          "ergon_job_attempt_list", R"sql(
SELECT @COLUMNS@ FROM @SCHEMA@.job_attempts WHERE job_id = $1::uuid
UNION ALL
SELECT @COMPLETED@ FROM @SCHEMA@.jobs j
WHERE id = $1::uuid AND status = 'Completed' AND worker_id IS NOT NULL AND started_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM @SCHEMA@.job_attempts a WHERE a.job_id = j.id AND a.lease = j.lease)
ORDER BY lease)sql",
          {{"@COLUMNS@", columns(kAttemptColumns)}, {"@COMPLETED@", columns(kCompletedAttempt)}})),
      notify{"ergon_notify", "SELECT pg_notify($1, $2)"},
      enqueue(sql),
      claim(sql),
      outcomes(sql),
      workers(sql),
      outbox(sql),
      schedules(sql),
      flow(sql) {}

PostgresUrl parse_postgres_url(std::string_view url) {
  if (!url.starts_with("postgresql://") && !url.starts_with("postgres://")) {
    throw Error(ErrorCode::kInvalidArgument, "not a postgresql URL: '" + std::string(url) + "'");
  }
  PostgresUrl out;
  auto q = url.find('?');
  std::string libpq_url(url.substr(0, q));
  bool schema_seen = false, pool_seen = false, first = true;
  std::string_view params = q == std::string_view::npos ? "" : url.substr(q + 1);
  while (!params.empty()) {
    auto amp = params.find('&');
    std::string_view kv = params.substr(0, amp);
    params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
    auto eq = kv.find('=');
    std::string_view key = kv.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : kv.substr(eq + 1);
    if (key == "schema") {
      if (schema_seen) throw Error(ErrorCode::kInvalidArgument, "postgresql URL: two schemas");
      schema_seen = true;
      out.schema = percent_decode(value);
      // PostgreSQL cuts longer identifiers silently, which would merge two long names.
      if (out.schema.empty() || out.schema.size() > 63 ||
          out.schema.find('\0') != std::string::npos || !is_valid_utf8(out.schema)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "postgresql URL: schema must be 1 to 63 bytes of UTF-8, not '" +
                        std::string(value) + "'");
      }
    } else if (key == "pool_size") {
      int n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (pool_seen || ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 64) {
        throw Error(ErrorCode::kInvalidArgument,
                    "postgresql URL: pool_size must be one integer from 1 to 64, not '" +
                        std::string(value) + "'");
      }
      pool_seen = true;
      out.pool_size = n;
    } else if (!kv.empty()) {
      libpq_url += first ? '?' : '&';
      libpq_url += kv;
      first = false;
    }
  }
  // libpq decides what the rest means, and refuses what it does not know.
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(libpq_url.c_str(), &err);
  if (options == nullptr) {
    std::string msg = err ? pq::pg_one_line(err) : "cannot parse";
    PQfreemem(err);
    throw Error(ErrorCode::kInvalidArgument,
                "postgresql URL: " + msg +
                    " (Ergon's own parameters are schema and pool_size; any other must be a "
                    "libpq connection parameter)");
  }
  bool app_name = false, timeout = false;
  // No JIT on Ergon's connections: its statements touch a handful of rows, yet the claim's
  // estimated cost (the skip scan over group keys is costed as if it visited many groups) can
  // pass jit_above_cost, and compiling it takes about 100 ms per claim, many times the claim's own
  // work. The URL's own `options` come after it, so
  // a user who wants JIT back can say so (options=-c%20jit%3Don).
  std::string server_options = "-c jit=off";
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k(o->keyword);
    app_name = app_name || k == "application_name";
    timeout = timeout || k == "connect_timeout";
    if (k == "options") {
      server_options += " ";
      server_options += o->val;
    } else if (k != "client_encoding") {
      out.conninfo.emplace_back(o->keyword, o->val);
    }
  }
  PQconninfoFree(options);
  out.conninfo.emplace_back("options", server_options);
  if (!app_name) out.conninfo.emplace_back("application_name", "ergon");
  if (!timeout) out.conninfo.emplace_back("connect_timeout", "10");
  // Ergon speaks UTF-8: its text (job types, messages) is UTF-8 and sanitised as such.
  out.conninfo.emplace_back("client_encoding", "UTF8");
  return out;
}

PostgresStore::PostgresStore(const PostgresUrl& url, Clock& clock)
    : Store(clock),
      schema_(url.schema),
      channel_(channel_for(url.schema)),
      finish_channel_(finish_channel_for(url.schema)),
      database_clock_(&clock == &Clock::system()),
      conninfo_(url.conninfo),
      pool_(url.conninfo, url.pool_size),
      claim_pool_(with_server_option(url.conninfo, "-c plan_cache_mode=force_generic_plan"),
                  url.pool_size),
      waker_(channel_, [this](const std::function<void(PgConnection&)>& use) {
        auto conn = pool_.acquire();
        use(*conn);
      }) {
  pool_.share_failures_with(claim_pool_);
  {
    auto conn = pool_.acquire();
    char* quoted = PQescapeIdentifier(conn->get(), schema_.data(), schema_.size());
    if (quoted == nullptr) {
      throw Error(ErrorCode::kInvalidArgument,
                  "postgresql: cannot quote schema name '" + schema_ +
                      "': " + pq::pg_one_line(PQerrorMessage(conn->get())));
    }
    quoted_schema_ = quoted;
    PQfreemem(quoted);
  }
  sql_ = std::make_unique<Statements>(SqlContext{quoted_schema_, database_clock_});
}

PostgresStore::~PostgresStore() {
  // The waker announces what is still pending, then stops; it uses the pool.
  waker_.stop();
  // Stop the listeners before the pool they ask about goes away.
  std::lock_guard lock(listener_mu_);
  listener_.reset();
  finish_listener_.reset();
}

transport::PgListener::Options PostgresStore::listener_options(const std::string& channel) {
  transport::PgListener::Options o;
  // TCP keepalives notice a silently dead server (no FIN) on the otherwise idle LISTEN
  // connection within about a minute; the URL's own settings, later in the list, win.
  o.conninfo = {{"keepalives", "1"},
                {"keepalives_idle", "30"},
                {"keepalives_interval", "10"},
                {"keepalives_count", "3"}};
  o.conninfo.insert(o.conninfo.end(), conninfo_.begin(), conninfo_.end());
  o.channel = channel;
  // What this store wrote already told this process synchronously; relaying its notifications
  // again would wake the workers (or waiters) twice.
  o.ignore_backend = [this](int pid) { return pool_.owns_backend(pid); };
  return o;
}

void PostgresStore::watch_finishes() {
  std::lock_guard lock(listener_mu_);
  if (finish_listener_) return;
  transport::PgListener::Options o = listener_options(finish_channel_);
  // Last, so it wins over the URL's: the name by which completions see that somebody waits.
  o.conninfo.emplace_back("application_name", finish_channel_);
  finish_listener_ =
      std::make_unique<transport::PgListener>(std::move(o), finish_notifier(), clock());
}

void PostgresStore::listener_ensure() {
  if (listener_started_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(listener_mu_);
  if (listener_) return;
  listener_ =
      std::make_unique<transport::PgListener>(listener_options(channel_), notifier(), clock());
  listener_started_.store(true, std::memory_order_release);
}

bool PostgresStore::listener_wait_ready(std::chrono::milliseconds timeout) {
  listener_ensure();
  transport::PgListener* listener;
  {
    std::lock_guard lock(listener_mu_);
    listener = listener_.get();
  }
  return listener->listening_wait(timeout);
}

std::map<std::string, PostgresStore::PlanCounts> PostgresStore::TEST_plan_counts() {
  std::map<std::string, PlanCounts> out;
  for (PgPool* pool : {&pool_, &claim_pool_}) {
    auto conn = pool->acquire();
    auto r = conn->exec("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements",
                        PgParams(), Format::kText);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      PlanCounts& c = out[PQgetvalue(r.get(), i, 0)];
      c.generic += std::stoll(PQgetvalue(r.get(), i, 1));
      c.custom += std::stoll(PQgetvalue(r.get(), i, 2));
    }
  }
  return out;
}

void PostgresStore::TEST_notify_inline(bool on) { waker_.TEST_inline(on); }

PgResult PostgresStore::pooled_run(const PgStatement& st, const PgParams& params, Format format) {
  auto conn = pool_.acquire();
  return conn->run(st, params, format);
}

PgResult PostgresStore::pooled_exec(const std::string& sql, const PgParams& params, Format format) {
  auto conn = pool_.acquire();
  return conn->exec(sql, params, format);
}

std::optional<JobRecord> PostgresStore::job_get(const JobId& id) {
  return read_first(pooled_run(sql_->get, PgParams().text(id.to_string())), read_job<Row>);
}

void check_limit(int limit) {
  if (limit < 1 || limit > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "limit must be between 1 and 10000");
  }
}

// The conditions of a JobFilter (limit aside) on the jobs row `t`, ANDed; "true" when none.
//
// Which index serves what (ORDER BY id DESC LIMIT n is always the shape of a listing):
//   - status set: jobs_status_idx (status, id) is walked backwards from (status, before_id), so
//     the scan starts exactly where the previous page ended and stops after n matches;
//   - no status: the primary key (id) is walked backwards from before_id the same way;
//   - tag: jobs_tags_idx (GIN, tags @> ARRAY[tag]) always: job_list fences the filter off
//     from the LIMIT (tagged_listing), so the tag's rows are found through the index and only
//     they are sorted;
//   - job_type, queue, created_after/before and text are checked on the rows that walk
//     visits. A page then costs n rows plus the non-matching rows skipped on the way, and that
//     cost does not grow with the page number: keyset pagination (id < before_id) never reads
//     the earlier pages again, as OFFSET would. A filter that matches only rare old rows walks
//     far once, and the next page starts from there.
// ids are UUIDv7 (time-ordered), and uuid comparison is bytewise, so id order is creation order.
std::string filter_sql(const JobFilter& f, Params& p, std::string_view t) {
  check_filter(f);
  std::string c(t);
  std::string w = "true";
  if (f.status) w += " AND " + c + "status = " + p.add_text(to_string(*f.status));
  if (f.job_type) w += " AND " + c + "job_type = " + p.add_text(*f.job_type);
  if (f.queue) w += " AND " + c + "queue = " + p.add_text(*f.queue);
  if (f.created_after) w += " AND " + c + "created_at >= " + p.add_time(*f.created_after);
  if (f.created_before) w += " AND " + c + "created_at < " + p.add_time(*f.created_before);
  if (f.text) {
    // strpos is a plain substring test: % and _ mean themselves (LIKE would need escaping).
    // job_data is matched in jsonb's own text form ({"k": "v"}: a space after each colon).
    std::string n = p.add_text(*f.text);
    w += " AND (strpos(" + c + "job_data::text, " + n + ") > 0 OR strpos(" + c + "error_message, " +
         n + ") > 0)";
  }
  if (f.tag) w += " AND " + c + "tags @> ARRAY[" + p.add_text(*f.tag) + "::text]";
  if (f.before_id) w += " AND " + c + "id < " + p.add_text(f.before_id->to_string()) + "::uuid";
  return w;
}

// Built per call (the filter decides its shape) and run unprepared, so every call gets a plan
// for its own values: an operator's listing is rare, and a generic plan for "status = $1"
// would not know that 'Running' is rare and 'Completed' is most of the table. Values always
// travel as $n parameters; only fixed SQL fragments fill the holes.
std::vector<JobRecord> PostgresStore::job_list(const JobFilter& f) {
  check_limit(f.limit);
  Params p;
  std::string where = filter_sql(f, p);
  std::string limit = p.add_integer(f.limit);
  // With a tag, the planner weighs a walk of the primary key that stops after LIMIT matches
  // against the tag's index, and estimates a tag's rows from the most common ones: a tag it
  // thinks common but whose jobs are old walks most of the table (360 ms among 1M jobs for a
  // tag of 10,000). OFFSET 0 keeps the subquery from being flattened, so it is planned without
  // the LIMIT and takes the index; then only the tag's ids are sorted (bench tag_filter).
  static constexpr std::string_view kPlain =
      R"sql(SELECT @COLUMNS@ FROM @SCHEMA@.jobs WHERE @FILTER@ ORDER BY id DESC LIMIT @LIMIT@)sql";
  static constexpr std::string_view kTagged = R"sql(
SELECT @COLUMNS@ FROM @SCHEMA@.jobs WHERE id IN (
  SELECT id FROM (SELECT id FROM @SCHEMA@.jobs WHERE @FILTER@ OFFSET 0) AS tagged
  ORDER BY id DESC LIMIT @LIMIT@)
ORDER BY id DESC)sql";
  std::string sql = sql_->context.text(
      f.tag ? kTagged : kPlain,
      {{"@COLUMNS@", columns(kJobColumns)}, {"@FILTER@", where}, {"@LIMIT@", limit}});
  return read_rows(pooled_exec(sql, p.params()), read_job<Row>);
}

std::vector<AttemptRecord> PostgresStore::job_attempt_list(const JobId& id) {
  return read_rows(pooled_run(sql_->attempt_list, PgParams().text(id.to_string())),
                   read_attempt<Row>);
}

}  // namespace ergon::postgres
