// store/store.h — the storage seam: what the runner and the worker need of a database.
//
// One interface, one backend per database (sqlite/ now, postgres/ next), and one conformance
// suite (tests/store/) that every backend passes. Methods are named noun-first (job_claim,
// job_finish) and take one params struct each, so a new field does not change every caller.
// Every write that a caller may want inside its own transaction has a *_tx twin.
//
// Time: "now" comes from the params (the caller read it from the store's Clock), so a test's
// FakeClock decides what is due. The PostgreSQL backend opened with the system clock uses the
// database clock instead (see postgres_store.h).
//
// Fencing: every transition out of Running is conditional on (id, lease, worker_id, status
// = Running); the lease counts the job's claims and only grows. A worker that lost its job
// (rescued, released, cancelled) cannot overwrite the job's new state: job_finish and
// job_progress_update return false and change nothing.
//
// Thread-safety: a Store is shared by the runner, the producer and every executor thread;
// implementations must be safe for concurrent use.
#pragma once

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ergon/clock.h"
#include "ergon/error.h"
#include "ergon/schedule.h"
#include "ergon/store.h"
#include "transport/notifier.h"

struct sqlite3;
struct pg_conn;  // PGconn of <libpq-fe.h>

namespace ergon {

// A caller's own connection, inside the caller's open transaction: an application's sqlite3*
// or PGconn* (the *_tx methods). Each backend takes its own kind through native_handle().
using NativeConnection = std::variant<sqlite3*, pg_conn*>;

// The `Handle*` held by `conn`; Error(kUnsupported) when it holds the other backend's kind
// (`backend` names the store that refuses it).
template <class Handle>
Handle* native_handle(const NativeConnection& conn, std::string_view backend) {
  if (const auto* h = std::get_if<Handle*>(&conn)) return *h;
  throw Error(ErrorCode::kUnsupported,
              "the " + std::string(backend) + " store cannot use a connection of another database");
}

struct JobInsertParams {
  JobId id;
  std::string_view job_type;
  std::string_view job_data;  // valid JSON (checked by the caller)
  TimePoint created_at;
  TimePoint run_at;
  std::optional<int> max_attempts;
  std::string_view queue;
  int priority = 0;
  std::optional<Duration> timeout;
  // Empty: none. Else at most one job with this key is Pending (and Running too when
  // unique_while_running); job_insert then returns the holder's id and inserts nothing.
  std::string_view unique_key;
  bool unique_while_running = false;
  // With unique_key: the job also holds the key until created_at + unique_period, whatever
  // its status; while any job holds a key so, job_insert of the key inserts nothing either.
  std::optional<Duration> unique_period;
  std::string_view group_key;              // empty: none (JobOptions::group_key)
  std::span<const std::string> tags = {};  // JobOptions::tags (checked by the caller)
  std::string_view meta;  // empty: none; else a JSON object's text (checked by the caller)
};

struct JobClaimParams {
  std::string_view worker_id;
  int limit = 1;  // claim at most this many (the worker's free slots)
  TimePoint now;  // jobs with run_at <= now are due
  // Claim only from these queues; empty: from every queue. Paused queues never.
  std::span<const std::string> queues = {};
  // Also renew worker_id's registry heartbeat, as worker_heartbeat(worker_id, now) would, with
  // the claim (PostgreSQL: in the same statement, so an idle worker's poll is one query).
  bool renew_worker = false;
  // Claim only jobs of these types; unset: of every type. An empty list claims nothing (a
  // worker without handlers).
  std::optional<std::span<const std::string>> job_types;
};

// Whether a claim with `p` may take jobs of `type` (the per-type claims of limited types).
[[nodiscard]] inline bool claims_type(const JobClaimParams& p, std::string_view type) {
  return !p.job_types ||
         std::find(p.job_types->begin(), p.job_types->end(), type) != p.job_types->end();
}

struct JobFinishParams {
  JobId id;
  // The fencing token the job was claimed with: JobRecord::lease of the claim (which equals
  // JobRecord::attempt until a release gives an attempt back).
  int attempt = 0;
  std::string_view worker_id;
  // kCompleted, kFailed, kCancelled (final: completed_at = now), or kPending (retry or release:
  // due again at run_at).
  JobStatus status = JobStatus::kCompleted;
  TimePoint now;
  TimePoint run_at;  // kPending only
  // kPending: due again at the row's own run_at, whatever run_at says (a release puts the job
  // back at its old place in the queue; on the database clock a translated time would move it).
  bool keep_run_at = false;
  std::optional<std::string> error_message;  // stored when set; kept otherwise
  // kPending only: a release, which gives back the attempt it used (attempt - 1; the lease
  // stays), so that a graceful stop neither uses up nor rewrites attempts.
  bool give_back_attempt = false;
  // The last progress report of the attempt, if it was not written yet.
  std::optional<std::string> progress_message;
  std::optional<int> progress_percent;
  // kCompleted only: what the handler returned, JSON text (checked by the caller). Unset
  // leaves result NULL.
  std::optional<std::string> result;
  // Set: the attempt also leaves its row in job_attempts, in the same transaction: the job's
  // attempt and lease as claimed, worker_id, started_at from the job's row, finished at `now`,
  // this outcome and error_message; kCompleted writes none, the Completed job's row being its
  // last attempt (writes_attempt_row, store/params.h). Unset (a claimed job that never
  // started): no row.
  std::optional<AttemptOutcome> attempt_outcome;
};

struct JobProgressParams {
  JobId id;
  int attempt = 0;  // the fencing token: JobRecord::lease of the claim
  std::string_view worker_id;
  std::string_view message;
  std::optional<int> percent;  // unset: a message without a percent (stored NULL)
};

struct ScheduleUpsertParams {
  ScheduleRecord schedule;  // id used on insert only; last_* ignored
  // Keep the stored next_run_time when the expression, its format and the zone are unchanged
  // (a restart that re-registers its schedules must neither skip nor repeat a slot); otherwise
  // store schedule.next_run_time. is_enabled is written on insert only: an operator's
  // enable/disable survives the application re-registering the schedule.
};

// Fires one slot of one schedule, atomically: advances next_run_time from `expected_next` to
// `new_next` and inserts `jobs` in the same transaction, only if next_run_time still equals
// `expected_next` and the schedule is enabled. Any number of schedulers can race on a slot:
// exactly one wins.
struct ScheduleFireParams {
  std::string_view name;
  TimePoint expected_next;
  TimePoint new_next;
  TimePoint last_run_time;                // the slot fired (the latest one when several)
  std::vector<JobInsertParams> jobs;      // none when the misfire policy skips the slot
  bool skip_if_previous_running = false;  // overlap policy: skip while the last job runs
};

enum class ScheduleFireResult {
  kFired,           // advanced; jobs inserted
  kSkippedOverlap,  // advanced; no job, the previous run was still Pending/Running
  kLost,            // another scheduler fired the slot first, or the schedule changed
};

// A job the worker still holds, as its heartbeat found it.
struct HeldJob {
  JobId id;
  int attempt = 0;  // the fencing token: JobRecord::lease of the claim
  bool cancel_requested = false;
};

// A row of the messaging outbox: a job that became due to run at due_at.
struct OutboxRow {
  std::int64_t id = 0;
  JobId job_id;
  TimePoint due_at;
};

struct ThroughputBucket {
  TimePoint start;
  std::int64_t completed = 0;
  std::int64_t failed = 0;
};

struct JobRescueParams {
  TimePoint now;
  TimePoint stale_before;         // Running jobs whose heartbeat is older are orphans
  int default_max_attempts = 10;  // for jobs whose max_attempts is NULL
  int poison_limit = 3;           // a job rescued this many times is quarantined as Failed
  int limit = 1000;               // at most this many per call
};

enum class CancelResult { kCancelled, kRequested, kAlreadyFinished, kNotFound };

class Store {
 public:
  explicit Store(Clock& clock) : clock_(clock) {}
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  [[nodiscard]] Clock& clock() const { return clock_; }
  [[nodiscard]] transport::Notifier& notifier() { return notifier_; }
  // Told when a schedule changes (added, updated, enabled), with its next_run_time, so that a
  // sleeping scheduler in this process can wake earlier.
  [[nodiscard]] transport::Notifier& schedule_notifier() { return schedule_notifier_; }
  // Told when a Running job is asked to cancel, so that workers of this process act at once
  // rather than at their next heartbeat.
  [[nodiscard]] transport::Notifier& cancel_notifier() { return cancel_notifier_; }
  // Told when a worker of this process stored outcomes that end jobs (Completed, Failed,
  // Cancelled), so that JobRunner::wait in this process wakes at once.
  [[nodiscard]] transport::Notifier& finish_notifier() { return finish_notifier_; }
  // From now on, finish_notifier() also hears of jobs that other processes end, where the
  // backend can tell: PostgreSQL LISTENs (PostgresStore::watch_finishes). SQLite cannot reach
  // across processes; JobRunner::wait polls for those.
  virtual void watch_finishes() {}
  [[nodiscard]] virtual std::string_view backend() const = 0;

