#include "store/postgres/postgres_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <system_error>
#include <tuple>
#include <unordered_set>

#include "ergon/error.h"
#include "store/handled_types.h"
#include "store/postgres/pg_migrations.h"
#include "store/text_rules.h"

namespace ergon::postgres {
namespace {

// The columns every read returns, in JobRecord order (see read_job).
constexpr const char* kJobColumns[] = {
    "id",         "job_type",     "job_data",      "status",           "created_at",
    "started_at", "completed_at", "error_message", "progress_message", "progress_percent",
    "queue",      "priority",     "run_at",        "attempt",          "max_attempts",
    "worker_id",  "heartbeat_at", "timeout_ms",    "cancel_requested", "rescue_count",
    "unique_key", "group_key",    "lease"};

// The fence "this job is still Running" of the statements that address one attempt by id (an
// outcome, a progress report). Written so that no partial index on Running rows matches it:
// with a plain `status = 'Running'` next to `worker_id = $n`, a generic plan trusts statistics
// that may have been taken when few jobs ran (estimate: one row) and reads jobs_running_idx,
// every Running row of the worker (1,000 and more with a local queue), to change one job.
// `status || ''` can use no index, so the job is found by id (jobs_pkey), whatever the
// statistics say (PostgresStoreTest.OutcomesFindTheirJobByIdWhateverTheStatistics). A batch of
// completions keeps the plain form (finish_completed_many).
std::string running_fence(std::string_view alias = "") {
  std::string f = "(";
  f += alias;
  f += "status || '') = 'Running'";
  return f;
}

// The predicate of jobs_unique_idx (migration 5), which ON CONFLICT must repeat to use it.
constexpr const char* kUniquePredicate =
    "unique_key IS NOT NULL AND (status = 'Pending' OR (status = 'Running' AND "
    "unique_while_running))";

// A job moving from Running back to Pending (retry, release, rescue) whose unique key was
// taken meanwhile by a new Pending job (possible when the key is held only while Pending)
// gives the key up, or the unique index would refuse the move. `t` names the updated row. A
// concurrent insert can still slip in between; the move then fails with a unique violation and
// its caller's retry finds the new job and gives the key up.
std::string unique_give_up(std::string_view t, const std::string& jobs) {
  std::string q(t);
  return "CASE WHEN " + q + ".unique_key IS NOT NULL AND NOT " + q +
         ".unique_while_running AND EXISTS (SELECT 1 FROM " + jobs +
         " o WHERE o.unique_key = " + q + ".unique_key AND o.status = 'Pending' AND o.id <> " + q +
         ".id) THEN NULL ELSE " + q + ".unique_key END";
}

// The columns every schedule read returns, in ScheduleRecord order (see read_schedule).
constexpr const char* kScheduleColumns =
    "id, name, job_type, job_data, cron_expression, with_seconds, time_zone, next_run_time, "
    "last_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue, priority, "
    "max_attempts, last_job_id";

ScheduleRecord read_schedule(const PGresult* r, int row) {
  ScheduleRecord s;
  s.id = pgbin::uuid(r, row, 0);
  s.name = pgbin::text(r, row, 1);
  s.job_type = pgbin::text(r, row, 2);
  s.job_data = pgbin::jsonb(r, row, 3);
  s.cron_expression = pgbin::text(r, row, 4);
  s.with_seconds = pgbin::boolean(r, row, 5);
  s.time_zone = pgbin::text(r, row, 6);
  s.next_run_time = pgbin::timestamptz(r, row, 7);
  s.last_run_time = pgbin::opt_timestamptz(r, row, 8);
  s.is_enabled = pgbin::boolean(r, row, 9);
  auto misfire = parse_misfire_policy(pgbin::text(r, row, 10));
  auto overlap = parse_overlap_policy(pgbin::text(r, row, 12));
  if (!misfire || !overlap)
    throw Error(ErrorCode::kStore, "unknown schedule policy in the database");
  s.misfire = *misfire;
  s.misfire_limit = pgbin::int4(r, row, 11);
  s.overlap = *overlap;
  s.queue = pgbin::text(r, row, 13);
  s.priority = pgbin::int4(r, row, 14);
  s.max_attempts = pgbin::opt_int4(r, row, 15);
  s.last_job_id = pgbin::opt_uuid(r, row, 16);
  return s;
}

// A notification's payload: the due time, ISO-8601 UTC with microseconds — what
// parse_timestamp reads, and what a person running LISTEN in psql can read too.
std::string due_text(std::string_view column) {
  return "to_char(" + std::string(column) +
         R"( AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))";
}

// The SQL of a time the store writes (see "Time" in the header): parameter $t as given when
// the store runs on an injected clock; on the database clock, `base` (the server's now) plus
// how far $t was from the caller's own now $n.
std::string time_sql(bool database_clock, std::string_view base, int t, int n) {
  std::string pt = "$" + std::to_string(t) + "::timestamptz";
  if (!database_clock) return pt;
  if (t == n) return std::string(base);
  return "(" + std::string(base) + " + (" + pt + " - $" + std::to_string(n) + "::timestamptz))";
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// "ergon:<schema>" (channel names are identifiers: at most 63 bytes). A longer schema name
// keeps its start and gets a hash of the whole name, so two long names still differ.
std::string channel_for(const std::string& schema) {
  std::string channel = "ergon:" + schema;
  if (channel.size() <= 63) return channel;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(schema)));
  return "ergon:" + truncate_utf8(schema, 63 - 6 - 17) + ":" + hash;
}

// The advisory lock that serialises migrations of one schema: a constant derived from "ergon"
// and the schema, so that migrators of other schemas (other applications) do not wait.
std::int64_t migration_lock_key(const std::string& schema) {
  return static_cast<std::int64_t>(fnv1a("ergon migrate\x1f" + schema));
}

// COPY's text format: backslash escapes for the characters that delimit fields and rows.
void copy_field(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
}

// One element of a varchar[] literal: quoted, with " and \ escaped.
std::string array_element(std::string_view v) {
  std::string a = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') a += '\\';
    a += c;
  }
  a += '"';
  return a;
}

// A varchar[] literal ("{"a","b\"c"}").
void array_param(PgParams& params, std::span<const std::string> values) {
  std::string a = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) a += ',';
    a += array_element(values[i]);
  }
  a += '}';
  params.text(a);
}

// The claim's queues, NULL for an empty list ("every queue").
void queues_param(PgParams& params, std::span<const std::string> queues) {
  if (queues.empty()) {
    params.null();
  } else {
    array_param(params, queues);
  }
}

// The claim's job types, NULL when unset ("every type"); an empty list matches none.
void types_param(PgParams& params, const std::optional<std::span<const std::string>>& types) {
  if (types) {
    array_param(params, *types);
  } else {
    params.null();
  }
}

void require_no_nul(std::string_view v, std::string_view what) {
  if (v.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " contains a NUL byte");
  }
}

// $1..$10 of the insert statements (the notifying ones take the channel as $11).
PgParams insert_params(const JobInsertParams& p) {
  PgParams params;
  params.text(p.id.to_string())
      .text(p.job_type)
      .text(p.job_data)
      .text(p.queue)
      .integer(static_cast<std::int64_t>(p.priority))
      .integer(p.max_attempts)
      .time(p.created_at)
      .time(p.run_at);
  if (p.timeout) {
    params.integer(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(*p.timeout).count()));
  } else {
    params.null();
  }
  if (p.group_key.empty()) {  // $10
    params.null();
  } else {
    params.text(p.group_key);
  }
  return params;
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

}  // namespace

std::string job_columns(std::string_view prefix) {
  std::string out;
  for (const char* c : kJobColumns) {
    if (!out.empty()) out += ", ";
    out += prefix;
    out += c;
  }
  return out;
}

JobRecord read_job(const PGresult* r, int row) {
  JobRecord j;
  j.id = pgbin::uuid(r, row, 0);
  j.job_type = pgbin::text(r, row, 1);
  j.job_data = pgbin::jsonb(r, row, 2);
  auto status = parse_job_status(pgbin::text(r, row, 3));
  if (!status) throw Error(ErrorCode::kStore, "unknown job status in the database");
  j.status = *status;
  j.created_at = pgbin::timestamptz(r, row, 4);
  j.started_at = pgbin::opt_timestamptz(r, row, 5);
  j.completed_at = pgbin::opt_timestamptz(r, row, 6);
  j.error_message = pgbin::opt_text(r, row, 7);
  j.progress_message = pgbin::opt_text(r, row, 8);
  j.progress_percent = pgbin::opt_int4(r, row, 9);
  j.queue = pgbin::text(r, row, 10);
  j.priority = pgbin::int4(r, row, 11);
  j.run_at = pgbin::timestamptz(r, row, 12);
  j.attempt = pgbin::int4(r, row, 13);
  j.max_attempts = pgbin::opt_int4(r, row, 14);
  j.worker_id = pgbin::opt_text(r, row, 15);
  j.heartbeat_at = pgbin::opt_timestamptz(r, row, 16);
  if (!pgbin::is_null(r, row, 17)) j.timeout = std::chrono::milliseconds(pgbin::int8(r, row, 17));
  j.cancel_requested = pgbin::boolean(r, row, 18);
  j.rescue_count = pgbin::int4(r, row, 19);
  j.unique_key = pgbin::opt_text(r, row, 20);
  j.group_key = pgbin::opt_text(r, row, 21);
  j.lease = pgbin::int4(r, row, 22);
  return j;
}

// Every statement of the store, built once for its schema and clock rule.
struct PostgresStore::Statements {
  PgStatement insert, insert_quiet, claim, claim_renew, claim_plain, claim_plain_renew, finish,
      finish_retry, progress, get;
  std::string insert_tx;                   // run unprepared, on the caller's connection
  std::string finish_tx, finish_retry_tx;  // likewise
  std::string copy;                        // COPY ... FROM STDIN for job_insert_many
  PgStatement schedule_upsert, schedule_remove, schedule_enable, schedule_get, schedule_list,
      schedule_due, schedule_next_due, schedule_lock, schedule_advance, job_status, notify;
  PgStatement heartbeat, rescue, release_worker, cancel_pending, cancel_running, job_exists, prune,
      worker_register, worker_heartbeat, worker_remove, worker_prune, worker_list;
  PgStatement claim_id, outbox_peek, outbox_remove, unique_holder, queue_set_paused, queue_list;
  PgStatement finish_completed_many;  // job_finish_many's plain completions, in one statement
  PgStatement claim_limited, limit_lock, limit_types, limit_get, limit_set, limit_remove,
      limit_list, starts_log, starts_prune, starts_clear;

