#include "ops/stats.h"

#include "ops/workers.h"
#include "store/handled_types.h"
#include "store/store.h"

namespace ergon::ops {

TimePoint Stats::now() const { return store_->clock().now(); }

std::vector<JobCount> Stats::job_counts(TimePoint now) const { return store_->job_counts(now); }

std::vector<ThroughputBucket> Stats::throughput(TimePoint since, Duration bucket) const {
  return store_->job_throughput(since, bucket);
}

WorkerCounts Stats::workers(TimePoint now, Duration alive_within) const {
  auto workers = store_->worker_list();
  WorkerCounts out{.registered = workers.size()};
  for (const auto& w : workers) out.alive += is_alive(w, now, alive_within) ? 1 : 0;
  return out;
}

std::vector<JobTypeCount> Stats::unhandled_types(TimePoint now, Duration alive_within) const {
  return unhandled_job_types_of(*store_, now, alive_within);
}

OutboxState Stats::outbox() const { return store_->outbox_state(); }

}  // namespace ergon::ops