  // Applies pending migrations; returns the versions applied.
  virtual std::vector<int> schema_migrate() = 0;

  // Inserts a Pending job in its own transaction, then notifies. Returns p.id, or, when
  // p.unique_key is held by another job, that job's id (nothing is inserted or notified).
  virtual JobId job_insert(const JobInsertParams& p) = 0;
  // Inserts with the caller's connection inside the caller's open transaction. SQLite cannot
  // notify on commit, so it does not notify; PostgreSQL queues a pg_notify in the caller's
  // transaction, delivered when it commits. A connection of the other backend's kind:
  // Error(kUnsupported) (native_handle).
  virtual JobId job_insert_tx(NativeConnection conn, const JobInsertParams& p) = 0;
  // Inserts many jobs in one transaction (one notify for the batch), with a bulk path. Unique
  // keys are not supported here (the runner refuses them).
  virtual void job_insert_many(const std::vector<JobInsertParams>& jobs) = 0;

  // Atomically moves up to p.limit due Pending jobs to Running for p.worker_id, incrementing
  // their attempt. No job is ever returned by two claims while it stays Running. Ordered by
  // priority, then run_at, then id.
  virtual std::vector<JobRecord> job_claim(const JobClaimParams& p) = 0;
  // Records an attempt's outcome. false: the job was no longer Running for that attempt and
  // worker (fenced out); nothing changed.
  [[nodiscard]] virtual bool job_finish(const JobFinishParams& p) = 0;
  // Several outcomes in one transaction, so one durable commit covers the batch (the worker's
  // completer; docs/performance.md). Returns, per outcome in order, what job_finish would
  // have. All or nothing: when it throws, none of them is stored.
  [[nodiscard]] virtual std::vector<bool> job_finish_many(
      std::span<const JobFinishParams> batch) = 0;
  // job_finish on the caller's connection inside the caller's open transaction (transactional
  // completion); never begins or commits. Throws Error(kNoTransaction) without a transaction.
  [[nodiscard]] virtual bool job_finish_tx(NativeConnection conn, const JobFinishParams& p) = 0;
  // Writes progress of a Running attempt; false (and no change) if fenced out.
  [[nodiscard]] virtual bool job_progress_update(const JobProgressParams& p) = 0;

