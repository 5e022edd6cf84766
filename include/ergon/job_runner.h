// ergon/job_runner.h — starting jobs and reading their state.
//
//   auto store = ergon::open_store("sqlite:jobs.db");
//   ergon::JobRunner runner(store);
//   ergon::JobId id = runner.start_job(SendEmailJob{...});
//
// start_job commits its own small transaction and wakes the workers of this process at once.
// The transactional twin start_job(conn, job) writes the job with the caller's connection,
// inside the caller's open transaction, and never begins, commits or rolls back: the job
// exists exactly when (and if) the caller commits. Workers in this process find such a job on
// their next poll (WorkerOptions::polling_interval), or at once if the caller calls notify()
// after committing.
//
// A JobRunner is cheap, holds a shared_ptr to its Store, and is safe to share across threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/job.h"
#include "ergon/options.h"
#include "ergon/schedule.h"
#include "ergon/store.h"

struct sqlite3;  // from <sqlite3.h>; only the transactional twins need these
struct pg_conn;  // PGconn from <libpq-fe.h>

namespace ergon {

enum class CancelOutcome {
  kCancelled,        // it was Pending: now Cancelled, it will never start
  kRequested,        // it is Running: its worker fires the stop token; it ends Cancelled
  kAlreadyFinished,  // Completed, Failed or Cancelled already: nothing changed
};

// What an enqueue middleware sees of a job about to be written: its type and payload, and its
// options, which it may change (add tags or meta, pick a queue). To reject the job it throws;
// the exception reaches start_job's caller and nothing is written.
struct EnqueueRequest {
  std::string_view job_type;
  std::string_view job_data;
  JobOptions& options;
};
using EnqueueMiddleware = std::function<void(EnqueueRequest& request)>;

class JobRunner {
 public:
  explicit JobRunner(std::shared_ptr<Store> store);

  // Adds an enqueue middleware: for every job this runner starts (job_type empty) or for one
  // type's. Every start_job form (and start_jobs, per job) runs them in the order they were
  // added, before the job is checked, so what they add is checked like what the caller gave. A
  // schedule's jobs, started by the scheduler, do not pass through them. Not thread-safe: add
  // them before the runner is shared.
  void use(EnqueueMiddleware middleware, std::string job_type = {});

  template <JobType T>
  JobId start_job(const T& job, const JobOptions& options = {}) {
    return start_job_raw(T::kJobType, nlohmann::json(job).dump(), options);
  }

  // Enqueues on `conn`, which must be a connection to the same SQLite database with an open
  // transaction (BEGIN ... not yet committed). Throws Error(kNoTransaction) otherwise.
  template <JobType T>
  JobId start_job(sqlite3* conn, const T& job, const JobOptions& options = {}) {
    return start_job_raw(conn, T::kJobType, nlohmann::json(job).dump(), options);
  }

  // Enqueues on `conn`, a libpq connection to the store's PostgreSQL database inside an open
  // transaction (BEGIN issued, not yet committed). The job and its wake-up become visible when
  // the caller commits. Throws Error(kNoTransaction) otherwise.
  template <JobType T>
  JobId start_job(pg_conn* conn, const T& job, const JobOptions& options = {}) {
    return start_job_raw(conn, T::kJobType, nlohmann::json(job).dump(), options);
  }

  // Enqueues many jobs of one type in one transaction (COPY on PostgreSQL).
  template <JobType T>
  std::vector<JobId> start_jobs(const std::vector<T>& jobs, const JobOptions& options = {}) {
    std::vector<std::string> data;
    data.reserve(jobs.size());
    for (const auto& j : jobs) data.push_back(nlohmann::json(j).dump());
    return start_jobs_raw(T::kJobType, data, options);
  }

