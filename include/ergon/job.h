// ergon/job.h — defining job types and their handlers.
//
// A job type is a plain struct with a stable name and a JSON mapping:
//
//   struct SendEmailJob {
//     static constexpr std::string_view kJobType = "send_email";  // stored in jobs.job_type
//     std::string recipient_email, subject, body;
//   };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SendEmailJob, recipient_email, subject, body)
//
// The name, not the C++ type, identifies the job in the database, so renaming the struct or
// moving it to another namespace never strands stored jobs. A handler implements
// JobHandler<T>::handle(); it reports progress and watches for a stop request through the
// JobContext, and fails by throwing (any exception: retried with back-off; NonRetryableError:
// failed at once). A handler may return a result: JobHandler<T, R> returns an R (anything
// nlohmann can serialise), or any handler calls JobContext::set_result; it is stored with the
// completion and read back with JobRunner::result or JobRunner::wait.
//
// Ownership and threads: a HandlerRegistry is filled before a worker starts and is read-only
// afterwards; the worker calls handlers from several threads at once, so a handler must be
// safe to call concurrently. A JobContext belongs to one attempt and one thread.
#pragma once

#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ergon/error.h"
#include "ergon/types.h"

struct sqlite3;  // <sqlite3.h>
struct pg_conn;  // PGconn of <libpq-fe.h>

namespace ergon {

// What Ergon needs of a job type: a stable name and a JSON mapping (to_json / from_json found
// by nlohmann, e.g. through NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE).
template <class T>
concept JobType = requires {
  { T::kJobType } -> std::convertible_to<std::string_view>;
}
&&requires(const T& job, nlohmann::json& j) {
  nlohmann::json(job);
  j.get<T>();
};

// The handler's view of the attempt it is running.
class JobContext {
 public:
  virtual ~JobContext() = default;

  [[nodiscard]] virtual JobId job_id() const = 0;
  [[nodiscard]] virtual std::string_view job_type() const = 0;
  [[nodiscard]] virtual int attempt() const = 0;       // 1 for the first attempt
  [[nodiscard]] virtual int max_attempts() const = 0;  // after this many, the job fails

  // Requested when the worker shuts down, the attempt times out, the job is cancelled, or the
  // job was taken away from this worker (its lease expired and it was rescued).
  [[nodiscard]] virtual std::stop_token stop_token() const = 0;
  [[nodiscard]] bool stop_requested() const { return stop_token().stop_requested(); }
  // Throws JobStopped if a stop was requested.
  void throw_if_stop_requested() const {
    if (stop_requested()) throw JobStopped();
  }

  // Reports progress. `percent` is clamped to 0..100 (unset: a message without a percent) and
  // `message` cut to 1000 bytes. Writes are throttled (at most one per 250 ms per job by
  // default); the last report of an attempt is always written. A failed progress write is
  // logged and never fails the job.
  virtual void report_progress(std::string_view message, std::optional<int> percent) = 0;
  void report_progress(std::string_view message) { report_progress(message, std::nullopt); }

  // The job's result, stored when the handler returns (a later call replaces an earlier one).
  // Throws Error(kInvalidArgument) for a value that is not valid UTF-8 JSON text; a result
  // larger than WorkerOptions::max_result_bytes fails the job when the handler returns.
  void set_result(const nlohmann::json& result) {
    std::string text;
    try {
      text = result.dump();
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInvalidArgument, std::string("the result is not JSON: ") + e.what());
    }
    set_result_json(std::move(text));
  }
  // The same, given as JSON text (checked).
  virtual void set_result_json(std::string json);

  // JobOptions::tags and JobOptions::meta (a JSON object; null when none) of the job.
  [[nodiscard]] virtual const std::vector<std::string>& tags() const;
  [[nodiscard]] virtual nlohmann::json meta() const;

  // Transactional completion: marks this attempt's job Completed with `conn`, a connection of
  // the handler's own to the job's database, inside the handler's open transaction, so that
  // the handler's writes and the completion commit together (effectively once for work done in
  // that database). Call it just before committing. If the transaction rolls back or is never
  // committed, the attempt fails normally when the handler returns. Throws Error(kNoTransaction)
  // without an open transaction, Error(kUnsupported) for the other backend's connection, and
  // Error(kStore) when the job is no longer this attempt's (roll back then).
  // SQLite: the transaction holds the database's write lock; keep it short.
  virtual void complete_in_transaction(sqlite3* conn);
  virtual void complete_in_transaction(pg_conn* conn);
};

