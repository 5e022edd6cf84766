// Untrusted text, the same on every store (docs/storage.md#text): identifiers with control
// characters or invalid UTF-8 are refused with Ergon's own error before anything is written,
// free text is stored cleaned (U+FFFD for invalid bytes and NUL, cut at a character
// boundary), and a payload has one depth limit and one \u0000 rule.
#include <nlohmann/json.hpp>

#include "ergon/job_runner.h"
#include "ergon/jobs_worker.h"
#include "store_conformance.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

// Identifiers nobody should be able to store: terminal escapes, other controls (C0, DEL,
// C1), a NUL, bytes that are not UTF-8 (a lone continuation byte, an overlong slash, a
// surrogate, a cut sequence).
const std::vector<std::string> kBadIdentifiers = {
    "\x1b[2J",
    "\x1b]0;title\x07",
    "a\0b"s,
    "tab\there",
    "del\x7f",
    "c1\xc2\x9b"
    "31m",
    "bad\xff",
    "\x80",
    "\xc0\xaf",
    "\xed\xa0\x80",
    "cut\xe2\x82",
};

// Runs `f`, which must throw Error(kInvalidArgument); returns its message.
template <class F>
std::string refused(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_P(StoreConformance, IdentifiersWithControlCharactersOrInvalidUtf8AreRefused) {
  JobRunner runner(store_);
  for (const auto& bad : kBadIdentifiers) {
    SCOPED_TRACE(nlohmann::json(bad).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
    refused([&] { runner.start_job_raw(bad, "{}"); });
    refused([&] { runner.start_job_raw("t", "{}", {.queue = bad}); });
    refused([&] { runner.start_job_raw("t", "{}", {.unique_key = bad}); });
    refused([&] { runner.start_job_raw("t", "{}", {.group_key = bad}); });
    refused([&] { runner.start_jobs_raw(bad, {"{}", "{}"}); });
    refused([&] { runner.add_or_update_scheduled_job_raw("t", "{}", "* * * * *", {.name = bad}); });
    refused([&] { runner.add_or_update_scheduled_job_raw(bad, "{}", "* * * * *", {.name = "s"}); });
    refused([&] { runner.pause_queue(bad); });
    refused([&] { runner.set_type_limit({.job_type = bad, .max_running = 1}); });
    refused([&] { JobsWorker w(store_, HandlerRegistry(), {.worker_name = bad}); });
  }
  EXPECT_TRUE(store_->job_list({}).empty());
  EXPECT_TRUE(store_->schedule_list().empty());
  EXPECT_TRUE(store_->queue_list().empty());
  EXPECT_TRUE(store_->limit_list().empty());

  // What is refused is named, with the offending byte.
  EXPECT_EQ(refused([&] { runner.start_job_raw("\x1b[2J", "{}"); }),
            "job type must not contain control characters (byte 0 is \\x1b)");
  EXPECT_EQ(refused([&] { runner.start_job_raw("t", "{}", {.queue = "q\xff"}); }),
            "queue name is not valid UTF-8 (byte 1 is \\xff)");

  // Any other UTF-8 is a fine name: letters of any script, emoji, a space, a right-to-left mark.
  for (std::string good : {"envoyer_émail", "メール", "job 🚀", "a\u200fb"}) {
    JobId id = runner.start_job_raw(good, "{}", {.queue = good, .group_key = good});
    EXPECT_EQ(store_->job_get(id)->job_type, good);
  }
}

// A filter with bytes PostgreSQL would refuse (and SQLite would match against nothing) gets
// one answer on every store: Ergon's error, whether it lists, retries or deletes.
TEST_P(StoreConformance, FiltersWithInvalidUtf8AreRefusedTheSameWayOnEveryStore) {
  const std::pair<std::string, JobFilter> filters[] = {
      {"job type", JobFilter{.job_type = std::string("t\xff")}},
      {"queue", JobFilter{.queue = std::string("q\xc3")}},
      {"text", JobFilter{.text = std::string("a\0b", 3)}}};
  for (const auto& [what, f] : filters) {
    SCOPED_TRACE(what);
    for (int op = 0; op < 3; ++op) {
      try {
        if (op == 0) (void)store_->job_list(f);
        if (op == 1) (void)store_->job_retry_matching(f, clock_.now());
        if (op == 2) (void)store_->job_delete_matching(f);
        ADD_FAILURE() << "accepted by operation " << op;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("the " + what + " filter"), std::string::npos)
            << e.what();
      }
    }
  }
  // Valid UTF-8 of any script is a filter like any other.
  EXPECT_TRUE(store_->job_list(JobFilter{.job_type = std::string("t\xc3\xa9")}).empty());
}

// Bad input to start_job (not JSON, a type empty or too long, options out of range) is refused
// before anything is written.
TEST_P(StoreConformance, StartJobRejectsBadInputAndWritesNothing) {
  JobRunner runner(store_);
  EXPECT_THROW(runner.start_job_raw("t", "{not json"), Error);
  EXPECT_THROW(runner.start_job_raw("", "{}"), Error);
  EXPECT_THROW(runner.start_job_raw(std::string(300, 't'), "{}"), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.max_attempts = 0}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.delay = -1s}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.run_at = clock_.now(), .delay = 1s}), Error);
  EXPECT_THROW(runner.start_job_raw("t", "{}", {.queue = ""}), Error);
  EXPECT_TRUE(runner.list_jobs().empty());
}

