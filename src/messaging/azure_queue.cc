#include "messaging/azure_queue.h"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <mutex>

#include "messaging/xml.h"

namespace ergon::messaging {
namespace {

// The REST API version the client speaks. Azurite 3.35 accepts it without
// --skipApiVersionCheck; every Azure region does too.
constexpr std::string_view kApiVersion = "2021-12-02";

// A get of 32 messages of 64 KiB is about 2.2 MiB of XML; more than this is not a queue answer.
constexpr std::size_t kMaxResponseBytes = std::size_t{16} << 20;

using Params = std::vector<std::pair<std::string, std::string>>;

void ensure_curl_global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error(ErrorCode::kStore, "azure queue: curl_global_init failed");
    }
  });
}

bool valid_queue_name(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum) continue;
    if (c != '-' || i == 0 || i + 1 == name.size() || name[i - 1] == '-') return false;
  }
  return true;
}

[[noreturn]] void invalid(const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "azure queue: " + what);
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string_view to_string(AzureFailure failure) {
  switch (failure) {
    case AzureFailure::kTransport:
      return "transport";
    case AzureFailure::kAuthentication:
      return "authentication";
    case AzureFailure::kQueueNotFound:
      return "queue not found";
    case AzureFailure::kMessageNotFound:
      return "message not found";
    case AzureFailure::kServerBusy:
      return "server busy";
    case AzureFailure::kRejected:
      return "rejected";
    case AzureFailure::kBadResponse:
      return "bad response";
  }
  return "unknown";
}

struct AzureQueueClient::Response {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case

  [[nodiscard]] const std::string* header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return &v;
    }
    return nullptr;
  }
};

struct AzureQueueClient::Curl {
  CURL* handle = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  Curl() : handle(curl_easy_init()) {}
  ~Curl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;
};

namespace {

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  size_t n = size * count;
  if (body->size() + n > kMaxResponseBytes) return 0;  // aborts with CURLE_WRITE_ERROR
  body->append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  // A new status line (after a 100 Continue, say) starts a new set of headers.
  if (line.starts_with("HTTP/")) {
    headers->clear();
    return n;
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  headers->emplace_back(std::move(name), std::string(value));
  return n;
}

// Frees a curl_slist on every path out of request().
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string first_line(std::string_view s) {
  std::size_t nl = s.find_first_of("\r\n");
  return std::string(s.substr(0, nl));
}

}  // namespace

AzureQueueClient::AzureQueueClient(AzureConnection connection, std::string queue_name,
                                   AzureQueueOptions options)
    : connection_(std::move(connection)), queue_name_(std::move(queue_name)), options_(options) {
  if (!valid_queue_name(queue_name_)) {
    invalid("queue name '" + queue_name_ +
            "' must be 3-63 lower-case letters, digits and single hyphens, starting and ending "
            "with a letter or digit");
  }
  std::optional<std::string> key = base64_decode(connection_.account_key);
  if (!key || key->empty()) {
    throw Error(ErrorCode::kConfig, "azure queue: the account key is not valid base64");
  }
  key_ = std::move(*key);
  const std::string& endpoint = connection_.queue_endpoint;
  std::size_t scheme = endpoint.find("://");
  if (scheme == std::string::npos || connection_.account_name.empty()) {
    throw Error(ErrorCode::kConfig,
                "azure queue: the connection has no endpoint or account "
                "(use parse_connection_string)");
  }
  std::size_t slash = endpoint.find('/', scheme + 3);
  origin_ = endpoint.substr(0, slash);
  if (slash != std::string::npos) path_prefix_ = endpoint.substr(slash);
  while (!path_prefix_.empty() && path_prefix_.back() == '/') path_prefix_.pop_back();

  ensure_curl_global_init();
  curl_ = std::make_unique<Curl>();
  if (curl_->handle == nullptr)
    throw Error(ErrorCode::kStore, "azure queue: curl_easy_init failed");
}

AzureQueueClient::~AzureQueueClient() = default;

