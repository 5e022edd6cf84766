// runtime/duty.h — how services and maintenance duties log their failures.
//
// A service or duty that runs often logs its failures as a FailureStreak: the first failure,
// then every hundredth, and once when it works again, so that an outage does not flood the log
// at its rate. A Duty runs one maintenance duty and keeps it running through failures: a
// counted duty logs them as a FailureStreak, other duties log each failure.
//
// Thread-safety: none; each runs on one thread at a time (its service's thread, or start()).
#pragma once

#include <spdlog/common.h>

#include <functional>
#include <string>
#include <string_view>

namespace ergon::runtime {

class FailureStreak {
 public:
  // `subject` starts each line ("worker w1: claiming jobs"); `level` is the failures'.
  FailureStreak(std::string subject, spdlog::level::level_enum level)
      : subject_(std::move(subject)), level_(level) {}
  void succeeded();
  void failed(std::string_view error);

 private:
  const std::string subject_;
  const spdlog::level::level_enum level_;
  long failures_ = 0;  // in a row
};

class Duty {
 public:
  // `what` names the duty in the log ("heartbeats", "orphan rescue"), after "worker <id>: ".
  Duty(std::string worker_id, std::string what, bool counted = false)
      : worker_id_(std::move(worker_id)),
        what_(std::move(what)),
        counted_(counted),
        streak_("worker " + worker_id_ + ": " + what_, spdlog::level::warn) {}

  // Runs `fn`; false when it threw (logged).
  bool run(const std::function<void()>& fn);
  // Runs `fn` with its own name in the log and each failure logged (a duty that runs seldom
  // beside this one, as startup registration beside the heartbeats).
  bool run(const std::string& what, const std::function<void()>& fn);

 private:
  const std::string worker_id_;
  const std::string what_;
  const bool counted_;
  FailureStreak streak_;
};

}  // namespace ergon::runtime
