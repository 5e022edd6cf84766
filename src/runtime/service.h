// runtime/service.h — the skeleton every service of the worker shares.
//
// A service (producer, completer, maintenance, relay, consumer, scheduler) takes an options
// struct with defaults and a validate() that throws Error(kInvalidArgument); does one round of
// its work in run_once(), which tests call directly with a FakeClock; and, when it runs on a
// thread of its own, has start() and stop(). Service is that thread: start() runs the derived
// loop() on a new thread; stop() sets the stop flag under mu_, wakes cv_ and joins. The loop
// reads stop_requested() with mu_ held, so a stop cannot slip in between its check and its
// wait. The executor is a pool, not one loop, and has its own threads.
//
// Thread-safety: start() and stop() not concurrently with each other; stop_requested() with
// mu_ held; wake() from any thread.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace ergon::runtime {

// `options`, once its validate() passed: for a service's constructor.
template <class Options>
[[nodiscard]] Options validated(Options options) {
  options.validate();
  return options;
}

class Service {
 public:
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Runs loop() on a new thread, unless one runs already.
  void start();
  // Asks loop() to end and waits for it (at once when none was started).
  void stop();

 protected:
  explicit Service(Store& store) : store_(store), clock_(store.clock()) {}
  // The derived destructor calls stop(): loop() uses the derived class's members, which are
  // gone by the time this one runs.
  virtual ~Service();

  // The service's thread; returns once stop_requested() (or when the service has ended).
  virtual void loop() = 0;
  [[nodiscard]] bool stop_requested() const { return stop_; }
  // Wakes the loop. Takes and releases mu_ first, so that a loop between its check and its
  // wait cannot miss this.
  void wake();

  Store& store_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // the stop and whatever else the service waits for

 private:
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ergon::runtime
