// runtime/pruner.h — deletes finished jobs past their retention.
//
// Completed, Failed and Cancelled jobs are deleted once they finished longer ago than their
// retention (zero: kept forever), in bounded batches, at most ten batches per status a round:
// the rest waits for the next round, so that a large backlog never holds a long transaction.
//
// Thread-safety: none; the maintenance thread runs it.
#pragma once

#include <string>

#include "runtime/duty.h"
#include "store/store.h"

namespace ergon::runtime {

struct PrunerOptions {
  Duration completed_jobs_retention = std::chrono::hours(24 * 7);
  Duration failed_jobs_retention = std::chrono::hours(24 * 30);
  Duration cancelled_jobs_retention = std::chrono::hours(24 * 7);
  int batch = 1000;  // rows per delete
};

class Pruner {
 public:
  Pruner(Store& store, std::string worker_id, PrunerOptions options);
  void run_once(TimePoint now);

 private:
  Store& store_;
  const PrunerOptions options_;
  Duty duty_;
};

}  // namespace ergon::runtime
