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

}  // namespace ergon::testing
