// Test support: throwaway databases, a fixed start time, and small synchronisation helpers.
// Tests hit real SQLite files; each test gets its own directory, removed afterwards.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ergon/clock.h"
#include "ergon/store.h"

namespace ergon::testing {

// A fresh directory under the system temp dir, deleted with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A fixed instant tests start their FakeClock at: 2026-03-01T12:00:00Z.
TimePoint test_epoch();

// "sqlite:<dir>/<name>?synchronous=normal" (tests need crash safety, not power-cut safety).
std::string sqlite_url(const TempDir& dir, const std::string& name = "jobs.db");

// Counts events and lets a test wait for a number of them without sleeping.
class EventCounter {
 public:
  void add(int n = 1);
  // Waits until the count reaches `n`; fails the test (returns false) after a generous real
  // timeout so that a bug shows as a failure, not a hang.
  [[nodiscard]] bool wait_for(int n, std::chrono::seconds limit = std::chrono::seconds(30));
  [[nodiscard]] int count() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// A gate that handlers wait on until the test opens it.
class Gate {
 public:
  void open();
  void wait();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Re-checks `condition` until it holds or `limit` passes (real time); for state that another
// thread changes without an event to wait on. Returns the last result.
bool eventually(const std::function<bool()>& condition,
                std::chrono::seconds limit = std::chrono::seconds(30));

// Runs `argv` to completion; returns exit status, stdout and stderr.
struct ProcessResult {
  int status = -1;  // exit status, or 128+signal
  std::string out;
  std::string err;
};
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                          const std::vector<std::string>& extra_env = {});

}  // namespace ergon::testing
