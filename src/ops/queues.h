// ops/queues.h — queues as the whole cluster sees them (`ergon queues`, the dashboard's queue
// page): list, pause and resume (docs/flow-control.md), each change audited.
// Thread-safety: a Queues is as shareable as its Store.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "ergon/job_runner.h"
#include "ops/audit.h"

namespace ergon::ops {

class Queues {
 public:
  explicit Queues(std::shared_ptr<Store> store) : runner_(store), audit_(store) {}

  // Every queue with jobs waiting or running, or ever paused, by name.
  [[nodiscard]] std::vector<QueueRecord> list() const { return runner_.list_queues(); }
  // No worker starts jobs from `name` any more (those running finish); Error(kInvalidArgument)
  // for a name that is not one (1-100 bytes of UTF-8 without control characters).
  Audited pause(std::string_view name, std::string_view actor);
  // Workers start its jobs again; those of this process look at once.
  Audited resume(std::string_view name, std::string_view actor);

 private:
  JobRunner runner_;
  AuditLog audit_;
};

}  // namespace ergon::ops
