#include "runtime/pruner.h"

#include <utility>

#include "ergon/time_range.h"

namespace ergon::runtime {

Pruner::Pruner(Store& store, std::string worker_id, PrunerOptions options)
    : store_(store), options_(options), duty_(std::move(worker_id), "pruning") {}

void Pruner::run_once(TimePoint now) {
  duty_.run([&] {
    const std::pair<JobStatus, Duration> rules[] = {
        {JobStatus::kCompleted, options_.completed_jobs_retention},
        {JobStatus::kFailed, options_.failed_jobs_retention},
        {JobStatus::kCancelled, options_.cancelled_jobs_retention}};
    for (const auto& [status, keep] : rules) {
      if (keep.count() <= 0) continue;
      for (int i = 0; i < 10; ++i) {
        if (store_.job_prune(status, saturating_sub(now, keep), options_.batch) < options_.batch) {
          break;
        }
      }
    }
  });
}

}  // namespace ergon::runtime
