#include "transport/notifier.h"

namespace ergon::transport {

int Notifier::subscribe(Listener listener) {
  std::lock_guard lock(mu_);
  int id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void Notifier::unsubscribe(int id) {
  std::lock_guard lock(mu_);
  listeners_.erase(id);
}

void Notifier::notify(TimePoint due) {
  std::lock_guard lock(mu_);
  for (auto& [id, listener] : listeners_) listener(due);
}

}  // namespace ergon::transport
