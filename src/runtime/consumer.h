// runtime/consumer.h — messaging: runs the jobs that queue messages name (docs/messaging.md).
//
// Receives messages for the free slots, claims each named job through the store (a duplicate,
// or a job claimed elsewhere, is simply not claimed) and hands it to the pool with its message,
// which the completer removes once the job's outcome is stored. A message whose job is not
// claimable is hidden until the job is due, or removed when it has nothing left to trigger.
//
// Thread-safety: run_once() from one thread at a time; start()/stop() not concurrently.
#pragma once

#include "messaging/job_queue.h"
#include "runtime/claims.h"
#include "runtime/duty.h"
#include "runtime/job_slots.h"
#include "runtime/service.h"
#include "store/store.h"

namespace ergon::runtime {

struct ConsumerOptions {
  Duration receive_interval = std::chrono::milliseconds(200);  // an idle consumer's pace
  int max_receive = 32;                                        // messages per receive at most
  void validate() const;
};

class Consumer : public Service {
 public:
  // `policy`, `slots` and `queue` must outlive the consumer.
  Consumer(Store& store, const ClaimPolicy& policy, JobSlots& slots, messaging::JobQueue& queue,
           ConsumerOptions options);
  ~Consumer();

  // Receives messages for the free slots and takes each; returns how many it received. Errors
  // of the queue or the store propagate.
  std::size_t run_once();
  // A slot may have freed (JobSlots::on_change).
  void poke();

 private:
  void loop() override;
  void take(messaging::JobMessage& m);
  bool stopping_locked() const { return stop_requested() || slots_.stopping(); }

  const ClaimPolicy& policy_;
  JobSlots& slots_;
  messaging::JobQueue& queue_;
  const ConsumerOptions options_;
  FailureStreak failures_;  // consumer thread only
  // cv_: a slot freed, the stop.
};

}  // namespace ergon::runtime
