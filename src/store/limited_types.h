// store/limited_types.h — which job types have a limit, as a PostgreSQL claimer remembers it.
//
// The main claim excludes limited types in SQL, live (a limit set a moment ago takes effect at
// once there); the types listed here are then claimed one by one under their limit. Reading
// the list on every claim would add a query to every poll of an idle worker, so it is kept
// for kTtl: a type limited in another process waits at most that long for its first claim.
// It never runs beyond its limit meanwhile. PostgreSQL's main claim also returns how many
// types are limited: with none, no list is needed at all, and a count that differs from the
// list's length reloads it at once.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace ergon {

class LimitedTypes {
 public:
  static constexpr std::chrono::seconds kTtl{5};

  // The cached list, reloaded with `load` when older than kTtl, invalidated, or not `count`
  // types long (the number the database reported a moment ago).
  std::vector<std::string> get(std::size_t count,
                               const std::function<std::vector<std::string>()>& load) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (!loaded_ || now - loaded_at_ >= kTtl || types_.size() != count) {
      types_ = load();
      loaded_ = true;
      loaded_at_ = now;
    }
    return types_;
  }
  void invalidate() {
    std::lock_guard lock(mu_);
    loaded_ = false;
  }

 private:
  std::mutex mu_;
  bool loaded_ = false;
  std::chrono::steady_clock::time_point loaded_at_;
  std::vector<std::string> types_;
};

}  // namespace ergon
