// The messaging transport end to end, against Azurite (scripts/azurite.sh) and a real SQLite
// file: the outbox written in the job's transaction, the relay, the consumer that claims
// through the store, duplicates, poison messages, and removal only after the outcome. The
// emulator's clock is real, so waits here poll with a bound instead of driving a fake clock.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <random>

#include "ergon/ergon.h"
#include "messaging/azure_queue.h"
#include "store/store.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;
using messaging::AzureQueueClient;
using messaging::parse_connection_string;

struct Ping {
  static constexpr std::string_view kJobType = "ping";
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Ping, n)

std::string random_queue() {
  static std::atomic<int> counter{0};
  std::mt19937_64 rng{std::random_device{}()};
  return "ergon-transport-" + std::to_string(rng() % 1000000000) + "-" + std::to_string(counter++);
}

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* cs = std::getenv("ERGON_TEST_AZURITE");
    if (cs == nullptr || *cs == '\0') {
      GTEST_SKIP() << "ERGON_TEST_AZURITE is not set: start Azurite with scripts/azurite.sh "
                      "(or run scripts/test.sh) to run the messaging tests";
    }
    connection_ = cs;
    queue_name_ = random_queue();
    // The application's side: its own store object, so that nothing reaches a worker through
    // the in-process wake-up; only the queue (or polling, slowed to an hour) can.
    app_ = open_store(sqlite_url(dir_));
    queue_ = std::make_unique<AzureQueueClient>(parse_connection_string(connection_), queue_name_);
    poison_ = std::make_unique<AzureQueueClient>(parse_connection_string(connection_),
                                                 queue_name_ + "-poison");
    handlers_.add<Ping>([this](const Ping&, JobContext&) {
      started_.add();
      if (hold_) gate_.wait();
    });
  }
  void TearDown() override {
    gate_.open();
    workers_.clear();
    if (queue_) {
      queue_->delete_queue();
      poison_->delete_queue();
    }
  }

  MessagingOptions messaging(bool relay, bool consume) {
    MessagingOptions m;
    m.connection_string = connection_;
    m.queue_name = queue_name_;
    m.relay = relay;
    m.consume = consume;
    m.visibility_timeout = 2s;
    m.max_deliveries = 3;
    m.receive_interval = 50ms;
    m.relay_interval = 50ms;
    return m;
  }

  JobsWorker& start_worker(bool relay, bool consume) {
    WorkerOptions o;
    o.polling_interval = 1h;  // the queue is the only quick way in
    o.heartbeat_interval = 100ms;
    o.run_scheduler = false;
    o.messaging = messaging(relay, consume);
    o.on_event = [this](const JobEvent& e) {
      if (e.kind == JobEvent::Kind::kCompleted) completed_.add();
    };
    workers_.push_back(std::make_unique<JobsWorker>(open_store(sqlite_url(dir_)), handlers_, o));
    workers_.back()->start();
    return *workers_.back();
  }

  // Enqueues so that only the queue can start the job: a worker polls once when it starts,
  // so the job is due a little later than that (and the outbox is on before the enqueue).
  JobId enqueue_for_the_queue(int n) {
    app_->outbox_enable();
    return JobRunner(app_).start_job(Ping{n}, {.delay = 500ms});
  }

  // Polls `condition` every 50 ms for up to 20 s.
  static bool soon(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  TempDir dir_;
  std::string connection_, queue_name_;
  std::shared_ptr<Store> app_;
  std::unique_ptr<AzureQueueClient> queue_, poison_;
  HandlerRegistry handlers_;
  std::vector<std::unique_ptr<JobsWorker>> workers_;
  EventCounter started_, completed_;
  Gate gate_;
  bool hold_ = false;
};

TEST_F(TransportTest, AJobRunsThroughTheQueueAndItsMessageIsRemoved) {
  JobId id = enqueue_for_the_queue(1);
  auto& worker = start_worker(true, true);
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_EQ(app_->job_get(id)->status, JobStatus::kCompleted);
  EXPECT_EQ(app_->job_get(id)->worker_id, worker.worker_id());
  // (Azurite's count includes hidden messages: zero means removed.)
  EXPECT_TRUE(soon([&] { return queue_->approximate_message_count() == 0; }));
  EXPECT_TRUE(app_->outbox_peek(10).empty());
}

