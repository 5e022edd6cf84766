#include "store/handled_types.h"

#include <nlohmann/json.hpp>
#include <set>

#include "ergon/time_range.h"
#include "store/store.h"

namespace ergon {

std::optional<std::string> worker_types_json(const WorkerRecord& w) {
  if (!w.job_types) return std::nullopt;
  return nlohmann::json(*w.job_types).dump();
}

std::vector<std::string> worker_types_parse(std::string_view json) {
  try {
    return nlohmann::json::parse(json).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kStore,
                std::string("malformed workers.job_types in the database: ") + e.what());
  }
}

std::vector<JobTypeCount> unhandled_job_types_of(Store& store, TimePoint now,
                                                 Duration alive_within) {
  std::set<std::string, std::less<>> claimed;
  for (const WorkerRecord& w : store.worker_list()) {
    if (elapsed(w.heartbeat_at, now) > alive_within) continue;
    if (!w.job_types) return {};  // a catch-all worker claims (and fails) every type
    claimed.insert(w.job_types->begin(), w.job_types->end());
  }
  std::vector<JobTypeCount> out;
  for (JobTypeCount& c : store.job_pending_types()) {
    if (!claimed.contains(c.job_type)) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace ergon
