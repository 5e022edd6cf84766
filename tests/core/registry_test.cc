#include <gtest/gtest.h>

#include "ergon/job.h"

namespace ergon {
namespace {

struct PingJob {
  static constexpr std::string_view kJobType = "ping";
  std::string host;
  int count = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PingJob, host, count)

static_assert(JobType<PingJob>);
static_assert(!JobType<int>);

class NullContext final : public JobContext {
 public:
  JobId job_id() const override { return {}; }
  std::string_view job_type() const override { return "ping"; }
  int attempt() const override { return 1; }
  int max_attempts() const override { return 1; }
  std::stop_token stop_token() const override { return {}; }
  using JobContext::report_progress;
  void report_progress(std::string_view, std::optional<int>) override {}
  void set_result_json(std::string json) override { result = std::move(json); }
  std::optional<std::string> result;
};

struct Pong {
  std::string host;
  int replies = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Pong, host, replies)
};

class PingHandler final : public JobHandler<PingJob, Pong> {
 public:
  Pong handle(const PingJob& job, JobContext&) override { return {job.host, job.count}; }
};

TEST(RegistryTest, WhatAHandlerReturnsBecomesTheResult) {
  HandlerRegistry r;
  r.add<PingJob>(std::make_shared<PingHandler>());
  NullContext ctx;
  r.find("ping")->invoke(R"({"host":"example.org","count":3})", ctx);
  EXPECT_EQ(ctx.result, R"({"host":"example.org","replies":3})");

  HandlerRegistry callables;
  callables.add<PingJob>([](const PingJob& j, JobContext&) { return j.count * 2; });
  NullContext ctx2;
  callables.find("ping")->invoke(R"({"host":"h","count":21})", ctx2);
  EXPECT_EQ(ctx2.result, "42");

  // A void handler sets nothing unless it asks to.
  HandlerRegistry plain;
  plain.add<PingJob>([](const PingJob&, JobContext& c) { c.set_result({{"ok", true}}); });
  NullContext ctx3;
  plain.find("ping")->invoke(R"({"host":"h","count":1})", ctx3);
  EXPECT_EQ(ctx3.result, R"({"ok":true})");
}

TEST(RegistryTest, AResultThatIsNotValidUtf8IsAClearError) {
  HandlerRegistry r;
  r.add<PingJob>([](const PingJob&, JobContext&) { return std::string("bad \xff byte"); });
  NullContext ctx;
  try {
    r.find("ping")->invoke(R"({"host":"h","count":1})", ctx);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("the result is not JSON"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(ctx.result);
}

TEST(RegistryTest, DecodesJobDataAndCallsTheHandler) {
  HandlerRegistry r;
  PingJob seen;
  r.add<PingJob>([&](const PingJob& j, JobContext&) { seen = j; });
  ASSERT_NE(r.find("ping"), nullptr);
  EXPECT_EQ(r.find("pong"), nullptr);
  NullContext ctx;
  r.find("ping")->invoke(R"({"host":"example.org","count":3})", ctx);
  EXPECT_EQ(seen.host, "example.org");
  EXPECT_EQ(seen.count, 3);
}

TEST(RegistryTest, UndecodableJobDataIsAJobDataError) {
  HandlerRegistry r;
  r.add<PingJob>([](const PingJob&, JobContext&) {});
  NullContext ctx;
  for (const char* bad : {"not json", R"({"host": 5, "count": 1})", R"({"count": 1})", "[]"}) {
    try {
      r.find("ping")->invoke(bad, ctx);
      ADD_FAILURE() << bad;
    } catch (const JobDataError& e) {
      EXPECT_NE(std::string(e.what()).find("does not decode as 'ping'"), std::string::npos);
    }
  }
}

TEST(RegistryTest, RefusesDuplicatesAndNonsense) {
  HandlerRegistry r;
  r.add<PingJob>([](const PingJob&, JobContext&) {});
  EXPECT_THROW(r.add<PingJob>([](const PingJob&, JobContext&) {}), Error);
  EXPECT_THROW(r.add_raw("", [](std::string_view, JobContext&) {}), Error);
  EXPECT_THROW(r.add_raw("x", nullptr), Error);
  EXPECT_THROW(r.add_raw(
                   "y", [](std::string_view, JobContext&) {}, JobTypeOptions{0}),
               Error);
  EXPECT_THROW(r.add<PingJob>(std::shared_ptr<JobHandler<PingJob>>()), Error);
  EXPECT_EQ(r.size(), 1u);
}

}  // namespace
}  // namespace ergon
