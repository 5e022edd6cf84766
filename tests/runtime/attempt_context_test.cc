#include "runtime/attempt_context.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

class AttemptContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = open_store(sqlite_url(dir_), {.clock = &clock_});
    JobInsertParams p;
    p.id = JobId::generate(clock_.now());
    p.job_type = "t";
    p.job_data = "{}";
    p.created_at = p.run_at = clock_.now();
    p.queue = "default";
    store_->job_insert(p);
    job_ = store_->job_claim({"w", 1, clock_.now()}).at(0);
  }
  std::pair<std::optional<std::string>, std::optional<int>> stored() {
    auto r = store_->job_get(job_.id);
    return {r->progress_message, r->progress_percent};
  }

  TempDir dir_;
  FakeClock clock_{test_epoch()};
  std::shared_ptr<Store> store_;
  JobRecord job_;
};

TEST_F(AttemptContextTest, ThrottlesWritesAndKeepsTheLastReport) {
  runtime::AttemptContext ctx(*store_, job_, "w", 3, {}, 250ms);
  ctx.report_progress("a", 10);  // first report: written at once
  EXPECT_EQ(stored(), std::pair(std::optional<std::string>("a"), std::optional<int>(10)));

  clock_.advance(100ms);
  ctx.report_progress("b", 20);  // within the interval: held back
  EXPECT_EQ(stored().first, "a");
  ctx.flush_if_due();
  EXPECT_EQ(stored().first, "a");

  clock_.advance(200ms);  // 300 ms since the last write
  ctx.flush_if_due();     // the held-back report goes out
  EXPECT_EQ(stored(), std::pair(std::optional<std::string>("b"), std::optional<int>(20)));

  clock_.advance(300ms);
  ctx.report_progress("c", 150);  // clamped
  EXPECT_EQ(stored(), std::pair(std::optional<std::string>("c"), std::optional<int>(100)));

  ctx.report_progress("d", -5);  // held back; the outcome carries it
  EXPECT_EQ(stored().first, "c");
  auto last = ctx.take_unwritten();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->message, "d");
  EXPECT_EQ(last->percent, 0);
  EXPECT_FALSE(ctx.take_unwritten());
}

TEST_F(AttemptContextTest, CutsLongMessages) {
  runtime::AttemptContext ctx(*store_, job_, "w", 3, {}, 250ms);
  ctx.report_progress(std::string(5000, 'x'), 1);
  EXPECT_EQ(stored().first->size(), kMaxProgressMessageBytes);
}

TEST_F(AttemptContextTest, AZombieAttemptCannotWriteProgress) {
  runtime::AttemptContext zombie(*store_, job_, "another-worker", 3, {}, 250ms);
  zombie.report_progress("late", 99);
  EXPECT_FALSE(stored().first);
}

}  // namespace
}  // namespace ergon::testing