// R: what handle() returns, stored as the job's result (void: none).
template <JobType T, class R = void>
class JobHandler {
 public:
  virtual ~JobHandler() = default;
  virtual R handle(const T& job, JobContext& context) = 0;
};

// Thrown (internally) when job_data cannot be decoded as the job type: the job fails at once.
class JobDataError : public NonRetryableError {
 public:
  using NonRetryableError::NonRetryableError;
};

// Per-type settings. Unset values fall back to the worker's defaults.
struct JobTypeOptions {
  std::optional<int> max_attempts{};
  // Longest time one attempt may run: then the stop token fires, and after the worker's
  // timeout_grace the attempt fails. A job's own timeout wins.
  std::optional<Duration> timeout{};
};

// Maps job type names to handlers. No runtime type names and no reflection: each entry is
// registered explicitly, and its invoker decodes job_data with the type's JSON mapping.
class HandlerRegistry {
 public:
  // Runs one attempt: decodes `job_data` and calls the handler. Throws what the handler throws,
  // or JobDataError when job_data does not decode.
  using Invoker = std::function<void(std::string_view job_data, JobContext& context)>;

  struct Entry {
    Invoker invoke;
    JobTypeOptions options;
  };

  // A JobHandler<T, R> (or any class with a handle(const T&, JobContext&)).
  template <JobType T, class H>
  requires requires(H& h, const T& job, JobContext& ctx) { h.handle(job, ctx); }
  void add(std::shared_ptr<H> handler, JobTypeOptions options = {}) {
    if (!handler) throw Error(ErrorCode::kInvalidArgument, "null handler for job type");
    add_raw(
        std::string(T::kJobType),
        [h = std::move(handler)](std::string_view data, JobContext& ctx) {
          call_and_keep(ctx, [&] { return h->handle(decode<T>(data), ctx); });
        },
        options);
  }

  // A handler given as a callable `R(const T&, JobContext&)` (R void: no result).
  template <JobType T, class F>
  requires std::invocable<F&, const T&, JobContext&>
  void add(F fn, JobTypeOptions options = {}) {
    add_raw(
        std::string(T::kJobType),
        [fn = std::move(fn)](std::string_view data, JobContext& ctx) mutable {
          call_and_keep(ctx, [&] { return fn(decode<T>(data), ctx); });
        },
        options);
  }

  // A handler that works on the raw JSON text (used for command handlers). Throws
  // Error(kInvalidArgument) if `job_type` is empty or already registered.
  void add_raw(std::string job_type, Invoker invoke, JobTypeOptions options = {});

  // An execution middleware: wraps the handler of every attempt it applies to. It calls next()
  // once to run what it wraps (the next middleware, at last the handler), and may do work
  // before and after (a logging context, a span, timing, per-tenant setup). An exception from
  // next() is the handler's failure: the middleware sees it, may rethrow it or throw another
  // (translating it: NonRetryableError fails the job for good, Snooze snoozes it), or swallow
  // it (the attempt then completes). A middleware that throws fails the attempt as a handler
  // would; one that does not call next() completes it without running the handler.
  using Middleware = std::function<void(JobContext& context, const std::function<void()>& next)>;
  // Adds `middleware` around the handlers of every job type (job_type empty) or of one type's,
  // outside the ones added after it: the first added is the outermost. Not thread-safe: add
  // them before the registry goes to a worker.
  void use(Middleware middleware, std::string job_type = {});
  // Runs one attempt of `entry` (found for context.job_type()) inside the middleware that apply.
  void run(const Entry& entry, std::string_view job_data, JobContext& context) const;

  [[nodiscard]] const Entry* find(std::string_view job_type) const;
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  // The registered job types, sorted.
  [[nodiscard]] std::vector<std::string> types() const;

  template <JobType T>
  static T decode(std::string_view job_data) {
    try {
      return nlohmann::json::parse(job_data).get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw JobDataError("job_data does not decode as '" + std::string(T::kJobType) +
                         "': " + e.what());
    }
  }

 private:
  // Calls `call`; what it returns, unless void, becomes the job's result.
  template <class Call>
  static void call_and_keep(JobContext& ctx, Call&& call) {
    using R = std::invoke_result_t<Call&>;
    if constexpr (std::is_void_v<R>) {
      call();
    } else {
      ctx.set_result(nlohmann::json(call()));
    }
  }

  std::map<std::string, Entry, std::less<>> entries_;
  std::vector<std::pair<std::string, Middleware>> middleware_;  // (job type or "", middleware)
};

}  // namespace ergon
