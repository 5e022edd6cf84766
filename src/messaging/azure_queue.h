// messaging/azure_queue.h — a minimal client for one Azure Storage queue, written directly
// against the Queue service REST API (libcurl for HTTP, OpenSSL for Shared Key signing).
//
// Start here: construct an AzureQueueClient from parse_connection_string(...) and a queue
// name; create_queue() once; then put_message() on the producing side and get_messages() /
// delete_message() on the consuming side. It works against Azure and against the Azurite
// emulator (scripts/azurite.sh), whose path-style endpoint it handles.
//
// Semantics worth knowing (they are Azure's, not this client's):
//   * Delivery is at-least-once. get_messages() hides each message it returns for
//     `visibility_timeout`; if it is not deleted by then it becomes visible again and the next
//     get returns it with dequeue_count + 1. Deleting needs the message id and the pop receipt
//     of the latest get or update; a stale receipt fails with AzureFailure::kMessageNotFound.
//   * update_message() extends (or shortens) the invisibility and invalidates the old receipt.
//   * Message text is stored as base64 of the bytes by default, so any payload is safe (what
//     Azure Functions' queue trigger expects and the older SDKs did; readers on a v12 SDK must
//     be told to use base64 message encoding). The service limits the stored text to 64 KiB,
//     i.e. 48 KiB of payload. A message that is not valid base64 (put by another producer) comes
//     back with `undecodable` set and the text as stored.
//   * The client never retries: each call is one HTTP request. AzureQueueError::retryable()
//     tells the caller whether trying again later can help.
//
// Ownership and threads: a client owns one libcurl handle (and so one kept-alive connection)
// and the connection's key. All methods may be called from any thread; calls on one client
// are serialised by a mutex, so threads that need parallel requests use a client each.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ergon/error.h"
#include "ergon/types.h"
#include "messaging/azure_auth.h"

namespace ergon::messaging {

// Why a request failed, for the callers that react differently (see AzureQueueError).
enum class AzureFailure {
  kTransport,        // no HTTP answer: connection refused, DNS, TLS, timeout
  kAuthentication,   // HTTP 403: wrong key, clock skew, bad signature
  kQueueNotFound,    // HTTP 404 QueueNotFound: create_queue() was never called, or deleted
  kMessageNotFound,  // HTTP 404 MessageNotFound or 400 PopReceiptMismatch: the message was
                     // deleted, or became visible again and someone else got it
  kServerBusy,       // HTTP 500, 503 (ServerBusy, throttling), 408: try again later
  kRejected,         // any other non-2xx: the request itself is wrong
  kBadResponse,      // a 2xx whose body or headers could not be read
};

std::string_view to_string(AzureFailure failure);

// Every failure of a request. code() is ErrorCode::kStore; what() reads
// "azure queue <op>: HTTP <status> <x-ms-error-code>: <message>" (or the transport error).
class AzureQueueError : public Error {
 public:
  AzureQueueError(AzureFailure failure, int http_status, std::string service_code,
                  const std::string& message)
      : Error(ErrorCode::kStore, message),
        failure_(failure),
        http_status_(http_status),
        service_code_(std::move(service_code)) {}

  [[nodiscard]] AzureFailure failure() const noexcept { return failure_; }
  // 0 when there was no HTTP answer (kTransport).
  [[nodiscard]] int http_status() const noexcept { return http_status_; }
  // The x-ms-error-code header ("AuthenticationFailed", "PopReceiptMismatch", ...), or "".
  [[nodiscard]] const std::string& service_code() const noexcept { return service_code_; }
  // True for kTransport and kServerBusy: the same request may succeed later.
  [[nodiscard]] bool retryable() const noexcept {
    return failure_ == AzureFailure::kTransport || failure_ == AzureFailure::kServerBusy;
  }