  Statements(const std::string& s, bool db_clock) {
    const std::string jobs = s + ".jobs";
    // Inserts evaluate the base time once (the `clock` subquery) so created_at and run_at
    // agree. The notification goes out in the same statement, hence the same transaction:
    // PostgreSQL delivers it on commit and drops it on rollback, so no worker is woken for a
    // row it cannot see yet.
    // $10 is the group key (NULL: none). With `unique`, $12 is the unique key (NULL: none) and
    // $13 unique_while_running: a key held by another job makes the insert do nothing (no row
    // comes back, no notification).
    // $14 is the unique key's time window in ms (NULL: none): the job holds its key until
    // created_at plus it, and a key whose window is open at this job's created_at makes the
    // insert do nothing too.
    auto insert_only = [&](std::string_view base, bool unique) {
      std::string created = time_sql(db_clock, "clock.b", 7, 7);
      return "INSERT INTO " + jobs +
             " (id, job_type, job_data, status, created_at, queue, priority, run_at, attempt, "
             "max_attempts, timeout_ms, group_key" +
             (unique ? ", unique_key, unique_while_running, unique_until" : "") +
             ") SELECT $1::uuid, $2::varchar, $3::jsonb, 'Pending', " +
             time_sql(db_clock, "clock.b", 7, 7) + ", $4::varchar, $5::integer, " +
             time_sql(db_clock, "clock.b", 8, 7) + ", 0, $6::integer, $9::bigint, $10::varchar" +
             (unique ? ", $12::varchar, $13::boolean, " + created +
                           " + $14::bigint * interval '1 millisecond'"
                     : std::string()) +
             " FROM (SELECT " + std::string(base) + " AS b) AS clock" +
             (unique ? " WHERE $12::varchar IS NULL OR NOT EXISTS (SELECT 1 FROM " + jobs +
                           " o WHERE o.unique_key = $12::varchar AND o.unique_until > " + created +
                           ") ON CONFLICT (unique_key) WHERE " + kUniquePredicate +
                           " DO NOTHING RETURNING id, run_at"
                     : std::string(" RETURNING run_at"));
    };
    // Returns the id, pg_notify's (empty) result and the due time as the notification's
    // payload. `maybe_quiet`: the notification only if $15 (see job_insert).
    auto insert_sql = [&](std::string_view base, bool maybe_quiet) {
      std::string send = "pg_notify($11, " + due_text("run_at") + ")";
      if (maybe_quiet) send = "CASE WHEN $15::boolean THEN " + send + " END";
      return "WITH ins AS (" + insert_only(base, true) + ") SELECT id, " + send + ", " +
             due_text("run_at") + " FROM ins";
    };
    // now() is the statement's start here (every insert is its own transaction).
    insert = {"ergon_job_insert", insert_sql("now()", true)};
    // Inside a longer transaction (a schedule's slot) that sends one notification at its end.
    insert_quiet = {"ergon_job_insert_quiet", insert_only("now()", false)};
    // The job holding a key: a Pending (or Running) holder first, else the newest open window
    // (at $2, or the database's clock_timestamp()).
    unique_holder = {"ergon_job_unique_holder",
                     "SELECT id FROM " + jobs + " WHERE unique_key = $1 AND ((" + kUniquePredicate +
                         ") OR unique_until > " +
                         (db_clock ? std::string("clock_timestamp()") : "$2::timestamptz") +
                         ") ORDER BY (" + kUniquePredicate + ") DESC, unique_until DESC LIMIT 1"};
    // On the caller's connection now() would be the start of the caller's transaction, which
    // may be long before this insert: a delay would then be measured from BEGIN. The statement's
    // own clock_timestamp() measures it from the start_job call, as the caller meant.
    insert_tx = insert_sql("clock_timestamp()", false);
    copy = "COPY " + jobs +
           " (id, job_type, job_data, status, created_at, queue, priority, run_at, attempt, "
           "max_attempts, timeout_ms, group_key) FROM STDIN";

    // The claim. The CTE picks up to $2 due Pending rows in claim order (served by the
    // partial index jobs_claim_idx) and locks them; FOR UPDATE SKIP LOCKED passes over rows
    // that another claimer has locked instead of waiting for them, so concurrent claimers
    // never block each other and never both get a row. A row that another claimer flipped
    // to Running after our snapshot is re-checked against the WHERE clause once its lock is
    // free (READ COMMITTED's EvalPlanQual) and dropped: it is no longer Pending. The UPDATE
    // then flips exactly the locked rows, in the same statement and transaction.
    //
    // now() (not clock_timestamp()) on the database clock: it is stable within the
    // statement, so the index can use it as a bound and started_at = heartbeat_at = the
    // instant that decided what was due; clock_timestamp() is volatile and would be
    // evaluated per row.
    // $3: the worker's queues (text[]; NULL: every queue); a paused queue never.
    std::string now = db_clock ? "now()" : "$4::timestamptz";
    std::string queue_filter =
        "($3::varchar[] IS NULL OR queue = ANY($3::varchar[])) AND queue "
        "NOT IN (SELECT name FROM " +
        s + ".queues WHERE paused)";
    // Limited types are left to claim_limited, type by type (docs/flow-control.md).
    std::string unlimited = " AND job_type NOT IN (SELECT job_type FROM " + s + ".job_type_limits)";
    // The job types the worker handles (varchar[]; NULL: every type), the last parameter, after
    // `now`. Not in queue_filter: claim_limited binds its type there instead, and is not run
    // for types the worker does not handle.
    std::string types_arg = db_clock ? "$4" : "$5";
    std::string type_filter = " AND (" + types_arg + "::varchar[] IS NULL OR job_type = ANY(" +
                              types_arg + "::varchar[]))";
    // Flips the rows `due` picked to Running for worker $1 and returns them. They are found by
    // `id = ANY (ARRAY(...))`, a look-up in jobs_pkey whatever `due` is estimated to hold, and
    // not by a join with `due`, which the planner made a hash join over a scan of the whole
    // table when it expected hundreds of rows from `due` (a claim of 1,000 with 50,000 jobs
    // due; and a generic plan, see claim_pool_, expects a tenth of the due rows).
    std::string claim_update = " UPDATE " + jobs +
                               " AS j SET status = 'Running', attempt = j.attempt + 1, "
                               "lease = j.lease + 1, worker_id = $1, started_at = " +
                               now + ", heartbeat_at = " + now +
                               ", progress_message = NULL, progress_percent = NULL "
                               "WHERE j.id = ANY (ARRAY(SELECT id FROM due)) RETURNING " +
                               job_columns("j.");
    // Fairness (docs/flow-control.md): ungrouped jobs come from jobs_claim_idx in claim order
    // (`plain`, locked as above); grouped ones group by group, at most $2 from each, from
    // jobs_group_claim_idx: `grp` walks the distinct group keys by index seeks (a skip scan,
    // one seek per group rather than a scan of the backlog). Each job is ranked within its
    // group (the ungrouped ones form one group) and the best ranks are taken first, priority
    // before rank: round-robin across groups at each priority. The grouped rows picked are
    // locked afterwards (SKIP LOCKED again; a row another claimer took is then left out),
    // which keeps the locks to what is claimed. Without grouped jobs `grp` is one seek into an
    // empty index and the claim is the plain one.
    std::string pending_due = "status = 'Pending' AND run_at <= " + now + " AND " + queue_filter +
                              unlimited + type_filter;
    std::string claim_ctes =
        "WITH RECURSIVE grp(k) AS ((SELECT group_key FROM " + jobs +
        " WHERE status = 'Pending' AND group_key IS NOT NULL ORDER BY group_key LIMIT 1) "
        "UNION ALL SELECT (SELECT j.group_key FROM " +
        jobs +
        " j WHERE j.status = 'Pending' AND j.group_key IS NOT NULL AND j.group_key > "
        "grp.k ORDER BY j.group_key LIMIT 1) FROM grp WHERE grp.k IS NOT NULL), "
        "plain AS (SELECT id, priority, run_at FROM " +
        jobs + " WHERE group_key IS NULL AND " + pending_due +
        " ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), "
        "grouped AS (SELECT c.id, c.priority, c.run_at, row_number() OVER (PARTITION BY "
        "grp.k ORDER BY c.priority, c.run_at, c.id) AS rn FROM grp CROSS JOIN LATERAL "
        "(SELECT id, priority, run_at FROM " +
        jobs + " WHERE group_key = grp.k AND " + pending_due +
        " ORDER BY priority, run_at, id LIMIT $2) c), "
        "pick AS (SELECT id, g FROM (SELECT id, priority, run_at, row_number() OVER "
        "(ORDER BY priority, run_at, id) AS rn, false AS g FROM plain UNION ALL SELECT "
        "id, priority, run_at, rn, true FROM grouped) x ORDER BY priority, rn, run_at, "
        "id LIMIT $2), "
        "glock AS (SELECT id FROM " +
        jobs +
        " WHERE id IN (SELECT id FROM pick WHERE g) AND status = 'Pending' FOR UPDATE "
        "SKIP LOCKED), "
        "due AS (SELECT id FROM pick WHERE NOT g UNION ALL SELECT id FROM glock)";
    // The claimed rows, each followed by the number of limited types and whether any grouped
    // job is Pending (one seek into jobs_group_claim_idx). With no job claimed there is still
    // one row, its job columns NULL: an idle poll learns in the same statement whether
    // claim_limited has anything to do, and needs no second query.
    std::string grouped_pending =
        "EXISTS (SELECT 1 FROM " + jobs + " WHERE status = 'Pending' AND group_key IS NOT NULL)";
    std::string claim_result = ", claimed AS (" + claim_update + ") SELECT c.*, l.n, " +
                               grouped_pending + " FROM (SELECT count(*) AS n FROM " + s +
                               ".job_type_limits) l LEFT JOIN claimed c ON true";
    // A data-modifying CTE runs to completion whether or not it is read: with it, the claim
    // also renews the worker's registry heartbeat (JobClaimParams::renew_worker,
    // worker_heartbeat's UPDATE), and an idle worker's poll and heartbeat are one statement.
    std::string renew =
        ", renew AS (UPDATE " + s + ".workers SET heartbeat_at = " + now + " WHERE id = $1)";
    claim = {"ergon_job_claim", claim_ctes + claim_result};
    claim_renew = {"ergon_job_claim_renew", claim_ctes + renew + claim_result};
    // The claim while no grouped job is Pending (the last claim saw none): `plain` alone,
    // without the group walk, the ranking and the union. It claims nothing when grouped jobs
    // are Pending after all (the uncorrelated NOT EXISTS is evaluated once, in the statement's
    // snapshot), and says so in its last column: job_claim then runs the fair claim, so the
    // choice never shows in what is claimed.
    std::string plain_ctes = "WITH due AS (SELECT id FROM " + jobs +
                             " WHERE group_key IS NULL AND " + pending_due + " AND NOT " +
                             grouped_pending +
                             " ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)";
    claim_plain = {"ergon_job_claim_plain", plain_ctes + claim_result};
    claim_plain_renew = {"ergon_job_claim_plain_renew", plain_ctes + renew + claim_result};

    // The claim of one limited type, run after pg_advisory_xact_lock on the type in the same
    // transaction, which read the type's limits (limit_get) after the lock: every claimer of
    // the type waits for the one before it, and this statement's snapshot (taken after the
    // lock) sees every claim and every logged start committed before. So the counts are exact
    // and the limits hold across processes. Each job is ranked in its group (grn, for
    // fairness) and then in its limit's partition (prn: its group with per_group, else the
    // whole type); a partition may start as many as the smaller of its free concurrency and its
    // unused rate allow (a NULL limit: no such limit). Parameters after the queues (and now):
    // the type, per_group, max_running, rate_limit, the start of the rate window.
    {
      int b = db_clock ? 4 : 5;
      // Appended rather than "$" + to_string(): g++ 12 at -O3 warns falsely on the latter
      // (stringop-overflow).
      auto arg = [&](int i) {
        std::string a = "$";
        a += std::to_string(b + i);
        return a;
      };
      std::string part =
          "CASE WHEN " + arg(1) + "::boolean THEN coalesce(group_key, '') ELSE '' END";
      claim_limited = {
          "ergon_job_claim_limited",
          "WITH cand AS (SELECT id, priority, run_at, " + part +
              " AS p, row_number() OVER (PARTITION BY coalesce(group_key, '') ORDER BY priority, "
              "run_at, id) AS grn FROM " +
              jobs + " WHERE status = 'Pending' AND job_type = " + arg(0) +
              " AND run_at <= " + now + " AND " + queue_filter +
              "), ranked AS (SELECT id, priority, run_at, p, grn, row_number() OVER (PARTITION "
              "BY p ORDER BY priority, grn, run_at, id) AS prn FROM cand), "
              "run AS (SELECT " +
              part + " AS p, count(*) AS n FROM " + jobs + " WHERE job_type = " + arg(0) +
              " AND status = 'Running' GROUP BY 1), "
              "st AS (SELECT group_key AS p, count(*) AS n FROM " +
              s + ".job_type_starts WHERE job_type = " + arg(0) + " AND started_at > " + arg(4) +
              "::timestamptz GROUP BY 1), "
              "due AS (SELECT id FROM " +
              jobs +
              " WHERE id IN (SELECT r.id FROM ranked r LEFT JOIN run ON run.p = r.p "
              "LEFT JOIN st ON st.p = r.p WHERE r.prn <= LEAST(coalesce(" +
              arg(2) + "::bigint - coalesce(run.n, 0), $2), coalesce(" + arg(3) +
              "::bigint - coalesce(st.n, 0), $2)) ORDER BY r.priority, r.grn, r.run_at, r.id "
              "LIMIT $2) FOR UPDATE SKIP LOCKED)" +
              claim_update};
    }
    limit_lock = {"ergon_limit_lock", "SELECT pg_advisory_xact_lock(hashtext($1))"};
    limit_types = {"ergon_limit_types", "SELECT job_type FROM " + s + ".job_type_limits"};
    // The type's limits and the statement's time (the rate window's end on the database clock).
    limit_get = {"ergon_limit_get",
                 "SELECT max_running, rate_limit, rate_period_ms, per_group, statement_timestamp() "
                 "FROM " +
                     s + ".job_type_limits WHERE job_type = $1"};
    // The starts of one claim ($2: the group keys, '' when not per_group), and pruning the ones
    // older than the rate window ($2).
    starts_log = {"ergon_starts_log", "INSERT INTO " + s +
                                          ".job_type_starts (job_type, group_key, started_at) "
                                          "SELECT $1, unnest($2::varchar[]), $3::timestamptz"};
    starts_prune = {"ergon_starts_prune", "DELETE FROM " + s +
                                              ".job_type_starts WHERE job_type = $1 AND "
                                              "started_at <= $2::timestamptz"};
    starts_clear = {"ergon_starts_clear",
                    "DELETE FROM " + s + ".job_type_starts WHERE job_type = $1"};
    limit_set = {"ergon_limit_set",
                 "INSERT INTO " + s +
                     ".job_type_limits (job_type, max_running, rate_limit, rate_period_ms, "
                     "per_group, changed_at) VALUES ($1, $2::integer, $3::integer, $4::bigint, "
                     "$5::boolean, " +
                     time_sql(db_clock, "now()", 6, 6) +
                     ") ON CONFLICT (job_type) DO UPDATE SET max_running = excluded.max_running, "
                     "rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms, "
                     "per_group = excluded.per_group, changed_at = excluded.changed_at"};
    limit_remove = {"ergon_limit_remove",
                    "DELETE FROM " + s + ".job_type_limits WHERE job_type = $1"};
    limit_list = {"ergon_limit_list",
                  "SELECT l.job_type, l.max_running, l.rate_limit, l.rate_period_ms, l.per_group, "
                  "(SELECT count(*) FROM " +
                      jobs + " j WHERE j.job_type = l.job_type AND j.status = 'Running') FROM " +
                      s + ".job_type_limits l ORDER BY l.job_type"};

    // The outcome. The WHERE clause is the fence: only the claim (lease) that holds the job
    // may move it on. $2 says whether the state is final (completed_at = now) or Pending again
    // (due at $4; the worker and lease are cleared).
    auto finish_update = [&](std::string_view base) {
      return "UPDATE " + jobs +
             " SET status = $1, "
             "completed_at = CASE WHEN $2::boolean THEN " +
             time_sql(db_clock, base, 3, 3) +
             " ELSE NULL END, "
             "run_at = CASE WHEN $2::boolean THEN run_at ELSE coalesce(" +
             time_sql(db_clock, base, 4, 3) +
             ", run_at) END, "
             "worker_id = CASE WHEN $2::boolean THEN worker_id ELSE NULL END, "
             "heartbeat_at = CASE WHEN $2::boolean THEN heartbeat_at ELSE NULL END, "
             "error_message = coalesce($5::varchar, error_message), "
             "attempt = attempt - $6::integer, "
             "progress_message = coalesce($7::varchar, progress_message), "
             "progress_percent = coalesce($8::integer, progress_percent), "
             "unique_key = CASE WHEN $2::boolean THEN unique_key ELSE " +
             unique_give_up("jobs", jobs) +
             " END "
             "WHERE id = $9::uuid AND lease = $10::integer AND worker_id = $11 AND " +
             running_fence();
    };
    // A job that is Pending again (retry, release) wakes the workers of every process, like an
    // insert: one notification in the same statement, delivered on commit.
    auto finish_retry_sql = [&](std::string_view base) {
      return "WITH upd AS (" + finish_update(base) + " RETURNING run_at) SELECT pg_notify($12, " +
             due_text("run_at") + ") FROM upd";
    };
    // job_finish_many: the plain completions of a batch (no error, progress or attempts to
    // write; the common case) in one statement over arrays, so a batch of a hundred costs
    // one round trip instead of a hundred. The same fence as finish_update, per row. $1: ids
    // (uuid[]), $2: attempts (integer[]), $3: the worker, $4 (system clock only): each
    // outcome's time (timestamptz[]).
    // Its fence is the plain `status = 'Running'`, not running_fence(): for a batch, reading
    // the Running rows once and hashing them beat one look-up by id per job by about three
    // times per job (statement durations in the server log of a diagnostic build, 2026-11-29).
    finish_completed_many = {
        "ergon_job_finish_completed_many",
        "UPDATE " + jobs + " AS j SET status = 'Completed', completed_at = " +
            (db_clock ? "now()" : "f.at") + " FROM unnest($1::uuid[], $2::integer[]" +
            (db_clock ? ") AS f(id, lease)" : ", $4::timestamptz[]) AS f(id, lease, at)") +
            " WHERE j.id = f.id AND j.lease = f.lease AND j.worker_id = $3 "
            "AND j.status = 'Running' RETURNING j.id::text"};
    finish = {"ergon_job_finish", finish_update("now()")};
    finish_retry = {"ergon_job_finish_retry", finish_retry_sql("now()")};
    // On the caller's connection (transactional completion), for the reason given at insert_tx.
    finish_tx = finish_update("clock_timestamp()");
    finish_retry_tx = finish_retry_sql("clock_timestamp()");

    // Only the progress columns, and only of the attempt that reports: a progress write can
    // never change a job's status, so it can never leave a job stuck.
    progress = {"ergon_job_progress",
                "UPDATE " + jobs +
                    " SET progress_message = $1, progress_percent = $2::integer "
                    "WHERE id = $3::uuid AND lease = $4::integer AND worker_id = $5 AND " +
                    running_fence()};

    get = {"ergon_job_get", "SELECT " + job_columns() + " FROM " + jobs + " WHERE id = $1::uuid"};
    const std::string schedules = s + ".scheduled_jobs";
    // ON CONFLICT (name): concurrent upserts of one schedule are safe. In DO UPDATE the bare
    // column names are the stored row, so the CASE compares the stored expression with the new
    // one before either is overwritten; is_enabled is not updated (an operator's choice stays).
    schedule_upsert = {
        "ergon_schedule_upsert",
        "INSERT INTO " + schedules +
            " AS sj (id, name, job_type, job_data, cron_expression, with_seconds, time_zone, "
            "next_run_time, is_enabled, misfire_policy, misfire_limit, overlap_policy, queue, "
            "priority, max_attempts) VALUES ($1::uuid, $2::varchar, $3::varchar, $4::jsonb, "
            "$5::varchar, $6::boolean, $7::varchar, $8::timestamptz, $9::boolean, $10::varchar, "
            "$11::integer, $12::varchar, $13::varchar, $14::integer, $15::integer) "
            "ON CONFLICT (name) DO UPDATE SET job_type = excluded.job_type, "
            "job_data = excluded.job_data, "
            "next_run_time = CASE WHEN sj.cron_expression = excluded.cron_expression "
            "AND sj.with_seconds = excluded.with_seconds AND sj.time_zone = excluded.time_zone "
            "THEN sj.next_run_time ELSE excluded.next_run_time END, "
            "cron_expression = excluded.cron_expression, with_seconds = excluded.with_seconds, "
            "time_zone = excluded.time_zone, misfire_policy = excluded.misfire_policy, "
            "misfire_limit = excluded.misfire_limit, overlap_policy = excluded.overlap_policy, "
            "queue = excluded.queue, priority = excluded.priority, "
            "max_attempts = excluded.max_attempts"};
    schedule_remove = {"ergon_schedule_remove", "DELETE FROM " + schedules + " WHERE name = $1"};
    schedule_enable = {"ergon_schedule_enable",
                       "UPDATE " + schedules + " SET is_enabled = $1::boolean WHERE name = $2"};
    std::string select_schedules = std::string("SELECT ") + kScheduleColumns + " FROM " + schedules;
    schedule_get = {"ergon_schedule_get", select_schedules + " WHERE name = $1"};
    schedule_list = {"ergon_schedule_list", select_schedules + " ORDER BY name"};
    // Served by scheduled_jobs_due_idx (partial: enabled schedules only).
    schedule_due = {"ergon_schedule_due",
                    select_schedules +
                        " WHERE is_enabled AND next_run_time <= $1::timestamptz "
                        "ORDER BY next_run_time LIMIT $2"};
    schedule_next_due = {"ergon_schedule_next_due",
                         "SELECT min(next_run_time) FROM " + schedules + " WHERE is_enabled"};
    // The slot's row lock. Schedulers racing for one slot queue here; when the winner commits,
    // the others' row is re-checked against the WHERE clause (READ COMMITTED), finds
    // next_run_time advanced, and drops out: they lose without inserting anything.
    schedule_lock = {"ergon_schedule_lock",
                     "SELECT last_job_id FROM " + schedules +
                         " WHERE name = $1 AND next_run_time = $2::timestamptz AND is_enabled "
                         "FOR UPDATE"};
    schedule_advance = {"ergon_schedule_advance",
                        "UPDATE " + schedules +
                            " SET next_run_time = $1::timestamptz, "
                            "last_run_time = $2::timestamptz, "
                            "last_job_id = coalesce($3::uuid, last_job_id) "
                            "WHERE name = $4 AND next_run_time = $5::timestamptz"};
    job_status = {"ergon_job_status", "SELECT status FROM " + jobs + " WHERE id = $1::uuid"};
    notify = {"ergon_notify", "SELECT pg_notify($1, $2)"};

    // Fault tolerance. The statements that take a caller's `now` get it as their last
    // parameter, which the database clock leaves out (as the claim does).
    // One statement renews every job this worker holds, and tells it which ones it still holds
    // (a rescued job is missing: its handler must stop) and which were asked to cancel.
    std::string hb_now = db_clock ? "now()" : "$2::timestamptz";
    heartbeat = {"ergon_job_heartbeat", "UPDATE " + jobs + " SET heartbeat_at = " + hb_now +
                                            " WHERE worker_id = $1 AND status = 'Running' "
                                            "RETURNING id, lease, cancel_requested"};
    // Shared by the rescuer and startup recovery ($1 default max_attempts, $2 poison limit,
    // $3 stale_before or worker id, $4 limit, $5 now). An orphan goes back to Pending, unless
    // its attempts are used up or it has now been rescued poison-limit times (a job that keeps
    // killing its worker): then it is Failed, with the reason in error_message. Either way the
    // rescue is counted and the job leaves the worker that lost it; run_at is kept, so the
    // orphan (due long ago) goes back to its old place in the queue, not behind everything
    // enqueued since. The rows are picked with
    // FOR UPDATE SKIP LOCKED: two rescuers never take the same orphan, and a row whose
    // heartbeat or outcome was written meanwhile is re-checked and left alone.
    std::string r_now = db_clock ? "now()" : "$5::timestamptz";
    std::string give_up =
        "j.attempt >= coalesce(j.max_attempts, $1::integer) OR "
        "j.rescue_count + 1 >= $2::integer";
    auto rescue_sql = [&](const std::string& which) {
      return "UPDATE " + jobs + " AS j SET status = CASE WHEN " + give_up +
             " THEN 'Failed' ELSE 'Pending' END, completed_at = CASE WHEN " + give_up + " THEN " +
             r_now +
             " ELSE NULL END, "
             "error_message = CASE WHEN j.rescue_count + 1 >= $2::integer AND "
             "j.attempt < coalesce(j.max_attempts, $1::integer) "
             "THEN 'quarantined: the worker running it died ' || (j.rescue_count + 1) || "
             "' times (last: ' || coalesce(j.worker_id, '?') || ')' "
             "ELSE 'orphaned: worker ' || coalesce(j.worker_id, '?') || ' stopped heartbeating' "
             "END, rescue_count = j.rescue_count + 1, worker_id = NULL, heartbeat_at = NULL, "
             "unique_key = " +
             unique_give_up("j", jobs) +
             " "
             "FROM (SELECT id FROM " +
             jobs + " WHERE status = 'Running' AND " + which +
             " LIMIT $4 FOR UPDATE SKIP LOCKED) AS orphan WHERE j.id = orphan.id "
             "RETURNING j.status, j.run_at";
    };
    // With the database clock, a server that restarted less than a threshold ago rescues
    // nothing yet: every heartbeat looks old right after an outage, and the workers need one
    // heartbeat interval to renew theirs. A worker that really died meanwhile waits at most
    // one more threshold.
    std::string stale = time_sql(db_clock, "now()", 3, 5);
    rescue = {"ergon_job_rescue",
              rescue_sql("heartbeat_at < " + stale +
                         (db_clock ? " AND pg_postmaster_start_time() < " + stale : ""))};
    release_worker = {"ergon_job_release_worker", rescue_sql("worker_id = $3")};
    std::string c_now = db_clock ? "now()" : "$2::timestamptz";
    cancel_pending = {"ergon_job_cancel_pending",
                      "UPDATE " + jobs + " SET status = 'Cancelled', completed_at = " + c_now +
                          " WHERE id = $1::uuid AND status = 'Pending'"};
    cancel_running = {
        "ergon_job_cancel_running",
        "UPDATE " + jobs +
            " SET cancel_requested = true WHERE id = $1::uuid AND status = 'Running'"};
    job_exists = {"ergon_job_exists", "SELECT 1 FROM " + jobs + " WHERE id = $1::uuid"};
    // Bounded: a large backlog of history is deleted in many short transactions. SKIP LOCKED:
    // two pruners split the work instead of queueing on the same rows.
    prune = {"ergon_job_prune", "DELETE FROM " + jobs + " WHERE id IN (SELECT id FROM " + jobs +
                                    " WHERE status = $1 AND completed_at < $2::timestamptz "
                                    "LIMIT $3 FOR UPDATE SKIP LOCKED)"};
    // One job by id, on the claim's conditions. A row locked by a concurrent claim is waited
    // for and then re-checked (it is Running by then, so nothing is returned).
    claim_id = {"ergon_job_claim_id",
                "UPDATE " + jobs +
                    " SET status = 'Running', attempt = attempt + 1, lease = lease + 1, "
                    "worker_id = $1, started_at = " +
                    now + ", heartbeat_at = " + now +
                    ", progress_message = NULL, progress_percent = NULL "
                    "WHERE id = $2::uuid AND status = 'Pending' AND run_at <= " +
                    now + " AND " + queue_filter + unlimited + type_filter + " RETURNING " +
                    job_columns("")};
    queue_set_paused = {"ergon_queue_set_paused",
                        "INSERT INTO " + s +
                            ".queues (name, paused, changed_at) VALUES ($1, $2::boolean, " +
                            time_sql(db_clock, "now()", 3, 3) +
                            ") ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
                            "changed_at = excluded.changed_at"};
    queue_list = {"ergon_queue_list",
                  "SELECT n.name, coalesce(q.paused, false), "
                  "(SELECT count(*) FROM " +
                      jobs +
                      " WHERE queue = n.name AND status = 'Pending'), "
                      "(SELECT count(*) FROM " +
                      jobs +
                      " WHERE queue = n.name AND status = 'Running') "
                      "FROM (SELECT queue AS name FROM " +
                      jobs +
                      " WHERE status IN ('Pending', "
                      "'Running') UNION SELECT name FROM " +
                      s + ".queues) AS n LEFT JOIN " + s +
                      ".queues q ON q.name = n.name ORDER BY n.name"};
    const std::string outbox = s + ".job_outbox";
    outbox_peek = {"ergon_outbox_peek",
                   "SELECT id, job_id, due_at FROM " + outbox + " ORDER BY id LIMIT $1"};
    outbox_remove = {"ergon_outbox_remove",
                     "DELETE FROM " + outbox + " WHERE id = ANY($1::bigint[])"};
    const std::string workers = s + ".workers";
    worker_register = {
        "ergon_worker_register",
        "INSERT INTO " + workers +
            " (id, name, host, pid, started_at, heartbeat_at, boot_id, pid_namespace, "
            "process_start, job_types, relay) VALUES ($1, $2, $3, $4::integer, " +
            time_sql(db_clock, "now()", 5, 6) + ", " + time_sql(db_clock, "now()", 6, 6) +
            ", $7, $8::bigint, $9::bigint, $10::jsonb, $11::boolean) ON CONFLICT (id) DO UPDATE "
            "SET name = excluded.name, host = excluded.host, pid = excluded.pid, started_at = "
            "excluded.started_at, heartbeat_at = excluded.heartbeat_at, boot_id = "
            "excluded.boot_id, pid_namespace = excluded.pid_namespace, process_start = "
            "excluded.process_start, job_types = excluded.job_types, relay = excluded.relay"};
    worker_heartbeat = {"ergon_worker_heartbeat",
                        "UPDATE " + workers + " SET heartbeat_at = " + hb_now + " WHERE id = $1"};
    worker_remove = {"ergon_worker_remove", "DELETE FROM " + workers + " WHERE id = $1"};
    // Staleness as the rescuer judges it: on the database clock, and not within a threshold
    // of a server restart (every heartbeat looks old right after an outage).
    std::string w_stale = time_sql(db_clock, "now()", 1, 2);
    worker_prune = {"ergon_worker_prune",
                    "DELETE FROM " + workers + " WHERE heartbeat_at < " + w_stale +
                        (db_clock ? " AND pg_postmaster_start_time() < " + w_stale : "")};
    worker_list = {"ergon_worker_list",
                   "SELECT id, name, host, pid, started_at, heartbeat_at, boot_id, pid_namespace, "
                   "process_start, job_types::text, relay FROM " +
                       workers + " ORDER BY started_at"};
  }
};

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
    std::string msg = err ? pg_one_line(err) : "cannot parse";
    PQfreemem(err);
    throw Error(ErrorCode::kInvalidArgument,
                "postgresql URL: " + msg +
                    " (Ergon's own parameters are schema and pool_size; any other must be a "
                    "libpq connection parameter)");
  }
  bool app_name = false, timeout = false;
  // No JIT on Ergon's connections: its statements touch a handful of rows, yet the claim's
  // estimated cost (the skip scan over group keys is costed as if it visited many groups) can
  // pass jit_above_cost, and compiling it took ~100 ms per claim, 6x Ergon's whole throughput
  // on a 50 000-job burn-down (docs/performance.md). The URL's own `options` come after it, so
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

