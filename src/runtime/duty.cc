#include "runtime/duty.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace ergon::runtime {

void FailureStreak::succeeded() {
  if (failures_ > 0) {
    spdlog::info("{} recovered after {} failed tries", subject_, std::exchange(failures_, 0));
  }
}

void FailureStreak::failed(std::string_view error) {
  if (failures_++ % 100 == 0) {
    spdlog::log(level_, "{} failed ({} in a row): {}", subject_, failures_, error);
  }
}

bool Duty::run(const std::function<void()>& fn) { return run(what_, fn); }

bool Duty::run(const std::string& what, const std::function<void()>& fn) {
  const bool counted = counted_ && what == what_;
  std::string error;
  try {
    fn();
    if (counted) streak_.succeeded();
    return true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (counted) {
    streak_.failed(error);
  } else {
    spdlog::warn("worker {}: {} failed: {}", worker_id_, what, error);
  }
  return false;
}

}  // namespace ergon::runtime
