// ops/workers.h — the registered worker processes and the jobs each runs (`ergon workers list`,
// the dashboard's worker page). Thread-safety: a Workers is as shareable as its Store.
#pragma once

#include <memory>
#include <vector>

#include "ergon/store.h"
#include "ergon/time_range.h"

namespace ergon::ops {

// A worker whose heartbeat is older than this is not counted as alive (`ergon stats
// --alive-within` chooses its own).
inline constexpr Duration kAliveWithin = std::chrono::minutes(1);

[[nodiscard]] inline bool is_alive(const WorkerRecord& w, TimePoint now, Duration within) {
  return elapsed(w.heartbeat_at, now) <= within;
}

struct WorkerView {
  WorkerRecord worker;
  bool alive = false;              // heartbeat within kAliveWithin
  std::vector<JobRecord> running;  // its Running jobs, newest first
};

class Workers {
 public:
  explicit Workers(std::shared_ptr<Store> store) : store_(std::move(store)) {}

  // Every registered worker, oldest first, with its Running jobs.
  [[nodiscard]] std::vector<WorkerView> list() const;

 private:
  std::shared_ptr<Store> store_;
};

}  // namespace ergon::ops
