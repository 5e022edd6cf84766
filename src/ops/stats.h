// ops/stats.h — the numbers an operator looks at first (`ergon stats`, the dashboard's
// overview): jobs per queue and status, throughput, live workers, job types no live worker
// handles, the messaging outbox. Each is its own read, so that a caller can show the others
// when one fails. Thread-safety: a Stats is as shareable as its Store.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "store/store.h"  // ThroughputBucket

namespace ergon::ops {

struct WorkerCounts {
  std::size_t registered = 0;
  int alive = 0;  // heartbeat within the window asked for
};

class Stats {
 public:
  explicit Stats(std::shared_ptr<Store> store) : store_(std::move(store)) {}

  // The store clock's now: pass it to every read of one report, so that they agree.
  [[nodiscard]] TimePoint now() const;
  // Jobs per queue and status (statuses without jobs left out); Pending rows carry the run_at
  // of the due job that has waited longest.
  [[nodiscard]] std::vector<JobCount> job_counts(TimePoint now) const;
  // Completed and failed jobs per `bucket` from `since`, oldest first, empty buckets included.
  [[nodiscard]] std::vector<ThroughputBucket> throughput(TimePoint since, Duration bucket) const;
  [[nodiscard]] WorkerCounts workers(TimePoint now, Duration alive_within) const;
  // The Pending jobs per type that no worker alive within `alive_within` claims.
  [[nodiscard]] std::vector<JobTypeCount> unhandled_types(TimePoint now,
                                                          Duration alive_within) const;
  // Whether the outbox triggers are installed, and the rows waiting for a relay.
  [[nodiscard]] OutboxState outbox() const;

 private:
  std::shared_ptr<Store> store_;
};

}  // namespace ergon::ops
