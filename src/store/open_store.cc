// open_store(): picks the backend from the URL's scheme.
#include <algorithm>

#include "ergon/error.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {

JobId Store::job_insert_tx(sqlite3*, const JobInsertParams&) {
  throw Error(ErrorCode::kUnsupported, std::string("the ") + std::string(backend()) +
                                           " store cannot enqueue on a sqlite3 connection");
}

JobId Store::job_insert_tx(pg_conn*, const JobInsertParams&) {
  throw Error(ErrorCode::kUnsupported, std::string("the ") + std::string(backend()) +
                                           " store cannot enqueue on a PostgreSQL connection");
}

bool Store::job_finish_tx(sqlite3*, const JobFinishParams&) {
  throw Error(ErrorCode::kUnsupported, std::string("the ") + std::string(backend()) +
                                           " store cannot complete on a sqlite3 connection");
}

bool Store::job_finish_tx(pg_conn*, const JobFinishParams&) {
  throw Error(ErrorCode::kUnsupported, std::string("the ") + std::string(backend()) +
                                           " store cannot complete on a PostgreSQL connection");
}

std::vector<bool> Store::job_finish_many(std::span<const JobFinishParams> batch) {
  std::vector<bool> out;
  out.reserve(batch.size());
  for (const auto& p : batch) out.push_back(job_finish(p));
  return out;
}

void Store::job_insert_many(const std::vector<JobInsertParams>& jobs) {
  for (const auto& p : jobs) job_insert(p);
}

namespace {
[[noreturn]] void no_schedules(const Store& s) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(s.backend()) + " store does not support recurring jobs yet");
}
[[noreturn]] void no_messaging(const Store& s) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(s.backend()) + " store does not support messaging");
}
[[noreturn]] void no_faults(const Store& s) {
  throw Error(ErrorCode::kUnsupported, "the " + std::string(s.backend()) +
                                           " store does not support heartbeats and rescue yet");
}
}  // namespace

std::vector<HeldJob> Store::job_heartbeat(std::string_view, TimePoint) { no_faults(*this); }
int Store::job_rescue(const JobRescueParams&) { no_faults(*this); }
int Store::job_release_worker(std::string_view, const JobRescueParams&) { no_faults(*this); }
CancelResult Store::job_cancel(const JobId&, TimePoint) { no_faults(*this); }
int Store::job_prune(JobStatus, TimePoint, int) { no_faults(*this); }
void Store::worker_register(const WorkerRecord&) { no_faults(*this); }
void Store::worker_heartbeat(std::string_view, TimePoint) { no_faults(*this); }
void Store::worker_remove(std::string_view) { no_faults(*this); }
int Store::worker_prune(TimePoint, TimePoint) { no_faults(*this); }
std::vector<WorkerRecord> Store::worker_list() { no_faults(*this); }

std::optional<JobRecord> Store::job_claim_id(const JobClaimParams&, const JobId&) {
  no_messaging(*this);
}
namespace {
[[noreturn]] void no_operations(const Store& s) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(s.backend()) + " store does not support operator actions yet");
}
}  // namespace

bool Store::job_retry(const JobId&, TimePoint) { no_operations(*this); }
bool Store::job_delete(const JobId&) { no_operations(*this); }
int Store::job_retry_matching(const JobFilter&, TimePoint) { no_operations(*this); }
int Store::job_delete_matching(const JobFilter&) { no_operations(*this); }
std::vector<JobCount> Store::job_counts(TimePoint) { no_operations(*this); }
std::vector<ThroughputBucket> Store::job_throughput(TimePoint, Duration) { no_operations(*this); }
std::vector<AttemptRecord> Store::job_attempts(const JobId&) { no_operations(*this); }
void Store::audit_insert(const AuditRecord&) { no_operations(*this); }
std::vector<AuditRecord> Store::audit_list(int) { no_operations(*this); }

void Store::limit_set(const TypeLimit&, TimePoint) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend()) + " store does not support concurrency limits");
}
void Store::limit_remove(std::string_view, TimePoint) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend()) + " store does not support concurrency limits");
}
std::vector<TypeLimit> Store::limit_list() {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend()) + " store does not support concurrency limits");
}

