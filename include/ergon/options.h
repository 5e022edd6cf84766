// ergon/options.h — options for enqueueing a job and for running a worker.
//
// Plain aggregates; copy them freely. The worker's options mirror the original configuration
// section "JobsWorker" (see ergon/config.h for reading them from a JSON file).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/types.h"

namespace ergon {

struct JobOptions {
  // When due (1678..2262: time_range.h). At most one of run_at and delay may be set; neither: now.
  std::optional<TimePoint> run_at{};
  std::optional<Duration> delay{};
  // Attempts before the job fails for good. Unset: the handler's setting, else the worker's
  // DefaultMaxAttempts (10). Must be >= 1.
  std::optional<int> max_attempts{};
  std::string queue = "default";
  // Lower runs first; 0 is the default and the most urgent.
  int priority = 0;
  // Longest time one attempt may run; unset: the handler's timeout, else none.
  std::optional<Duration> timeout{};
  // Unique jobs (docs/flow-control.md): while a job with this key waits to run (Pending), or
  // also while it runs when unique_while_running, start_job returns that job's id and inserts
  // nothing. Empty: no key. At most 200 bytes. Not for start_jobs (bulk).
  std::string unique_key{};
  bool unique_while_running = false;
  // With unique_key: at most one job per key per period. The job holds its key for this long
  // after it was enqueued, whether it completes, fails or is cancelled meanwhile (deleting it
  // frees the key), and start_job of the key meanwhile returns its id. 1 ms to 366 days.
  std::optional<Duration> unique_period{};
  // Fair claiming (docs/flow-control.md): jobs with a group key (a tenant, an account) are
  // claimed round-robin across groups, so one group's backlog does not hold back another
  // group's jobs; a limit with per_group applies to each group on its own. Empty: no group.
  // At most 200 bytes.
  std::string group_key{};
  // Labels to find the job by (`ergon jobs list --tag`, JobFilter::tag): at most 20, each 1 to
  // 100 bytes of UTF-8 without control characters, none repeated.
  std::vector<std::string> tags{};
  // The job's metadata, a JSON object's text (e.g. nlohmann::json{...}.dump()), at most 64 KiB;
  // the handler reads it with JobContext::meta(). Empty: none.
  std::string meta{};
};

// What happened to a job in a worker; delivered to WorkerOptions::on_event.
struct JobEvent {
  enum class Kind {
    kStarted,         // claimed and handed to a handler
    kCompleted,       // handler returned
    kRetryScheduled,  // attempt failed, due again later
    kFailed,          // failed for good (attempts exhausted, non-retryable, unknown type)
    kReleased,        // put back to Pending by a graceful stop, without using an attempt
    kFenced,          // the outcome was refused: the job was no longer this attempt's
    kCancelled,       // stopped by cancel() and stored as Cancelled
    kRescued,         // orphans given back by this worker's rescuer (id is nil; attempt = count)
    kSnoozed,         // the handler threw Snooze: due again later, the attempt given back
  };
  Kind kind{};
  JobId id{};
  std::string_view job_type{};
  int attempt = 0;
  std::string_view error{};  // for kRetryScheduled and kFailed
  std::string_view queue{};  // the job's queue, when the worker sets it (metrics labels)
  // kRetryScheduled and kSnoozed: when the job is due again.
  std::optional<TimePoint> run_at{};
};
// "started", "completed", "retry_scheduled", "failed", "released", "fenced", "cancelled",
// "rescued", "snoozed".
std::string_view to_string(JobEvent::Kind kind);

// Triggering execution through a message queue, as the original system did with Azure Storage
// Queues (docs/messaging.md). The database stays the source of truth: a worker still polls at
// its polling_interval, so a lost message delays a job but never strands it.
struct MessagingOptions {
  // The only transport so far: "AzureStorageQueues" (needs a build with ERGON_WITH_AZURE).
  std::string transport = "AzureStorageQueues";
  // "DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;QueueEndpoint=..." or
  // "UseDevelopmentStorage=true".
  std::string connection_string{};
  std::string queue_name = "ergon-jobs";  // the poison queue is "<queue_name>-poison"
  bool relay = true;    // publish the outbox (jobs that became due) from this worker
  bool consume = true;  // receive messages and run the jobs they name
  // A received message stays hidden this long; extended while its job runs.
  Duration visibility_timeout = std::chrono::seconds(30);
  // A message delivered more often than this is moved to the poison queue.
  int max_deliveries = 5;
  Duration receive_interval = std::chrono::milliseconds(200);  // an idle consumer's pace
  Duration relay_interval = std::chrono::milliseconds(200);    // an idle relay's pace
};

struct WorkerOptions {
  // Concurrent jobs in this process. 0: 5 x std::thread::hardware_concurrency().
  int max_concurrent_jobs = 0;
  // Jobs claimed beyond the free slots, held in a local queue so that a handler that returns
  // finds its next job without a round trip and claims come in batches (docs/performance.md).
  // They are Running in the database from the claim (the heartbeat keeps them; a stop gives
  // them back) and their timeout starts when they start. 0: claim only for free slots, the
  // lowest latency and the fairest share between workers; raise it for many short jobs.
  int prefetch_jobs = 0;
  // The queues this worker takes jobs from; empty: every queue. Paused queues never
  // (JobRunner::pause_queue).
  std::vector<std::string> queues{};
  // At most this many jobs of a queue held by this worker at once, by queue name
  // (docs/flow-control.md): {{"mail", 2}} keeps a slow mail provider from taking every slot.
  // Held: claimed and its handler not yet returned, so waiting in the local queue
  // (prefetch_jobs) or running (a handler past its timeout that ignores its stop token too). A
  // handler that returns frees its place at once, as it frees its slot, while its outcome
  // waits for the completer. 0: nothing from that queue. max_concurrent_jobs still bounds the
  // total, and the queues without a limit share the rest of the pool: a limit caps a queue, it
  // reserves no slot for it. Per worker; for a limit across workers, see
  // JobRunner::set_concurrency_limit (per job type).
  // Every limited queue must be listed in `queues`, which must then list every queue served:
  // a claim can name the queues to take from but not those to leave out, so a worker serving
  // every queue could not keep its unlimited claim away from a limited queue's jobs.
  std::map<std::string, int> queue_limits{};
  // A worker claims only jobs of the types it has handlers for: jobs of other types wait,
  // Pending, for a worker that handles them (`ergon stats` lists the types that no live worker
  // handles), so workers of different applications can share one database and its queues.
  // True: claim jobs of every type, as a catch-all, and fail those without a handler ("no
  // handler is registered") instead of letting them wait.
  bool claim_unhandled_types = false;
  // How often an idle worker looks for jobs enqueued by other processes. Jobs enqueued in this
  // process wake it at once.
  Duration polling_interval = std::chrono::seconds(1);
  // Kept from the original configuration; used by the scheduler and rescuer services.
  Duration scheduled_jobs_check_interval = std::chrono::minutes(1);
  Duration orphaned_jobs_check_interval = std::chrono::minutes(5);
  Duration orphaned_job_threshold = std::chrono::minutes(30);
  // On stop: running handlers get their stop token at once and this long to return; jobs still
  // running after it go back to Pending.
  Duration shutdown_timeout = std::chrono::seconds(30);
  // Retry back-off: base * 2^(attempt-1), capped at max, with "equal jitter" (half fixed,
  // half random) so that jobs failing together do not retry together.
  Duration retry_base_delay = std::chrono::seconds(1);
  Duration retry_max_delay = std::chrono::hours(1);
  int default_max_attempts = 10;
  // Minimum time between two progress writes of one job.
  Duration progress_interval = std::chrono::milliseconds(250);
  // Largest result a handler may return (JobContext::set_result), in bytes of JSON text. A
  // larger one fails the job for good, with the sizes in error_message. 1 byte to 64 MiB.
  int max_result_bytes = 1 << 20;
  // How often this worker renews the heartbeat of its process and of the jobs it runs, and
  // learns of cancellations from other processes. Keep it well below orphaned_job_threshold.
  Duration heartbeat_interval = std::chrono::seconds(5);
  // A job rescued from dead workers this many times is quarantined as Failed (a poison job).
  int poison_job_rescues = 3;
  // After its timeout, a handler gets its stop token, then this long before the attempt is
  // failed without it.
  Duration timeout_grace = std::chrono::seconds(5);
  // Finished jobs are deleted this long after they finished (zero: kept forever), in batches.
  Duration completed_jobs_retention = std::chrono::hours(24 * 7);
  Duration failed_jobs_retention = std::chrono::hours(24 * 30);
  Duration cancelled_jobs_retention = std::chrono::hours(24 * 7);
  Duration prune_interval = std::chrono::minutes(1);
  // Run the scheduler service (recurring jobs) in this worker. Any number of workers may run
  // it: each slot still fires once.
  bool run_scheduler = true;
  // A slot of a schedule with MisfirePolicy::kSkip is still run if seen within this period.
  Duration misfire_grace = std::chrono::minutes(1);
  // Identifies this process in jobs.worker_id. Empty: "<hostname>:<pid>". A random suffix is
  // always added so that two processes never share an id.
  std::string worker_name{};
  // Messaging transport (relay and/or consumer); none by default.
  std::optional<MessagingOptions> messaging{};
  // Called from worker threads after each transition is stored; must be thread-safe and quick.
  std::function<void(const JobEvent&)> on_event{};
  // Called by this worker's scheduler after it fired a recurring job's slot, with the lag (the
  // time it fired minus the slot's time); e.g. scheduler_lag_observer() of ergon/metrics.h.
  std::function<void(std::string_view schedule, Duration lag)> on_schedule_fired{};
};

}  // namespace ergon