  [[nodiscard]] virtual std::optional<JobRecord> job_get(const JobId& id) = 0;
  [[nodiscard]] virtual std::vector<JobRecord> job_list(const JobFilter& filter) = 0;
  // The job's attempt history, oldest first (empty for an unknown job): its rows of
  // job_attempts and, when it is Completed, its last attempt read from its own row.
  [[nodiscard]] virtual std::vector<AttemptRecord> job_attempt_list(const JobId& id) = 0;

  // Fault tolerance.
  // Renews heartbeat_at of every job Running for `worker_id`, in one statement; returns them.
  [[nodiscard]] virtual std::vector<HeldJob> job_heartbeat(std::string_view worker_id,
                                                           TimePoint now) = 0;
  // Returns orphans (stale heartbeat) to Pending, or to Failed when their attempts are used up
  // or they were rescued poison_limit times; records why in error_message, and each orphan's
  // attempt as kRescued in job_attempts (finished at `now`). Returns how many.
  virtual int job_rescue(const JobRescueParams& p) = 0;
  // Startup recovery: the jobs still Running for a worker that is known to be gone (its
  // process provably dead, runtime/worker_identity.h) go back at once, as job_rescue would
  // (counting a rescue, and writing the kRescued attempt), whatever their heartbeat. Returns
  // how many.
  virtual int job_release_worker(std::string_view worker_id, const JobRescueParams& p) = 0;
  // Pending: Cancelled at once. Running: cancel_requested is set for its worker to act on.
  virtual CancelResult job_cancel(const JobId& id, TimePoint now) = 0;
  // Deletes up to `limit` jobs of a final `status` that completed before `before`.
  virtual int job_prune(JobStatus status, TimePoint before, int limit) = 0;

