// runtime/scheduler.h — the service that fires recurring jobs.
//
// run_once() looks at every enabled schedule whose next_run_time has passed, decides from its
// misfire policy which jobs the missed slots get, and calls Store::schedule_fire, which inserts
// them and advances next_run_time in one conditional transaction. Any number of schedulers (in
// threads, processes or machines) may run against one database: for each slot exactly one
// schedule_fire wins; the others get kLost and do nothing.
//
// The service loop sleeps until the earliest next_run_time (so a slot fires within
// milliseconds of its time), or at most `check_interval` (the bound on how long a change made
// by another process goes unnoticed), and wakes early when a schedule of this process changes.
//
// Thread-safety: run_once() may be called from any thread; start()/stop() not concurrently.
#pragma once

#include <functional>
#include <optional>

#include "runtime/service.h"
#include "store/store.h"

namespace ergon::runtime {

struct SchedulerOptions {
  Duration check_interval = std::chrono::minutes(1);  // ScheduledJobsCheckInterval
  // MisfirePolicy::kSkip runs a slot only if the scheduler sees it within this grace period.
  Duration misfire_grace = std::chrono::minutes(1);
  // Called after this scheduler fired a slot (not when it lost the race or skipped it), with
  // the lag: the time it fired minus the slot's time. For metrics; must be quick.
  std::function<void(std::string_view schedule, Duration lag)> on_fire;
};

// What firing a due schedule at `now` means: the slots that get a job and the next slot.
struct FirePlan {
  std::vector<TimePoint> slots;  // oldest first; empty: nothing to run (kSkip of a missed slot)
  TimePoint latest_slot;         // the newest slot <= now (becomes last_run_time)
  TimePoint next;                // the first slot after now (becomes next_run_time)
};

// Pure: computes the plan from the schedule's expression, zone and misfire policy. Throws
// cron::CronError when the stored expression or zone cannot be used.
FirePlan plan_fire(const ScheduleRecord& s, TimePoint now, Duration misfire_grace);

// The first slot strictly after `after` (for a new or changed schedule); nullopt when the
// expression has none up to 9999-12-31 (`0 0 31 2 *`). A slot past 2200-01-01 is parked there
// (TimePoint ends in 2262).
std::optional<TimePoint> first_slot_after(const std::string& expression, bool with_seconds,
                                          const std::string& time_zone, TimePoint after);

class Scheduler : public Service {
 public:
  Scheduler(Store& store, SchedulerOptions options);
  ~Scheduler();

  // Fires every due schedule once; returns the number of jobs enqueued.
  std::size_t run_once();

 private:
  void loop() override;
  void report_fired(std::string_view name, Duration lag);

  const SchedulerOptions options_;
  int subscription_ = 0;

  // cv_: a schedule of this process changed, the stop.
  TimePoint wake_at_ = TimePoint::max();  // earliest change notified; guarded by mu_
};

}  // namespace ergon::runtime
