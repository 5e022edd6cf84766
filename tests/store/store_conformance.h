// The store conformance suite: every backend runs these tests (INSTANTIATE_TEST_SUITE_P with
// its StoreBackend, support/test_backend.h). When a store gains a behaviour, this suite gains
// the test; what differs between backends goes through TestBackend's hooks.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/store.h"
#include "support/test_backend.h"
#include "support/test_support.h"

namespace ergon::testing {

class StoreConformance : public ::testing::TestWithParam<StoreBackend> {
 protected:
  StoreConformance() : clock_(test_epoch()) {}
  // A fresh, migrated, empty database for each test.
  void SetUp() override {
    backend_ = GetParam().make(dir_);
    if (backend_) store_ = backend_->open(clock_);
  }
  // Another store on the same database (its own connections, as another process would have).
  std::shared_ptr<Store> reopen() { return backend_->open(clock_); }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<TestBackend> backend_;  // outlives every store of the test
  std::shared_ptr<Store> store_;
};

// Store::job_finish_tx on the application's connection: the one place the suite calls the
// seam's native-connection methods directly (enqueues go through JobRunner, start_job_tx).
[[nodiscard]] inline bool job_finish_tx(Store& store, AppConnection& conn,
                                        const JobFinishParams& p) {
  if (conn.sqlite() != nullptr) return store.job_finish_tx(conn.sqlite(), p);
  return store.job_finish_tx(conn.postgres(), p);
}

// Records the due times a store's notifier delivers, and lets a test wait for them.
class DueRecorder {
 public:
  explicit DueRecorder(Store& store) : store_(store) {
    sub_ = store_.notifier().subscribe([this](TimePoint due) {
      {
        std::lock_guard lock(mu_);
        seen_.push_back(due);
      }
      count_.add();
    });
  }
  ~DueRecorder() { store_.notifier().unsubscribe(sub_); }
  DueRecorder(const DueRecorder&) = delete;
  DueRecorder& operator=(const DueRecorder&) = delete;
  [[nodiscard]] bool wait_for(int n) { return count_.wait_for(n); }
  std::vector<TimePoint> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  Store& store_;
  int sub_;
  EventCounter count_;
  std::mutex mu_;
  std::vector<TimePoint> seen_;  // guarded by mu_
};

// The operators' actions (store_ops_conformance_test.cc), with helpers that make jobs in each
// state. Instantiated by every backend's test file, like StoreConformance.
class StoreOps : public StoreConformance {
 protected:
  // Inserts `p`, claims it and ends its attempt with `status` (and `error`).
  JobRecord finished(const JobInsertParams& p, JobStatus status, std::string error = "") {
    store_->job_insert(p);
    auto r = store_->job_claim_id({"w", 1, clock_.now()}, p.id);
    EXPECT_TRUE(r);
    JobFinishParams f;
    f.id = r->id;
    f.attempt = r->attempt;
    f.worker_id = "w";
    f.status = status;
    f.now = clock_.now();
    if (!error.empty()) f.error_message = error;
    EXPECT_TRUE(store_->job_finish(f));
    return *store_->job_get(p.id);
  }
  JobRecord running(const JobInsertParams& p) {
    store_->job_insert(p);
    return *store_->job_claim_id({"w", 1, clock_.now()}, p.id);
  }
  std::vector<JobId> ids(const JobFilter& f) {
    std::vector<JobId> out;
    for (const auto& r : store_->job_list(f)) out.push_back(r.id);
    return out;
  }
};

// A job's history (store_history_conformance_test.cc): results, attempts, tags and meta.
// Instantiated by every backend's test file, like StoreConformance.
class StoreHistory : public StoreConformance {
 protected:
  // Inserts `p` and claims it as `worker`.
  JobRecord running(const JobInsertParams& p, std::string_view worker = "w1") {
    store_->job_insert(p);
    return claim(p.id, worker);
  }
  JobRecord claim(const JobId& id, std::string_view worker) {
    auto r = store_->job_claim_id({worker, 1, clock_.now()}, id);
    EXPECT_TRUE(r);
    return r.value_or(JobRecord{});
  }
  // The outcome of the attempt `r` (a claimed job) now, with its attempt's outcome.
  JobFinishParams outcome(const JobRecord& r, JobStatus status,
                          std::optional<AttemptOutcome> attempt_outcome) {
    JobFinishParams f;
    f.id = r.id;
    f.attempt = r.lease;
    // JobFinishParams holds a view: the worker's id lives in the fixture, not in `r`, which may
    // be a temporary.
    f.worker_id = kept_.emplace_back(*r.worker_id);
    f.status = status;
    f.now = f.run_at = clock_.now();
    f.attempt_outcome = attempt_outcome;
    return f;
  }
  // Stores that outcome, which must not be fenced out.
  void finish(const JobRecord& r, JobStatus status, std::optional<AttemptOutcome> attempt_outcome) {
    EXPECT_TRUE(store_->job_finish(outcome(r, status, attempt_outcome)));
  }
  std::vector<AttemptRecord> attempts(const JobId& id) { return store_->job_attempt_list(id); }
  std::deque<std::string> kept_;  // the worker ids outcome() hands out views of
  // The job's one attempt row (a failure when it has none or more).
  AttemptRecord only_attempt(const JobId& id) {
    auto rows = attempts(id);
    EXPECT_EQ(rows.size(), 1u);
    return rows.empty() ? AttemptRecord{} : rows.front();
  }
  // How many rows a table of the test's database holds, all jobs' together.
  std::string count(const std::string& table) {
    return backend_->connect()->value("SELECT count(*) FROM " + table);
  }
};

}  // namespace ergon::testing
