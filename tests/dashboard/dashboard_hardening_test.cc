// The dashboard against hostile clients, over real sockets on 127.0.0.1: slow connections
// (slowloris) that hold a request head open, a connection flood, short tokens, the session
// cookie, the Bearer scheme in any case, and repeated wrong tokens (limited with the store's
// FakeClock, no sleeps). Auth does not depend on the store, so these run on SQLite only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "auth.h"
#include "ergon/dashboard.h"
#include "ergon/ergon.h"
#include "support/test_support.h"

namespace ergon::testing {
namespace {

using namespace std::chrono_literals;

const std::string kToken = "0123456789abcdef-token";  // 22 characters

// A raw client socket: connects at construction, closes at destruction.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    // A generous bound for blocking reads, so that a broken server fails the test, not hangs it.
    timeval tv{.tv_sec = 60, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }
  bool send(std::string_view s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // True while the server has neither closed the connection nor answered on it.
  [[nodiscard]] bool open_and_silent() const {
    char c = 0;
    ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  // Everything the server sends until it closes the connection (or the 60 s bound passes).
  std::string read_until_closed() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

class DashboardHardeningTest : public ::testing::Test {
 protected:
  DashboardHardeningTest() : clock_(std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}) {
    store_ = open_store(sqlite_url(dir_), {.clock = &clock_});
  }

  void start(DashboardOptions o) {
    o.port = 0;
    dashboard_ = std::make_unique<Dashboard>(store_, o);
    dashboard_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", dashboard_->port());
    client_->set_connection_timeout(60, 0);
    client_->set_read_timeout(60, 0);
  }

  int status(const std::string& path, const httplib::Headers& h = {}) {
    auto r = client_->Get(path.c_str(), h);
    if (!r) {
      ADD_FAILURE() << path << ": no HTTP answer: " << httplib::to_string(r.error());
      return 0;
    }
    return r->status;
  }

  static httplib::Headers bearer(const std::string& token, const std::string& scheme = "Bearer") {
    return {{"Authorization", scheme + " " + token}};
  }

  TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<Store> store_;
  std::unique_ptr<Dashboard> dashboard_;
  std::unique_ptr<httplib::Client> client_;
};

// ---- slow clients ------------------------------------------------------------------------

TEST_F(DashboardHardeningTest, FiftySlowConnectionsDoNotStarveAnAuthenticatedRequest) {
  // The head timeout is far longer than the test, so the slow connections stay open
  // throughout: the request must be served beside them, not after they are cut.
  start({.token = kToken, .header_timeout = 10min});
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 50; ++i) {
    slow.push_back(std::make_unique<RawConnection>(dashboard_->port()));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->send("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "));
  }
  // Half of them trickle a byte at a time (a read timeout that each byte restarted would let them
  // hold forever), the other half hold, while the authenticated request is under way.
  std::atomic<bool> answered{false};
  std::thread trickle([&] {
    for (int round = 0; round < 200 && !answered; ++round) {
      for (std::size_t i = 0; i < slow.size(); i += 2) slow[i]->send("a");
      std::this_thread::yield();
    }
  });
  int got = status("/api/jobs", bearer(kToken));
  answered = true;
  trickle.join();
  EXPECT_EQ(got, 200);
  for (std::size_t i = 0; i < slow.size(); ++i) {
    EXPECT_TRUE(slow[i]->open_and_silent()) << "slow connection " << i << " was cut";
  }
}

TEST_F(DashboardHardeningTest, AtTheConnectionLimitTheLongestWaitingConnectionIsClosed) {
  start({.token = kToken, .max_connections = 8, .header_timeout = 10min});
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<RawConnection>(dashboard_->port()));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->send("GET / HTTP/1.1\r\n"));
  }
  EXPECT_EQ(status("/api/jobs", bearer(kToken)), 200);
  // The first one waited longest: it was closed to make room (read_until_closed returns at
  // the server's close; a server that kept it would leave it open past the 60 s bound).
  EXPECT_EQ(slow.front()->read_until_closed(), "");
  EXPECT_TRUE(slow.back()->open_and_silent());
}

