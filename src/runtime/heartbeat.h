// runtime/heartbeat.h — this worker in the database: its registry row and its jobs' heartbeats.
//
// At start, recover_at_start() gives back at once the jobs of workers whose process is provably
// dead (runtime/worker_identity.h), forgets the workers silent for a threshold and registers
// this one. Then run_once() renews the registry row when no claim did for a heartbeat_interval
// (runtime/registration.h) and, when asked, the heartbeat of every job the worker holds, in one
// statement. What that statement returns is compared with the slots: a job missing from it was
// rescued elsewhere or cancelled while Pending, so its handler is told to stop; a job flagged
// cancel_requested is asked to stop and ends Cancelled; a job held in the database but not here
// (a claim that committed although its reply was lost) is given back.
//
// Thread-safety: none; the maintenance thread (and start(), before it) runs it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/completer.h"
#include "runtime/duty.h"
#include "runtime/job_slots.h"
#include "runtime/registration.h"
#include "runtime/rescuer.h"
#include "store/store.h"

namespace ergon::runtime {

struct HeartbeatOptions {
  // Startup recovery gives jobs back as the rescuer would, and forgets workers silent for the
  // rescuer's threshold.
  RescuerOptions recovery;
  std::string worker_name;  // WorkerOptions::worker_name (may be empty)
  // What the registry row says of this worker: the job types it claims (unset: every type) and
  // whether it relays the outbox.
  std::optional<std::vector<std::string>> job_types;
  bool relay = false;
};

class Heartbeat {
 public:
  Heartbeat(Store& store, std::string worker_id, JobSlots& slots, Registration& registration,
            Completer& completer, HeartbeatOptions options);

  // Startup recovery and registration (see above).
  void recover_at_start(TimePoint now);
  // The registry row when due, and with `jobs_due` the jobs' heartbeat. false: it failed.
  bool run_once(TimePoint now, bool jobs_due);
  // Removes this worker's registry row, if it registered; failures are logged.
  void unregister();

 private:
  std::vector<HeldJob> compare(const std::vector<HeldJob>& held, std::uint64_t seen_seq,
                               bool judge_phantoms);
  void release_phantom(const HeldJob& h);

  Store& store_;
  const std::string worker_id_;
  JobSlots& slots_;
  Registration& registration_;
  Completer& completer_;
  const HeartbeatOptions options_;
  Duty duty_;
};

}  // namespace ergon::runtime
