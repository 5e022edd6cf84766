#include "runtime/outcome.h"

#include <random>

#include "ergon/config.h"
#include "ergon/time_range.h"
#include "runtime/backoff.h"

namespace ergon::runtime {
namespace {

using Kind = HandlerResult::Kind;

// A failed attempt: retried at back-off while attempts remain, else failed for good. The
// attempt's row says kTimedOut for one that ran past its timeout.
Outcome retry_or_fail(const OutcomeInput& in, std::string error, bool timed_out = false) {
  Outcome o;
  o.error_message = error;
  o.event_error = std::move(error);
  if (in.attempt >= in.max_attempts) {
    o.status = JobStatus::kFailed;
    o.event = JobEvent::Kind::kFailed;
    o.attempt = AttemptOutcome::kFailed;
  } else {
    o.status = JobStatus::kPending;
    o.run_at = saturating_add(
        in.now, retry_delay(in.attempt, in.retry_base_delay, in.retry_max_delay, in.unit_random));
    o.event = JobEvent::Kind::kRetryScheduled;
    o.attempt = AttemptOutcome::kRetried;
  }
  if (timed_out) o.attempt = AttemptOutcome::kTimedOut;
  return o;
}

Outcome failed(std::string error) {
  Outcome o;
  o.status = JobStatus::kFailed;
  o.error_message = error;
  o.event = JobEvent::Kind::kFailed;
  o.event_error = std::move(error);
  o.attempt = AttemptOutcome::kFailed;
  return o;
}

Outcome completed(const OutcomeInput& in) {
  if (in.job_result && in.job_result->size() > in.max_result_bytes) {
    // Deterministic for most handlers, so not worth another attempt.
    return failed(result_too_large(in.job_result->size(), in.max_result_bytes));
  }
  Outcome o;
  o.result = in.job_result;
  o.attempt = AttemptOutcome::kCompleted;
  return o;
}

}  // namespace

Outcome decide_outcome(const OutcomeInput& in) {
  const HandlerResult& r = in.result;
  switch (r.kind) {
    case Kind::kReturned:
      // A handler that returns completes its job, whatever was asked of it meanwhile.
      return completed(in);
    case Kind::kCommittedInTransaction: {
      Outcome o;
      o.write = false;
      return o;
    }
    case Kind::kTransactionNotCommitted:
      // The handler returned: neither a cancel nor a stop turns this failure into anything else.
      return retry_or_fail(in, r.error);
    case Kind::kThrew:
    case Kind::kNonRetryable:
    case Kind::kSnoozed:
    case Kind::kNoHandler:
      break;
  }
  std::string error = r.error;
  if (in.flags.cancel_requested) {
    // Whatever the handler threw once it was told to stop, the job ends Cancelled.
    Outcome o;
    o.status = JobStatus::kCancelled;
    o.error_message = "cancelled (" + error + ")";
    o.event = JobEvent::Kind::kCancelled;
    o.event_error = std::move(error);
    o.attempt = AttemptOutcome::kCancelled;
    return o;
  }
  const bool timed_out = in.flags.timed_out && r.kind == Kind::kThrew;
  if (timed_out) {
    error = "timed out after " + format_timespan(*in.flags.timed_out) + " (" + error + ")";
  }
  // A handler that gives up because the worker stops is not at fault: the job goes back.
  if (r.kind == Kind::kThrew && in.flags.stopped_by_shutdown) {
    Outcome o = released(in.run_at);
    o.attempt = AttemptOutcome::kReleased;
    return o;
  }
  switch (r.kind) {
    case Kind::kNonRetryable:
    case Kind::kNoHandler:
      return failed(std::move(error));
    case Kind::kSnoozed: {
      // A release to a later time: the attempt is given back, the job is due at now + delay.
      Outcome o;
      o.status = JobStatus::kPending;
      o.run_at = saturating_add(in.now, r.snooze);
      o.give_back_attempt = true;
      o.event = JobEvent::Kind::kSnoozed;
      o.attempt = AttemptOutcome::kSnoozed;
      return o;
    }
    default:
      return retry_or_fail(in, std::move(error), timed_out);
  }
}

Outcome cancelled_before_start() {
  Outcome o;
  o.status = JobStatus::kCancelled;
  o.error_message = "cancelled before it started";
  o.event = JobEvent::Kind::kCancelled;
  o.event_error = "cancelled";
  return o;
}

Outcome released(TimePoint run_at) {
  Outcome o;
  o.status = JobStatus::kPending;
  o.run_at = run_at;  // for the local wake-up; the row keeps its own
  o.keep_run_at = true;
  // The attempt is given back; the fencing token (the lease) keeps growing.
  o.give_back_attempt = true;
  o.event = JobEvent::Kind::kReleased;
  return o;
}

Outcome abandoned_after_timeout(Duration timeout, const OutcomeInput& in) {
  return retry_or_fail(
      in,
      "timed out after " + format_timespan(timeout) + " and did not stop within the grace period",
      true);
}

std::string result_too_large(std::size_t size, std::size_t limit) {
  std::string text = "result too large: ";
  text += std::to_string(size);
  text += " bytes, the limit is ";
  text += std::to_string(limit);
  text += " (WorkerOptions::max_result_bytes, MaxResultBytes)";
  return text;
}

JobFinishParams finish_params(const Outcome& o, const JobId& id, int lease,
                              std::string_view worker_id, TimePoint now) {
  JobFinishParams fin;
  fin.id = id;
  fin.attempt = lease;
  fin.worker_id = worker_id;
  fin.status = o.status;
  fin.now = now;
  fin.run_at = o.run_at;
  fin.keep_run_at = o.keep_run_at;
  fin.give_back_attempt = o.give_back_attempt;
  fin.error_message = o.error_message;
  fin.result = o.result;
  fin.attempt_outcome = o.attempt;
  return fin;
}

double unit_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace ergon::runtime
