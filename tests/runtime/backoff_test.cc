#include "runtime/backoff.h"

#include <gtest/gtest.h>

namespace ergon::runtime {
namespace {

using namespace std::chrono_literals;

TEST(BackoffTest, DoublesPerAttemptWithinEqualJitterBounds) {
  Duration base = 1s, max = 1h;
  for (int attempt = 1; attempt <= 6; ++attempt) {
    Duration full = base * (1 << (attempt - 1));
    EXPECT_EQ(retry_delay(attempt, base, max, 0.0), full / 2) << attempt;
    EXPECT_EQ(retry_delay(attempt, base, max, 1.0), full) << attempt;
    Duration mid = retry_delay(attempt, base, max, 0.5);
    EXPECT_GT(mid, full / 2);
    EXPECT_LT(mid, full);
  }
}

TEST(BackoffTest, IsCappedAndNeverOverflows) {
  EXPECT_EQ(retry_delay(1000, 1s, 1h, 1.0), 1h);
  EXPECT_EQ(retry_delay(1000, 1s, 1h, 0.0), 30min);
  EXPECT_EQ(retry_delay(3, Duration::zero(), 1h, 1.0), Duration::zero());
}

}  // namespace
}  // namespace ergon::runtime
