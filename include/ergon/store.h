// ergon/store.h — opening the database that holds the jobs.
//
// A Store is an opaque handle on one database: a SQLite file, or a PostgreSQL database that
// any number of processes on any number of hosts share. Open it once per process and share it:
// JobRunner and JobsWorker both take a std::shared_ptr<Store>. The handle is safe to use from any
// number of threads. Several processes may open the same database at once.
//
// URLs: "sqlite:PATH" (relative or absolute), optionally with parameters
// "sqlite:PATH?synchronous=normal&busy_timeout_ms=5000". `synchronous` defaults to `full`:
// a job is durable once start_job returns, even across a power cut. PostgreSQL:
// "postgresql://user[:password]@host[:port]/db[?schema=NAME&pool_size=N&...]" (also
// postgres://); `schema` (default public) lets two applications share a database, other
// parameters go to libpq. The database must exist; Ergon creates only its schema.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/clock.h"
#include "ergon/types.h"

namespace ergon {

class Store;  // defined in src/store/store.h; users only hold pointers

struct StoreOptions {
  // The time source for everything using this store. Null: the system clock. Not owned.
  Clock* clock = nullptr;
  // Create the database (file) if it does not exist. Off: opening a missing database fails.
  bool create_if_missing = true;
  // Create or upgrade the schema on open. Off: a missing or outdated schema fails with kSchema
  // (unless check_schema is off too: then the schema is not looked at, as `ergon migrate`
  // needs).
  bool migrate = true;
  bool check_schema = true;
};

// Throws Error (kInvalidArgument for a malformed URL, kUnsupported for an unknown scheme,
// kNotFound for a missing database when !create_if_missing, kSchema, kStore).
std::shared_ptr<Store> open_store(std::string_view url, const StoreOptions& options = {});

// Applies every pending migration. Returns the versions applied (empty when up to date).
std::vector<int> migrate(Store& store);

// One row of the jobs table.
struct JobRecord {
  JobId id;
  std::string job_type;
  std::string job_data;  // JSON text
  JobStatus status = JobStatus::kPending;
  TimePoint created_at;
  std::optional<TimePoint> started_at;    // start of the latest attempt
  std::optional<TimePoint> completed_at;  // when it reached a final state
  std::optional<std::string> error_message;
  std::optional<std::string> progress_message;
  std::optional<int> progress_percent;
  std::string queue;
  int priority = 0;
  TimePoint run_at;  // when it is (or was) due
  int attempt = 0;   // attempts started so far, less those a release gave back
  std::optional<int> max_attempts;
  std::optional<std::string> worker_id;
  std::optional<TimePoint> heartbeat_at;
  std::optional<Duration> timeout;        // the job's own per-attempt timeout
  bool cancel_requested = false;          // cancel() was called while it ran
  int rescue_count = 0;                   // times it was taken back from a dead worker
  std::optional<std::string> unique_key;  // JobOptions::unique_key, if it was given
  std::optional<std::string> group_key;   // JobOptions::group_key, if it was given
  // The fencing token of a Running job: its claims so far. Unlike attempt it only grows, so
  // that a worker that lost its lease can never match the job's new claim.
  int lease = 0;
  // What the handler returned (JSON text), stored with the completion; Completed jobs only.
  std::optional<std::string> result;
  std::vector<std::string> tags;    // JobOptions::tags
  std::optional<std::string> meta;  // JobOptions::meta: a JSON object's text, if given
};

// What one attempt of a job came to.
enum class AttemptOutcome {
  kCompleted,  // the handler returned
  kFailed,     // it threw, and the job failed for good (no attempts left, non-retryable)
  kRetried,    // it threw, and the job is due again later
  kRescued,    // its worker died (or lost its lease); the rescuer gave the job back
  kTimedOut,   // it ran past its timeout and was abandoned
  kCancelled,  // it was cancelled while it ran
  kSnoozed,    // the handler asked to run again later, without using the attempt
  kReleased,   // a graceful stop gave the job back, without using the attempt
};
std::string_view to_string(AttemptOutcome outcome);
std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text);

