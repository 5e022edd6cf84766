// ergon/error.h — the one error model of Ergon.
//
// Every failure that Ergon reports to its caller is an ergon::Error: an exception carrying a
// stable numeric code (documented in docs/errors.md, never renumbered) and a message meant for
// a person. Handlers use the two exception types at the end of this file to steer retries.
// Thread-safety: plain values, safe to copy across threads.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ergon {

// Stable codes: add new ones at the end, never renumber.
enum class ErrorCode : int {
  kInvalidArgument = 1,  // a caller passed a value Ergon cannot accept (bad id, bad option)
  kNotFound = 2,         // the job, schedule or file named does not exist
  kStore = 3,            // the database failed (I/O, constraint, connection)
  kSchema = 4,           // the schema is missing, too old or too new: run `ergon migrate`
  kConfig = 5,           // a configuration file or value is invalid
  kNoTransaction = 6,    // a transactional call was given a connection with no open transaction
  kUnsupported = 7,      // the database URL names a backend this build does not have
};

std::string_view to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Thrown by a handler: the job fails at once, whatever attempts remain.
class NonRetryableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a handler: run this job again after `delay`, without using up an attempt (the job
// waits for something outside it: a rate-limited API, a file not there yet). The job goes back
// to Pending, due at now + delay.
class Snooze : public std::runtime_error {
 public:
  explicit Snooze(std::chrono::microseconds delay)
      : std::runtime_error("snoozed"),
        delay_(delay < std::chrono::microseconds::zero() ? std::chrono::microseconds::zero()
                                                         : delay) {}
  [[nodiscard]] std::chrono::microseconds delay() const noexcept { return delay_; }

 private:
  std::chrono::microseconds delay_;
};

// Thrown by JobContext::throw_if_stop_requested(): the attempt was abandoned because the worker
// asked it to stop. When the worker is shutting down, the job goes back to Pending without
// using up an attempt.
class JobStopped : public std::runtime_error {
 public:
  JobStopped() : std::runtime_error("job stopped: the worker asked it to stop") {}
};

}  // namespace ergon
