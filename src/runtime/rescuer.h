// runtime/rescuer.h — gives back the jobs of workers that are gone.
//
// A worker whose heartbeat stopped holds its jobs Running; the rescuer returns every Running job
// whose heartbeat is older than orphaned_job_threshold to Pending (or to Failed when its
// attempts are used up or it was rescued poison_job_rescues times: a poison job), never because
// a job merely runs long. Startup recovery (runtime/heartbeat.h) does the same at once for a
// predecessor whose process is provably dead.
//
// Thread-safety: none; the maintenance thread runs it.
#pragma once

#include <string>

#include "runtime/duty.h"
#include "runtime/events.h"
#include "store/store.h"

namespace ergon::runtime {

struct RescuerOptions {
  Duration orphaned_job_threshold = std::chrono::minutes(30);
  int default_max_attempts = 10;  // for jobs whose max_attempts is unset
  int poison_job_rescues = 3;
  void validate() const;
};

// What job_rescue and job_release_worker are asked at `now`.
[[nodiscard]] JobRescueParams rescue_params(const RescuerOptions& options, TimePoint now);

class Rescuer {
 public:
  Rescuer(Store& store, std::string worker_id, const Events& events, RescuerOptions options);

  // Rescues the orphans of `now`, unless held off; reports them as one kRescued event.
  void run_once(TimePoint now);
  // Holds off until `until`: a heartbeat of this worker failed, so the database was likely out
  // of reach for the others too and their heartbeats lapsed through no fault of theirs; they
  // get one threshold to renew them before anything of theirs is taken for an orphan.
  void hold_until(TimePoint until) { hold_until_ = until; }

 private:
  Store& store_;
  const std::string worker_id_;
  const Events& events_;
  const RescuerOptions options_;
  Duty duty_;
  TimePoint hold_until_{};
};

}  // namespace ergon::runtime
