// What the end of an attempt becomes (runtime/outcome.h), branch by branch: the pure functions,
// with no store, clock or thread.
#include "runtime/outcome.h"

#include <gtest/gtest.h>

#include "runtime/backoff.h"
#include "support/test_support.h"

namespace ergon::runtime {
namespace {

using namespace std::chrono_literals;
using Kind = HandlerResult::Kind;
using Event = JobEvent::Kind;

class OutcomeTest : public ::testing::Test {
 protected:
  // Attempt 2 of 3, due an hour ago, now at the test epoch; half the jitter.
  OutcomeInput input(Kind kind, std::string error = {}) {
    OutcomeInput in;
    in.result = {kind, std::move(error)};
    in.attempt = 2;
    in.max_attempts = 3;
    in.now = now_;
    in.run_at = now_ - 1h;
    in.retry_base_delay = 10s;
    in.retry_max_delay = 1h;
    in.unit_random = 0.5;
    return in;
  }
  // The retry's due time for `in`, as runtime/backoff.h computes it.
  static TimePoint retry_at(const OutcomeInput& in) {
    return in.now + retry_delay(in.attempt, in.retry_base_delay, in.retry_max_delay, 0.5);
  }
  static void expect_failed(const Outcome& o, const std::string& error) {
    EXPECT_TRUE(o.write);
    EXPECT_EQ(o.status, JobStatus::kFailed);
    EXPECT_EQ(o.error_message, error);
    EXPECT_FALSE(o.give_back_attempt);
    EXPECT_EQ(o.event, Event::kFailed);
    EXPECT_EQ(o.event_error, error);
  }
  static void expect_released(const Outcome& o, TimePoint run_at) {
    EXPECT_TRUE(o.write);
    EXPECT_EQ(o.status, JobStatus::kPending);
    EXPECT_EQ(o.run_at, run_at);
    EXPECT_TRUE(o.keep_run_at);
    EXPECT_TRUE(o.give_back_attempt);
    EXPECT_FALSE(o.error_message);
    EXPECT_EQ(o.event, Event::kReleased);
    EXPECT_EQ(o.event_error, "");
  }

