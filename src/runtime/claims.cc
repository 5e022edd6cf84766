#include "runtime/claims.h"

#include <algorithm>

namespace ergon::runtime {

// A worker with limits lists every queue it serves: the store's claim names the queues to take
// from and has no way to leave some out, so a claim "from every queue" would take a limited
// queue's jobs past its limit, and a job, once claimed, is never handed back just to keep a
// limit.
void check_queue_limits(const std::vector<std::string>& queues,
                        const std::map<std::string, int>& limits) {
  for (const auto& [queue, max_held] : limits) {
    if (max_held < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "queue_limits: the limit of queue '" + queue + "' must not be negative");
    }
    if (queues.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "queue_limits needs queues: list every queue this worker serves, the limited "
                  "ones too (a worker that serves every queue cannot keep a limit)");
    }
    if (std::find(queues.begin(), queues.end(), queue) == queues.end()) {
      throw Error(ErrorCode::kInvalidArgument, "queue_limits names queue '" + queue +
                                                   "', which is not one of this worker's queues");
    }
  }
}

std::vector<ClaimTarget> claim_targets(const std::vector<std::string>& queues,
                                       const std::map<std::string, int>& limits) {
  std::vector<ClaimTarget> out;
  for (const auto& [queue, max_held] : limits) out.push_back({{queue}, max_held});
  std::vector<std::string> rest;
  for (const auto& q : queues) {
    if (!limits.contains(q)) rest.push_back(q);
  }
  if (limits.empty() || !rest.empty()) out.push_back({std::move(rest)});
  return out;
}

ClaimPolicy::ClaimPolicy(std::string worker_id, const WorkerOptions& options,
                         const HandlerRegistry& handlers)
    : worker_id_(std::move(worker_id)),
      targets_(claim_targets(options.queues, options.queue_limits)),
      job_types_(handlers.types()),
      claim_unhandled_types_(options.claim_unhandled_types),
      default_max_attempts_(options.default_max_attempts),
      handlers_(handlers) {}

std::optional<std::span<const std::string>> ClaimPolicy::job_types() const {
  if (claim_unhandled_types_) return std::nullopt;
  return std::span<const std::string>(job_types_);
}

JobClaimParams ClaimPolicy::params(const ClaimTarget& t, int limit, TimePoint now,
                                   bool renew_worker) const {
  return {worker_id_, limit, now, t.queues, renew_worker, job_types()};
}

SlotTerms ClaimPolicy::terms(const JobRecord& job) const {
  SlotTerms terms;
  const auto* entry = handlers_.find(job.job_type);
  terms.timeout = job.timeout;
  if (!terms.timeout && entry) terms.timeout = entry->options.timeout;
  if (job.max_attempts) {
    terms.max_attempts = *job.max_attempts;
  } else if (entry && entry->options.max_attempts) {
    terms.max_attempts = *entry->options.max_attempts;
  } else {
    terms.max_attempts = default_max_attempts_;
  }
  // The limited targets come first; without queue_limits this looks at one target.
  for (std::size_t i = 0; i < targets_.size() && targets_[i].max_held >= 0; ++i) {
    if (targets_[i].queues[0] == job.queue) {
      terms.target = static_cast<int>(i);
      break;
    }
  }
  return terms;
}

}  // namespace ergon::runtime
