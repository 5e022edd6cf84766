#include "ergon/clock.h"

#include <algorithm>

#include "ergon/time_range.h"

namespace ergon {

Clock& Clock::system() {
  static SystemClock clock;
  return clock;
}

TimePoint SystemClock::now() const { return std::chrono::system_clock::now(); }

void SystemClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             TimePoint deadline) {
  // Wait on the steady clock: a wall-clock step (NTP) must not stretch or cut the wait.
  // In microseconds, which hold any two instants' distance; at most a day at a time, since the
  // steady clock's own sum (its now + the wait) must not overflow either. Callers loop.
  auto remaining = elapsed(now(), deadline);
  if (remaining <= Duration::zero()) return;
  cv.wait_for(lock, std::min<Duration>(remaining, std::chrono::hours(24)));
}

FakeClock::FakeClock(TimePoint start) : now_(start) {}

TimePoint FakeClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

void FakeClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                           TimePoint deadline) {
  {
    std::lock_guard g(mu_);
    if (now_ >= deadline) return;
    cvs_.insert(&cv);
  }
  // advance() notifies registered waiters. The caller checked its condition before calling
  // us, so an advance() that lands between that check and the registration above would be
  // missed; the short real-time bound turns such a miss into a brief delay, never a hang.
  cv.wait_for(lock, std::chrono::milliseconds(20));
  std::lock_guard g(mu_);
  cvs_.erase(&cv);
}

void FakeClock::advance(Duration d) {
  {
    std::lock_guard g(mu_);
    now_ = saturating_add(now_, d);
  }
  wake_all();
}

void FakeClock::set(TimePoint t) {
  {
    std::lock_guard g(mu_);
    now_ = t;
  }
  wake_all();
}

void FakeClock::wake_all() {
  std::lock_guard g(mu_);
  for (auto* cv : cvs_) cv->notify_all();
}

}  // namespace ergon
