// ops/schedules.h — what operators do to recurring jobs (`ergon schedules`, the dashboard's
// schedule page): list, add, edit, remove, enable, disable and trigger, each change audited.
//
// Errors: Error(kNotFound, "no schedule named '...'") for a name that names nothing;
// kInvalidArgument for a bad expression (the parser's message) or zone (a FieldError naming
// time_zone in edit). Thread-safety: a Schedules is as shareable as its Store.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/job_runner.h"
#include "ops/audit.h"

namespace ergon::ops {

struct ScheduleChange {
  std::optional<ScheduleRecord> schedule;  // as stored after the change
  Audited audited;
};

struct Triggered {
  JobId job_id;
  Audited audited;
};

// The next slots of a schedule, or why its stored expression or zone no longer parses.
struct Occurrences {
  std::vector<std::chrono::sys_seconds> next;
  std::optional<std::string> error;
};

class Schedules {
 public:
  explicit Schedules(std::shared_ptr<Store> store) : runner_(store), audit_(std::move(store)) {}

  [[nodiscard]] std::vector<ScheduleRecord> list() const;
  [[nodiscard]] std::optional<ScheduleRecord> get(std::string_view name) const;
  // The status of the job the schedule's last slot enqueued; nullopt when there is none, it
  // was deleted, or it cannot be read (a nicety: the schedule is still worth showing).
  [[nodiscard]] std::optional<JobStatus> last_job_status(const ScheduleRecord& s) const;

  // Adds the schedule options.name or replaces its job, expression and options (an unchanged
  // expression keeps its next run time).
  ScheduleChange add(std::string_view job_type, std::string_view job_data,
                     std::string_view expression, const ScheduleOptions& options,
                     std::string_view actor);
  // A new expression, and optionally zone and format, for an existing schedule; its job (with
  // its tags and meta) and policies stay.
  ScheduleChange edit(std::string_view name, std::string_view expression,
                      std::optional<std::string> time_zone, std::optional<bool> with_seconds,
                      std::string_view actor);
  Audited remove(std::string_view name, std::string_view actor);
  Audited set_enabled(std::string_view name, bool enabled, std::string_view actor);
  // Enqueues the schedule's job now, outside its slots; next_run_time stays.
  Triggered trigger(std::string_view name, std::string_view actor);

 private:
  JobRunner runner_;
  AuditLog audit_;
};

// The next `count` slots after `now` (pure: cron only).
[[nodiscard]] Occurrences next_occurrences(const ScheduleRecord& s, TimePoint now, int count);

}  // namespace ergon::ops
