// The store conformance suite: every backend runs these tests (INSTANTIATE_TEST_SUITE_P with
// its own factory). When a store gains a behaviour, this suite gains the test.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "store/store.h"
#include "support/test_support.h"

namespace ergon::testing {

struct StoreBackend {
  std::string name;
  // Opens a fresh, migrated, empty database for one test. `clock` outlives the store. Each
  // call with the same `dir` and `shared = true` opens the same database again (another
  // connection, as another process would).
  std::function<std::shared_ptr<Store>(const TempDir& dir, Clock& clock)> open;
};

class StoreConformance : public ::testing::TestWithParam<StoreBackend> {
 protected:
  StoreConformance() : clock_(test_epoch()) {}
  void SetUp() override { store_ = GetParam().open(dir_, clock_); }
  std::shared_ptr<Store> reopen() { return GetParam().open(dir_, clock_); }

  TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<Store> store_;
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

}  // namespace ergon::testing