namespace {

// `conninfo` with `option` added to its server options (the `options` keyword, which
// parse_postgres_url always sets), before the URL's own: a user's setting still wins.
ConnParams with_server_option(ConnParams conninfo, const std::string& option) {
  for (auto& [key, value] : conninfo) {
    if (key == "options") value = option + " " + value;
  }
  return conninfo;
}

}  // namespace

PostgresStore::PostgresStore(const PostgresUrl& url, Clock& clock)
    : Store(clock),
      schema_(url.schema),
      channel_(channel_for(url.schema)),
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
                      "': " + pg_one_line(PQerrorMessage(conn->get())));
    }
    quoted_schema_ = quoted;
    PQfreemem(quoted);
  }
  sql_ = std::make_unique<Statements>(quoted_schema_, database_clock_);
}

PostgresStore::~PostgresStore() {
  // The waker announces what is still pending, then stops; it uses the pool.
  waker_.stop();
  // Stop the listener before the pool it asks about goes away.
  std::lock_guard lock(listener_mu_);
  listener_.reset();
}

void PostgresStore::listener_ensure() {
  if (listener_started_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(listener_mu_);
  if (listener_) return;
  transport::PgListener::Options o;
  // TCP keepalives notice a silently dead server (no FIN) on the otherwise idle LISTEN
  // connection within about a minute; the URL's own settings, later in the list, win.
  o.conninfo = {{"keepalives", "1"},
                {"keepalives_idle", "30"},
                {"keepalives_interval", "10"},
                {"keepalives_count", "3"}};
  o.conninfo.insert(o.conninfo.end(), conninfo_.begin(), conninfo_.end());
  o.channel = channel_;
  // Inserts through this store already notified this process synchronously; relaying their
  // notifications again would wake the workers twice.
  o.ignore_backend = [this](int pid) { return pool_.owns_backend(pid); };
  listener_ = std::make_unique<transport::PgListener>(std::move(o), notifier(), clock());
  listener_started_.store(true, std::memory_order_release);
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

bool PostgresStore::listener_wait_ready(std::chrono::milliseconds timeout) {
  listener_ensure();
  transport::PgListener* listener;
  {
    std::lock_guard lock(listener_mu_);
    listener = listener_.get();
  }
  return listener->listening_wait(timeout);
}

int PostgresStore::schema_version(PgConnection& conn) {
  auto exists =
      conn.exec("SELECT to_regclass($1) IS NOT NULL",
                PgParams().text(quoted_schema_ + ".ergon_schema_migrations"), Format::kText);
  if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") return 0;
  auto v = conn.exec(
      "SELECT coalesce(max(version), 0) FROM " + quoted_schema_ + ".ergon_schema_migrations",
      PgParams(), Format::kText);
  return std::atoi(PQgetvalue(v.get(), 0, 0));
}

std::vector<int> PostgresStore::schema_migrate() {
  auto conn = pool_.acquire();
  std::vector<int> applied;
  conn->exec_script("BEGIN");
  try {
    // Serialises every migrator of this schema, in any process on any host: the second one
    // waits here, then finds the first one's version and has nothing to do. The _xact_ lock
    // is released by COMMIT or ROLLBACK, and by the server if this process dies mid-way, so
    // it can never be left behind.
    conn->exec("SELECT pg_advisory_xact_lock($1::bigint)",
               PgParams().integer(migration_lock_key(schema_)), Format::kText);
    // CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database even when the
    // schema exists; look first, so that a role that owns only its schema can migrate.
    auto ns = conn->exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", PgParams().text(schema_),
                         Format::kText);
    if (PQntuples(ns.get()) == 0)
      conn->exec_script("CREATE SCHEMA IF NOT EXISTS " + quoted_schema_);
    conn->exec_script("CREATE TABLE IF NOT EXISTS " + quoted_schema_ +
                      ".ergon_schema_migrations (version integer PRIMARY KEY, "
                      "applied_at timestamptz NOT NULL)");
    int current = schema_version(*conn);
    if (current > latest_schema_version()) {
      throw Error(ErrorCode::kSchema, "database schema version " + std::to_string(current) +
                                          " is newer than this build of Ergon (" +
                                          std::to_string(latest_schema_version()) + ")");
    }
    for (const Migration& m : migrations()) {
      if (m.version <= current) continue;
      conn->exec_script(schema_sql(m.sql, quoted_schema_));
      PgParams record;
      record.integer(static_cast<std::int64_t>(m.version));
      std::string applied_at = "now()";
      if (!database_clock_) {
        record.time(clock().now());
        applied_at = "$2::timestamptz";
      }
      conn->exec("INSERT INTO " + quoted_schema_ +
                     ".ergon_schema_migrations (version, applied_at) VALUES ($1::integer, " +
                     applied_at + ")",
                 record, Format::kText);
      applied.push_back(m.version);
    }
    conn->exec_script("COMMIT");
  } catch (...) {
    conn->rollback();
    throw;
  }
  return applied;
}

void PostgresStore::schema_check() {
  int v;
  {
    auto conn = pool_.acquire();
    v = schema_version(*conn);
  }
  if (v == latest_schema_version()) return;
  if (v == 0) {
    throw Error(ErrorCode::kSchema, "the database has no Ergon schema in schema '" + schema_ +
                                        "'; run `ergon migrate`");
  }
  if (v < latest_schema_version()) {
    throw Error(ErrorCode::kSchema,
                "the database schema is at version " + std::to_string(v) + ", this build needs " +
                    std::to_string(latest_schema_version()) + "; run `ergon migrate`");
  }
  throw Error(ErrorCode::kSchema, "database schema version " + std::to_string(v) +
                                      " is newer than this build of Ergon (" +
                                      std::to_string(latest_schema_version()) + ")");
}

namespace {
// $11 the channel, then the unique key ($12, NULL for none), unique_while_running ($13) and
// the key's time window in ms ($14, NULL for none).
PgParams insert_params_notify(const JobInsertParams& p, const std::string& channel) {
  PgParams params = insert_params(p);
  params.text(channel);
  if (p.unique_key.empty()) {
    params.null();
  } else {
    params.text(p.unique_key);
  }
  params.boolean(p.unique_while_running);
  if (p.unique_period && !p.unique_key.empty()) {
    params.integer(static_cast<std::int64_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(*p.unique_period).count())));
  } else {
    params.null();
  }
  return params;
}
}  // namespace

