// The Azure Storage Queue client: pure parts (connection strings, Shared Key, base64, dates)
// against hand-made vectors, then the client against a real Azurite whose connection string
// is in ERGON_TEST_AZURITE (scripts/azurite.sh start DIR prints it). Without it the emulator
// tests skip.
#include "messaging/azure_queue.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ergon/error.h"

namespace ergon::messaging {
namespace {

using namespace std::chrono_literals;

// `n` pseudo-random bytes, all 256 values possible; the same for the same seed.
std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no ergon::Error thrown";
  return Error(ErrorCode::kInvalidArgument, "");
}

template <typename F>
AzureQueueError azure_error_of(F&& f) {
  try {
    f();
  } catch (const AzureQueueError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an AzureQueueError: " << e.what();
  }
  ADD_FAILURE() << "no AzureQueueError thrown";
  return AzureQueueError(AzureFailure::kRejected, -1, "", "");
}

// ---------------------------------------------------------------------------------------------
// Connection strings

constexpr const char* kKey =
    "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5";  // base64("secret-key-bytes-0123456789")

TEST(AzureConnectionString, AccountKeyAndSuffixMakeTheQueueHost) {
  AzureConnection c = parse_connection_string(
      std::string("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=") + kKey +
      ";EndpointSuffix=core.chinacloudapi.cn");
  EXPECT_EQ(c.account_name, "myacct");
  EXPECT_EQ(c.account_key, kKey);
  EXPECT_EQ(c.queue_endpoint, "https://myacct.queue.core.chinacloudapi.cn");

  // Protocol and suffix default to https and core.windows.net; keys are case-insensitive and
  // empty segments (a trailing ';') are fine.
  c = parse_connection_string(std::string("accountname=other;ACCOUNTKEY=") + kKey + ";;");
  EXPECT_EQ(c.queue_endpoint, "https://other.queue.core.windows.net");
  c = parse_connection_string(
      std::string("DefaultEndpointsProtocol=http;AccountName=x1;AccountKey=") + kKey);
  EXPECT_EQ(c.queue_endpoint, "http://x1.queue.core.windows.net");
}

TEST(AzureConnectionString, QueueEndpointWinsAndLosesItsTrailingSlash) {
  AzureConnection c = parse_connection_string(
      std::string("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=") +
      std::string(kDevStoreAccountKey) +
      ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
      "QueueEndpoint=http://127.0.0.1:10101/devstoreaccount1/;");
  EXPECT_EQ(c.account_name, "devstoreaccount1");
  EXPECT_EQ(c.account_key, kDevStoreAccountKey);
  EXPECT_EQ(c.queue_endpoint, "http://127.0.0.1:10101/devstoreaccount1");
}

TEST(AzureConnectionString, DevelopmentStorageIsTheWellKnownAccount) {
  AzureConnection c = parse_connection_string("UseDevelopmentStorage=true");
  EXPECT_EQ(c.account_name, "devstoreaccount1");
  EXPECT_EQ(c.account_key,
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
            "KBHBeksoGMGw==");
  EXPECT_EQ(c.queue_endpoint, "http://127.0.0.1:10001/devstoreaccount1");
  EXPECT_EQ(parse_connection_string("usedevelopmentstorage=TRUE;").account_name,
            "devstoreaccount1");
}

TEST(AzureConnectionString, BadStringsNameTheKeyAndNeverShowTheAccountKey) {
  const std::string key = "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5";
  struct Case {
    std::string text;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"", "AccountName is missing"},
      {"AccountKey=" + key, "AccountName is missing"},
      {"AccountName=acct", "AccountKey is missing"},
      {"AccountName=acct;AccountKey=", "AccountKey is missing"},
      {"AccountName=acct;AccountKey=not*base64!", "AccountKey is not valid base64"},
      {"AccountName=acct;AccountKey=" + key + "x", "AccountKey is not valid base64"},
      {"AccountName=acct;AccountKey=" + key + ";DefaultEndpointsProtocol=ftp",
       "DefaultEndpointsProtocol"},
      {"AccountName=acct;AccountKey=" + key + ";QueueEndpoint=ftp://host/acct", "QueueEndpoint"},
      {"AccountName=acct;AccountKey=" + key + ";QueueEndpoint=http://", "QueueEndpoint"},
      {"AccountName=acct;AccountKey=" + key + ";QueueEndpoint=http://h/a?x=1", "QueueEndpoint"},
      {"AccountName=acct;AccountKey=" + key + ";EndpointSuffix=a/b", "EndpointSuffix"},
      {"AccountName=ac/ct;AccountKey=" + key, "AccountName"},
      {"AccountName=acct;" + key, "Key=Value"},  // a pasted key without its name
      {"AccountName=acct;AccountName=acct;AccountKey=" + key, "appears twice"},
      {"AccountName=acct;SharedAccessSignature=sv=2021&sig=abc", "SharedAccessSignature"},
      {"UseDevelopmentStorage=false", "UseDevelopmentStorage"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Error e = error_of([&] { static_cast<void>(parse_connection_string(c.text)); });
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find(c.mentions), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(key), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("not*base64"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Shared Key

// Written out by hand from the documented format (Authorize with Shared Key, version
// 2009-09-19 and later): twelve standard header lines, the x-ms- headers sorted with lower-case
// names and folded whitespace, then "/" account, the path (which already names the account with
// a path-style endpoint), and the query sorted by name.
TEST(AzureSharedKey, StringToSignMatchesTheDocumentedLayout) {
  SignedRequestParts request{"POST",
                             "/devstoreaccount1/jobs/messages",
                             {{"visibilitytimeout", "5"}, {"messagettl", "60"}},
                             {{"x-ms-version", "2021-12-02"},
                              {"X-MS-Date", "Sun, 11 Oct 2009 21:49:13 GMT"},
                              {"Content-Length", "84"},
                              {"content-type", "application/xml; charset=utf-8"},
                              {"x-ms-client-request-id", "  a \t  b  "},
                              {"Accept", "*/*"}}};
  const std::string expected =
      "POST\n"
      "\n"    // Content-Encoding
      "\n"    // Content-Language
      "84\n"  // Content-Length
      "\n"    // Content-MD5
      "application/xml; charset=utf-8\n"
      "\n"  // Date (x-ms-date is used instead)
      "\n"  // If-Modified-Since
      "\n"  // If-Match
      "\n"  // If-None-Match
      "\n"  // If-Unmodified-Since
      "\n"  // Range
      "x-ms-client-request-id:a b\n"
      "x-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\n"
      "x-ms-version:2021-12-02\n"
      "/devstoreaccount1/devstoreaccount1/jobs/messages\n"
      "messagettl:60\n"
      "visibilitytimeout:5";
  std::string sts = shared_key_string_to_sign("devstoreaccount1", request);
  EXPECT_EQ(sts, expected);
  // The signature of that string with the emulator's key, computed independently with
  //   openssl dgst -sha256 -mac HMAC -macopt hexkey:<key as hex> -binary | base64
  std::string key = *base64_decode(kDevStoreAccountKey);
  EXPECT_EQ(shared_key_signature(sts, key), "zJz7/1AMPFTfYDteHSlw/Qbshrj53T4xqpf1ydIrmYI=");
}

TEST(AzureSharedKey, ZeroLengthIsEmptyAndQueryValuesAreDecodedSortedAndJoined) {
  SignedRequestParts request{"DELETE",
                             "/myqueue/messages/0f3c",
                             {{"PopReceipt", "AgAAAA+/x=="}, {"b", "2"}, {"B", "1"}},
                             {{"Content-Length", "0"},
                              {"Range", "bytes=0-9"},
                              {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                              {"If-Match", "\"etag\""},
                              {"x-ms-version", "2021-12-02"}}};
  const std::string expected =
      "DELETE\n"
      "\n\n"
      "\n"  // Content-Length 0 is signed as empty
      "\n\n"
      "Mon, 01 Jan 2024 00:00:00 GMT\n"
      "\n"
      "\"etag\"\n"
      "\n\n"
      "bytes=0-9\n"
      "x-ms-version:2021-12-02\n"
      "/acct/myqueue/messages/0f3c\n"
      "b:1,2\n"
      "popreceipt:AgAAAA+/x==";
  EXPECT_EQ(shared_key_string_to_sign("acct", request), expected);
}

TEST(AzureSharedKey, SignatureIsBase64OfHmacSha256) {
  // RFC 4231, test case 2.
  EXPECT_EQ(shared_key_signature("what do ya want for nothing?", "Jefe"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
}

// ---------------------------------------------------------------------------------------------
// base64, percent-encoding, dates

TEST(AzureBase64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
  EXPECT_EQ(base64_encode(std::string("\xfb\xff\xbf", 3)), "+/+/");
}

TEST(AzureBase64, EveryByteAndEveryLengthRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  for (std::size_t n = 0; n < 70; ++n) {
    std::string bytes = random_bytes(n, static_cast<unsigned>(n));
    std::string encoded = base64_encode(bytes);
    EXPECT_EQ(encoded.size() % 4, 0u);
    EXPECT_EQ(base64_decode(encoded), bytes) << n;
  }
}

TEST(AzureBase64, RejectsWhatIsNotCanonicalBase64) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "====", "Zh==", "Zm9=", "Zm9v!A==", "=Zg=",
                          "Zm9v Zg==", "Zg==Zg==", "Zm\n9v"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

TEST(AzurePercentEncode, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(percent_encode("a+b/c=d e&\xc3\xa9"), "a%2Bb%2Fc%3Dd%20e%26%C3%A9");
}

TEST(AzureHttpDate, FormatsAndParsesRfc1123) {
  using namespace std::chrono;
  TimePoint t = sys_days{year{2009} / October / 11} + 21h + 49min + 13s + 999ms;
  EXPECT_EQ(format_http_date(t), "Sun, 11 Oct 2009 21:49:13 GMT");
  EXPECT_EQ(parse_http_date("Sun, 11 Oct 2009 21:49:13 GMT"), floor<seconds>(t));
  TimePoint leap_day = sys_days{year{2024} / February / 29};
  EXPECT_EQ(format_http_date(leap_day), "Thu, 29 Feb 2024 00:00:00 GMT");
  EXPECT_EQ(parse_http_date(format_http_date(leap_day)), leap_day);
  // "Never" (a message that does not expire) lies past the end of TimePoint.
  EXPECT_EQ(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), TimePoint::max());
  EXPECT_EQ(parse_http_date("Mon, 01 Jan 0001 00:00:00 GMT"), TimePoint::min());
  for (const char* bad : {"", "Sun, 11 Oct 2009 21:49:13", "Sun, 31 Feb 2009 21:49:13 GMT",
                          "Sun, 11 Foo 2009 21:49:13 GMT", "2009-10-11T21:49:13Z",
                          "Sun, 11 Oct 2009 24:00:00 GMT", "Xyz, 11 Oct 2009 21:49:13 GMT"}) {
    EXPECT_FALSE(parse_http_date(bad).has_value()) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// The client without a server: argument checks come before any request.

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

AzureConnection unreachable_connection() {
  return AzureConnection{"devstoreaccount1", std::string(kDevStoreAccountKey),
                         "http://127.0.0.1:" + std::to_string(closed_port()) + "/devstoreaccount1"};
}

TEST(AzureQueueClientArgs, QueueNamesFollowAzureRules) {
  AzureConnection c = unreachable_connection();
  for (const char* bad : {"ab", "Upper", "a--b", "-ab", "ab-", "a_b", "a.b", ""}) {
    Error e = error_of([&] { AzureQueueClient client(c, bad); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
  }
  std::string longest(63, 'a');
  for (const std::string& good : {std::string("abc"), std::string("a-b-1"), longest}) {
    EXPECT_NO_THROW(AzureQueueClient(c, good)) << good;
  }
  EXPECT_EQ(error_of([&] { AzureQueueClient client(c, longest + "a"); }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(AzureQueueClientArgs, OutOfRangeArgumentsAreRefusedBeforeAnyRequest) {
  // Nothing listens at this endpoint: a request would fail as kTransport, so kInvalidArgument
  // (and not an AzureQueueError) shows that none was made.
  AzureQueueClient client(unreachable_connection(), "never-reached");
  auto refused = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const AzureQueueError& e) {
      return ::testing::AssertionFailure() << "a request was made: " << e.what();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kInvalidArgument) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << e.what();
    }
    return ::testing::AssertionFailure() << "accepted";
  };
  EXPECT_TRUE(refused([&] { client.get_messages(0, 30s); }));
  EXPECT_TRUE(refused([&] { client.get_messages(33, 30s); }));
  EXPECT_TRUE(refused([&] { client.get_messages(-1, 30s); }));
  EXPECT_TRUE(refused([&] { client.get_messages(1, 0s); }));
  EXPECT_TRUE(refused([&] { client.get_messages(1, kMaxVisibility + 1s); }));
  EXPECT_TRUE(refused([&] { client.put_message("x", -1s); }));
  EXPECT_TRUE(refused([&] { client.put_message("x", kMaxVisibility + 1s); }));
  EXPECT_TRUE(refused([&] { client.put_message("x", 0s, 0s); }));
  EXPECT_TRUE(refused([&] { client.put_message("x", 10s, 10s); }));
  EXPECT_TRUE(refused([&] { client.update_message("id", "receipt", -1s); }));
  EXPECT_TRUE(refused([&] { client.update_message("", "receipt", 1s); }));
  EXPECT_TRUE(refused([&] { client.delete_message("id", ""); }));
  // ...while a valid call does try, and fails as a transport error.
  AzureQueueError e = azure_error_of([&] { client.get_messages(32, 30s); });
  EXPECT_EQ(e.failure(), AzureFailure::kTransport);
  EXPECT_EQ(e.http_status(), 0);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.code(), ErrorCode::kStore);
  EXPECT_NE(std::string(e.what()).find("azure queue get_messages: "), std::string::npos)
      << e.what();
}

TEST(AzureQueueClientArgs, RequestTimeoutBoundsAServerThatNeverAnswers) {
  // A listening socket that never accepts: the TCP connection completes (backlog), the HTTP
  // answer never comes.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  AzureConnection c{
      "devstoreaccount1", std::string(kDevStoreAccountKey),
      "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/devstoreaccount1"};
  AzureQueueOptions options;
  options.request_timeout = 300ms;
  AzureQueueClient client(c, "silent", options);
  auto start = std::chrono::steady_clock::now();
  AzureQueueError e = azure_error_of([&] { client.create_queue(); });
  auto took = std::chrono::steady_clock::now() - start;
  close(fd);
  EXPECT_EQ(e.failure(), AzureFailure::kTransport) << e.what();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
}

// ---------------------------------------------------------------------------------------------
// Against Azurite

constexpr const char* kNoAzurite =
    "ERGON_TEST_AZURITE is not set; run with "
    "ERGON_TEST_AZURITE=$(scripts/azurite.sh start DIR) (and scripts/azurite.sh stop DIR after)";

std::string random_queue_name() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "ergon-test-";
  for (int i = 0; i < 12; ++i) name += kHex[rng() & 15];
  return name + "-" + std::to_string(counter++);
}

// Re-checks `condition` every 100 ms until it holds or `limit` passes (real time: the
// emulator's clock is real). Returns the last result.
bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

class AzuriteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* cs = std::getenv("ERGON_TEST_AZURITE");
    if (cs == nullptr || *cs == '\0') GTEST_SKIP() << kNoAzurite;
    connection_ = parse_connection_string(cs);
    queue_ = random_queue_name();
    client_ = std::make_unique<AzureQueueClient>(connection_, queue_);
    ASSERT_TRUE(client_->create_queue());
  }

  void TearDown() override {
    if (client_ == nullptr) return;
    try {
      client_->delete_queue();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "delete_queue: " << e.what();
    }
  }

  std::unique_ptr<AzureQueueClient> client(AzureQueueOptions options) {
    return std::make_unique<AzureQueueClient>(connection_, queue_, options);
  }

  AzureConnection connection_;
  std::string queue_;
  std::unique_ptr<AzureQueueClient> client_;
};

TEST_F(AzuriteQueueTest, CreateAndDeleteAreIdempotent) {
  EXPECT_FALSE(client_->create_queue());  // already there
  EXPECT_TRUE(client_->delete_queue());
  EXPECT_FALSE(client_->delete_queue());
  AzureQueueError e = azure_error_of([&] { client_->put_message("lost"); });
  EXPECT_EQ(e.failure(), AzureFailure::kQueueNotFound) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_EQ(e.service_code(), "QueueNotFound");
  EXPECT_NE(std::string(e.what()).find("azure queue put_message: HTTP 404 QueueNotFound: "),
            std::string::npos)
      << e.what();
  EXPECT_TRUE(client_->create_queue());
}

TEST_F(AzuriteQueueTest, WrongAccountKeyIsRefusedAsAuthenticationFailure) {
  AzureConnection wrong = connection_;
  wrong.account_key = base64_encode(random_bytes(64, 7));
  AzureQueueClient intruder(wrong, queue_);
  for (const std::function<void()>& call : std::vector<std::function<void()>>{
           [&] { intruder.create_queue(); }, [&] { intruder.put_message("x"); },
           [&] { intruder.get_messages(1, 30s); }}) {
    AzureQueueError e = azure_error_of(call);
    EXPECT_EQ(e.failure(), AzureFailure::kAuthentication) << e.what();
    EXPECT_EQ(e.http_status(), 403);
    EXPECT_FALSE(e.retryable());
    EXPECT_EQ(std::string(e.what()).find(wrong.account_key), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find(connection_.account_key), std::string::npos);
  }
  EXPECT_EQ(client_->approximate_message_count(), 0);  // nothing got in
}

TEST_F(AzuriteQueueTest, PutGetDelete) {
  auto before = std::chrono::system_clock::now();
  PutMessageResult put = client_->put_message("hello, queue");
  EXPECT_FALSE(put.message_id.empty());
  EXPECT_FALSE(put.pop_receipt.empty());
  EXPECT_EQ(client_->approximate_message_count(), 1);

  std::vector<QueueMessage> got = client_->get_messages(1, 30s);
  ASSERT_EQ(got.size(), 1u);
  const QueueMessage& m = got.front();
  EXPECT_EQ(m.message_id, put.message_id);
  EXPECT_EQ(m.text, "hello, queue");
  EXPECT_FALSE(m.undecodable);
  EXPECT_EQ(m.dequeue_count, 1);
  EXPECT_NE(m.pop_receipt, put.pop_receipt);
  EXPECT_EQ(m.insertion_time, put.insertion_time);
  EXPECT_GE(m.insertion_time, std::chrono::floor<std::chrono::seconds>(before) - 5s);
  EXPECT_LE(m.insertion_time, std::chrono::system_clock::now() + 5s);
  EXPECT_GE(m.next_visible, m.insertion_time + 25s);
  EXPECT_GT(m.expiration_time, m.insertion_time + 24h);  // the default TTL is 7 days

  EXPECT_TRUE(client_->get_messages(32, 30s).empty());  // hidden while it is being handled
  client_->delete_message(m.message_id, m.pop_receipt);
  EXPECT_EQ(client_->approximate_message_count(), 0);
  EXPECT_TRUE(client_->get_messages(32, 1s).empty());
}

TEST_F(AzuriteQueueTest, GetReturnsAtMostMax) {
  std::set<std::string> put_ids;
  for (int i = 0; i < 5; ++i)
    put_ids.insert(client_->put_message("m" + std::to_string(i)).message_id);
  std::vector<QueueMessage> first = client_->get_messages(3, 30s);
  EXPECT_GE(first.size(), 1u);
  EXPECT_LE(first.size(), 3u);
  std::set<std::string> got_ids;
  for (const QueueMessage& m : first) got_ids.insert(m.message_id);
  // The rest, in as many gets as it takes (the service may return fewer than asked for).
  ASSERT_TRUE(poll_until(
      [&] {
        for (const QueueMessage& m : client_->get_messages(32, 30s)) got_ids.insert(m.message_id);
        return got_ids.size() >= 5;
      },
      5s));
  EXPECT_EQ(got_ids, put_ids);
  EXPECT_EQ(error_of([&] { client_->get_messages(0, 30s); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of([&] { client_->get_messages(33, 30s); }).code(), ErrorCode::kInvalidArgument);
}

TEST_F(AzuriteQueueTest, AMessageNotDeletedInTimeIsDeliveredAgain) {
  PutMessageResult put = client_->put_message("redeliver me");
  std::vector<QueueMessage> first = client_->get_messages(1, 1s);
  auto got_at = std::chrono::steady_clock::now();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].dequeue_count, 1);
  EXPECT_TRUE(client_->get_messages(1, 1s).empty());  // still hidden

  std::vector<QueueMessage> again;
  ASSERT_TRUE(poll_until(
      [&] {
        again = client_->get_messages(1, 30s);
        return !again.empty();
      },
      10s));
  EXPECT_GE(std::chrono::steady_clock::now() - got_at, 900ms);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message_id, put.message_id);
  EXPECT_EQ(again[0].text, "redeliver me");
  EXPECT_EQ(again[0].dequeue_count, 2);
  EXPECT_NE(again[0].pop_receipt, first[0].pop_receipt);

  // The first consumer's receipt is void now: it cannot delete the message it lost.
  AzureQueueError e =
      azure_error_of([&] { client_->delete_message(first[0].message_id, first[0].pop_receipt); });
  EXPECT_EQ(e.failure(), AzureFailure::kMessageNotFound) << e.what();
  client_->delete_message(again[0].message_id, again[0].pop_receipt);
  EXPECT_EQ(client_->approximate_message_count(), 0);
}

TEST_F(AzuriteQueueTest, UpdateMessageExtendsVisibilityAndReplacesTheReceipt) {
  client_->put_message("long job");
  std::vector<QueueMessage> got = client_->get_messages(1, 1s);
  ASSERT_EQ(got.size(), 1u);
  auto got_at = std::chrono::steady_clock::now();
  std::string renewed = client_->update_message(got[0].message_id, got[0].pop_receipt, 30s);
  EXPECT_FALSE(renewed.empty());
  EXPECT_NE(renewed, got[0].pop_receipt);

  // Past the original 1 s the message stays hidden: every get until then finds nothing.
  bool appeared = poll_until([&] { return !client_->get_messages(1, 30s).empty(); }, 1500ms);
  EXPECT_FALSE(appeared);
  EXPECT_GE(std::chrono::steady_clock::now() - got_at, 1400ms);

  // The old receipt can no longer delete (nor update); the new one can.
  AzureQueueError e =
      azure_error_of([&] { client_->delete_message(got[0].message_id, got[0].pop_receipt); });
  EXPECT_EQ(e.failure(), AzureFailure::kMessageNotFound) << e.what();
  e = azure_error_of([&] { client_->update_message(got[0].message_id, got[0].pop_receipt, 1s); });
  EXPECT_EQ(e.failure(), AzureFailure::kMessageNotFound) << e.what();
  client_->delete_message(got[0].message_id, renewed);
  EXPECT_EQ(client_->approximate_message_count(), 0);
}

TEST_F(AzuriteQueueTest, DeleteWithAStaleReceiptOrAGoneMessageFailsDistinguishably) {
  client_->put_message("contested");
  std::vector<QueueMessage> got = client_->get_messages(1, 30s);
  ASSERT_EQ(got.size(), 1u);
  const QueueMessage& m = got[0];
  std::string renewed = client_->update_message(m.message_id, m.pop_receipt, 30s);

  AzureQueueError stale =
      azure_error_of([&] { client_->delete_message(m.message_id, m.pop_receipt); });
  EXPECT_EQ(stale.failure(), AzureFailure::kMessageNotFound) << stale.what();
  EXPECT_EQ(stale.http_status(), 400);
  EXPECT_EQ(stale.service_code(), "PopReceiptMismatch");
  EXPECT_FALSE(stale.retryable());

  client_->delete_message(m.message_id, renewed);
  AzureQueueError gone = azure_error_of([&] { client_->delete_message(m.message_id, renewed); });
  EXPECT_EQ(gone.failure(), AzureFailure::kMessageNotFound) << gone.what();
  EXPECT_EQ(gone.http_status(), 404);
  EXPECT_EQ(gone.service_code(), "MessageNotFound");
  EXPECT_NE(std::string(gone.what()).find("azure queue delete_message: HTTP 404 MessageNotFound"),
            std::string::npos)
      << gone.what();
}

TEST_F(AzuriteQueueTest, ArbitraryBytesRoundTrip) {
  std::vector<std::string> payloads = {
      "<QueueMessage>&amp; & < > \" ' </MessageText>",
      "line 1\nline 2\r\nline 3\r",
      std::string("nul \0 inside, and \x01\x02\x7f\x80\xfe\xff", 24),
      "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
      "",
      "   leading and trailing spaces   ",
      random_bytes(48 * 1024, 42),  // the largest payload: 64 KiB once in base64
  };
  std::map<std::string, std::string> by_id;
  for (const std::string& p : payloads) by_id[client_->put_message(p).message_id] = p;
  std::size_t checked = 0;
  ASSERT_TRUE(poll_until(
      [&] {
        for (const QueueMessage& m : client_->get_messages(32, 30s)) {
          auto it = by_id.find(m.message_id);
          EXPECT_NE(it, by_id.end());
          if (it == by_id.end()) continue;
          EXPECT_FALSE(m.undecodable);
          EXPECT_EQ(m.text, it->second) << "payload of " << it->second.size() << " bytes";
          ++checked;
        }
        return checked >= payloads.size();
      },
      5s));
  EXPECT_EQ(checked, payloads.size());
}

TEST_F(AzuriteQueueTest, TooLargeAPayloadIsRejectedByTheService) {
  AzureQueueError e = azure_error_of([&] { client_->put_message(random_bytes(48 * 1024 + 1, 3)); });
  EXPECT_EQ(e.failure(), AzureFailure::kRejected) << e.what();
  EXPECT_GE(e.http_status(), 400);
  EXPECT_LT(e.http_status(), 500);
  EXPECT_EQ(client_->approximate_message_count(), 0);
}

TEST_F(AzuriteQueueTest, RawTextModeAndUndecodableMessages) {
  AzureQueueOptions raw_options;
  raw_options.base64_messages = false;
  auto raw = client(raw_options);
  const std::string text = "<job id=\"1\">a & b</job>\r\n\t\xc3\xa9";
  raw->put_message(text);
  std::vector<QueueMessage> got = raw->get_messages(1, 1s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, text);  // stored as XML-escaped text, read back unchanged
  EXPECT_FALSE(got[0].undecodable);

  // A base64 reader of a message some other producer put as plain text: it still gets the
  // message (and its receipt, to delete it), marked undecodable, text as stored.
  raw->delete_message(got[0].message_id, got[0].pop_receipt);
  raw->put_message("not base64!");
  got = client_->get_messages(1, 30s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].undecodable);
  EXPECT_EQ(got[0].text, "not base64!");
  client_->delete_message(got[0].message_id, got[0].pop_receipt);
}

TEST_F(AzuriteQueueTest, DelayedMessagesStayHiddenAndClearEmptiesTheQueue) {
  client_->put_message("later", 30s);
  client_->put_message("now", 0s, 60s);
  client_->put_message("forever", 0s, kNeverExpires);
  EXPECT_EQ(client_->approximate_message_count(), 3);
  std::vector<QueueMessage> got = client_->get_messages(32, 30s);
  std::set<std::string> texts;
  for (const QueueMessage& m : got) texts.insert(m.text);
  EXPECT_EQ(texts, (std::set<std::string>{"now", "forever"}));
  for (const QueueMessage& m : got) {
    if (m.text == "now") {
      EXPECT_LE(m.expiration_time, m.insertion_time + 61s);
    } else {
      EXPECT_EQ(m.expiration_time, TimePoint::max());
    }
  }
  client_->clear();
  EXPECT_EQ(client_->approximate_message_count(), 0);
}

TEST_F(AzuriteQueueTest, OneClientServesManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        try {
          client_->put_message(std::to_string(t) + ":" + std::to_string(i));
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(client_->approximate_message_count(), kThreads * kEach);
  std::set<std::string> texts;
  ASSERT_TRUE(poll_until(
      [&] {
        for (const QueueMessage& m : client_->get_messages(32, 30s)) texts.insert(m.text);
        return texts.size() >= static_cast<std::size_t>(kThreads * kEach);
      },
      5s));
  EXPECT_EQ(texts.size(), static_cast<std::size_t>(kThreads * kEach));
}

}  // namespace
}  // namespace ergon::messaging
