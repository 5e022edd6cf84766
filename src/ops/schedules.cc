#include "ops/schedules.h"

#include "ergon/cron.h"
#include "ops/filter.h"

namespace ergon::ops {
namespace {

[[noreturn]] void no_schedule(std::string_view name) {
  throw Error(ErrorCode::kNotFound, "no schedule named '" + std::string(name) + "'");
}

}  // namespace

std::vector<ScheduleRecord> Schedules::list() const { return runner_.list_scheduled_jobs(); }

std::optional<ScheduleRecord> Schedules::get(std::string_view name) const {
  return runner_.get_scheduled_job(name);
}

std::optional<JobStatus> Schedules::last_job_status(const ScheduleRecord& s) const {
  if (!s.last_job_id) return std::nullopt;
  try {
    if (auto j = runner_.get_job(*s.last_job_id)) return j->status;
  } catch (const std::exception&) {
    // Shown as unknown; the schedule itself was read.
  }
  return std::nullopt;
}

ScheduleChange Schedules::add(std::string_view job_type, std::string_view job_data,
                              std::string_view expression, const ScheduleOptions& options,
                              std::string_view actor) {
  std::string name =
      runner_.add_or_update_scheduled_job_raw(job_type, job_data, expression, options);
  ScheduleChange out{.audited = audit_.record(actor, "schedule.add", name, expression)};
  out.schedule = runner_.get_scheduled_job(name);
  return out;
}

ScheduleChange Schedules::edit(std::string_view name, std::string_view expression,
                               std::optional<std::string> time_zone,
                               std::optional<bool> with_seconds, std::string_view actor) {
  auto s = runner_.get_scheduled_job(name);
  if (!s) no_schedule(name);
  ScheduleOptions o;
  o.name = s->name;
  o.time_zone = time_zone.value_or(s->time_zone);
  o.with_seconds = with_seconds.value_or(s->with_seconds);
  o.misfire = s->misfire;
  o.misfire_limit = s->misfire_limit;
  o.overlap = s->overlap;
  o.queue = s->queue;
  o.priority = s->priority;
  o.max_attempts = s->max_attempts;
  o.tags = s->tags;
  o.meta = s->meta.value_or("");
  // The zone is checked here: the runner's message names the schedule, this one the field.
  try {
    cron::TimeZone::load(o.time_zone);
  } catch (const std::exception& e) {
    throw FieldError("time_zone", e.what());
  }
  runner_.add_or_update_scheduled_job_raw(s->job_type, s->job_data, expression, o);
  ScheduleChange out{.audited = audit_.record(actor, "schedule.edit", name,
                                              std::string(expression) + " (" + o.time_zone + ")")};
  out.schedule = runner_.get_scheduled_job(name);
  return out;
}

Audited Schedules::remove(std::string_view name, std::string_view actor) {
  if (!runner_.remove_scheduled_job(name)) no_schedule(name);
  return audit_.record(actor, "schedule.remove", name);
}

Audited Schedules::set_enabled(std::string_view name, bool enabled, std::string_view actor) {
  if (!runner_.set_scheduled_job_enabled(name, enabled)) no_schedule(name);
  return audit_.record(actor, enabled ? "schedule.enable" : "schedule.disable", name);
}

Triggered Schedules::trigger(std::string_view name, std::string_view actor) {
  Triggered out{.job_id = runner_.trigger_scheduled_job(name)};
  out.audited = audit_.record(actor, "schedule.trigger", name, "job " + out.job_id.to_string());
  return out;
}

Occurrences next_occurrences(const ScheduleRecord& s, TimePoint now, int count) {
  Occurrences out;
  try {
    cron::ParseOptions o;
    o.format = s.with_seconds ? cron::Format::kSeconds : cron::Format::kStandard;
    auto expr = cron::CronExpression::parse(s.cron_expression, o);
    auto tz = cron::TimeZone::load(s.time_zone);
    std::optional<std::chrono::sys_seconds> t =
        std::chrono::time_point_cast<std::chrono::seconds>(now);
    for (int i = 0; i < count; ++i) {
      t = expr.next(*t, tz, false);
      if (!t) break;
      out.next.push_back(*t);
    }
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

}  // namespace ergon::ops
