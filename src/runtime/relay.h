// runtime/relay.h — messaging: publishes the outbox to the queue (docs/messaging.md), and the
// check that drops the outbox when nobody relays it.
//
// The store's triggers write an outbox row in a job's own transaction whenever the job becomes
// Pending; the relay publishes the oldest rows and then deletes what it published. A crash
// between the two publishes again: a duplicate message, which the consumer's claim makes
// harmless. Messaging turned off leaves the triggers behind, and the outbox would grow without
// bound: OutboxCheck, on a worker that does not relay, drops them (and empties the outbox) when
// no live worker relays; a relay that starts meanwhile installs them again.
//
// Thread-safety: run_once() from one thread at a time; start()/stop() not concurrently.
#pragma once

#include "messaging/job_queue.h"
#include "runtime/duty.h"
#include "runtime/service.h"
#include "store/store.h"

namespace ergon::runtime {

struct RelayOptions {
  Duration relay_interval = std::chrono::milliseconds(200);  // an idle relay's pace
  // How often the relay checks that the outbox triggers are still installed.
  Duration trigger_check_interval = std::chrono::seconds(5);
  int max_batch = 32;  // rows published per round at most
  void validate() const;
};

class Relay : public Service {
 public:
  Relay(Store& store, std::string worker_id, messaging::JobQueue& queue, RelayOptions options);
  ~Relay();

  // Publishes one batch of the outbox and removes it; returns how many rows were published.
  // Errors of the queue or the store propagate (what was published stays in the outbox).
  std::size_t run_once();
  // Checks the outbox triggers a trigger_check_interval from now, then relays on a thread of its
  // own.
  void start();

 private:
  void loop() override;

  const std::string worker_id_;
  messaging::JobQueue& queue_;
  const RelayOptions options_;
  TimePoint next_trigger_check_{};  // relay thread only (or run_once's caller)
  FailureStreak failures_;          // relay thread only
};

struct OutboxCheckOptions {
  // A relay whose heartbeat is older than this is not live (WorkerOptions'
  // orphaned_job_threshold).
  Duration live_threshold = std::chrono::minutes(30);
  bool relaying = false;  // this worker relays: the check does nothing
};

class OutboxCheck {
 public:
  OutboxCheck(Store& store, std::string worker_id, OutboxCheckOptions options);
  // Drops the outbox triggers and rows when they are installed and no live worker relays.
  void run_once(TimePoint now);

 private:
  Store& store_;
  const std::string worker_id_;
  const OutboxCheckOptions options_;
  Duty duty_;
};

}  // namespace ergon::runtime