 private:
  AzureFailure failure_;
  int http_status_;
  std::string service_code_;
};

struct AzureQueueOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // The whole request, connect included.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // Store message text as base64 of the bytes (true) or as the text itself, XML-escaped
  // (false; for interop with producers that do so; the text must then be valid UTF-8 without
  // control characters other than tab, LF and CR, or the service refuses it).
  bool base64_messages = true;
};

// A message's visibility and lifetime limits, as the service enforces them.
inline constexpr std::chrono::seconds kMaxVisibility{7 * 24 * 3600};
// put_message(..., ttl = kNeverExpires): the message stays until deleted.
inline constexpr std::chrono::seconds kNeverExpires{-1};

struct PutMessageResult {
  std::string message_id;
  std::string pop_receipt;  // lets the producer update or delete the message it just put
  TimePoint insertion_time;
  TimePoint next_visible;
};

struct QueueMessage {
  std::string message_id;
  std::string pop_receipt;
  std::int64_t dequeue_count = 0;  // 1 on the first delivery
  std::string text;                // the payload as put (decoded from base64)
  bool undecodable = false;        // base64 mode only: `text` was not base64 and is as stored
  TimePoint insertion_time;
  TimePoint next_visible;
  TimePoint expiration_time;  // TimePoint::max() for a message that never expires
};

class AzureQueueClient {
 public:
  // `queue_name`: 3-63 characters, lower-case letters, digits and single hyphens, starting
  // and ending with a letter or digit; anything else throws Error(kInvalidArgument). Throws
  // Error(kConfig) when the account key is not base64. Makes no request.
  AzureQueueClient(AzureConnection connection, std::string queue_name,
                   AzureQueueOptions options = {});
  ~AzureQueueClient();
  AzureQueueClient(const AzureQueueClient&) = delete;
  AzureQueueClient& operator=(const AzureQueueClient&) = delete;

  [[nodiscard]] const std::string& queue_name() const { return queue_name_; }

  // Creates the queue. True when it was created, false when it already existed.
  bool create_queue();
  // Deletes the queue and its messages. True when it existed.
  bool delete_queue();
  // Deletes every message in the queue.
  void clear();

  // Adds a message, invisible for `visibility_delay` (0 .. 7 days), kept for `ttl` (default:
  // the service's 7 days; kNeverExpires; else >= 1 s). Bad ranges throw kInvalidArgument.
  PutMessageResult put_message(std::string_view text,
                               std::chrono::seconds visibility_delay = std::chrono::seconds(0),
                               std::optional<std::chrono::seconds> ttl = std::nullopt);

  // Receives up to `max_messages` (1..32, else kInvalidArgument before any request) visible
  // messages and hides them for `visibility_timeout` (1 s .. 7 days). May return fewer than
  // are visible, or none.
  std::vector<QueueMessage> get_messages(int max_messages, std::chrono::seconds visibility_timeout);

  // Makes the message invisible for `visibility_timeout` from now (0 .. 7 days), counted
  // afresh; returns the new pop receipt, which replaces `pop_receipt`.
  std::string update_message(std::string_view message_id, std::string_view pop_receipt,
                             std::chrono::seconds visibility_timeout);

  void delete_message(std::string_view message_id, std::string_view pop_receipt);

  // The service's approximate count of messages (visible or not), at least as of the call.
  std::int64_t approximate_message_count();

 private:
  struct Response;
  struct Curl;

  Response request(std::string_view op, std::string_view method, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& query,
                   const std::string& body);
  [[noreturn]] void fail(std::string_view op, const Response& response) const;

  const AzureConnection connection_;
  const std::string queue_name_;
  const AzureQueueOptions options_;
  std::string origin_;       // "http://127.0.0.1:10101"
  std::string path_prefix_;  // "/devstoreaccount1" for path-style endpoints, else ""
  std::string key_;          // the decoded account key

  std::mutex mu_;
  std::unique_ptr<Curl> curl_;  // guarded by mu_
};

}  // namespace ergon::messaging