  // The untyped forms, for tools and command handlers. `job_data` must be valid JSON.
  JobId start_job_raw(std::string_view job_type, std::string_view job_data,
                      const JobOptions& options = {});
  JobId start_job_raw(sqlite3* conn, std::string_view job_type, std::string_view job_data,
                      const JobOptions& options = {});
  JobId start_job_raw(pg_conn* conn, std::string_view job_type, std::string_view job_data,
                      const JobOptions& options = {});
  std::vector<JobId> start_jobs_raw(std::string_view job_type,
                                    const std::vector<std::string>& job_data,
                                    const JobOptions& options = {});

  // Recurring jobs (see ergon/schedule.h). Adds the schedule `options.name` (default: the job
  // type) or updates it: expression, payload, zone and policies. An unchanged expression and
  // zone keep the stored next_run_time, so re-registering at every start-up neither skips nor
  // repeats a slot; a changed one is due at its first slot after now. An operator's
  // enable/disable is kept. Throws Error(kInvalidArgument) for a bad expression or zone, with
  // the parser's message. Returns the schedule's name.
  template <JobType T>
  std::string add_or_update_scheduled_job(const T& job, std::string_view cron_expression,
                                          ScheduleOptions options = {}) {
    return add_or_update_scheduled_job_raw(T::kJobType, nlohmann::json(job).dump(), cron_expression,
                                           std::move(options));
  }
  std::string add_or_update_scheduled_job_raw(std::string_view job_type, std::string_view job_data,
                                              std::string_view cron_expression,
                                              ScheduleOptions options = {});
  // false if no schedule has that name.
  bool remove_scheduled_job(std::string_view name);
  bool set_scheduled_job_enabled(std::string_view name, bool enabled);
  // Enqueues the schedule's job now, outside its slots; next_run_time is not touched.
  // Throws Error(kNotFound).
  JobId trigger_scheduled_job(std::string_view name);
  [[nodiscard]] std::vector<ScheduleRecord> list_scheduled_jobs() const;
  [[nodiscard]] std::optional<ScheduleRecord> get_scheduled_job(std::string_view name) const;

  // Cancels a job. Throws Error(kNotFound) for an unknown id.
  CancelOutcome cancel(const JobId& id);
  // The registered worker processes (the `workers` table), oldest first.
  [[nodiscard]] std::vector<WorkerRecord> list_workers() const;

  // Queues, cluster-wide (docs/flow-control.md): a paused queue starts no job on any worker
  // (jobs already running finish); resuming wakes this process's workers. Names as in
  // JobOptions::queue (1-100 bytes).
  void pause_queue(std::string_view queue);
  void resume_queue(std::string_view queue);
  // Queues with jobs waiting or running, and every queue ever paused, by name.
  [[nodiscard]] std::vector<QueueRecord> list_queues() const;

  // Cluster-wide limits per job type (docs/flow-control.md), held by the database for every
  // worker of every process: at most `max_running` of the type Running at once and at most
  // `rate_limit` started in any `rate_period`, for the whole type or, with `per_group`, for
  // each group key on its own. 0 holds the type back; a limit lowered below what runs now lets
  // those finish. set_type_limit replaces the type's limits; throws Error(kInvalidArgument)
  // for a bad type name, a negative figure, a rate without a period (1 ms to 31 days), or
  // neither limit.
  void set_type_limit(const TypeLimit& limit);
  void remove_type_limit(std::string_view job_type);
  // Only the concurrency limit, keeping the type's rate limit; nullopt removes it (and the
  // type's limits altogether when it has no rate limit).
  void set_concurrency_limit(std::string_view job_type, std::optional<int> max_running);
  // Every limited type, by name, with how many of it run now.
  [[nodiscard]] std::vector<TypeLimit> list_type_limits() const;

  // Wakes idle workers of this process (e.g. after committing a transactional enqueue).
  void notify();

  [[nodiscard]] std::optional<JobRecord> get_job(const JobId& id) const;
  // The job's attempts so far, oldest first: who ran each, when, and how it ended.
  [[nodiscard]] std::vector<AttemptRecord> list_attempts(const JobId& id) const;

