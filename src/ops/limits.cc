#include "ops/limits.h"

#include <chrono>

namespace ergon::ops {

std::string describe_max_running(const TypeLimit& l) {
  return l.max_running ? std::to_string(*l.max_running) : "-";
}

std::string describe_rate(const TypeLimit& l) {
  if (!l.rate_limit) return "-";
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(l.rate_period).count();
  std::string period = ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
  return std::to_string(*l.rate_limit) + "/" + period;
}

LimitChange Limits::set(const TypeLimit& l, std::string_view actor) {
  runner_.set_type_limit(l);
  LimitChange out;
  std::string& what = out.description;
  if (l.max_running) what = "at most " + std::to_string(*l.max_running) + " running at once";
  if (l.rate_limit) {
    if (!what.empty()) what += ", ";
    what += "at most " + describe_rate(l) + " started";
  }
  if (l.per_group) what += ", per group";
  out.audited = audit_.record(actor, "limit.set", l.job_type, what);
  return out;
}

Audited Limits::remove(std::string_view job_type, std::string_view actor) {
  runner_.remove_type_limit(job_type);
  return audit_.record(actor, "limit.remove", job_type);
}

}  // namespace ergon::ops
