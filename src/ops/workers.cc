#include "ops/workers.h"

#include <map>

#include "store/store.h"

namespace ergon::ops {

std::vector<WorkerView> Workers::list() const {
  auto workers = store_->worker_list();
  std::map<std::string, std::vector<JobRecord>> running;
  for (auto& j : store_->job_list({.status = JobStatus::kRunning, .limit = 10000})) {
    // A job that finished between the two reads is not shown as running.
    if (j.status != JobStatus::kRunning || !j.worker_id) continue;
    std::string worker_id = *j.worker_id;
    running[worker_id].push_back(std::move(j));
  }
  const TimePoint now = store_->clock().now();
  std::vector<WorkerView> out;
  out.reserve(workers.size());
  for (auto& w : workers) {
    WorkerView v{.alive = is_alive(w, now, kAliveWithin)};
    if (auto it = running.find(w.id); it != running.end()) v.running = std::move(it->second);
    v.worker = std::move(w);
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace ergon::ops
