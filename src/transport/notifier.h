// transport/notifier.h — in-process wake-ups: how a worker learns that there is work.
//
// A Store owns one Notifier. Writers call notify(due) after a commit that makes a job due at
// `due`; each subscribed worker's listener records the earliest due time and wakes its
// producer. Other processes are not reached: they find new jobs by polling (SQLite) or through
// LISTEN/NOTIFY (PostgreSQL, which calls notify() from its listener thread).
//
// Thread-safety: every method may be called from any thread. Listeners run with the notifier's
// mutex held, so they must be short and must not call back into the notifier; in exchange,
// once unsubscribe() returns, the listener is never running and will never run again.
#pragma once

#include <functional>
#include <map>
#include <mutex>

#include "ergon/types.h"

namespace ergon::transport {

class Notifier {
 public:
  using Listener = std::function<void(TimePoint due)>;

  int subscribe(Listener listener);
  void unsubscribe(int id);
  void notify(TimePoint due);

 private:
  std::mutex mu_;
  int next_id_ = 1;                    // guarded by mu_
  std::map<int, Listener> listeners_;  // guarded by mu_
};

}  // namespace ergon::transport
