// ergon/clock.h — the time source that every Ergon component reads.
//
// Ergon never calls system_clock::now() directly: a Store is opened with a Clock (the system
// clock by default) and the runner, the worker and the store take every "now" from it. Tests
// pass a FakeClock and move time with advance(); waits made through a FakeClock end when the
// clock is advanced past their deadline, so tests need no sleeps.
//
// Thread-safety: both clocks may be shared by any number of threads. The Clock must outlive
// every Store, JobRunner and JobsWorker that uses it.
#pragma once

#include <condition_variable>
#include <mutex>
#include <set>

#include "ergon/types.h"

namespace ergon {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const = 0;

  // Waits on `cv` (with `lock` held on entry and exit) until notified or until `deadline` on
  // this clock. May return early (spuriously); callers re-check their condition in a loop.
  virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          TimePoint deadline) = 0;

  // The process-wide system clock.
  static Clock& system();
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override;
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  TimePoint deadline) override;
};

// A clock that stands still until told to move.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start);
  [[nodiscard]] TimePoint now() const override;
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  TimePoint deadline) override;

  // Moves time forward and wakes every waiter so it can re-check its deadline.
  void advance(Duration d);
  void set(TimePoint t);

 private:
  void wake_all();

  mutable std::mutex mu_;
  TimePoint now_;                           // guarded by mu_
  std::set<std::condition_variable*> cvs_;  // waiters, guarded by mu_
};

}  // namespace ergon
