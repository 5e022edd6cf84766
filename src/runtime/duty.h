// runtime/duty.h — one maintenance duty's switch and its failure log.
//
// A backend that lacks a duty (Error(kUnsupported)) turns it off, logged once. A counted duty
// (one that runs often) logs its failures like the claims do: the first failure, then every
// hundredth, and once when it works again, so that an outage does not flood the log at the
// duty's rate; other duties log each failure.
//
// Thread-safety: none; a duty runs on one thread at a time (the maintenance thread, or start()).
#pragma once

#include <functional>
#include <string>

namespace ergon::runtime {

class Duty {
 public:
  // `what` names the duty in the log ("heartbeats", "orphan rescue"), after "worker <id>: ".
  Duty(std::string worker_id, std::string what, bool counted = false)
      : worker_id_(std::move(worker_id)), what_(std::move(what)), counted_(counted) {}

  // Runs `fn` unless the duty is off; false when it failed.
  bool run(const std::function<void()>& fn);
  // Runs `fn` under this duty's switch but with its own name in the log and each failure
  // logged (a duty that shares another's switch, as startup registration the heartbeats').
  bool run(const std::string& what, const std::function<void()>& fn);
  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  const std::string worker_id_;
  const std::string what_;
  const bool counted_;
  bool enabled_ = true;
  long failures_ = 0;  // in a row
};

}  // namespace ergon::runtime