  virtual void worker_register(const WorkerRecord& w) = 0;
  virtual void worker_heartbeat(std::string_view id, TimePoint now) = 0;
  virtual void worker_remove(std::string_view id) = 0;
  // Removes the registry rows whose heartbeat is older than stale_before (workers silent for
  // longer than OrphanedJobThreshold; their jobs are the rescuer's), judged on the clock that
  // decides what is due, as job_rescue does: `now` is the caller's, for translating. Returns
  // how many.
  virtual int worker_prune(TimePoint stale_before, TimePoint now) = 0;
  [[nodiscard]] virtual std::vector<WorkerRecord> worker_list() = 0;

  // Claims one job by id, as job_claim would if it were next in line: only when it is Pending
  // and due by p.now. nullopt: it is not (running elsewhere, finished, not due, missing).
  [[nodiscard]] virtual std::optional<JobRecord> job_claim_id(const JobClaimParams& p,
                                                              const JobId& id) = 0;

  // Operators' actions (ergon jobs/purge/stats, the dashboard).
  // A Failed or Cancelled job back to Pending, due at `now`, keeping its attempts and history;
  // when its attempts are used up it gets one more. false: missing, or not Failed/Cancelled.
  [[nodiscard]] virtual bool job_retry(const JobId& id, TimePoint now) = 0;
  // Deletes a job that is not Running (a Running job must be cancelled first). false: missing
  // or Running.
  [[nodiscard]] virtual bool job_delete(const JobId& id) = 0;
  // Bulk forms over a filter (limit ignored: every match; before_id honoured). Each runs in
  // one transaction and returns how many jobs it changed; rows that do not qualify (Running
  // for delete, not Failed/Cancelled for retry) are skipped.
  virtual int job_retry_matching(const JobFilter& filter, TimePoint now) = 0;
  virtual int job_delete_matching(const JobFilter& filter) = 0;
  // Job counts per queue and status (statuses with no job are left out).
  [[nodiscard]] virtual std::vector<JobCount> job_counts(TimePoint now) = 0;
  // Pending jobs per job type, by type (store/handled_types.h).
  [[nodiscard]] virtual std::vector<JobTypeCount> job_pending_types() = 0;
  // Completed and failed jobs per bucket of `bucket` length from `since` (by completed_at),
  // oldest first, every bucket present (zeros included). For the dashboard's chart.
  [[nodiscard]] virtual std::vector<ThroughputBucket> job_throughput(TimePoint since,
                                                                     Duration bucket) = 0;
  // The audit log of operator actions: insert assigns the id; list is newest first.
  virtual void audit_insert(const AuditRecord& record) = 0;
  [[nodiscard]] virtual std::vector<AuditRecord> audit_list(int limit) = 0;