// The unique-holder look-up's parameters: the key, and the time of the insert on the
// caller's clock.
PgParams PostgresStore::holder_params(const JobInsertParams& p) const {
  PgParams params;
  params.text(p.unique_key);
  if (!database_clock_) params.time(p.created_at);
  return params;
}

JobId PostgresStore::job_insert(const JobInsertParams& p) {
  if (!p.unique_key.empty()) require_no_nul(p.unique_key, "unique key");
  PgParams params = insert_params_notify(p, channel_);
  // Wake-ups coalesced (transport/pg_waker.h): one insert at a time per store notifies in its
  // own transaction; one that starts while another is notifying commits without, and the
  // waker notifies for it once it has committed, one notification for all that came meanwhile.
  const bool notify_inline = waker_.inline_begin();
  struct InlineEnd {
    transport::PgWaker& waker;
    bool on;
    ~InlineEnd() {
      if (on) waker.inline_end();
    }
  } inline_end{waker_, notify_inline};
  params.boolean(notify_inline);  // $15
  // A conflict returns no row: find the holder. If it finished in between (the look-up runs on
  // a newer snapshot), the key is free again: insert again. Each round means another job
  // holding and then freeing the key, so a few rounds are plenty.
  bool inserted = false;
  for (int round = 0; round < 10 && !inserted; ++round) {
    auto conn = pool_.acquire();
    auto r = conn->run(sql_->insert, params, Format::kText);
    inserted = PQntuples(r.get()) == 1;
    if (inserted) {
      if (!notify_inline) waker_.later(PQgetvalue(r.get(), 0, 2));
      break;
    }
    auto h = conn->run(sql_->unique_holder, holder_params(p));
    if (PQntuples(h.get()) == 1) return pgbin::uuid(h.get(), 0, 0);
  }
  if (!inserted) {
    throw Error(ErrorCode::kStore,
                "unique key '" + std::string(p.unique_key) + "' keeps changing hands; try again");
  }
  // This process's workers learn it now; other processes through the pg_notify above, or the
  // waker's.
  notifier().notify(p.run_at);
  return p.id;
}