void Store::queue_set_paused(std::string_view, bool, TimePoint) {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend()) + " store does not support pausing queues");
}
std::vector<QueueRecord> Store::queue_list() {
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend()) + " store does not support listing queues");
}
void Store::outbox_enable() { no_messaging(*this); }
void Store::outbox_disable() { no_messaging(*this); }
OutboxState Store::outbox_state() { no_messaging(*this); }
std::vector<OutboxRow> Store::outbox_peek(int) { no_messaging(*this); }
void Store::outbox_remove(const std::vector<std::int64_t>&) { no_messaging(*this); }

void Store::schedule_upsert(const ScheduleUpsertParams&) { no_schedules(*this); }
bool Store::schedule_remove(std::string_view) { no_schedules(*this); }
bool Store::schedule_set_enabled(std::string_view, bool) { no_schedules(*this); }
std::optional<ScheduleRecord> Store::schedule_get(std::string_view) { no_schedules(*this); }
std::vector<ScheduleRecord> Store::schedule_list() { no_schedules(*this); }
std::vector<ScheduleRecord> Store::schedule_due(TimePoint, int) { no_schedules(*this); }
std::optional<TimePoint> Store::schedule_next_due() { no_schedules(*this); }
ScheduleFireResult Store::schedule_fire(const ScheduleFireParams&) { no_schedules(*this); }

void check_type_limit(const TypeLimit& l) {
  check_identifier("job type", l.job_type, kMaxJobTypeBytes);
  if (!l.max_running && !l.rate_limit) {
    throw Error(ErrorCode::kInvalidArgument,
                "a limit needs a concurrency limit, a rate limit or both");
  }
  if (l.max_running && *l.max_running < 0) {
    throw Error(ErrorCode::kInvalidArgument, "a concurrency limit must not be negative");
  }
  if (l.rate_limit) {
    if (*l.rate_limit < 0) {
      throw Error(ErrorCode::kInvalidArgument, "a rate limit must not be negative");
    }
    if (l.rate_period < std::chrono::milliseconds(1) ||
        l.rate_period > std::chrono::hours(24 * 31)) {
      throw Error(ErrorCode::kInvalidArgument, "a rate limit's period must be 1 ms to 31 days");
    }
  }
}

std::string truncate_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut));
}

std::vector<ThroughputBucket> throughput_buckets(TimePoint since, Duration bucket, TimePoint now) {
  if (bucket <= Duration::zero()) {
    throw Error(ErrorCode::kInvalidArgument, "throughput bucket must be positive");
  }
  std::vector<ThroughputBucket> out;
  if (since > now) return out;
  auto n = (now - since) / bucket + 1;
  if (n > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "throughput asks for more than 10000 buckets");
  }
  out.resize(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < out.size(); ++i) out[i].start = since + bucket * static_cast<int>(i);
  return out;
}

std::shared_ptr<Store> open_store(std::string_view url, const StoreOptions& options) {
  Clock& clock = options.clock ? *options.clock : Clock::system();
  if (url.starts_with("sqlite:")) {
    auto store = std::make_shared<sqlite::SqliteStore>(sqlite::parse_sqlite_url(url), clock,
                                                       options.create_if_missing);
    if (options.migrate) {
      store->schema_migrate();
    } else if (options.check_schema) {
      store->schema_check();
    }
    return store;
  }
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    // The database must exist (Ergon creates only its schema, on migrate), so
    // create_if_missing does not apply.
    auto store =
        std::make_shared<postgres::PostgresStore>(postgres::parse_postgres_url(url), clock);
    if (options.migrate) {
      store->schema_migrate();
    } else if (options.check_schema) {
      store->schema_check();
    }
    return store;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown database URL '" + std::string(url) +
                                               "': expected sqlite:PATH or postgresql://...");
}

std::vector<int> migrate(Store& store) { return store.schema_migrate(); }

}  // namespace ergon
