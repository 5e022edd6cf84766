// runtime/producer.h — the service that claims due jobs for the pool.
//
// A claim round is one claim per ClaimTarget (runtime/claims.h) that may have jobs and has
// room, each for at most that room (JobSlots::room), limited queues first; the claimed jobs join
// the local queue. A saturated worker claims nothing: it sleeps until a slot frees. An idle
// producer sleeps until the earliest of: a notify for a job that is due now, the earliest due
// time it has been told about (a delayed job or a retry of this process), or the polling
// interval (jobs enqueued by other processes). A claim also renews the worker's registry row
// when that is due (runtime/registration.h), so an idle worker's poll is one query.
//
// Thread-safety: run_once() and wait_quiet() from any thread, also while the service runs;
// start()/stop() not concurrently.
#pragma once

#include <vector>

#include "runtime/claims.h"
#include "runtime/duty.h"
#include "runtime/job_slots.h"
#include "runtime/registration.h"
#include "runtime/service.h"
#include "store/store.h"

namespace ergon::runtime {

struct ProducerOptions {
  Duration polling_interval = std::chrono::seconds(1);
  void validate() const;
};

class Producer : public Service {
 public:
  // Subscribes to the store's notifier; `policy`, `slots` and `registration` must outlive it.
  Producer(Store& store, const ClaimPolicy& policy, JobSlots& slots, Registration& registration,
           ProducerOptions options);
  ~Producer();

  // One claim round in which every target looks for jobs; returns how many were claimed.
  // Errors of the store propagate.
  std::size_t run_once();
  // Blocks until no claim is under way and nothing can be claimed until the next wake-up or
  // poll (or the worker stops).
  void wait_quiet();
  // A slot may have freed, a claim ended, or the stop began (JobSlots::on_change).
  void poke();

 private:
  void loop() override;
  std::size_t claim_round(bool all);
  void on_notify(TimePoint due);
  bool claimable_locked() const;
  void look_again_locked();
  void note_wakeups_locked(TimePoint now);
  bool stopping_locked() const { return stop_requested() || slots_.stopping(); }

  const ClaimPolicy& policy_;
  JobSlots& slots_;
  Registration& registration_;
  const ProducerOptions options_;
  int subscription_ = 0;
  FailureStreak claim_failures_;  // producer thread only

  // cv_: wake-ups, a slot freed, a claim ended, the stop; the loop and wait_quiet() wait there.
  // Per target: a claim may find jobs (its last one filled every place it asked for, or a
  // wake-up or a poll came since). Guarded by mu_.
  std::vector<char> more_;
  bool wake_ = false;                      // a notify for a job due now; guarded by mu_
  TimePoint next_due_ = TimePoint::max();  // earliest due time told; guarded by mu_
  TimePoint poll_at_ = TimePoint::max();   // when idle targets look again; guarded by mu_
};

}  // namespace ergon::runtime
