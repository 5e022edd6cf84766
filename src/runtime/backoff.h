// runtime/backoff.h — how long a failed attempt waits before the next one.
#pragma once

#include "ergon/types.h"

namespace ergon::runtime {

// Exponential back-off with "equal jitter": d = min(base * 2^(attempt-1), max), then a value
// uniformly in [d/2, d]. The jitter spreads out jobs that failed together (a dependency went
// down) so they do not all retry in the same instant; the fixed half keeps the delay growing.
// `unit_random` is in [0, 1). attempt >= 1.
Duration retry_delay(int attempt, Duration base, Duration max, double unit_random);

}  // namespace ergon::runtime
