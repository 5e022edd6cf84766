// runtime/service.h — the skeleton every service of the worker shares.
//
// A service (producer, executor, completer, maintenance and its duties, relay, consumer) takes
// an options struct with defaults and a validate() that throws Error(kInvalidArgument); does one
// round of its work in run_once(), which tests call directly with a FakeClock; and, when it runs
// on a thread of its own, has start() and stop(). ServiceThread is that thread: start() runs the
// loop on a new thread; stop() sets the stop flag under the service's own mutex, wakes the
// service's condition variable and joins. The loop reads stop_requested() with that mutex held,
// so a stop cannot slip in between its check and its wait.
//
// Thread-safety: ServiceThread's start() and stop() not concurrently with each other;
// stop_requested() with the service's mutex held.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace ergon::runtime {

// `options`, once its validate() passed: for a service's constructor.
template <class Options>
[[nodiscard]] Options validated(Options options) {
  options.validate();
  return options;
}

class ServiceThread {
 public:
  ServiceThread(std::mutex& mu, std::condition_variable& cv) : mu_(mu), cv_(cv) {}
  ~ServiceThread() { stop(); }
  ServiceThread(const ServiceThread&) = delete;
  ServiceThread& operator=(const ServiceThread&) = delete;

  // Runs `loop` on a new thread, unless one runs already.
  void start(std::function<void()> loop) {
    if (!thread_.joinable()) thread_ = std::thread(std::move(loop));
  }
  // Asks the loop to end and waits for it (at once when none was started).
  void stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] bool stop_requested() const { return stop_; }

 private:
  std::mutex& mu_;
  std::condition_variable& cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ergon::runtime
