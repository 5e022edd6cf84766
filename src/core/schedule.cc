#include "ergon/schedule.h"

namespace ergon {

std::string_view to_string(MisfirePolicy p) {
  switch (p) {
    case MisfirePolicy::kRunOnce:
      return "run_once";
    case MisfirePolicy::kSkip:
      return "skip";
    case MisfirePolicy::kRunAll:
      return "run_all";
  }
  return "run_once";
}

std::string_view to_string(OverlapPolicy p) { return p == OverlapPolicy::kSkip ? "skip" : "allow"; }

std::optional<MisfirePolicy> parse_misfire_policy(std::string_view text) {
  for (auto p : {MisfirePolicy::kRunOnce, MisfirePolicy::kSkip, MisfirePolicy::kRunAll}) {
    if (text == to_string(p)) return p;
  }
  return std::nullopt;
}

std::optional<OverlapPolicy> parse_overlap_policy(std::string_view text) {
  for (auto p : {OverlapPolicy::kAllow, OverlapPolicy::kSkip}) {
    if (text == to_string(p)) return p;
  }
  return std::nullopt;
}

}  // namespace ergon