void PostgresStore::TEST_notify_inline(bool on) { waker_.TEST_inline(on); }

namespace {

// $1..$11 of the finish statements (the retry ones take the channel as $12). Messages come
// from exceptions and may hold any bytes; PostgreSQL refuses NUL and invalid UTF-8, and a
// refused outcome would leave the job Running. Clean them first (the rule of both stores).
PgParams finish_params(const JobFinishParams& p) {
  std::optional<std::string> error;
  if (p.error_message) error = clean_text(*p.error_message, kMaxErrorMessageBytes);
  std::optional<std::string> progress;
  if (p.progress_message) progress = clean_text(*p.progress_message, kMaxProgressMessageBytes);
  std::optional<int> percent;
  if (p.progress_percent) percent = std::clamp(*p.progress_percent, 0, 100);
  PgParams params;
  params.text(to_string(p.status)).boolean(is_final(p.status)).time(p.now);
  // NULL run_at: keep the row's own (a release); see JobFinishParams::keep_run_at.
  if (p.keep_run_at) {
    params.text(std::optional<std::string>());
  } else {
    params.time(p.run_at);
  }
  params.text(error)
      .integer(static_cast<std::int64_t>(p.give_back_attempt && p.status == JobStatus::kPending))
      .text(progress)
      .integer(percent)
      .text(p.id.to_string())
      .integer(static_cast<std::int64_t>(p.attempt))
      .text(p.worker_id);
  return params;
}

// Refuses a caller's connection that is not inside an open transaction: writing on it would
// commit at once (autocommit), which is exactly what a transactional twin must not do.
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

// Runs `sql` unprepared on the caller's connection: a prepared statement would outlive the call
// on a connection Ergon does not own.
PgResult exec_on_caller(PGconn* conn, const std::string& sql, const PgParams& params,
                        std::string_view what) {
  PgResult r(PQexecParams(conn, sql.c_str(), params.size(), nullptr, params.values(), nullptr,
                          nullptr, 0));
  auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) pg_throw(conn, r.get(), what);
  return r;
}

}  // namespace

