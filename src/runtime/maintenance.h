// runtime/maintenance.h — the worker's periodic duties, on one thread and one tick.
//
// Each tick (every progress_interval, or at once when a cancel() in this process asks for a
// heartbeat) writes the progress reports that were held back by throttling, then runs what is
// due: the heartbeats (runtime/heartbeat.h), the timeouts of running attempts, the visibility of
// the queue messages of running jobs, the rescuer (orphaned_jobs_check_interval), the pruner and
// the outbox check (prune_interval). A backend that lacks a duty turns it off (runtime/duty.h).
//
// Timeouts: when an attempt's timeout passes its stop token fires; a handler that ignores it
// for timeout_grace more is failed without it (retried while attempts remain). Its thread stays
// busy until it returns (threads cannot be killed); its late outcome is fenced out.
//
// Thread-safety: run_once() from one thread at a time (the maintenance thread once started);
// heartbeat_now() from any thread; start()/stop() not concurrently.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "messaging/job_queue.h"
#include "runtime/completer.h"
#include "runtime/heartbeat.h"
#include "runtime/job_slots.h"
#include "runtime/pruner.h"
#include "runtime/registration.h"
#include "runtime/relay.h"
#include "runtime/rescuer.h"
#include "runtime/service.h"

namespace ergon::runtime {

struct MaintenanceOptions {
  Duration progress_interval = std::chrono::milliseconds(250);  // the tick
  Duration heartbeat_interval = std::chrono::seconds(5);
  Duration orphaned_jobs_check_interval = std::chrono::minutes(5);
  // A failed heartbeat holds the rescuer off for this long (Rescuer::hold_until).
  Duration orphaned_job_threshold = std::chrono::minutes(30);
  Duration prune_interval = std::chrono::minutes(1);
  Duration timeout_grace = std::chrono::seconds(5);
  Duration retry_base_delay = std::chrono::seconds(1);
  Duration retry_max_delay = std::chrono::hours(1);
  void validate() const;
};

// The duties a tick runs; each must outlive the Maintenance.
struct MaintenanceDuties {
  Heartbeat& heartbeat;
  Rescuer& rescuer;
  Pruner& pruner;
  OutboxCheck& outbox_check;
};

class Maintenance : public Service {
 public:
  // `queue`: the messaging transport whose messages of running jobs are kept hidden; may be
  // null. Subscribes to the store's cancel notifier. The schedule starts now: heartbeats and
  // the rescuer are due at once, pruning and the outbox check a prune_interval later.
  Maintenance(Store& store, std::string worker_id, JobSlots& slots, Registration& registration,
              Completer& completer, MaintenanceDuties duties, messaging::JobQueue* queue,
              MaintenanceOptions options);
  ~Maintenance();

  // One tick.
  void run_once();
  // Starts the schedule again from now, then ticks on a thread of its own.
  void start();
  // The next tick comes at once and heartbeats the jobs (a cancel() in this process).
  void heartbeat_now();

 private:
  void loop() override;
  void schedule_from(TimePoint now);
  void check_timeouts(TimePoint now);
  void extend_messages(TimePoint now);

  const std::string worker_id_;
  JobSlots& slots_;
  Registration& registration_;
  Completer& completer_;
  const MaintenanceDuties duties_;
  messaging::JobQueue* const queue_;
  const MaintenanceOptions options_;
  int subscription_ = 0;
  // The schedule; run_once()'s thread only.
  TimePoint next_heartbeat_, next_rescue_, next_prune_, next_outbox_check_;

  // cv_: heartbeat_now(), the stop.
  bool heartbeat_now_ = false;  // guarded by mu_
};

}  // namespace ergon::runtime
