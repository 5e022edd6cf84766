// runtime/outcome.h — what the end of an attempt becomes, decided by pure functions.
//
// A handler returns, throws, throws NonRetryableError or Snooze, or has no handler at all;
// meanwhile the worker may have asked it to stop (cancel(), its timeout, a graceful stop).
// decide_outcome() turns what happened into what the completer stores and the event it then
// reports: Completed, a retry at back-off, Failed, Cancelled, a release or a snooze. The other
// ways an attempt ends (cancelled or given back before it started, failed after ignoring its
// timeout) have their functions here too, so that every transition out of Running that a worker
// writes is decided in this file, and so is the attempt's row in the job's history
// (Outcome::attempt: none for a job that never started). Nothing here reads a clock, a random
// source or the database: the executor gathers the inputs, and tests call these directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ergon/options.h"
#include "store/store.h"

namespace ergon::runtime {

// What the handler did.
struct HandlerResult {
  enum class Kind {
    kReturned,                 // returned normally
    kCommittedInTransaction,   // returned; the transaction that completed the job committed
    kTransactionNotCommitted,  // returned; that transaction did not commit, or could not be
                               // checked (error says which): the attempt failed
    kThrew,                    // threw anything else: retryable; error is "<type>: <what>"
    kNonRetryable,             // threw NonRetryableError: failed for good
    kSnoozed,                  // threw Snooze: due again after `snooze`, no attempt used
    kNoHandler,                // no handler is registered for the type: failed for good
  };
  Kind kind = Kind::kReturned;
  std::string error;  // for the kinds that fail
  Duration snooze{};  // kSnoozed
};

// What the worker had asked of the attempt by the time its handler returned.
struct AttemptFlags {
  bool cancel_requested = false;      // cancel() reached this worker
  std::optional<Duration> timed_out;  // set to the attempt's timeout once that passed
  bool stopped_by_shutdown = false;   // its stop token fired because the worker is stopping
};

struct OutcomeInput {
  HandlerResult result;
  AttemptFlags flags;
  int attempt = 1;  // as the handler saw it
  int max_attempts = 1;
  TimePoint now;
  TimePoint run_at;  // when the job was due: a release puts it back there
  Duration retry_base_delay = std::chrono::seconds(1);
  Duration retry_max_delay = std::chrono::hours(1);
  double unit_random = 0;                 // in [0, 1): the retry's jitter (runtime/backoff.h)
  std::optional<std::string> job_result;  // what the handler set (JobContext::set_result)
  std::size_t max_result_bytes = std::size_t{1} << 20;  // WorkerOptions::max_result_bytes
};

struct Outcome {
  bool write = true;  // false: nothing left to store (completed in the handler's transaction)
  JobStatus status = JobStatus::kCompleted;
  TimePoint run_at{};                        // kPending: due again then, unless keep_run_at
  bool keep_run_at = false;                  // kPending: at the row's own run_at (its old place)
  bool give_back_attempt = false;            // a release or a snooze uses no attempt
  std::optional<std::string> error_message;  // stored when set, kept otherwise
  JobEvent::Kind event = JobEvent::Kind::kCompleted;
  std::string event_error;            // the event's error text
  std::optional<std::string> result;  // kCompleted: the handler's result, if it set one
  // The attempt's row in the job's history; unset: none (the job never started).
  std::optional<AttemptOutcome> attempt;
};

// The error of a result past the limit: "result too large: N bytes, the limit is M (...)".
[[nodiscard]] std::string result_too_large(std::size_t size, std::size_t limit);

// The outcome of an attempt whose handler ran (or had none).
[[nodiscard]] Outcome decide_outcome(const OutcomeInput& in);

// A job cancelled while it waited in the local queue: it never starts.
[[nodiscard]] Outcome cancelled_before_start();

// Given back to Pending at its old place in the queue, with the attempt it used: a graceful
// stop, a prefetched job a stop never started, a claim whose reply was lost.
[[nodiscard]] Outcome released(TimePoint run_at);

// Failed without its handler, which ignored its stop token for the grace after its timeout;
// retried at back-off while attempts remain.
[[nodiscard]] Outcome abandoned_after_timeout(Duration timeout, const OutcomeInput& in);

// What the store is asked to write for `o` (o.write) of the attempt claimed with `lease`.
[[nodiscard]] JobFinishParams finish_params(const Outcome& o, const JobId& id, int lease,
                                            std::string_view worker_id, TimePoint now);

// A value in [0, 1) from a generator of the calling thread (no lock on the executors' path).
[[nodiscard]] double unit_random();

}  // namespace ergon::runtime
