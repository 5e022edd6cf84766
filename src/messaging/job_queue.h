// messaging/job_queue.h — a message queue that carries "job X is due" to workers (the messaging
// transport, docs/messaging.md). The worker's relay publishes outbox rows into it; its consumer
// receives messages, claims the named job through the store, and removes the message once
// the job's outcome is recorded. The queue only triggers: the store decides who runs a job,
// so a duplicate or stale message is harmless.
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ergon/options.h"
#include "ergon/types.h"

namespace ergon::messaging {

struct JobMessage {
  JobId job_id;
  std::string message_id;
  std::string receipt;  // the current right to change or remove the message
  int deliveries = 0;   // 1 on the first delivery
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Creates the queues if needed. Throws Error on failure (bad credentials, unreachable).
  virtual void prepare() = 0;
  // Publishes "job_id is due", visible after `delay` (clamped to what the queue supports).
  virtual void publish(const JobId& job_id, Duration delay) = 0;
  // Up to `max` messages, each hidden for the visibility timeout. Messages that do not name a
  // job, or were delivered more than max_deliveries times, are moved to the poison queue here
  // and not returned.
  virtual std::vector<JobMessage> receive(int max) = 0;
  // Removes a message for good.
  virtual void remove(const JobMessage& m) = 0;
  // Hides the message for `delay` more (0: visible again now); updates m.receipt.
  virtual void postpone(JobMessage& m, Duration delay) = 0;
  [[nodiscard]] virtual Duration visibility_timeout() const = 0;
};

// The transport named by options.transport. Throws Error(kUnsupported) when this build lacks it,
// Error(kConfig) for a bad connection string or queue name.
std::unique_ptr<JobQueue> make_job_queue(const MessagingOptions& options);

}  // namespace ergon::messaging
