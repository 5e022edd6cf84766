// runtime/events.h — how a worker reports what happened to its jobs: a log line per event and
// WorkerOptions::on_event.
//
// Thread-safety: emit() is called from every worker thread; the callback must be thread-safe
// (ergon/options.h says so).
#pragma once

#include <functional>
#include <string>

#include "ergon/options.h"

namespace ergon::runtime {

class Events {
 public:
  explicit Events(std::function<void(const JobEvent&)> on_event = {})
      : on_event_(std::move(on_event)) {}

  // Logs the event, naming the job (what an operator must see at the default level: a retry
  // at warn with its error and next run, a failure for good at error, a refused outcome at
  // warn; the rest at debug), and calls on_event, whose exceptions are logged and swallowed: a
  // metrics hook must not fail a job.
  void emit(const JobEvent& e) const;

 private:
  const std::function<void(const JobEvent&)> on_event_;
};

// An event reported later, once its outcome is stored: it owns its text, because the
// attempt's strings (its JobRecord, its error) are gone by then.
struct OwnedEvent {
  JobEvent::Kind kind;
  std::string job_type, error, queue;
  std::optional<TimePoint> run_at;
  OwnedEvent(const JobEvent& e)  // NOLINT(google-explicit-constructor): built from JobEvent{}
      : kind(e.kind), job_type(e.job_type), error(e.error), queue(e.queue), run_at(e.run_at) {}
  [[nodiscard]] JobEvent view(const JobId& id, int attempt) const {
    return {kind, id, job_type, attempt, error, queue, run_at};
  }
};

}  // namespace ergon::runtime