JobId PostgresStore::job_insert_tx(NativeConnection native, const JobInsertParams& p) {
  pg_conn* conn = native_handle<pg_conn>(native, backend());
  // The caller's transaction is theirs: Ergon writes inside it and never begins, commits or
  // rolls back.
  require_transaction(conn, "start_job(conn, ...)");
  if (!p.unique_key.empty()) require_no_nul(p.unique_key, "unique key");
  PgParams params = insert_params_notify(p, channel_);
  // The notification is queued in the caller's transaction: sent if they commit, dropped if
  // they roll back. No local notify here: the row is invisible until the commit, when this
  // store's listener relays the notification like any other process's.
  auto r = exec_on_caller(conn, sql_->insert_tx, params, "insert on the caller's connection");
  if (PQntuples(r.get()) == 1) return p.id;
  // The key is held. (A holder that finished since the insert's snapshot leaves nothing to
  // find: the caller's transaction then fails, rather than silently inserting nothing.)
  auto h = exec_on_caller(conn, sql_->unique_holder.sql, holder_params(p),
                          "unique key look-up on the caller's connection");
  if (PQntuples(h.get()) == 1) return *JobId::parse(PQgetvalue(h.get(), 0, 0));
  throw Error(ErrorCode::kStore, "unique key '" + std::string(p.unique_key) +
                                     "' was held by a job that has just finished; try again");
}

void PostgresStore::queue_set_paused(std::string_view name, bool paused, TimePoint now) {
  require_no_nul(name, "queue");
  PgParams params;
  params.text(name).boolean(paused);
  if (!database_clock_) params.time(now);
  auto conn = pool_.acquire();
  conn->run(sql_->queue_set_paused, params, Format::kText);
}

std::vector<QueueRecord> PostgresStore::queue_list() {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->queue_list, PgParams());
  }
  std::vector<QueueRecord> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.push_back({pgbin::text(r.get(), i, 0), pgbin::boolean(r.get(), i, 1),
                   pgbin::int8(r.get(), i, 2), pgbin::int8(r.get(), i, 3)});
  }
  return out;
}

void PostgresStore::job_insert_many(const std::vector<JobInsertParams>& jobs) {
  if (jobs.empty()) return;
  for (const auto& p : jobs) {
    require_no_nul(p.job_type, "job type");
    require_no_nul(p.job_data, "job_data");
    require_no_nul(p.queue, "queue");
  }
  TimePoint earliest = jobs.front().run_at;  // on the caller's clock
  for (const auto& p : jobs) earliest = std::min(earliest, p.run_at);
  {
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      // On the database clock every row is stamped with the transaction's now(), read once
      // (it is constant within the transaction), plus the offset the caller meant.
      std::optional<TimePoint> base;
      if (database_clock_) {
        auto r = conn->exec("SELECT now()", PgParams());
        base = pgbin::timestamptz(r.get(), 0, 0);
      }
      auto stored = [&](TimePoint t, TimePoint caller_now) {
        return base ? *base + (t - caller_now) : t;
      };
      // COPY: one stream of rows, the fastest way into a table; it fails as a whole.
      std::string data;
      data.reserve(jobs.size() * 160);
      TimePoint earliest_stored = stored(jobs.front().run_at, jobs.front().created_at);
      for (const auto& p : jobs) {
        TimePoint run_at = stored(p.run_at, p.created_at);
        earliest_stored = std::min(earliest_stored, run_at);
        data += p.id.to_string();
        data += '\t';
        copy_field(data, p.job_type);
        data += '\t';
        copy_field(data, p.job_data);
        data += "\tPending\t";
        data += format_timestamp(stored(p.created_at, p.created_at));
        data += '\t';
        copy_field(data, p.queue);
        data += '\t';
        data += std::to_string(p.priority);
        data += '\t';
        data += format_timestamp(run_at);
        data += "\t0\t";
        data += p.max_attempts ? std::to_string(*p.max_attempts) : "\\N";
        data += '\t';
        data +=
            p.timeout
                ? std::to_string(std::max<std::int64_t>(
                      1, std::chrono::duration_cast<std::chrono::milliseconds>(*p.timeout).count()))
                : "\\N";
        data += '\t';
        if (p.group_key.empty()) {
          data += "\\N";
        } else {
          copy_field(data, p.group_key);
        }
        data += '\n';
      }
      conn->copy_in(sql_->copy, data);
      // One notification for the whole batch, with its earliest due time, sent on commit.
      conn->exec("SELECT pg_notify($1, $2)",
                 PgParams().text(channel_).text(format_timestamp(earliest_stored)), Format::kText);
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  notifier().notify(earliest);  // one wake-up for the batch
}

std::vector<JobRecord> PostgresStore::job_claim(const JobClaimParams& p) {
  // The first claim is a worker's first poll: from now on it wants wake-ups.
  listener_ensure();
  std::vector<JobRecord> out;
  if (p.limit <= 0) return out;
  // Runs one claim statement for up to `limit` jobs. Every row ends with the number of
  // limited types and whether grouped jobs are Pending; a row with a NULL id claimed nothing.
  std::int64_t limited = 0;
  bool grouped = false;
  auto run = [&](const PgStatement& statement, int limit) {
    PgParams params;
    params.text(p.worker_id).integer(static_cast<std::int64_t>(limit));
    queues_param(params, p.queues);
    if (!database_clock_) params.time(p.now);
    types_param(params, p.job_types);
    PgResult r;
    {
      auto conn = claim_pool_.acquire();
      r = conn->run(statement, params);
    }
    int rows = PQntuples(r.get());
    int grouped_col = PQnfields(r.get()) - 1;
    if (rows > 0) {
      limited = pgbin::int8(r.get(), 0, grouped_col - 1);
      grouped = pgbin::boolean(r.get(), 0, grouped_col);
    }
    for (int i = 0; i < rows; ++i) {
      if (!pgbin::is_null(r.get(), i, 0)) out.push_back(read_job(r.get(), i));
    }
  };
  // The plain claim while the last claim saw no grouped job Pending; the fair one otherwise.
  bool fair = grouped_pending_.load(std::memory_order_relaxed);
  if (fair) {
    run(p.renew_worker ? sql_->claim_renew : sql_->claim, p.limit);
  } else {
    run(p.renew_worker ? sql_->claim_plain_renew : sql_->claim_plain, p.limit);
    // Grouped jobs appeared since the last claim: the plain claim took nothing, the fair
    // claim takes them now rather than at the next poll.
    if (grouped) run(sql_->claim, p.limit);
  }
  grouped_pending_.store(grouped, std::memory_order_relaxed);
  if (static_cast<int>(out.size()) < p.limit && limited > 0) {
    claim_limited(p, out, static_cast<std::size_t>(limited));
  }
  // RETURNING gives rows in no defined order; hand them out in claim order.
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& c) {
    return std::tie(a.priority, a.run_at, a.id) < std::tie(c.priority, c.run_at, c.id);
  });
  return out;
}

// The limited types, one transaction each (see claim_limited in Statements).
void PostgresStore::claim_limited(const JobClaimParams& p, std::vector<JobRecord>& out,
                                  std::size_t count) {
  std::vector<std::string> types = limited_types_.get(count, [&] {
    std::vector<std::string> v;
    auto conn = pool_.acquire();
    auto r = conn->run(sql_->limit_types, PgParams(), Format::kText);
    for (int i = 0; i < PQntuples(r.get()); ++i) v.emplace_back(PQgetvalue(r.get(), i, 0));
    return v;
  });
  for (const auto& type : types) {
    int room = p.limit - static_cast<int>(out.size());
    if (room <= 0) break;
    if (!claims_type(p, type)) continue;
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      claim_type(*conn, p, type, room, out);
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
}

void PostgresStore::claim_type(PgConnection& conn, const JobClaimParams& p, const std::string& type,
                               int room, std::vector<JobRecord>& out) {
  conn.run(sql_->limit_lock, PgParams().text(schema_ + ":" + type), Format::kText);
  auto l = conn.run(sql_->limit_get, PgParams().text(type));
  if (PQntuples(l.get()) != 1) return;  // removed meanwhile: the main claim takes the type
  std::optional<int> max_running, rate_limit;
  if (!pgbin::is_null(l.get(), 0, 0)) max_running = pgbin::int4(l.get(), 0, 0);
  if (!pgbin::is_null(l.get(), 0, 1)) rate_limit = pgbin::int4(l.get(), 0, 1);
  Duration period{};
  if (!pgbin::is_null(l.get(), 0, 2))
    period = std::chrono::milliseconds(pgbin::int8(l.get(), 0, 2));
  bool per_group = pgbin::boolean(l.get(), 0, 3);
  // The rate window ends now: the caller's clock, or the database's after the lock.
  TimePoint now = database_clock_ ? pgbin::timestamptz(l.get(), 0, 4) : p.now;
  PgParams params;
  params.text(p.worker_id).integer(static_cast<std::int64_t>(room));
  queues_param(params, p.queues);
  if (!database_clock_) params.time(p.now);
  params.text(type).boolean(per_group).integer(max_running).integer(rate_limit).time(now - period);
  auto r = conn.run(sql_->claim_limited, params);
  int rows = PQntuples(r.get());
  std::string keys = "{";
  for (int i = 0; i < rows; ++i) {
    out.push_back(read_job(r.get(), i));
    if (!rate_limit) continue;
    if (i) keys += ',';
    keys += array_element(per_group ? out.back().group_key.value_or("") : "");
  }
  keys += '}';
  if (!rate_limit) return;
  // The starts the rate limit counts from now on, and the ones it no longer needs.
  if (rows > 0)
    conn.run(sql_->starts_log, PgParams().text(type).text(keys).time(now), Format::kText);
  conn.run(sql_->starts_prune, PgParams().text(type).time(now - period), Format::kText);
}

void PostgresStore::limit_set(const TypeLimit& l, TimePoint now) {
  check_type_limit(l);
  PgParams params;
  params.text(l.job_type).integer(l.max_running).integer(l.rate_limit);
  if (l.rate_limit) {
    params.integer(static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(l.rate_period).count()));
  } else {
    params.null();
  }
  params.boolean(l.per_group);
  if (!database_clock_) params.time(now);
  {
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      conn->run(sql_->limit_set, params, Format::kText);
      // A type without a rate limit keeps no start log (a rate set later counts afresh).
      if (!l.rate_limit) conn->run(sql_->starts_clear, PgParams().text(l.job_type), Format::kText);
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  limited_types_.invalidate();
  notifier().notify(now);  // a raised or changed limit may let waiting jobs start
}

void PostgresStore::limit_remove(std::string_view job_type, TimePoint now) {
  require_no_nul(job_type, "job type");
  {
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      conn->run(sql_->limit_remove, PgParams().text(job_type), Format::kText);
      conn->run(sql_->starts_clear, PgParams().text(job_type), Format::kText);
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  limited_types_.invalidate();
  notifier().notify(now);  // waiting jobs of the type may start
}

std::vector<TypeLimit> PostgresStore::limit_list() {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->limit_list, PgParams());
  }
  std::vector<TypeLimit> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    TypeLimit l;
    l.job_type = pgbin::text(r.get(), i, 0);
    if (!pgbin::is_null(r.get(), i, 1)) l.max_running = pgbin::int4(r.get(), i, 1);
    if (!pgbin::is_null(r.get(), i, 2)) l.rate_limit = pgbin::int4(r.get(), i, 2);
    if (!pgbin::is_null(r.get(), i, 3)) {
      l.rate_period = std::chrono::milliseconds(pgbin::int8(r.get(), i, 3));
    }
    l.per_group = pgbin::boolean(r.get(), i, 4);
    l.running = pgbin::int8(r.get(), i, 5);
    out.push_back(std::move(l));
  }
  return out;
}

