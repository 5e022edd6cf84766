#include "runtime/events.h"

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace ergon::runtime {
namespace {

const char* event_name(JobEvent::Kind k) {
  switch (k) {
    case JobEvent::Kind::kStarted:
      return "started";
    case JobEvent::Kind::kCompleted:
      return "completed";
    case JobEvent::Kind::kRetryScheduled:
      return "failed, retry scheduled";
    case JobEvent::Kind::kFailed:
      return "failed";
    case JobEvent::Kind::kReleased:
      return "released";
    case JobEvent::Kind::kFenced:
      return "outcome refused (no longer this attempt's)";
    case JobEvent::Kind::kCancelled:
      return "cancelled";
    case JobEvent::Kind::kRescued:
      return "rescued";
    case JobEvent::Kind::kSnoozed:
      return "snoozed";
  }
  return "?";
}

}  // namespace

void Events::emit(const JobEvent& e) const {
  if (e.kind != JobEvent::Kind::kRescued) {
    log::job(spdlog::level::debug, e.id, e.job_type, e.attempt, "{}{}{}", event_name(e.kind),
             e.error.empty() ? "" : ": ", e.error);
  }
  if (!on_event_) return;
  try {
    on_event_(e);
  } catch (const std::exception& ex) {
    spdlog::warn("on_event callback threw: {}", ex.what());
  }
}

}  // namespace ergon::runtime
