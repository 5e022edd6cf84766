// runtime/claims.h — what a worker's claims ask the store for, and the terms a claimed job is
// held on. Shared, read-only, by the producer and the consumer.
//
// A claim round (the producer's) is one claim per limited queue (WorkerOptions::queue_limits),
// limited queues first, then one for the served queues without a limit. Without queue_limits
// there is one target, WorkerOptions::queues with no limit of its own, and a round is one claim.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ergon/job.h"
#include "ergon/options.h"
#include "store/store.h"

namespace ergon::runtime {

struct ClaimTarget {
  std::vector<std::string> queues;  // the claim's filter; empty: every queue
  int max_held = -1;                // the queue's limit; -1: none (the pool's room only)
};

// Throws Error(kInvalidArgument) for queue limits a worker cannot keep: a negative limit, a
// limit without `queues` (a worker serving every queue), a limit on a queue it does not serve.
void check_queue_limits(const std::vector<std::string>& queues,
                        const std::map<std::string, int>& limits);

// The targets of a round: one per limited queue, then the unlimited rest (none when every
// served queue has a limit, since an empty filter would mean every queue). Expects limits that
// passed check_queue_limits.
std::vector<ClaimTarget> claim_targets(const std::vector<std::string>& queues,
                                       const std::map<std::string, int>& limits);

// What a claimed job is held on, resolved once at its claim.
struct SlotTerms {
  int max_attempts = 1;
  std::optional<Duration> timeout;
  int target = -1;  // its queue's limited target; -1: none
};

class ClaimPolicy {
 public:
  // Reads queues, queue_limits, claim_unhandled_types and default_max_attempts of `options`;
  // `handlers` must outlive the policy.
  ClaimPolicy(std::string worker_id, const WorkerOptions& options, const HandlerRegistry& handlers);

  [[nodiscard]] const std::string& worker_id() const { return worker_id_; }
  [[nodiscard]] const std::vector<ClaimTarget>& targets() const { return targets_; }
  // The job types a claim may take: the handlers' (unset with claim_unhandled_types).
  [[nodiscard]] std::optional<std::span<const std::string>> job_types() const;
  [[nodiscard]] JobClaimParams params(const ClaimTarget& t, int limit, TimePoint now,
                                      bool renew_worker) const;
  [[nodiscard]] SlotTerms terms(const JobRecord& job) const;

 private:
  const std::string worker_id_;
  const std::vector<ClaimTarget> targets_;
  const std::vector<std::string> job_types_;  // the handlers' types, sorted
  const bool claim_unhandled_types_;
  const int default_max_attempts_;
  const HandlerRegistry& handlers_;
};

}  // namespace ergon::runtime