  // Cluster-wide limits per job type (docs/flow-control.md; migrations 7 and 8). limit_set
  // replaces the type's limits (check_type_limit first; kInvalidArgument), limit_remove drops
  // them. job_claim then starts a job of a limited type only while fewer than max_running of
  // its type (of its group, with per_group) are Running and fewer than rate_limit were started
  // in the last rate_period, whatever process claims (the count and the claim are serialized
  // per type); job_claim_id never does (the consumer's message waits for a poll).
  virtual void limit_set(const TypeLimit& limit, TimePoint now) = 0;
  virtual void limit_remove(std::string_view job_type, TimePoint now) = 0;
  [[nodiscard]] virtual std::vector<TypeLimit> limit_list() = 0;

  // Queues paused cluster-wide (docs/flow-control.md). Pausing a queue nobody used yet is
  // fine: it is created paused.
  virtual void queue_set_paused(std::string_view name, bool paused, TimePoint now) = 0;
  // Every queue that has jobs waiting or running, or was ever paused, by name.
  [[nodiscard]] virtual std::vector<QueueRecord> queue_list() = 0;

  // The messaging outbox (docs/messaging.md). outbox_enable() installs the triggers that write
  // an outbox row in the same transaction whenever a job becomes Pending (insert, retry,
  // release, rescue); idempotent. outbox_disable() drops them and empties the outbox.
  virtual void outbox_enable() = 0;
  virtual void outbox_disable() = 0;
  // Whether the triggers are installed, and how many rows wait for a relay.
  [[nodiscard]] virtual OutboxState outbox_state() = 0;
  // The oldest `limit` rows, oldest first. The relay publishes them, then removes them.
  [[nodiscard]] virtual std::vector<OutboxRow> outbox_peek(int limit) = 0;
  virtual void outbox_remove(const std::vector<std::int64_t>& ids) = 0;

  // Recurring jobs.
  virtual void schedule_upsert(const ScheduleUpsertParams& p) = 0;
  [[nodiscard]] virtual bool schedule_remove(std::string_view name) = 0;
  [[nodiscard]] virtual bool schedule_set_enabled(std::string_view name, bool enabled) = 0;
  [[nodiscard]] virtual std::optional<ScheduleRecord> schedule_get(std::string_view name) = 0;
  [[nodiscard]] virtual std::vector<ScheduleRecord> schedule_list() = 0;
  // Enabled schedules with next_run_time <= now, earliest first, at most `limit`.
  [[nodiscard]] virtual std::vector<ScheduleRecord> schedule_due(TimePoint now, int limit) = 0;
  // The earliest next_run_time of an enabled schedule.
  [[nodiscard]] virtual std::optional<TimePoint> schedule_next_due() = 0;
  [[nodiscard]] virtual ScheduleFireResult schedule_fire(const ScheduleFireParams& p) = 0;

 private:
  Clock& clock_;
  transport::Notifier notifier_;
  transport::Notifier schedule_notifier_;
  transport::Notifier cancel_notifier_;
  transport::Notifier finish_notifier_;
};

// Limits shared by every backend.
inline constexpr std::size_t kMaxErrorMessageBytes = 2000;
inline constexpr std::size_t kMaxProgressMessageBytes = 1000;
inline constexpr std::size_t kMaxJobTypeBytes = 200;
inline constexpr std::size_t kMaxQueueBytes = 100;
inline constexpr std::size_t kMaxGroupKeyBytes = 200;
inline constexpr std::size_t kMaxTags = 20;
inline constexpr std::size_t kMaxTagBytes = 100;
inline constexpr std::size_t kMaxMetaBytes = 64 * 1024;

// Throws Error(kInvalidArgument) for a limit no store should keep: a bad type name, a
// negative figure, a rate without a period (1 ms to 31 days) or neither limit set.
void check_type_limit(const TypeLimit& limit);

// Cuts `text` to at most `max_bytes`, never inside a UTF-8 sequence.
std::string truncate_utf8(std::string_view text, std::size_t max_bytes);

// The empty buckets job_throughput fills: from `since`, every `bucket`, up to the one holding
// `now` (none when since > now). Throws Error(kInvalidArgument) for a bucket that is not
// positive or more than 10000 buckets.
std::vector<ThroughputBucket> throughput_buckets(TimePoint since, Duration bucket, TimePoint now);

}  // namespace ergon