AzureQueueClient::Response AzureQueueClient::request(std::string_view op, std::string_view method,
                                                     const std::string& path, const Params& query,
                                                     const std::string& body) {
  std::string url = origin_ + path;
  for (std::size_t i = 0; i < query.size(); ++i) {
    url += i == 0 ? '?' : '&';
    url += percent_encode(query[i].first);
    url += '=';
    url += percent_encode(query[i].second);
  }

  // The headers that are signed are exactly the ones sent (plus what curl adds, none of which
  // Shared Key covers: Host, Accept, and the Content-Type removed below).
  Params headers = {{"x-ms-date", format_http_date(std::chrono::system_clock::now())},
                    {"x-ms-version", std::string(kApiVersion)}};
  bool sends_body = method == "PUT" || method == "POST";
  // Azure wants a Content-Length on every PUT and POST, 0 included (else 411).
  if (sends_body) headers.emplace_back("Content-Length", std::to_string(body.size()));
  if (!body.empty()) headers.emplace_back("Content-Type", "application/xml; charset=utf-8");
  SignedRequestParts parts{method, path, query, headers};
  std::string authorization =
      "Authorization: SharedKey " + connection_.account_name + ":" +
      shared_key_signature(shared_key_string_to_sign(connection_.account_name, parts), key_);

  std::unique_ptr<curl_slist, SlistDeleter> list;
  auto add = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(list.get(), line.c_str());
    if (next == nullptr) throw Error(ErrorCode::kStore, "azure queue: out of memory");
    static_cast<void>(list.release());
    list.reset(next);
  };
  for (const auto& [n, v] : headers) add(n + ": " + v);
  add(authorization);
  add("Expect:");  // no 100-continue round trip
  // curl would add "Content-Type: application/x-www-form-urlencoded" to a POST; an unsigned
  // Content-Type breaks the signature.
  if (body.empty()) add("Content-Type:");

  std::lock_guard lock(mu_);
  CURL* h = curl_->handle;
  Response response;
  curl_->error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM, safe in threads
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_->error);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.headers);
  if (sends_body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    if (method != "GET") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  }
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  // The handle points at the header list, the body, the response and the error buffer, all of
  // which die with this call: forget them (the connection cache survives a reset).
  curl_easy_reset(h);
  if (rc != CURLE_OK) {
    std::string detail = curl_->error[0] != '\0' ? curl_->error : curl_easy_strerror(rc);
    AzureFailure failure =
        rc == CURLE_WRITE_ERROR ? AzureFailure::kBadResponse : AzureFailure::kTransport;
    throw AzureQueueError(failure, 0, "",
                          "azure queue " + std::string(op) + ": " + detail + " (" +
                              std::string(method) + " " + origin_ + path + ")");
  }
  return response;
}

void AzureQueueClient::fail(std::string_view op, const Response& response) const {
  int status = static_cast<int>(response.status);
  const std::string* code_header = response.header("x-ms-error-code");
  std::string code = code_header != nullptr ? *code_header : "";
  std::string message;
  if (std::optional<XmlElement> doc = parse_xml(response.body); doc && doc->name == "Error") {
    if (code.empty()) code = doc->child_text("Code").value_or("");
    message = first_line(doc->child_text("Message").value_or(""));
  }
  AzureFailure failure = AzureFailure::kRejected;
  if (status == 403) {
    failure = AzureFailure::kAuthentication;
  } else if (code == "QueueNotFound") {
    failure = AzureFailure::kQueueNotFound;
  } else if (code == "MessageNotFound" || code == "PopReceiptMismatch") {
    failure = AzureFailure::kMessageNotFound;
  } else if (status == 408 || status == 429 || status >= 500) {
    failure = AzureFailure::kServerBusy;
  }
  std::string what = "azure queue " + std::string(op) + ": HTTP " + std::to_string(status);
  if (!code.empty()) what += " " + code;
  if (!message.empty()) what += ": " + message;
  what += " (queue " + queue_name_ + ")";
  throw AzureQueueError(failure, status, code, what);
}

