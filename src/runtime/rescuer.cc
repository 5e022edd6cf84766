#include "runtime/rescuer.h"

#include <spdlog/spdlog.h>

#include "ergon/time_range.h"
#include "runtime/service.h"

namespace ergon::runtime {

void RescuerOptions::validate() const {
  if (default_max_attempts < 1) {
    throw Error(ErrorCode::kInvalidArgument, "default_max_attempts must be at least 1");
  }
}

JobRescueParams rescue_params(const RescuerOptions& options, TimePoint now) {
  JobRescueParams p;
  p.now = now;
  p.stale_before = saturating_sub(now, options.orphaned_job_threshold);
  p.default_max_attempts = options.default_max_attempts;
  p.poison_limit = options.poison_job_rescues;
  return p;
}

Rescuer::Rescuer(Store& store, std::string worker_id, const Events& events, RescuerOptions options)
    : store_(store),
      worker_id_(std::move(worker_id)),
      events_(events),
      options_(validated(std::move(options))),
      duty_(worker_id_, "orphan rescue") {}

void Rescuer::run_once(TimePoint now) {
  if (now < hold_until_) return;
  duty_.run([&] {
    int n = store_.job_rescue(rescue_params(options_, now));
    if (n > 0) {
      spdlog::warn("worker {}: rescued {} orphaned job(s)", worker_id_, n);
      events_.emit({JobEvent::Kind::kRescued, JobId(), {}, n, {}});
    }
  });
}

}  // namespace ergon::runtime