// One outcome's statement on `conn` (a final state, or Pending again with its pg_notify);
// true if it moved the job.
bool PostgresStore::finish_on(PgConnection& conn, const JobFinishParams& p) {
  PgParams params = finish_params(p);
  if (is_final(p.status)) {
    auto r = conn.run(sql_->finish, params, Format::kText);
    return std::string_view(PQcmdTuples(r.get())) == "1";
  }
  params.text(channel_);
  auto r = conn.run(sql_->finish_retry, params, Format::kText);
  return PQntuples(r.get()) == 1;
}

bool PostgresStore::job_finish(const JobFinishParams& p) {
  bool changed;
  {
    auto conn = pool_.acquire();
    changed = finish_on(*conn, p);
  }
  if (changed && p.status == JobStatus::kPending) notifier().notify(p.run_at);
  return changed;
}

std::vector<bool> PostgresStore::job_finish_many(std::span<const JobFinishParams> batch) {
  std::vector<bool> out(batch.size(), false);
  if (batch.empty()) return out;
  // Plain completions of the first outcome's worker go in one statement; the rest (failures,
  // retries, releases, completions that carry progress) one statement each, in the same
  // transaction.
  auto plain = [&](const JobFinishParams& p) {
    return p.status == JobStatus::kCompleted && !p.error_message && !p.give_back_attempt &&
           !p.progress_message && !p.progress_percent && p.worker_id == batch.front().worker_id;
  };
  std::string ids = "{", attempts = "{", times = "{";
  std::size_t n_plain = 0;
  for (const auto& p : batch) {
    if (!plain(p)) continue;
    if (n_plain++ > 0) {
      ids += ',';
      attempts += ',';
      times += ',';
    }
    ids += p.id.to_string();
    attempts += std::to_string(p.attempt);
    times += '"' + format_timestamp(p.now) + '"';
  }
  ids += '}';
  attempts += '}';
  times += '}';
  std::optional<TimePoint> earliest;  // of the jobs that are Pending again
  {
    auto conn = pool_.acquire();
    // No nested loop for the batch's join of the outcomes with the Running rows: the planner,
    // trusting statistics taken while few jobs ran, estimates one Running row, and a nested
    // loop over that "one" row with the outcomes as its inner side compares every Running row
    // with every outcome. With 10M finished rows in the table it chose that plan: 766,000
    // comparisons and 200-270 ms for a batch of 500 at 1,532 Running (auto_explain,
    // 2026-11-29), a tenth of the usual rate. A hash join reads each side once. SET LOCAL
    // ends with the transaction; the statement runs nowhere else.
    conn->exec_script("BEGIN; SET LOCAL enable_nestloop = off");
    try {
      if (n_plain > 0) {
        PgParams params;
        params.text(ids).text(attempts).text(batch.front().worker_id);
        if (!database_clock_) params.text(times);
        auto r = conn->run(sql_->finish_completed_many, params, Format::kText);
        std::unordered_set<std::string_view> done;
        for (int i = 0; i < PQntuples(r.get()); ++i) done.insert(PQgetvalue(r.get(), i, 0));
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (plain(batch[i])) out[i] = done.contains(batch[i].id.to_string());
        }
      }
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& p = batch[i];
        if (plain(p)) continue;
        out[i] = finish_on(*conn, p);
        if (out[i] && p.status == JobStatus::kPending) {
          earliest = earliest ? std::min(*earliest, p.run_at) : p.run_at;
        }
      }
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  if (earliest) notifier().notify(*earliest);
  return out;
}

bool PostgresStore::job_finish_tx(NativeConnection native, const JobFinishParams& p) {
  pg_conn* conn = native_handle<pg_conn>(native, backend());
  require_transaction(conn, "complete_in_transaction(conn)");
  PgParams params = finish_params(p);
  // No local notify: the outcome is invisible until the caller commits. A retry's
  // notification is queued in the caller's transaction and reaches the listeners on commit.
  if (is_final(p.status)) {
    auto r = exec_on_caller(conn, sql_->finish_tx, params, "completion on the caller's connection");
    return std::string_view(PQcmdTuples(r.get())) == "1";
  }
  params.text(channel_);
  auto r =
      exec_on_caller(conn, sql_->finish_retry_tx, params, "completion on the caller's connection");
  return PQntuples(r.get()) == 1;
}

bool PostgresStore::job_progress_update(const JobProgressParams& p) {
  PgParams params;
  params.text(clean_text(p.message, kMaxProgressMessageBytes))
      .integer(static_cast<std::int64_t>(std::clamp(p.percent, 0, 100)))
      .text(p.id.to_string())
      .integer(static_cast<std::int64_t>(p.attempt))
      .text(p.worker_id);
  auto conn = pool_.acquire();
  auto r = conn->run(sql_->progress, params, Format::kText);
  return std::string_view(PQcmdTuples(r.get())) == "1";
}

std::optional<JobRecord> PostgresStore::job_get(const JobId& id) {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->get, PgParams().text(id.to_string()));
  }
  if (PQntuples(r.get()) == 0) return std::nullopt;
  return read_job(r.get(), 0);
}

std::vector<HeldJob> PostgresStore::job_heartbeat(std::string_view worker_id, TimePoint now) {
  PgParams params;
  params.text(worker_id);
  if (!database_clock_) params.time(now);
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->heartbeat, params);
  }
  std::vector<HeldJob> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.push_back(
        {pgbin::uuid(r.get(), i, 0), pgbin::int4(r.get(), i, 1), pgbin::boolean(r.get(), i, 2)});
  }
  return out;
}

int PostgresStore::rescue_run(const PgStatement& st, const PgParams& params, TimePoint now) {
  int n = 0;
  std::optional<TimePoint> due;  // stored run_at of a job that is Pending again
  {
    auto conn = pool_.acquire();
    auto r = conn->run(st, params);
    n = PQntuples(r.get());
    for (int i = 0; i < n; ++i) {
      if (pgbin::text(r.get(), i, 0) == "Pending") due = pgbin::timestamptz(r.get(), i, 1);
    }
    // The rows are committed already (one statement): tell the other processes' workers too.
    if (due) {
      conn->run(sql_->notify, PgParams().text(channel_).text(format_timestamp(*due)),
                Format::kText);
    }
  }
  if (n > 0) notifier().notify(now);
  return n;
}

namespace {

PgParams rescue_params(const JobRescueParams& p) {
  PgParams params;
  params.integer(static_cast<std::int64_t>(p.default_max_attempts))
      .integer(static_cast<std::int64_t>(p.poison_limit));
  return params;
}

}  // namespace

int PostgresStore::job_rescue(const JobRescueParams& p) {
  PgParams params = rescue_params(p);
  // $5 (now) is always sent: on the database clock stale_before is taken relative to it.
  params.time(p.stale_before).integer(static_cast<std::int64_t>(p.limit)).time(p.now);
  return rescue_run(sql_->rescue, params, p.now);
}

int PostgresStore::job_release_worker(std::string_view worker_id, const JobRescueParams& p) {
  PgParams params = rescue_params(p);
  params.text(worker_id).integer(static_cast<std::int64_t>(p.limit));
  if (!database_clock_) params.time(p.now);
  return rescue_run(sql_->release_worker, params, p.now);
}

CancelResult PostgresStore::job_cancel(const JobId& id, TimePoint now) {
  auto conn = pool_.acquire();
  PgParams pending;
  pending.text(id.to_string());
  if (!database_clock_) pending.time(now);
  auto r = conn->run(sql_->cancel_pending, pending, Format::kText);
  if (std::string_view(PQcmdTuples(r.get())) == "1") return CancelResult::kCancelled;
  // Not Pending (any more): a Running job is flagged for its worker, whose next heartbeat
  // reads the flag and fires the handler's stop token.
  r = conn->run(sql_->cancel_running, PgParams().text(id.to_string()), Format::kText);
  if (std::string_view(PQcmdTuples(r.get())) == "1") return CancelResult::kRequested;
  r = conn->run(sql_->job_exists, PgParams().text(id.to_string()), Format::kText);
  return PQntuples(r.get()) == 1 ? CancelResult::kAlreadyFinished : CancelResult::kNotFound;
}

int PostgresStore::job_prune(JobStatus status, TimePoint before, int limit) {
  if (!is_final(status)) {
    throw Error(ErrorCode::kInvalidArgument, "only finished jobs can be pruned");
  }
  auto conn = pool_.acquire();
  auto r = conn->run(
      sql_->prune,
      PgParams().text(to_string(status)).time(before).integer(static_cast<std::int64_t>(limit)),
      Format::kText);
  return std::atoi(PQcmdTuples(r.get()));
}