// The application committed the job (and its outbox row) but no relay ran yet, as after a
// crash between commit and send: the relay, when it comes, publishes it.
TEST_F(TransportTest, ARelayCrashBetweenCommitAndSendIsRepaired) {
  queue_->create_queue();
  app_->outbox_enable();
  JobId id = JobRunner(app_).start_job(Ping{2});
  ASSERT_EQ(app_->outbox_peek(10).size(), 1u);
  EXPECT_EQ(queue_->approximate_message_count(), 0);
  start_worker(true, true);
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_EQ(app_->job_get(id)->status, JobStatus::kCompleted);
  EXPECT_TRUE(soon([&] { return app_->outbox_peek(10).empty(); }));
}

// Several messages name the same job (a relay that crashed after sending, redeliveries): the
// job runs once, and every message ends up removed.
TEST_F(TransportTest, DuplicateMessagesRunTheJobOnce) {
  app_->outbox_enable();
  queue_->create_queue();
  JobId id = JobRunner(app_).start_job(Ping{3});
  for (int i = 0; i < 4; ++i) queue_->put_message(id.to_string());
  start_worker(false, true);  // consumer only: these four messages are all it gets
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_TRUE(soon([&] { return queue_->approximate_message_count() == 0; }));
  EXPECT_EQ(started_.count(), 1);
  EXPECT_EQ(app_->job_get(id)->attempt, 1);
}

// While the job runs its message stays in the queue, hidden (and kept hidden past its
// visibility timeout); it is removed once the outcome is stored.
TEST_F(TransportTest, TheMessageIsRemovedOnlyAfterTheOutcomeIsStored) {
  hold_ = true;
  enqueue_for_the_queue(4);
  start_worker(true, true);
  ASSERT_TRUE(started_.wait_for(1));
  EXPECT_EQ(queue_->approximate_message_count(), 1);
  // Past the 2 s visibility timeout: the worker extended it, so nobody receives the message.
  std::this_thread::sleep_for(2500ms);
  EXPECT_TRUE(queue_->get_messages(32, 1s).empty());
  EXPECT_EQ(queue_->approximate_message_count(), 1);
  gate_.open();
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_TRUE(soon([&] { return queue_->approximate_message_count() == 0; }));
}

TEST_F(TransportTest, AMessageThatNamesNoJobIsSetAside) {
  start_worker(true, true);
  queue_->put_message("not a job id");
  EXPECT_TRUE(soon([&] { return poison_->approximate_message_count() == 1; }));
  EXPECT_TRUE(soon([&] { return queue_->approximate_message_count() == 0; }));
  auto set_aside = poison_->get_messages(1, 1s);
  ASSERT_EQ(set_aside.size(), 1u);
  EXPECT_EQ(set_aside[0].text, "not a job id");
}

// A message delivered more than MaxDeliveries (3 here) times is set aside, even if it names a
// real job: something keeps failing to handle it, and a person should look. The job itself is
// still in the database (polling would find it).
TEST_F(TransportTest, AMessageDeliveredTooOftenIsSetAside) {
  app_->outbox_enable();
  queue_->create_queue();
  JobId id = JobRunner(app_).start_job(Ping{7}, {.delay = 1h});  // no poll will run it
  queue_->put_message(id.to_string());
  for (int delivery = 1; delivery <= 3; ++delivery) {  // three deliveries that went nowhere
    std::vector<messaging::QueueMessage> got;
    ASSERT_TRUE(soon([&] {
      got = queue_->get_messages(1, 1s);
      return !got.empty();
    }));
    EXPECT_EQ(got[0].dequeue_count, delivery);
  }
  start_worker(false, true);
  EXPECT_TRUE(soon([&] { return poison_->approximate_message_count() == 1; }));
  EXPECT_TRUE(soon([&] { return queue_->approximate_message_count() == 0; }));
  EXPECT_EQ(app_->job_get(id)->status, JobStatus::kPending);
}

// One worker only relays, another only consumes (and never polls in the test's time): the
// job reaches the second through the queue alone.
TEST_F(TransportTest, AWorkerThatOnlyConsumesRunsJobsFromTheQueue) {
  JobId id = enqueue_for_the_queue(5);
  start_worker(true, false);
  start_worker(false, true);
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_EQ(app_->job_get(id)->worker_id, workers_[1]->worker_id());
}

// A job enqueued for later is not run early: its message stays hidden until it is due.
TEST_F(TransportTest, ADelayedJobsMessageWaitsUntilTheJobIsDue) {
  app_->outbox_enable();
  auto before = std::chrono::system_clock::now();
  JobId id = JobRunner(app_).start_job(Ping{6}, {.delay = 2s});
  start_worker(true, true);
  ASSERT_TRUE(completed_.wait_for(1));
  EXPECT_GE(*app_->job_get(id)->started_at, before + 2s);
}

}  // namespace
}  // namespace ergon::testing
