// runtime/executor.h — the pool that runs attempts.
//
// Each executor thread takes the next job of the local queue (JobSlots), runs its handler with
// an AttemptContext, and hands the outcome (decided by runtime/outcome.h) to the completer; its
// slot is free as soon as the handler returns. A job cancelled or lost while it waited never
// starts, and once a stop drains the pool a job that has not started goes back untouched.
//
// Thread-safety: run_once() from any thread; start()/stop() not concurrently.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "ergon/job.h"
#include "runtime/completer.h"
#include "runtime/events.h"
#include "runtime/job_slots.h"
#include "runtime/outcome.h"

namespace ergon::runtime {

struct ExecutorOptions {
  int threads = 1;  // WorkerOptions::max_concurrent_jobs
  Duration progress_interval = std::chrono::milliseconds(250);
  Duration retry_base_delay = std::chrono::seconds(1);
  Duration retry_max_delay = std::chrono::hours(1);
  int max_result_bytes = 1 << 20;  // WorkerOptions::max_result_bytes
  void validate() const;
};

class Executor {
 public:
  // `handlers` must outlive the executor.
  Executor(Store& store, std::string worker_id, const HandlerRegistry& handlers, JobSlots& slots,
           Completer& completer, const Events& events, ExecutorOptions options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Takes the next job of the local queue, if any, and runs (or settles) it on this thread;
  // false when the queue is empty.
  bool run_once();
  void start();
  // Stops the pool once the local queue is empty and waits for the handlers to return (they
  // were asked to stop by JobSlots::drain).
  void stop();

 private:
  void handle(JobSlots::Next next);
  void run_attempt(const JobRecord& job, AttemptContext& ctx);
  HandlerResult invoke(const JobRecord& job, AttemptContext& ctx) const;
  HandlerResult check_transaction(const JobRecord& job) const;

  Store& store_;
  Clock& clock_;
  const std::string worker_id_;
  const HandlerRegistry& handlers_;
  JobSlots& slots_;
  Completer& completer_;
  const Events& events_;
  const ExecutorOptions options_;
  std::vector<std::thread> threads_;
};

}  // namespace ergon::runtime