void PostgresStore::worker_register(const WorkerRecord& w) {
  auto conn = pool_.acquire();
  conn->run(sql_->worker_register,
            PgParams()
                .text(w.id)
                .text(w.name)
                .text(w.host)
                .integer(static_cast<std::int64_t>(w.pid))
                .time(w.started_at)
                .time(w.heartbeat_at)
                .text(w.boot_id)
                .integer(w.pid_namespace)
                .integer(w.process_start)
                .text(worker_types_json(w))
                .boolean(w.relay),
            Format::kText);
}

void PostgresStore::worker_heartbeat(std::string_view id, TimePoint now) {
  PgParams params;
  params.text(id);
  if (!database_clock_) params.time(now);
  auto conn = pool_.acquire();
  conn->run(sql_->worker_heartbeat, params, Format::kText);
}

void PostgresStore::worker_remove(std::string_view id) {
  auto conn = pool_.acquire();
  conn->run(sql_->worker_remove, PgParams().text(id), Format::kText);
}

int PostgresStore::worker_prune(TimePoint stale_before, TimePoint now) {
  PgParams params;
  params.time(stale_before);
  if (database_clock_) params.time(now);
  auto conn = pool_.acquire();
  auto r = conn->run(sql_->worker_prune, params, Format::kText);
  return std::atoi(PQcmdTuples(r.get()));
}

std::optional<JobRecord> PostgresStore::job_claim_id(const JobClaimParams& p, const JobId& id) {
  PgParams params;
  params.text(p.worker_id).text(id.to_string());
  queues_param(params, p.queues);
  // The claim's clock rule: `now` is the last parameter, left out on the database clock.
  if (!database_clock_) params.time(p.now);
  types_param(params, p.job_types);
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->claim_id, params);
  }
  if (PQntuples(r.get()) == 0) return std::nullopt;
  return read_job(r.get(), 0);
}

// The outbox triggers: a job that becomes Pending (inserted so, or moved back from Running by
// a retry, release or rescue) gets an outbox row in the same transaction. CREATE OR REPLACE
// TRIGGER is idempotent, so every worker that uses messaging can run this at start.
void PostgresStore::outbox_enable() {
  auto conn = pool_.acquire();
  const std::string& q = quoted_schema_;
  conn->exec_script("CREATE OR REPLACE TRIGGER jobs_outbox_insert AFTER INSERT ON " + q +
                    ".jobs FOR EACH ROW WHEN (NEW.status = 'Pending') EXECUTE FUNCTION " + q +
                    ".ergon_job_outbox(); "
                    "CREATE OR REPLACE TRIGGER jobs_outbox_pending AFTER UPDATE OF status ON " +
                    q +
                    ".jobs FOR EACH ROW WHEN (NEW.status = 'Pending' AND "
                    "OLD.status <> 'Pending') EXECUTE FUNCTION " +
                    q + ".ergon_job_outbox()");
}

void PostgresStore::outbox_disable() {
  auto conn = pool_.acquire();
  const std::string& q = quoted_schema_;
  // One implicit transaction (a multi-statement simple query): all or nothing.
  conn->exec_script("DROP TRIGGER IF EXISTS jobs_outbox_insert ON " + q +
                    ".jobs; DROP TRIGGER IF EXISTS jobs_outbox_pending ON " + q +
                    ".jobs; DELETE FROM " + q + ".job_outbox");
}

OutboxState PostgresStore::outbox_state() {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->exec(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND "
        "tgname IN ('jobs_outbox_insert', 'jobs_outbox_pending')), (SELECT count(*) "
        "FROM " +
            quoted_schema_ + ".job_outbox)",
        PgParams().text(quoted_schema_ + ".jobs"));
  }
  return {pgbin::boolean(r.get(), 0, 0), pgbin::int8(r.get(), 0, 1)};
}

std::vector<OutboxRow> PostgresStore::outbox_peek(int limit) {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->outbox_peek, PgParams().integer(static_cast<std::int64_t>(limit)));
  }
  std::vector<OutboxRow> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.push_back({pgbin::int8(r.get(), i, 0), pgbin::uuid(r.get(), i, 1),
                   pgbin::timestamptz(r.get(), i, 2)});
  }
  return out;
}

void PostgresStore::outbox_remove(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  std::string array = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) array += ',';
    array += std::to_string(ids[i]);
  }
  array += "}";
  auto conn = pool_.acquire();
  conn->run(sql_->outbox_remove, PgParams().text(array), Format::kText);
}

std::vector<WorkerRecord> PostgresStore::worker_list() {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->worker_list, PgParams());
  }
  std::vector<WorkerRecord> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    WorkerRecord w;
    w.id = pgbin::text(r.get(), i, 0);
    w.name = pgbin::text(r.get(), i, 1);
    w.host = pgbin::text(r.get(), i, 2);
    w.pid = pgbin::int4(r.get(), i, 3);
    w.started_at = pgbin::timestamptz(r.get(), i, 4);
    w.heartbeat_at = pgbin::timestamptz(r.get(), i, 5);
    w.boot_id = pgbin::text(r.get(), i, 6);
    w.pid_namespace = pgbin::int8(r.get(), i, 7);
    w.process_start = pgbin::int8(r.get(), i, 8);
    if (!pgbin::is_null(r.get(), i, 9)) {
      w.job_types = worker_types_parse(pgbin::text(r.get(), i, 9));
    }
    w.relay = pgbin::boolean(r.get(), i, 10);
    out.push_back(std::move(w));
  }
  return out;
}

void PostgresStore::schedule_upsert(const ScheduleUpsertParams& p) {
  const ScheduleRecord& r = p.schedule;
  PgParams params;
  params.text(r.id.to_string())
      .text(r.name)
      .text(r.job_type)
      .text(r.job_data)
      .text(r.cron_expression)
      .boolean(r.with_seconds)
      .text(r.time_zone)
      .time(r.next_run_time)
      .boolean(r.is_enabled)
      .text(to_string(r.misfire))
      .integer(static_cast<std::int64_t>(r.misfire_limit))
      .text(to_string(r.overlap))
      .text(r.queue)
      .integer(static_cast<std::int64_t>(r.priority))
      .integer(r.max_attempts);
  {
    auto conn = pool_.acquire();
    conn->run(sql_->schedule_upsert, params, Format::kText);
  }
  schedule_notifier().notify(r.next_run_time);
}

bool PostgresStore::schedule_remove(std::string_view name) {
  auto conn = pool_.acquire();
  auto r = conn->run(sql_->schedule_remove, PgParams().text(name), Format::kText);
  return std::string_view(PQcmdTuples(r.get())) == "1";
}

bool PostgresStore::schedule_set_enabled(std::string_view name, bool enabled) {
  bool changed;
  {
    auto conn = pool_.acquire();
    auto r =
        conn->run(sql_->schedule_enable, PgParams().boolean(enabled).text(name), Format::kText);
    changed = std::string_view(PQcmdTuples(r.get())) == "1";
  }
  if (changed && enabled) schedule_notifier().notify(clock().now());
  return changed;
}

std::optional<ScheduleRecord> PostgresStore::schedule_get(std::string_view name) {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->schedule_get, PgParams().text(name));
  }
  if (PQntuples(r.get()) == 0) return std::nullopt;
  return read_schedule(r.get(), 0);
}

std::vector<ScheduleRecord> PostgresStore::schedule_list() {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->schedule_list, PgParams());
  }
  std::vector<ScheduleRecord> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(read_schedule(r.get(), i));
  return out;
}

std::vector<ScheduleRecord> PostgresStore::schedule_due(TimePoint now, int limit) {
  PgResult r;
  {
    auto conn = pool_.acquire();
    r = conn->run(sql_->schedule_due,
                  PgParams().time(now).integer(static_cast<std::int64_t>(limit)));
  }
  std::vector<ScheduleRecord> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(read_schedule(r.get(), i));
  return out;
}

std::optional<TimePoint> PostgresStore::schedule_next_due() {
  auto conn = pool_.acquire();
  auto r = conn->run(sql_->schedule_next_due, PgParams());
  return pgbin::opt_timestamptz(r.get(), 0, 0);
}

ScheduleFireResult PostgresStore::schedule_fire(const ScheduleFireParams& p) {
  for (const auto& j : p.jobs) {
    require_no_nul(j.job_type, "job type");
    require_no_nul(j.job_data, "job_data");
    require_no_nul(j.queue, "queue");
  }
  ScheduleFireResult result = ScheduleFireResult::kFired;
  std::optional<TimePoint> earliest;  // on the caller's clock, for this process's workers
  {
    auto conn = pool_.acquire();
    conn->exec_script("BEGIN");
    try {
      // Check, inserts and advance are one transaction under the slot's row lock: of all the
      // schedulers that saw this slot, only the first finds next_run_time unchanged.
      auto slot = conn->run(sql_->schedule_lock, PgParams().text(p.name).time(p.expected_next));
      if (PQntuples(slot.get()) == 0) {
        conn->rollback();
        return ScheduleFireResult::kLost;
      }
      auto last_job = pgbin::opt_uuid(slot.get(), 0, 0);
      if (p.skip_if_previous_running && last_job) {
        auto st =
            conn->run(sql_->job_status, PgParams().text(last_job->to_string()), Format::kText);
        if (PQntuples(st.get()) == 1) {
          std::string_view status = PQgetvalue(st.get(), 0, 0);
          if (status == "Pending" || status == "Running") {
            result = ScheduleFireResult::kSkippedOverlap;
          }
        }
      }
      std::optional<std::string> new_last_job;
      std::optional<TimePoint> earliest_stored;
      if (result == ScheduleFireResult::kFired) {
        for (const auto& j : p.jobs) {
          PgParams params = insert_params(j);
          auto ins = conn->run(sql_->insert_quiet, params);
          TimePoint stored = pgbin::timestamptz(ins.get(), 0, 0);
          earliest_stored = earliest_stored ? std::min(*earliest_stored, stored) : stored;
          earliest = earliest ? std::min(*earliest, j.run_at) : j.run_at;
          new_last_job = j.id.to_string();
        }
      }
      conn->run(sql_->schedule_advance,
                PgParams()
                    .time(p.new_next)
                    .time(p.last_run_time)
                    .text(new_last_job)
                    .text(p.name)
                    .time(p.expected_next),
                Format::kText);
      // One notification for the slot's jobs, sent on commit.
      if (earliest_stored) {
        conn->run(sql_->notify, PgParams().text(channel_).text(format_timestamp(*earliest_stored)),
                  Format::kText);
      }
      conn->exec_script("COMMIT");
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
  if (earliest) notifier().notify(*earliest);
  return result;
}

}  // namespace ergon::postgres