// One ended attempt of a job: a row of job_attempts, written in the transaction that stores the
// attempt's outcome (or rescues it) and deleted with its job; or, for a Completed job's last
// attempt, read from the job's own row.
struct AttemptRecord {
  JobId job_id;
  int attempt = 0;  // the job's attempt number while it ran (JobRecord::attempt)
  int lease = 0;    // the claim's fencing token: unique per job, so the row's key
  std::string worker_id;
  TimePoint started_at;
  TimePoint finished_at;
  AttemptOutcome outcome = AttemptOutcome::kCompleted;
  std::optional<std::string> error_message;
};

// A queue as the cluster sees it: paused or not, and how many of its jobs wait or run.
struct QueueRecord {
  std::string name;
  bool paused = false;
  std::int64_t pending = 0;
  std::int64_t running = 0;
};

// Cluster-wide limits on one job type, held by the database for every worker of every process
// (docs/flow-control.md): at most max_running of its jobs Running at once, and at most
// rate_limit of them started in any rate_period. With per_group, each group key
// (JobOptions::group_key; jobs without one form one group) has these limits on its own.
struct TypeLimit {
  std::string job_type{};
  std::optional<int> max_running{};  // unset: no concurrency limit; 0 holds the type back
  std::optional<int> rate_limit{};   // unset: no rate limit; 0 holds the type back
  Duration rate_period{};            // with rate_limit: 1 ms to 31 days
  bool per_group = false;
  std::int64_t running = 0;  // Running now (what limit_list reports; ignored when setting)
};

// A worker process, as registered in the `workers` table.
struct WorkerRecord {
  std::string id;    // jobs.worker_id of the jobs it runs
  std::string name;  // WorkerOptions::worker_name, or "<host>:<pid>"
  std::string host;
  int pid = 0;
  TimePoint started_at;
  TimePoint heartbeat_at;
  // What tells this process from any other (docs/reliability.md, "Worker identity"): the
  // kernel's boot id, the inode of its PID namespace, and its start time in clock ticks since
  // boot (/proc/<pid>/stat field 22). Empty or 0: not known, nothing can be proved from it.
  std::string boot_id;
  std::int64_t pid_namespace = 0;
  std::int64_t process_start = 0;
  // The job types it claims (its handlers), sorted; unset: every type
  // (WorkerOptions::claim_unhandled_types).
  std::optional<std::vector<std::string>> job_types;
  bool relay = false;  // it relays the messaging outbox (docs/messaging.md)
};

// What job_list returns: newest first (by id, which is time-ordered), every condition ANDed.
struct JobFilter {
  std::optional<JobStatus> status{};
  std::optional<std::string> job_type{};
  std::optional<std::string> queue{};
  std::optional<TimePoint> created_after{};   // created_at >= this
  std::optional<TimePoint> created_before{};  // created_at < this
  // Jobs whose job_data or error_message contains this text (case-sensitive substring).
  std::optional<std::string> text{};
  // Jobs that carry this tag (JobOptions::tags), exactly.
  std::optional<std::string> tag{};
  // Keyset pagination: only jobs with id < before_id (the last id of the previous page), so a
  // page costs the same on page 1 and page 10 000.
  std::optional<JobId> before_id{};
  int limit = 50;  // 1..10000
};

// How many jobs one queue holds in one status (job_counts).
struct JobCount {
  std::string queue;
  JobStatus status = JobStatus::kPending;
  std::int64_t count = 0;
  // Pending only: the run_at of the job waiting longest among those due (for queue age).
  std::optional<TimePoint> oldest_due_run_at;
};

// How many jobs of one type are Pending (due or not).
struct JobTypeCount {
  std::string job_type;
  std::int64_t pending = 0;

  friend bool operator==(const JobTypeCount&, const JobTypeCount&) = default;
};

// The messaging outbox (docs/messaging.md) as a whole: its triggers and the rows that wait
// for a relay.
struct OutboxState {
  bool enabled = false;  // the triggers are installed
  std::int64_t rows = 0;
};

// One operator action, as the audit table keeps it (`ergon jobs retry`, the dashboard).
struct AuditRecord {
  std::int64_t id = 0;  // assigned on insert
  TimePoint at;
  std::string actor;   // who: "cli:<user>", "dashboard:<remote address>", ...
  std::string action;  // what: "retry", "delete", "cancel", "purge", "schedule.disable", ...
  std::string target;  // a job id, a schedule name, or a filter's description
  std::string detail;  // free text (for bulk actions: how many rows)
};

}  // namespace ergon
