#include "runtime/backoff.h"

#include <algorithm>
#include <cmath>

namespace ergon::runtime {

Duration retry_delay(int attempt, Duration base, Duration max, double unit_random) {
  if (base.count() <= 0) return Duration::zero();
  // Double in floating point: 2^attempt overflows an integer long before attempts run out.
  double d = static_cast<double>(base.count()) * std::exp2(std::max(0, attempt - 1));
  d = std::min(d, static_cast<double>(max.count()));
  double jittered = d / 2 + (d / 2) * std::clamp(unit_random, 0.0, 1.0);
  return Duration(static_cast<Duration::rep>(jittered));
}

}  // namespace ergon::runtime