namespace {

[[noreturn]] void bad_response(std::string_view op, const std::string& what) {
  throw AzureQueueError(AzureFailure::kBadResponse, 200, "",
                        "azure queue " + std::string(op) + ": unreadable response: " + what);
}

std::string required_text(std::string_view op, const XmlElement& e, std::string_view name) {
  std::optional<std::string> v = e.child_text(name);
  if (!v || v->empty()) bad_response(op, "no " + std::string(name));
  return *v;
}

TimePoint required_time(std::string_view op, const XmlElement& e, std::string_view name) {
  std::string text = required_text(op, e, name);
  std::optional<TimePoint> t = parse_http_date(text);
  if (!t) bad_response(op, std::string(name) + " '" + text + "' is not an HTTP date");
  return *t;
}

// The QueueMessage elements of a QueueMessagesList document.
std::vector<XmlElement> message_list(std::string_view op, std::string_view body) {
  std::optional<XmlElement> doc = parse_xml(body);
  if (!doc || doc->name != "QueueMessagesList") bad_response(op, "not a QueueMessagesList");
  std::vector<XmlElement> out;
  for (XmlElement& e : doc->children) {
    if (e.name == "QueueMessage") out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

bool AzureQueueClient::create_queue() {
  Response r = request("create_queue", "PUT", path_prefix_ + "/" + queue_name_, {}, "");
  if (r.status == 201) return true;
  if (r.status == 204) return false;  // exists with the same (no) metadata
  // Exists with other metadata: still a queue we can use.
  if (r.status == 409) {
    const std::string* code = r.header("x-ms-error-code");
    if (code != nullptr && *code == "QueueAlreadyExists") return false;
  }
  fail("create_queue", r);
}

bool AzureQueueClient::delete_queue() {
  Response r = request("delete_queue", "DELETE", path_prefix_ + "/" + queue_name_, {}, "");
  if (r.status == 204) return true;
  if (r.status == 404) {
    const std::string* code = r.header("x-ms-error-code");
    if (code != nullptr && *code == "QueueNotFound") return false;
  }
  fail("delete_queue", r);
}

void AzureQueueClient::clear() {
  Response r = request("clear", "DELETE", path_prefix_ + "/" + queue_name_ + "/messages", {}, "");
  if (r.status != 204) fail("clear", r);
}

PutMessageResult AzureQueueClient::put_message(std::string_view text,
                                               std::chrono::seconds visibility_delay,
                                               std::optional<std::chrono::seconds> ttl) {
  if (visibility_delay.count() < 0 || visibility_delay > kMaxVisibility) {
    invalid("put_message: visibility_delay must be 0 s .. 7 days");
  }
  Params query;
  if (visibility_delay.count() > 0) {
    query.emplace_back("visibilitytimeout", std::to_string(visibility_delay.count()));
  }
  if (ttl) {
    if (*ttl != kNeverExpires && ttl->count() < 1) {
      invalid("put_message: ttl must be at least 1 s, or kNeverExpires");
    }
    if (*ttl != kNeverExpires && *ttl <= visibility_delay) {
      invalid("put_message: ttl must be longer than visibility_delay");
    }
    query.emplace_back("messagettl", std::to_string(ttl->count()));
  }
  std::string stored = options_.base64_messages ? base64_encode(text) : std::string(text);
  std::string body =
      "<QueueMessage><MessageText>" + xml_escape(stored) + "</MessageText></QueueMessage>";
  Response r =
      request("put_message", "POST", path_prefix_ + "/" + queue_name_ + "/messages", query, body);
  if (r.status != 201) fail("put_message", r);
  std::vector<XmlElement> list = message_list("put_message", r.body);
  if (list.size() != 1) bad_response("put_message", "expected one QueueMessage");
  const XmlElement& m = list.front();
  return PutMessageResult{required_text("put_message", m, "MessageId"),
                          required_text("put_message", m, "PopReceipt"),
                          required_time("put_message", m, "InsertionTime"),
                          required_time("put_message", m, "TimeNextVisible")};
}

std::vector<QueueMessage> AzureQueueClient::get_messages(int max_messages,
                                                         std::chrono::seconds visibility_timeout) {
  if (max_messages < 1 || max_messages > 32) {
    invalid("get_messages: max_messages must be 1..32, got " + std::to_string(max_messages));
  }
  if (visibility_timeout.count() < 1 || visibility_timeout > kMaxVisibility) {
    invalid("get_messages: visibility_timeout must be 1 s .. 7 days");
  }
  Params query = {{"numofmessages", std::to_string(max_messages)},
                  {"visibilitytimeout", std::to_string(visibility_timeout.count())}};
  Response r =
      request("get_messages", "GET", path_prefix_ + "/" + queue_name_ + "/messages", query, "");
  if (r.status != 200) fail("get_messages", r);
  std::vector<QueueMessage> out;
  for (const XmlElement& m : message_list("get_messages", r.body)) {
    QueueMessage msg;
    msg.message_id = required_text("get_messages", m, "MessageId");
    msg.pop_receipt = required_text("get_messages", m, "PopReceipt");
    std::string count = required_text("get_messages", m, "DequeueCount");
    std::optional<std::int64_t> n = parse_int(count);
    if (!n) bad_response("get_messages", "DequeueCount '" + count + "' is not a number");
    msg.dequeue_count = *n;
    // An empty message has an empty (or no) MessageText element.
    std::string stored = m.child_text("MessageText").value_or("");
    if (options_.base64_messages) {
      std::optional<std::string> decoded = base64_decode(stored);
      msg.undecodable = !decoded.has_value();
      msg.text = decoded ? std::move(*decoded) : std::move(stored);
    } else {
      msg.text = std::move(stored);
    }
    msg.insertion_time = required_time("get_messages", m, "InsertionTime");
    msg.next_visible = required_time("get_messages", m, "TimeNextVisible");
    msg.expiration_time = required_time("get_messages", m, "ExpirationTime");
    out.push_back(std::move(msg));
  }
  if (out.size() > static_cast<std::size_t>(max_messages)) {
    bad_response("get_messages", "more messages than asked for");
  }
  return out;
}

std::string AzureQueueClient::update_message(std::string_view message_id,
                                             std::string_view pop_receipt,
                                             std::chrono::seconds visibility_timeout) {
  if (message_id.empty() || pop_receipt.empty()) {
    invalid("update_message: message_id and pop_receipt must not be empty");
  }
  if (visibility_timeout.count() < 0 || visibility_timeout > kMaxVisibility) {
    invalid("update_message: visibility_timeout must be 0 s .. 7 days");
  }
  Params query = {{"popreceipt", std::string(pop_receipt)},
                  {"visibilitytimeout", std::to_string(visibility_timeout.count())}};
  // No body: only the visibility changes, the text stays.
  Response r = request("update_message", "PUT",
                       path_prefix_ + "/" + queue_name_ + "/messages/" + percent_encode(message_id),
                       query, "");
  if (r.status != 204) fail("update_message", r);
  const std::string* receipt = r.header("x-ms-popreceipt");
  if (receipt == nullptr || receipt->empty()) bad_response("update_message", "no x-ms-popreceipt");
  return *receipt;
}

void AzureQueueClient::delete_message(std::string_view message_id, std::string_view pop_receipt) {
  if (message_id.empty() || pop_receipt.empty()) {
    invalid("delete_message: message_id and pop_receipt must not be empty");
  }
  Params query = {{"popreceipt", std::string(pop_receipt)}};
  Response r = request("delete_message", "DELETE",
                       path_prefix_ + "/" + queue_name_ + "/messages/" + percent_encode(message_id),
                       query, "");
  if (r.status != 204) fail("delete_message", r);
}

std::int64_t AzureQueueClient::approximate_message_count() {
  Response r = request("approximate_message_count", "GET", path_prefix_ + "/" + queue_name_,
                       {{"comp", "metadata"}}, "");
  if (r.status != 200) fail("approximate_message_count", r);
  const std::string* count = r.header("x-ms-approximate-messages-count");
  std::optional<std::int64_t> n = count != nullptr ? parse_int(*count) : std::nullopt;
  if (!n) bad_response("approximate_message_count", "no x-ms-approximate-messages-count");
  return *n;
}

}  // namespace ergon::messaging