  // Blocks until the job reaches a final state (Completed, Failed, Cancelled) and returns it,
  // or returns nullopt once `timeout` (on the store's clock) passes first. Woken at once when
  // a worker of this process stores the outcome, and on PostgreSQL when one of another
  // process does (LISTEN/NOTIFY: the first wait opens a listening connection, kept until the
  // store closes). It also polls, every 10 ms at first, backing off to every 250 ms: how it
  // sees another process's worker on SQLite (docs/storage.md, "Finished jobs"). Throws
  // Error(kNotFound) for an unknown job (or one deleted meanwhile), Error(kInvalidArgument) for
  // a negative timeout.
  std::optional<JobRecord> wait(const JobId& id, Duration timeout);
  // The result of a Completed job (JobContext::set_result, or what its handler returned), as
  // JSON text; nullopt while it has none. Throws Error(kNotFound) for an unknown job.
  [[nodiscard]] std::optional<std::string> result_json(const JobId& id) const;
  // The same, decoded as R; Error(kInvalidArgument) when it does not decode.
  template <class R>
  [[nodiscard]] std::optional<R> result(const JobId& id) const {
    std::optional<std::string> text = result_json(id);
    if (!text) return std::nullopt;
    try {
      return nlohmann::json::parse(*text).get<R>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the result of job " + id.to_string() + " does not decode: " + e.what());
    }
  }
  [[nodiscard]] std::vector<JobRecord> list_jobs(const JobFilter& filter = {}) const;

  // Operators' actions (what `ergon jobs retry|delete`, `ergon stats` and the dashboard do).
  // Throw Error(kNotFound) for an unknown id.
  //
  // Runs a Failed or Cancelled job again: Pending, due now, its attempts and last error kept
  // (a job whose attempts are used up gets one more). false, and nothing changes, when it is
  // in another state or when another job now holds its unique key (JobOptions::unique_key):
  // two waiting jobs with one key are never made. Wakes the workers like start_job.
  bool retry_job(const JobId& id);
  // Deletes a job that is not Running (cancel it first). false when it is Running.
  bool delete_job(const JobId& id);
  // The bulk forms: every job `filter` matches (its limit ignored), in one transaction each;
  // jobs that do not qualify are skipped (and of several Failed jobs sharing a unique key only
  // the newest is retried). Return how many changed.
  int retry_jobs(const JobFilter& filter);
  int delete_jobs(const JobFilter& filter);
  // Deletes the jobs of a final `status` that finished more than `older_than` ago, in batches of
  // `batch` rows (each its own short transaction); returns how many.
  std::int64_t purge_jobs(JobStatus status, Duration older_than, int batch = 1000);
  // How many jobs each queue holds in each status, by queue then status; statuses with no job
  // are left out. Pending rows carry the run_at of the job that has waited longest.
  [[nodiscard]] std::vector<JobCount> job_counts() const;
  // The Pending jobs per type that no worker alive within `alive_within` claims (no live
  // worker has a handler for the type, and none runs with claim_unhandled_types): they wait
  // until one does.
  [[nodiscard]] std::vector<JobTypeCount> unhandled_job_types(Duration alive_within) const;
  // The messaging outbox: whether its triggers are installed, and its rows. Throws
  // Error(kUnsupported) on a store without messaging.
  [[nodiscard]] OutboxState outbox_state() const;
  // Records an operator's action in the audit log (AuditRecord::at is now; id assigned).
  void audit(std::string_view actor, std::string_view action, std::string_view target,
             std::string_view detail = {});
  // The latest `limit` (1..10000) audit records, newest first.
  [[nodiscard]] std::vector<AuditRecord> list_audit(int limit = 50) const;

 private:
  std::shared_ptr<Store> store_;
  std::vector<std::pair<std::string, EnqueueMiddleware>> middleware_;  // (job type or "", it)
};

}  // namespace ergon
