#include "runtime/events.h"

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace ergon::runtime {
namespace {

// The event's line: at the default level what an operator must see (a retry with its error and
// next run, a failure for good, a refused outcome), the rest at debug.
void log_event(const JobEvent& e) {
  auto line = [&](spdlog::level::level_enum level, std::string_view what) {
    log::job_in(level, e.id, e.job_type, e.attempt, e.queue, "{}{}{}", what,
                e.error.empty() ? "" : ": ", e.error);
  };
  switch (e.kind) {
    case JobEvent::Kind::kRescued:
      return;  // names no job: the rescuer logs how many it took back
    case JobEvent::Kind::kRetryScheduled:
      line(spdlog::level::warn, e.run_at ? "failed, retry at " + format_timestamp(*e.run_at)
                                         : "failed, retry scheduled");
      return;
    case JobEvent::Kind::kFailed:
      line(spdlog::level::err, "failed for good");
      return;
    case JobEvent::Kind::kFenced:
      line(spdlog::level::warn, "outcome refused: the job is no longer this attempt's");
      return;
    default:
      line(spdlog::level::debug, to_string(e.kind));
  }
}

}  // namespace

void Events::emit(const JobEvent& e) const {
  log_event(e);
  if (!on_event_) return;
  try {
    on_event_(e);
  } catch (const std::exception& ex) {
    spdlog::warn("on_event callback threw: {}", ex.what());
  }
}

}  // namespace ergon::runtime
