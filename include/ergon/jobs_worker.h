// ergon/jobs_worker.h — the worker that claims and runs jobs.
//
//   ergon::HandlerRegistry handlers;
//   handlers.add<SendEmailJob>(std::make_shared<SendEmailJobHandler>());
//   ergon::JobsWorker worker(store, std::move(handlers), options);
//   worker.start();   ...   worker.stop();
//
// One producer thread claims due jobs in batches of at most the free slots (so a saturated
// worker claims nothing and sleeps), and a pool of max_concurrent_jobs threads runs them.
// An idle producer sleeps until a job is enqueued in this process, until the earliest retry it
// scheduled is due, or until the polling interval passes (jobs enqueued by other processes).
//
// stop() is graceful: it stops claiming, requests stop on every running handler's stop token,
// waits up to shutdown_timeout for them to return, then puts the jobs still running back to
// Pending (without using up an attempt) and waits for the handler threads to end. No job is
// left Running by a clean stop.
//
// Thread-safety: start() and stop() may be called from any thread, not concurrently with each
// other. The destructor calls stop().
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "ergon/job.h"
#include "ergon/options.h"
#include "ergon/store.h"

namespace ergon {

class JobsWorker {
 public:
  JobsWorker(std::shared_ptr<Store> store, HandlerRegistry handlers, WorkerOptions options = {});
  ~JobsWorker();
  JobsWorker(const JobsWorker&) = delete;
  JobsWorker& operator=(const JobsWorker&) = delete;

  void start();
  void stop();
  // Runs until SIGINT, SIGTERM or SIGHUP arrives, then stops gracefully; SIGUSR1 logs how many
  // jobs run. Blocks those signals in the calling thread (call it from main() before starting
  // other threads) and ignores SIGPIPE, so a closed stdout or stderr does not kill the process.
  void run_until_signal();

  [[nodiscard]] const std::string& worker_id() const;
  [[nodiscard]] int max_concurrent_jobs() const;
  // Jobs currently being run by this worker.
  [[nodiscard]] std::size_t running_jobs() const;

  // Test hook: one claim round, as the producer does it; returns how many jobs were claimed
  // and handed to the pool. On a start()ed worker the producer may claim alongside (this
  // round makes every target look again): TEST_wait_quiet() waits for it.
  std::size_t TEST_claim_once();
  // Test hook: blocks until no claim is under way and the producer has nothing to claim until
  // its next wake-up or poll, so that a fake clock advanced afterwards is not read by a claim
  // that started before.
  void TEST_wait_quiet();
  // Test hook: blocks until no job is running in this worker.
  void TEST_wait_idle();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ergon
