#include "messaging/azure_job_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "messaging/azure_queue.h"

namespace ergon::messaging {
namespace {

using std::chrono::seconds;

// Whole seconds, rounded up (a message must not become visible before its job is due), within
// what the service accepts.
seconds to_seconds(Duration d, seconds max) {
  if (d <= Duration::zero()) return seconds(0);
  auto s = std::chrono::ceil<seconds>(d);
  return std::min(s, max);
}

class AzureJobQueue final : public JobQueue {
 public:
  explicit AzureJobQueue(const MessagingOptions& o)
      : options_(o),
        queue_(parse_connection_string(o.connection_string), o.queue_name),
        poison_(parse_connection_string(o.connection_string), o.queue_name + "-poison") {}

  void prepare() override {
    queue_.create_queue();
    poison_.create_queue();
  }

  void publish(const JobId& job_id, Duration delay) override {
    queue_.put_message(job_id.to_string(), to_seconds(delay, kMaxVisibility));
  }

  std::vector<JobMessage> receive(int max) override {
    auto visibility = to_seconds(options_.visibility_timeout, kMaxVisibility);
    std::vector<JobMessage> out;
    for (auto& m : queue_.get_messages(std::clamp(max, 1, 32), visibility)) {
      auto id = m.undecodable ? std::nullopt : JobId::parse(m.text);
      if (!id || m.dequeue_count > options_.max_deliveries) {
        set_aside(m, !id ? "it names no job" : "it was delivered too often");
        continue;
      }
      out.push_back({*id, m.message_id, m.pop_receipt,
                     static_cast<int>(std::min<std::int64_t>(m.dequeue_count, 1'000'000))});
    }
    return out;
  }

  void remove(const JobMessage& m) override {
    try {
      queue_.delete_message(m.message_id, m.receipt);
    } catch (const AzureQueueError& e) {
      // Gone already, or redelivered to someone else meanwhile: they will find the job done.
      if (e.failure() != AzureFailure::kMessageNotFound) throw;
    }
  }

  void postpone(JobMessage& m, Duration delay) override {
    m.receipt = queue_.update_message(m.message_id, m.receipt, to_seconds(delay, kMaxVisibility));
  }

  [[nodiscard]] Duration visibility_timeout() const override { return options_.visibility_timeout; }

 private:
  // Copies the message to the poison queue, then deletes it: a crash in between leaves a copy
  // in both, never in neither.
  void set_aside(const QueueMessage& m, const char* why) {
    spdlog::warn("messaging: message {} moved to {}-poison: {} (delivered {} times)", m.message_id,
                 options_.queue_name, why, m.dequeue_count);
    poison_.put_message(m.text);
    remove({JobId(), m.message_id, m.pop_receipt, 0});
  }

  MessagingOptions options_;
  AzureQueueClient queue_;
  AzureQueueClient poison_;
};

}  // namespace

std::unique_ptr<JobQueue> make_azure_job_queue(const MessagingOptions& options) {
  return std::make_unique<AzureJobQueue>(options);
}

}  // namespace ergon::messaging