  TimePoint now_ = testing::test_epoch();
};

TEST_F(OutcomeTest, AReturnedHandlerCompletesItsJobWhateverWasAskedOfIt) {
  for (int flags = 0; flags < 8; ++flags) {
    OutcomeInput in = input(Kind::kReturned);
    in.flags.cancel_requested = (flags & 1) != 0;
    if ((flags & 2) != 0) in.flags.timed_out = 10s;
    in.flags.stopped_by_shutdown = (flags & 4) != 0;
    Outcome o = decide_outcome(in);
    EXPECT_TRUE(o.write) << flags;
    EXPECT_EQ(o.status, JobStatus::kCompleted) << flags;
    EXPECT_FALSE(o.error_message) << flags;  // the last attempt's error is kept
    EXPECT_FALSE(o.give_back_attempt) << flags;
    EXPECT_EQ(o.event, Event::kCompleted) << flags;
    EXPECT_EQ(o.event_error, "") << flags;
  }
}

TEST_F(OutcomeTest, ACommittedTransactionLeavesNothingToWrite) {
  OutcomeInput in = input(Kind::kCommittedInTransaction);
  in.flags.cancel_requested = true;
  Outcome o = decide_outcome(in);
  EXPECT_FALSE(o.write);
  EXPECT_EQ(o.event, Event::kCompleted);
  EXPECT_EQ(o.event_error, "");
}

// The handler returned, so neither a cancel, a timeout nor a stop changes what the failed
// transaction means: the attempt failed like any other.
TEST_F(OutcomeTest, ATransactionThatDidNotCommitFailsTheAttemptWhateverWasAskedOfIt) {
  OutcomeInput in = input(Kind::kTransactionNotCommitted, "did not commit");
  in.flags = {true, 10s, true};
  Outcome o = decide_outcome(in);
  EXPECT_EQ(o.status, JobStatus::kPending);
  EXPECT_EQ(o.run_at, retry_at(in));
  EXPECT_EQ(o.error_message, "did not commit");
  EXPECT_EQ(o.event, Event::kRetryScheduled);
  EXPECT_EQ(o.event_error, "did not commit");
  in.attempt = 3;
  expect_failed(decide_outcome(in), "did not commit");
}

TEST_F(OutcomeTest, AThrowIsRetriedAtBackoffWhileAttemptsRemain) {
  OutcomeInput in = input(Kind::kThrew, "std::runtime_error: boom");
  Outcome o = decide_outcome(in);
  EXPECT_TRUE(o.write);
  EXPECT_EQ(o.status, JobStatus::kPending);
  EXPECT_EQ(o.run_at, retry_at(in));
  EXPECT_EQ(o.run_at, now_ + 15s);  // attempt 2: 20 s, equal jitter at one half
  EXPECT_FALSE(o.keep_run_at);
  EXPECT_FALSE(o.give_back_attempt);
  EXPECT_EQ(o.error_message, "std::runtime_error: boom");
  EXPECT_EQ(o.event, Event::kRetryScheduled);
  EXPECT_EQ(o.event_error, "std::runtime_error: boom");
}

TEST_F(OutcomeTest, AThrowOnTheLastAttemptFailsTheJob) {
  OutcomeInput in = input(Kind::kThrew, "std::runtime_error: boom");
  in.attempt = 3;
  expect_failed(decide_outcome(in), "std::runtime_error: boom");
  in.attempt = 4;  // past the limit (lowered meanwhile): failed too
  expect_failed(decide_outcome(in), "std::runtime_error: boom");
}

TEST_F(OutcomeTest, AThrowAfterTheTimeoutSaysSo) {
  OutcomeInput in = input(Kind::kThrew, "ergon::StopRequested: stop");
  in.flags.timed_out = 10s;
  Outcome o = decide_outcome(in);
  EXPECT_EQ(o.status, JobStatus::kPending);
  EXPECT_EQ(o.error_message, "timed out after 00:00:10 (ergon::StopRequested: stop)");
  EXPECT_EQ(o.event_error, *o.error_message);
}

// A handler that gives up because the worker stops is not at fault: its job goes back without
// using the attempt, at its old place.
TEST_F(OutcomeTest, AThrowDuringAGracefulStopReleasesTheJob) {
  OutcomeInput in = input(Kind::kThrew, "ergon::StopRequested: stop");
  in.flags.stopped_by_shutdown = true;
  expect_released(decide_outcome(in), in.run_at);
  in.attempt = 3;  // even on its last attempt
  expect_released(decide_outcome(in), in.run_at);
  in.flags.timed_out = 10s;  // and after its timeout
  expect_released(decide_outcome(in), in.run_at);
}

TEST_F(OutcomeTest, ACancelledAttemptEndsCancelledWhateverItThrew) {
  for (Kind kind : {Kind::kThrew, Kind::kNonRetryable, Kind::kNoHandler}) {
    OutcomeInput in = input(kind, "X: stopped");
    in.flags.cancel_requested = true;
    in.flags.timed_out = 10s;             // no "timed out" in the message
    in.flags.stopped_by_shutdown = true;  // and no release
    Outcome o = decide_outcome(in);
    EXPECT_TRUE(o.write);
    EXPECT_EQ(o.status, JobStatus::kCancelled);
    EXPECT_EQ(o.error_message, "cancelled (X: stopped)");
    EXPECT_FALSE(o.give_back_attempt);
    EXPECT_EQ(o.event, Event::kCancelled);
    EXPECT_EQ(o.event_error, "X: stopped");
  }
  OutcomeInput snoozed = input(Kind::kSnoozed);
  snoozed.result.snooze = 30s;
  snoozed.flags.cancel_requested = true;
  Outcome o = decide_outcome(snoozed);
  EXPECT_EQ(o.status, JobStatus::kCancelled);
  EXPECT_EQ(o.error_message, "cancelled ()");
}

TEST_F(OutcomeTest, ANonRetryableErrorFailsAtOnceEvenWhenStopping) {
  OutcomeInput in = input(Kind::kNonRetryable, "ergon::NonRetryableError: bad input");
  in.attempt = 1;
  in.flags.timed_out = 10s;
  in.flags.stopped_by_shutdown = true;
  // At once (attempts were left), without a timeout prefix, and not given back.
  expect_failed(decide_outcome(in), "ergon::NonRetryableError: bad input");
}

TEST_F(OutcomeTest, AJobWithoutAHandlerFailsAtOnce) {
  OutcomeInput in = input(Kind::kNoHandler, "no handler is registered for job type 'x'");
  in.attempt = 1;
  expect_failed(decide_outcome(in), "no handler is registered for job type 'x'");
}

TEST_F(OutcomeTest, ASnoozeIsDueAgainAfterItsDelayWithoutUsingTheAttempt) {
  OutcomeInput in = input(Kind::kSnoozed);
  in.result.snooze = 30s;
  in.attempt = 3;  // on its last attempt: still not failed
  in.flags.timed_out = 10s;
  in.flags.stopped_by_shutdown = true;
  Outcome o = decide_outcome(in);
  EXPECT_EQ(o.status, JobStatus::kPending);
  EXPECT_EQ(o.run_at, now_ + 30s);
  EXPECT_FALSE(o.keep_run_at);
  EXPECT_TRUE(o.give_back_attempt);
  EXPECT_FALSE(o.error_message);  // the last error is kept
  EXPECT_EQ(o.event, Event::kSnoozed);
  EXPECT_EQ(o.event_error, "");
}

TEST_F(OutcomeTest, ASnoozeAtTheEndOfTimeSaturates) {
  OutcomeInput in = input(Kind::kSnoozed);
  in.result.snooze = Duration::max();
  EXPECT_EQ(decide_outcome(in).run_at, TimePoint::max());
}

TEST_F(OutcomeTest, TheEndsOfAttemptsThatNeverRanOrRanTooLong) {
  Outcome c = cancelled_before_start();
  EXPECT_EQ(c.status, JobStatus::kCancelled);
  EXPECT_EQ(c.error_message, "cancelled before it started");
  EXPECT_EQ(c.event, Event::kCancelled);
  EXPECT_EQ(c.event_error, "cancelled");

  expect_released(released(now_ - 1h), now_ - 1h);

  OutcomeInput in = input(Kind::kThrew);
  Outcome t = abandoned_after_timeout(10s, in);
  EXPECT_EQ(t.status, JobStatus::kPending);
  EXPECT_EQ(t.run_at, retry_at(in));
  EXPECT_EQ(t.error_message, "timed out after 00:00:10 and did not stop within the grace period");
  EXPECT_EQ(t.event, Event::kRetryScheduled);
  EXPECT_EQ(t.event_error, *t.error_message);
  in.attempt = 3;
  expect_failed(abandoned_after_timeout(10s, in),
                "timed out after 00:00:10 and did not stop within the grace period");
}

TEST_F(OutcomeTest, FinishParamsCarryTheOutcomeAndTheAttemptsFencingToken) {
  OutcomeInput in = input(Kind::kThrew, "E: e");
  Outcome o = decide_outcome(in);
  JobId id = JobId::generate(now_);
  JobFinishParams p = finish_params(o, id, 7, "worker-1", now_);
  EXPECT_EQ(p.id, id);
  EXPECT_EQ(p.attempt, 7);  // the lease
  EXPECT_EQ(p.worker_id, "worker-1");
  EXPECT_EQ(p.status, JobStatus::kPending);
  EXPECT_EQ(p.now, now_);
  EXPECT_EQ(p.run_at, o.run_at);
  EXPECT_FALSE(p.keep_run_at);
  EXPECT_FALSE(p.give_back_attempt);
  EXPECT_EQ(p.error_message, "E: e");
  EXPECT_FALSE(p.progress_message);
  JobFinishParams r = finish_params(released(in.run_at), id, 7, "worker-1", now_);
  EXPECT_TRUE(r.keep_run_at);
  EXPECT_TRUE(r.give_back_attempt);
  EXPECT_FALSE(r.error_message);
}

// Every attempt that started leaves a row in the job's history, saying how it ended; a job that
// never started leaves none.
TEST_F(OutcomeTest, EachEndOfAStartedAttemptNamesItsRowInTheHistory) {
  using A = AttemptOutcome;
  EXPECT_EQ(decide_outcome(input(Kind::kReturned)).attempt, A::kCompleted);
  EXPECT_EQ(decide_outcome(input(Kind::kThrew, "E: e")).attempt, A::kRetried);
  OutcomeInput last = input(Kind::kThrew, "E: e");
  last.attempt = 3;
  EXPECT_EQ(decide_outcome(last).attempt, A::kFailed);
  EXPECT_EQ(decide_outcome(input(Kind::kNonRetryable, "E: e")).attempt, A::kFailed);
  EXPECT_EQ(decide_outcome(input(Kind::kNoHandler, "none")).attempt, A::kFailed);
  EXPECT_EQ(decide_outcome(input(Kind::kTransactionNotCommitted, "tx")).attempt, A::kRetried);
  OutcomeInput timed_out = input(Kind::kThrew, "E: e");
  timed_out.flags.timed_out = 10s;
  EXPECT_EQ(decide_outcome(timed_out).attempt, A::kTimedOut);
  OutcomeInput cancelled = input(Kind::kThrew, "E: e");
  cancelled.flags.cancel_requested = true;
  EXPECT_EQ(decide_outcome(cancelled).attempt, A::kCancelled);
  OutcomeInput stopping = input(Kind::kThrew, "E: e");
  stopping.flags.stopped_by_shutdown = true;
  EXPECT_EQ(decide_outcome(stopping).attempt, A::kReleased);
  OutcomeInput snooze = input(Kind::kSnoozed);
  snooze.result.snooze = 1min;
  EXPECT_EQ(decide_outcome(snooze).attempt, A::kSnoozed);
  EXPECT_EQ(abandoned_after_timeout(10s, input(Kind::kThrew)).attempt, A::kTimedOut);
  // Never started: no row.
  EXPECT_FALSE(cancelled_before_start().attempt);
  EXPECT_FALSE(released(now_).attempt);
  EXPECT_FALSE(decide_outcome(input(Kind::kCommittedInTransaction)).attempt);
  // finish_params passes it on.
  JobFinishParams p = finish_params(decide_outcome(timed_out), JobId::generate(now_), 2, "w", now_);
  EXPECT_EQ(p.attempt_outcome, A::kTimedOut);
}

TEST_F(OutcomeTest, AResultGoesWithTheCompletionUpToItsLimit) {
  OutcomeInput in = input(Kind::kReturned);
  in.job_result = R"({"n":1})";
  in.max_result_bytes = 7;
  Outcome o = decide_outcome(in);
  EXPECT_EQ(o.status, JobStatus::kCompleted);
  EXPECT_EQ(o.result, R"({"n":1})");
  EXPECT_EQ(finish_params(o, JobId::generate(now_), 2, "w", now_).result, R"({"n":1})");
  // One byte more fails the job for good, saying why; the result is not stored.
  in.max_result_bytes = 6;
  Outcome big = decide_outcome(in);
  expect_failed(big,
                "result too large: 7 bytes, the limit is 6 (WorkerOptions::max_result_bytes, "
                "MaxResultBytes)");
  EXPECT_FALSE(big.result);
  EXPECT_EQ(big.attempt, AttemptOutcome::kFailed);
  // A result set by a handler that then threw is not kept.
  OutcomeInput threw = input(Kind::kThrew, "E: e");
  threw.job_result = "1";
  EXPECT_FALSE(decide_outcome(threw).result);
}

TEST(UnitRandom, StaysInTheHalfOpenUnitInterval) {
  for (int i = 0; i < 10000; ++i) {
    double r = unit_random();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
  }
}

}  // namespace
}  // namespace ergon::runtime
