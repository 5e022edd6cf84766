// .NET's seeded System.Random (the legacy subtractive generator of Knuth, TAOCP vol. 2, 3.6),
// which Cronos 0.12+ uses to resolve `H` with a seed (internal). `new Random(seed)` in .NET
// Framework and in .NET Core/5+ (which keeps this algorithm for seeded instances) produces the
// same sequence; only Sample() is needed: Next(min, max) == min + (int)(Sample() * (max - min)).
#pragma once

#include <array>
#include <cstdint>

namespace ergon::cron::internal {

class NetRandom {
 public:
  explicit NetRandom(std::int32_t seed) {
    constexpr std::int64_t kSeed = 161803398;
    const std::int64_t subtraction =
        seed == INT32_MIN ? INT32_MAX : (seed < 0 ? -std::int64_t{seed} : std::int64_t{seed});
    std::int64_t mj = kSeed - subtraction;
    seed_[55] = mj;
    std::int64_t mk = 1;
    int ii = 0;
    for (int i = 1; i < 55; ++i) {
      ii += 21;
      if (ii >= 55) ii -= 55;
      seed_[ii] = mk;
      mk = mj - mk;
      if (mk < 0) mk += kBig;
      mj = seed_[ii];
    }
    for (int k = 1; k < 5; ++k) {
      for (int i = 1; i < 56; ++i) {
        int n = i + 30;
        if (n >= 55) n -= 55;
        seed_[i] -= seed_[1 + n];
        if (seed_[i] < 0) seed_[i] += kBig;
      }
    }
  }

  // A double in [0, 1).
  double sample() {
    if (++inext_ >= 56) inext_ = 1;
    if (++inextp_ >= 56) inextp_ = 1;
    std::int64_t value = seed_[inext_] - seed_[inextp_];
    if (value == kBig) --value;
    if (value < 0) value += kBig;
    seed_[inext_] = value;
    return static_cast<double>(value) * (1.0 / static_cast<double>(kBig));
  }

  // .NET Random.Next(min, max) for max - min small enough to use Sample() (always true here).
  int next(int min, int max) { return min + static_cast<int>(sample() * (max - min)); }

 private:
  static constexpr std::int64_t kBig = INT32_MAX;
  std::array<std::int64_t, 56> seed_{};
  int inext_ = 0;
  int inextp_ = 21;
};

}  // namespace ergon::cron::internal