TEST_F(DashboardHardeningTest, AHeadThatDoesNotArriveInTimeIsAnsweredWith408AndClosed) {
  start({.token = kToken, .header_timeout = 50ms});
  RawConnection c(dashboard_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  std::string answer = c.read_until_closed();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 408 ")) << answer;
}

TEST_F(DashboardHardeningTest, KeepAliveAndPipelinedRequestsAreServed) {
  start({.token = kToken});
  RawConnection c(dashboard_->port());
  ASSERT_TRUE(c.connected());
  std::string req =
      "GET /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + kToken + "\r\n";
  // Two requests in one write; the second asks to close, so the answer ends.
  ASSERT_TRUE(c.send(req + "\r\n" + req + "Connection: close\r\n\r\n"));
  std::string answer = c.read_until_closed();
  std::size_t first = answer.find("HTTP/1.1 200 ");
  ASSERT_EQ(first, 0u) << answer;
  EXPECT_NE(answer.find("HTTP/1.1 200 ", first + 1), std::string::npos) << answer;
}

TEST_F(DashboardHardeningTest, AnOversizedHeadIsRefused) {
  start({.token = kToken});
  RawConnection c(dashboard_->port());
  ASSERT_TRUE(c.connected());
  std::string head = "GET / HTTP/1.1\r\nX-Pad: " + std::string(128 * 1024, 'a');
  c.send(head);  // the server may close before it has all of it
  std::string answer = c.read_until_closed();
  EXPECT_TRUE(answer.empty() || answer.starts_with("HTTP/1.1 431 ")) << answer.substr(0, 200);
}

// ---- the token ---------------------------------------------------------------------------

TEST_F(DashboardHardeningTest, ATokenShorterThanTheMinimumIsRefused) {
  for (std::string token : {"x", "s3cret", "0123456789abcde"}) {  // 1, 6, 15 characters
    SCOPED_TRACE(token);
    try {
      Dashboard d(store_, {.port = 0, .token = token});
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("at least 16 characters"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(Dashboard(store_, {.port = 0, .token = "0123456789abcdef"}));
}

// A header timeout past the steady clock's range would wrap its deadline into the past and
// drop every connection at once.
TEST_F(DashboardHardeningTest, AHeaderTimeoutOutOfRangeIsRefused) {
  for (auto timeout : {std::chrono::milliseconds::max(), std::chrono::milliseconds(-1),
                       std::chrono::milliseconds(std::chrono::hours(24) + 1ms)}) {
    SCOPED_TRACE(timeout.count());
    EXPECT_THROW(Dashboard(store_, {.port = 0, .header_timeout = timeout}), Error);
  }
  EXPECT_NO_THROW(Dashboard(store_, {.port = 0, .header_timeout = std::chrono::hours(24)}));
}

TEST_F(DashboardHardeningTest, TheTokenIsReadFromAFile) {
  std::string path = dir_.file("token");
  std::ofstream(path) << kToken << "\n";
  EXPECT_EQ(read_dashboard_token_file(path), kToken);
  std::ofstream(path, std::ios::trunc) << kToken << "\r\n";
  EXPECT_EQ(read_dashboard_token_file(path), kToken);
  EXPECT_THROW(read_dashboard_token_file(dir_.file("missing")), Error);
  EXPECT_THROW(read_dashboard_token_file(dir_.path().string()), Error);  // a directory
  EXPECT_THROW(read_dashboard_token_file("/dev/zero"), Error);           // bounded, refused
}

TEST_F(DashboardHardeningTest, TheCookieIsDerivedFromTheTokenNotTheTokenItself) {
  start({.token = kToken});
  auto login = client_->Get(("/login?token=" + kToken).c_str());
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 303);
  std::string set_cookie = login->get_header_value("Set-Cookie");
  EXPECT_EQ(set_cookie.find(kToken), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set_cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain HTTP, not behind TLS";
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  EXPECT_EQ(cookie, "ergon_session=" + dashboard::session_cookie_value(kToken));
  EXPECT_EQ(status("/api/jobs", {{"Cookie", cookie}}), 200);
  // The token itself is no cookie, whether named ergon_token or ergon_session.
  EXPECT_EQ(status("/api/jobs", {{"Cookie", "ergon_token=" + kToken}}), 401);
  EXPECT_EQ(status("/api/jobs", {{"Cookie", "ergon_session=" + kToken}}), 401);
  // Nor is the cookie a Bearer token.
  EXPECT_EQ(status("/api/jobs", bearer(cookie.substr(cookie.find('=') + 1))), 401);
  // A proxy that says it terminated TLS gets a Secure cookie.
  auto proxied = client_->Get(("/login?token=" + kToken).c_str(), {{"X-Forwarded-Proto", "https"}});
  ASSERT_TRUE(proxied);
  EXPECT_NE(proxied->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);
}

TEST_F(DashboardHardeningTest, BehindTlsTheCookieIsSecure) {
  start({.token = kToken, .behind_tls = true});
  auto login = client_->Get(("/login?token=" + kToken).c_str());
  ASSERT_TRUE(login);
  EXPECT_NE(login->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);
}

TEST_F(DashboardHardeningTest, TheBearerSchemeIsCaseInsensitive) {
  start({.token = kToken});
  for (const char* scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    SCOPED_TRACE(scheme);
    EXPECT_EQ(status("/api/jobs", bearer(kToken, scheme)), 200);
  }
  EXPECT_EQ(status("/api/jobs", {{"Authorization", "Bearer   " + kToken}}), 200);
  EXPECT_EQ(status("/api/jobs", {{"Authorization", "Bearer" + kToken}}), 401);
  EXPECT_EQ(status("/api/jobs", {{"Authorization", "Basic " + kToken}}), 401);
  EXPECT_EQ(status("/api/jobs", {{"Authorization", "Bearer " + kToken + "x"}}), 401);
}

TEST(DashboardAuth, BearerCredential) {
  using dashboard::bearer_credential;
  EXPECT_EQ(bearer_credential("Bearer abc"), "abc");
  EXPECT_EQ(bearer_credential("bearer abc"), "abc");
  EXPECT_EQ(bearer_credential("BEARER  abc "), "abc");
  EXPECT_EQ(bearer_credential("Bearerabc"), std::nullopt);
  EXPECT_EQ(bearer_credential("Bearer "), std::nullopt);
  EXPECT_EQ(bearer_credential("Basic abc"), std::nullopt);
  EXPECT_EQ(bearer_credential(""), std::nullopt);
  EXPECT_NE(dashboard::session_cookie_value(kToken), dashboard::session_cookie_value(kToken + "x"));
  EXPECT_EQ(dashboard::session_cookie_value(kToken).size(), 64u);  // hex of 32 bytes
}

// ---- failed attempts ---------------------------------------------------------------------

TEST_F(DashboardHardeningTest, RepeatedWrongTokensAreLimitedUntilTheWindowPasses) {
  start({.token = kToken, .max_failed_attempts = 3, .failed_attempts_window = 1min});
  // Requests without any credential are not attempts (a browser before /login).
  for (int i = 0; i < 5; ++i) EXPECT_EQ(status("/api/jobs"), 401);
  EXPECT_EQ(status("/api/jobs", bearer("wrong-token-0123456789")), 401);
  clock_.advance(10s);
  EXPECT_EQ(status("/login?token=wrong-token-0123456789"), 401);
  EXPECT_EQ(status("/api/jobs", {{"Cookie", "ergon_session=00"}}), 401);
  // Three failures within the minute: everything from this address waits, even the right
  // token (or it would tell a guesser when it is right).
  auto limited = client_->Get("/api/jobs", bearer(kToken));
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "50");
  clock_.advance(49s);
  auto still = client_->Get("/api/jobs", bearer(kToken));
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, 429);
  EXPECT_EQ(still->get_header_value("Retry-After"), "1");
  clock_.advance(1s);
  EXPECT_EQ(status("/api/jobs", bearer(kToken)), 200);
  // A new window: one failure is not enough to be limited again.
  EXPECT_EQ(status("/api/jobs", bearer("wrong-token-0123456789")), 401);
  EXPECT_EQ(status("/api/jobs", bearer(kToken)), 200);
}

TEST_F(DashboardHardeningTest, FailuresInOldWindowsDoNotAddUp) {
  start({.token = kToken, .max_failed_attempts = 2, .failed_attempts_window = 1min});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(status("/api/jobs", bearer("wrong-token-0123456789")), 401);
    clock_.advance(61s);
  }
  EXPECT_EQ(status("/api/jobs", bearer(kToken)), 200);
}

}  // namespace
}  // namespace ergon::testing
