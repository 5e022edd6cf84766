#include "runtime/duty.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "ergon/error.h"

namespace ergon::runtime {

bool Duty::run(const std::function<void()>& fn) { return run(what_, fn); }

bool Duty::run(const std::string& what, const std::function<void()>& fn) {
  if (!enabled_) return true;
  const bool counted = counted_ && what == what_;
  std::string error;
  try {
    fn();
    if (counted && failures_ > 0) {
      spdlog::info("worker {}: {} work again after {} failed tries", worker_id_, what,
                   std::exchange(failures_, 0));
    }
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnsupported) {
      enabled_ = false;
      spdlog::info("worker {}: {} off: {}", worker_id_, what, e.what());
      return true;
    }
    error = e.what();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!counted) {
    spdlog::warn("worker {}: {} failed: {}", worker_id_, what, error);
  } else if (failures_++ % 100 == 0) {
    spdlog::warn("worker {}: {} failed ({} in a row): {}", worker_id_, what, failures_, error);
  }
  return false;
}

}  // namespace ergon::runtime
