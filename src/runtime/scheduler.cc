#include "runtime/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ergon/cron.h"
#include "ergon/time_range.h"

namespace ergon::runtime {
namespace {

using std::chrono::sys_seconds;

// Cron answers span years 1 to 9999; TimePoint does not, so an answer outside it stops at
// its end (a previous slot before 1677 reads as TimePoint::min()).
TimePoint to_time_point(sys_seconds s) { return clamp_time(s); }

// system_clock::time_point (nanoseconds) ends in 2262; a schedule with no further occurrence
// is parked well before that.
TimePoint never() {
  using namespace std::chrono;
  return time_point_cast<TimePoint::duration>(sys_days{year{2200} / 1 / 1});
}

cron::CronExpression parse(const std::string& expression, bool with_seconds) {
  cron::ParseOptions o;
  o.format = with_seconds ? cron::Format::kSeconds : cron::Format::kStandard;
  return cron::CronExpression::parse(expression, o);
}

}  // namespace

std::optional<TimePoint> first_slot_after(const std::string& expression, bool with_seconds,
                                          const std::string& time_zone, TimePoint after) {
  auto expr = parse(expression, with_seconds);
  auto next = expr.next(after, cron::TimeZone::load(time_zone), /*inclusive=*/false);
  if (!next) return std::nullopt;
  return std::min(to_time_point(*next), never());
}

FirePlan plan_fire(const ScheduleRecord& s, TimePoint now, Duration misfire_grace) {
  auto expr = parse(s.cron_expression, s.with_seconds);
  auto tz = cron::TimeZone::load(s.time_zone);
  FirePlan plan;
  // The newest slot that has come; next_run_time itself is a slot and has come, so it bounds
  // the answer from below (it also covers a stored time that is no longer a slot because the
  // zone's rules changed).
  auto prev = expr.previous(now, tz, /*inclusive=*/true);
  plan.latest_slot = std::max(s.next_run_time, prev ? to_time_point(*prev) : s.next_run_time);
  auto next = expr.next(now, tz, /*inclusive=*/false);
  plan.next = next ? std::min(to_time_point(*next), never()) : never();
  switch (s.misfire) {
    case MisfirePolicy::kRunOnce:
      plan.slots.push_back(plan.latest_slot);
      break;
    case MisfirePolicy::kSkip:
      if (elapsed(plan.latest_slot, now) <= misfire_grace) plan.slots.push_back(plan.latest_slot);
      break;
    case MisfirePolicy::kRunAll: {
      // Walk back from the newest slot: a long outage of a per-second schedule must not
      // enumerate a week of slots to keep the last few.
      TimePoint slot = plan.latest_slot;
      for (int i = 0; i < std::max(1, s.misfire_limit); ++i) {
        plan.slots.push_back(slot);
        auto before = expr.previous(slot, tz, /*inclusive=*/false);
        if (!before || to_time_point(*before) < s.next_run_time) break;
        slot = to_time_point(*before);
      }
      std::reverse(plan.slots.begin(), plan.slots.end());
      break;
    }
  }
  return plan;
}

Scheduler::Scheduler(Store& store, SchedulerOptions options) : Service(store), options_(options) {
  subscription_ = store_.schedule_notifier().subscribe([this](TimePoint due) {
    std::lock_guard lock(mu_);
    wake_at_ = std::min(wake_at_, due);
    cv_.notify_all();
  });
}

Scheduler::~Scheduler() {
  stop();
  store_.schedule_notifier().unsubscribe(subscription_);
}

void Scheduler::report_fired(std::string_view name, Duration lag) {
  if (!options_.on_fire) return;
  try {
    options_.on_fire(name, lag);
  } catch (const std::exception& e) {
    spdlog::warn("scheduler on_fire callback threw: {}", e.what());
  }
}

std::size_t Scheduler::run_once() {
  TimePoint now = clock_.now();
  std::size_t enqueued = 0;
  for (const ScheduleRecord& s : store_.schedule_due(now, 1000)) {
    try {
      FirePlan plan = plan_fire(s, now, options_.misfire_grace);
      ScheduleFireParams p;
      p.name = s.name;
      p.expected_next = s.next_run_time;
      p.new_next = plan.next;
      p.last_run_time = plan.latest_slot;
      p.skip_if_previous_running = s.overlap == OverlapPolicy::kSkip;
      for (std::size_t i = 0; i < plan.slots.size(); ++i) {
        JobInsertParams j;
        j.id = JobId::generate(now);
        j.job_type = s.job_type;
        j.job_data = s.job_data;
        j.created_at = now;
        j.run_at = now;
        j.max_attempts = s.max_attempts;
        j.queue = s.queue;
        j.priority = s.priority;
        j.tags = s.tags;
        if (s.meta) j.meta = *s.meta;
        p.jobs.push_back(j);
      }
      switch (store_.schedule_fire(p)) {
        case ScheduleFireResult::kFired:
          enqueued += p.jobs.size();
          report_fired(s.name, elapsed(plan.latest_slot, now));
          if (plan.slots.size() != 1) {
            spdlog::info("schedule '{}': {} job(s) for missed slots up to {}", s.name,
                         p.jobs.size(), format_timestamp(plan.latest_slot));
          }
          break;
        case ScheduleFireResult::kSkippedOverlap:
          spdlog::info("schedule '{}': slot {} skipped, the previous run is not finished", s.name,
                       format_timestamp(plan.latest_slot));
          break;
        case ScheduleFireResult::kLost:
          break;  // another scheduler fired it
      }
    } catch (const std::exception& e) {
      spdlog::error("schedule '{}' cannot fire: {}", s.name, e.what());
    }
  }
  return enqueued;
}

void Scheduler::loop() {
  std::unique_lock lock(mu_);
  while (!stop_requested()) {
    wake_at_ = TimePoint::max();
    lock.unlock();
    TimePoint deadline = saturating_add(clock_.now(), options_.check_interval);
    try {
      run_once();
      if (auto due = store_.schedule_next_due()) deadline = std::min(deadline, *due);
    } catch (const std::exception& e) {
      spdlog::error("scheduler: {}", e.what());
    }
    lock.lock();
    while (!stop_requested() && clock_.now() < std::min(deadline, wake_at_)) {
      clock_.wait_until(lock, cv_, std::min(deadline, wake_at_));
    }
  }
}

}  // namespace ergon::runtime
