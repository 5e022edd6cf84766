// runtime/registration.h — when this worker's row in the `workers` registry was last renewed.
//
// The registry's heartbeat rides on a claim when one is due anyway (an idle worker polls), so
// that an idle worker's poll is one query; the heartbeat duty renews it only when no claim did
// for a heartbeat_interval. Shared by the producer (which renews with its claims) and the
// heartbeat (which registers the worker and renews without claims).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <algorithm>
#include <mutex>

#include "ergon/time_range.h"
#include "ergon/types.h"

namespace ergon::runtime {

class Registration {
 public:
  Registration(Duration heartbeat_interval, Duration polling_interval)
      : heartbeat_interval_(heartbeat_interval), polling_interval_(polling_interval) {}

  // The worker's row was written at `now`.
  void registered(TimePoint now) {
    std::lock_guard lock(mu_);
    registered_ = true;
    renewed_at_ = now;
  }
  [[nodiscard]] bool is_registered() const {
    std::lock_guard lock(mu_);
    return registered_;
  }

  // Whether a claim at `now` should renew the row: once it is this old, early enough that the
  // heartbeat duty, which renews it after a full heartbeat_interval, does not also have to (the
  // next poll comes within a polling_interval, give or take the claim's own time). Never younger
  // than half a heartbeat_interval: with polling slower than heartbeats, a busy worker's frequent
  // claims would otherwise each write the registry row.
  [[nodiscard]] bool claim_should_renew(TimePoint now) const {
    std::lock_guard lock(mu_);
    if (!registered_) return false;
    Duration early = polling_interval_ + polling_interval_ / 2;
    Duration after = std::max(heartbeat_interval_ - early, heartbeat_interval_ / 2);
    return elapsed(renewed_at_, now) >= after;
  }
  void renewed_by_claim(TimePoint now) {
    std::lock_guard lock(mu_);
    renewed_at_ = std::max(renewed_at_, now);
  }

  // Whether the heartbeat duty should renew the row at `now`: no claim did for a
  // heartbeat_interval. Counted from the try, successful or not: a database that is down is
  // tried again a heartbeat_interval later, not at every tick.
  [[nodiscard]] bool heartbeat_due(TimePoint now) {
    std::lock_guard lock(mu_);
    if (elapsed(renewed_at_, now) < heartbeat_interval_) return false;
    renewed_at_ = now;
    return true;
  }
  // When the heartbeat duty will be due, unless a claim renews the row first.
  [[nodiscard]] TimePoint next_heartbeat() const {
    std::lock_guard lock(mu_);
    return saturating_add(renewed_at_, heartbeat_interval_);
  }

 private:
  const Duration heartbeat_interval_;
  const Duration polling_interval_;
  mutable std::mutex mu_;
  bool registered_ = false;  // guarded by mu_
  TimePoint renewed_at_{};   // guarded by mu_
};

}  // namespace ergon::runtime
