// ops/limits.h — cluster-wide limits per job type (`ergon limits`; docs/flow-control.md): list,
// set and remove, each change audited. Thread-safety: a Limits is as shareable as its Store.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/job_runner.h"
#include "ops/audit.h"

namespace ergon::ops {

struct LimitChange {
  std::string description;  // "at most 2 running at once, at most 10/1s started, per group"
  Audited audited;
};

class Limits {
 public:
  explicit Limits(std::shared_ptr<Store> store) : runner_(store), audit_(store) {}

  // Every limited type, by name, with how many of it run now.
  [[nodiscard]] std::vector<TypeLimit> list() const { return runner_.list_type_limits(); }
  // Replaces the type's limits; Error(kInvalidArgument) for a bad name or figure, or neither
  // limit.
  LimitChange set(const TypeLimit& limit, std::string_view actor);
  // Lifts every limit of the type.
  Audited remove(std::string_view job_type, std::string_view actor);

 private:
  JobRunner runner_;
  AuditLog audit_;
};

// The concurrency limit ("2"), or "-" without one.
[[nodiscard]] std::string describe_max_running(const TypeLimit& l);
// The rate limit as COUNT/PERIOD ("10/1s", "5/250ms"), or "-" without one.
[[nodiscard]] std::string describe_rate(const TypeLimit& l);

}  // namespace ergon::ops