TEST_P(StoreConformance, PayloadsHaveOneDepthLimitAndNoNul) {
  JobRunner runner(store_);
  EXPECT_EQ(refused([&] { runner.start_job_raw("t", nested(10000)); }),
            "job_data of 't' is nested more than 128 levels deep");
  refused([&] { runner.start_job_raw("t", nested(129)); });
  refused([&] { runner.start_job_raw("t", R"({"a":)" + nested(128) + "}"); });
  EXPECT_EQ(refused([&] { runner.start_job_raw("t", R"({"a":"x\u0000y"})"); }),
            "job_data of 't' holds a NUL character (\\u0000), which PostgreSQL cannot store");
  refused([&] { runner.start_job_raw("t", R"({"\u0000":1})"); });
  refused([&] { runner.start_jobs_raw("t", {"{}", R"(["\u0000"])"}); });
  refused([&] { runner.add_or_update_scheduled_job_raw("t", nested(200), "* * * * *", {}); });
  refused([&] { runner.start_job_raw("t", "{} {}"); });
  refused([&] { runner.start_job_raw("t", "{}\0"s); });
  EXPECT_TRUE(store_->job_list({}).empty());
  EXPECT_TRUE(store_->schedule_list().empty());

  // At the limit, and other escapes, are stored as they are.
  JobId deep = runner.start_job_raw("t", nested(128));
  EXPECT_EQ(store_->job_get(deep)->job_data, nested(128));
  JobId escapes = runner.start_job_raw("t", R"(["\u0001\u001b","é"])");
  EXPECT_EQ(nlohmann::json::parse(store_->job_get(escapes)->job_data),
            nlohmann::json::parse(R"(["\u0001\u001b","é"])"));
}

// What a handler's exception or a command's stderr may hold: invalid bytes, a NUL, escapes.
const std::string kDirtyText = "bad \xff\xfe byte, nul \0 here, \x1b[31mred\x1b[0m"s;
const std::string kCleanText = "bad \uFFFD\uFFFD byte, nul \uFFFD here, \x1b[31mred\x1b[0m";

TEST_P(StoreOps, FreeTextIsStoredCleanedTheSameWayOnEveryStore) {
  JobInsertParams p;
  p.id = JobId::generate(clock_.now());
  p.job_type = "t";
  p.job_data = "{}";
  p.created_at = p.run_at = clock_.now();
  p.queue = "default";
  running(p);
  ASSERT_TRUE(store_->job_progress_update({p.id, 1, "w", kDirtyText, 50}));
  EXPECT_EQ(store_->job_get(p.id)->progress_message, kCleanText);

  JobFinishParams f;
  f.id = p.id;
  f.attempt = 1;
  f.worker_id = "w";
  f.status = JobStatus::kFailed;
  f.now = clock_.now();
  // Long enough to be cut, with the cut falling inside the replacement of an invalid byte.
  f.error_message = kDirtyText + std::string(kMaxErrorMessageBytes - kCleanText.size() - 1, 'x') +
                    "\xff" + "tail";
  f.progress_message = "last \xc3";
  ASSERT_TRUE(store_->job_finish(f));
  auto job = store_->job_get(p.id);
  std::string expected =
      kCleanText + std::string(kMaxErrorMessageBytes - kCleanText.size() - 1, 'x');
  EXPECT_EQ(job->error_message, expected);
  EXPECT_EQ(job->progress_message, "last \uFFFD");
  // What is stored dumps as JSON with the strict handler.
  EXPECT_NO_THROW((void)nlohmann::json(*job->error_message).dump());

  // The operators' audit log takes text from the command line and the dashboard.
  store_->audit_insert({.at = clock_.now(),
                        .actor = "cli:\xff",
                        .action = "delete",
                        .target = "a\0b"s,
                        .detail = kDirtyText});
  auto audit = store_->audit_list(1);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "cli:\uFFFD");
  EXPECT_EQ(audit[0].target, "a\uFFFDb");
  EXPECT_EQ(audit[0].detail, kCleanText);
}

}  // namespace
}  // namespace ergon::testing
