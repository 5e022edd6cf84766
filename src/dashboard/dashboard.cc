// The dashboard's HTTP server: routes, the security checks in front of them, static assets.
//
// Every request passes the pre-routing checks first, in this order:
//   1. method: GET, HEAD and POST only (405 otherwise);
//   2. Host: without a token, a loopback dashboard answers only Host headers that name this
//      machine, so a page whose name an attacker re-points at 127.0.0.1 cannot read the API;
//   3. token (when configured): an address with too many wrong tokens lately is answered 429
//      (auth.h); then Authorization: Bearer, or the session cookie /login sets (401);
//   4. POST only: read-only mode (403), the X-Ergon-Request header (403; a cross-site form
//      or a simple fetch cannot send it without a CORS preflight, which this server never
//      grants), and Origin / Sec-Fetch-Site must say the request comes from this page (403).
// Handlers then validate their own input (api.cc): bad input is a 4xx with a JSON message.
// Connections are served by a GuardedServer (guarded_server.h), which slow clients cannot
// starve.
#include "ergon/dashboard.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>
#include <thread>

#include "api.h"
#include "assets.h"
#include "auth.h"
#include "guarded_server.h"
#include "http_util.h"
#include "store/store.h"

namespace ergon {

using dashboard::Api;
using dashboard::ApiError;
using nlohmann::json;

namespace {

// Holds session_cookie_value(token), never the token.
constexpr const char* kCookieName = "ergon_session";
constexpr const char* kJsonType = "application/json; charset=utf-8";

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJsonType);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}, {"status", status}});
}

std::string content_type_of(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  if (name.ends_with(".png")) return "image/png";
  return "application/octet-stream";
}

const dashboard::Asset* find_asset(std::string_view name) {
  for (const auto& a : dashboard::assets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

dashboard::Params params_of(const httplib::Request& req) {
  return dashboard::Params(req.params.begin(), req.params.end());
}

}  // namespace

class Dashboard::Impl {
 public:
  Impl(std::shared_ptr<Store> store, DashboardOptions options)
      : store_(std::move(store)),
        options_(std::move(options)),
        api_(store_),
        limiter_(store_->clock(), options_.max_failed_attempts, options_.failed_attempts_window) {
    if (!options_.token.empty()) tokens_.emplace(options_.token);
  }

  ~Impl() { stop(); }

  void start() {
    if (thread_.joinable()) return;
    server_ = std::make_unique<dashboard::GuardedServer>(
        dashboard::ConnectionLimits{.threads = options_.threads,
                                    .max_connections = options_.max_connections,
                                    .header_timeout = options_.header_timeout});
    configure(*server_);
    int port = options_.port;
    if (port == 0) {
      port = server_->bind_to_any_port(options_.address);
      if (port <= 0) port = -1;
    } else if (!server_->bind_to_port(options_.address, port)) {
      port = -1;
    }
    if (port < 0) {
      server_.reset();
      throw Error(ErrorCode::kInvalidArgument, "dashboard: cannot listen on " + options_.address +
                                                   ":" + std::to_string(options_.port) +
                                                   " (address in use or not of this host)");
    }
    server_->raise_backlog();
    port_ = port;
    listen_ended_ = false;
    thread_ = std::thread([this] {
      server_->listen_after_bind();
      listen_ended_ = true;
    });
    // httplib's stop() does nothing before its accept loop runs: wait for it, so that a stop()
    // right after start() cannot leave the thread running and the join hanging.
    while (!server_->is_running() && !listen_ended_) std::this_thread::yield();
    spdlog::info("dashboard: listening on {}{}", url(), options_.read_only ? " (read-only)" : "");
  }

  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }

  [[nodiscard]] int port() const { return port_; }

  [[nodiscard]] std::string url() const {
    std::string host = options_.address;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return "http://" + host + ":" + std::to_string(port_) + "/";
  }

 private:
  // Runs `fn` and answers with its JSON, or with the error it threw.
  template <class Fn>
  httplib::Server::Handler json_route(Fn fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        send_json(res, 200, fn(req));
      } catch (const ApiError& e) {
        send_error(res, e.status(), e.what());
      } catch (const std::exception& e) {
        // A bug, not bad input: say so, keep serving.
        spdlog::error("dashboard: {} {} failed: {}", req.method, req.path, e.what());
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
    };
  }

  static httplib::Server::Handler post_only() {
    return [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      send_error(res, 405, "this endpoint changes state: use POST");
    };
  }

  std::string actor(const httplib::Request& req) const { return "dashboard:" + req.remote_addr; }

  enum class Credential { kNone, kRight, kWrong };

  // Only called with a token configured. Any Authorization header counts as an attempt.
  [[nodiscard]] Credential credential(const httplib::Request& req) const {
    if (req.has_header("Authorization")) {
      std::string header = req.get_header_value("Authorization");
      auto given = dashboard::bearer_credential(header);  // a view into `header`
      return given && tokens_->token_matches(*given) ? Credential::kRight : Credential::kWrong;
    }
    auto cookie = dashboard::cookie_value(req.get_header_value("Cookie"), kCookieName);
    if (!cookie) return Credential::kNone;
    return tokens_->cookie_matches(*cookie) ? Credential::kRight : Credential::kWrong;
  }

  // 429 while the client's address has used up its wrong attempts.
  bool refuse_if_limited(const httplib::Request& req, httplib::Response& res) {
    auto left = limiter_.limited(req.remote_addr);
    if (!left) return false;
    auto seconds = std::chrono::ceil<std::chrono::seconds>(*left).count();
    res.set_header("Retry-After", std::to_string(seconds));
    send_error(res, 429,
               "too many wrong tokens from " + req.remote_addr + ": try again in " +
                   std::to_string(seconds) + " s");
    return true;
  }

  [[nodiscard]] std::string cookie_attributes(const httplib::Request& req) const {
    bool secure = options_.behind_tls || req.get_header_value("X-Forwarded-Proto") == "https";
    return std::string("; HttpOnly; SameSite=Strict; Path=/") + (secure ? "; Secure" : "");
  }

  httplib::Server::HandlerResponse check(const httplib::Request& req, httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
      res.set_header("Allow", "GET, HEAD, POST");
      send_error(res, 405, "method " + req.method + " is not allowed");
      return R::Handled;
    }
    if (options_.token.empty() &&
        !dashboard::is_loopback_host_header(req.get_header_value("Host"))) {
      send_error(
          res, 403,
          "this dashboard answers only to localhost (Host: " + req.get_header_value("Host") + ")");
      return R::Handled;
    }
    if (tokens_ && refuse_if_limited(req, res)) return R::Handled;
    if (tokens_ && req.path != "/login") {
      Credential c = credential(req);
      if (c != Credential::kRight) {
        if (c == Credential::kWrong) {
          limiter_.record_failure(req.remote_addr);
          // A stale cookie (the token changed) is dropped, so the browser stops sending it.
          res.set_header("Set-Cookie",
                         std::string(kCookieName) + "=" + cookie_attributes(req) + "; Max-Age=0");
        }
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401,
                   "an access token is required: send Authorization: Bearer TOKEN, or open "
                   "/login?token=TOKEN once in the browser");
        return R::Handled;
      }
    }
    if (req.method == "POST") {
      if (options_.read_only) {
        send_error(res, 403, "the dashboard is read-only");
        return R::Handled;
      }
      if (req.get_header_value("X-Ergon-Request").empty()) {
        send_error(res, 403, "actions need the header X-Ergon-Request (cross-site protection)");
        return R::Handled;
      }
      if (auto why = dashboard::cross_site_refusal(req.get_header_value("Origin"),
                                                   req.get_header_value("Host"),
                                                   req.get_header_value("Sec-Fetch-Site"))) {
        send_error(res, 403, *why);
        return R::Handled;
      }
    }
    return R::Unhandled;
  }

  void serve_asset(const std::string& name, httplib::Response& res) {
    const dashboard::Asset* a = find_asset(name);
    if (!a) {
      send_error(res, 404, "no such file");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(reinterpret_cast<const char*>(a->data), a->size, content_type_of(name));
  }

  // Timeouts and connection limits are the GuardedServer's (options_.header_timeout, ...).
  void configure(httplib::Server& s) {
    s.set_payload_max_length(1 << 20);
    // Nothing from the page may load from elsewhere or run inline; no framing (clickjacking).
    s.set_default_headers(
        {{"X-Content-Type-Options", "nosniff"},
         {"Referrer-Policy", "no-referrer"},
         {"X-Frame-Options", "DENY"},
         {"Content-Security-Policy",
          "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"}});
    s.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { return check(req, res); });
    s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404) {
        send_error(res, 404, "no such page or endpoint: " + req.path);
      } else {
        send_error(res, res.status, "request refused");
      }
    });
    s.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          send_error(res, 500, "internal error: " + what);
        });

    s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      serve_asset("index.html", res);
    });
    s.Get("/assets/([A-Za-z0-9_.-]+)", [this](const httplib::Request& req, httplib::Response& res) {
      serve_asset(req.matches[1], res);
    });
    s.Get("/login", [this](const httplib::Request& req, httplib::Response& res) {
      if (tokens_) {
        if (!req.has_param("token")) {
          send_error(res, 401, "missing token: open /login?token=TOKEN");
          return;
        }
        if (!tokens_->token_matches(req.get_param_value("token"))) {
          limiter_.record_failure(req.remote_addr);
          send_error(res, 401, "wrong token");
          return;
        }
        res.set_header("Set-Cookie", std::string(kCookieName) + "=" + tokens_->cookie_value() +
                                         cookie_attributes(req));
      }
      res.status = 303;
      res.set_header("Location", "/");
    });

    s.Get("/api/config", json_route([this](const httplib::Request&) {
            return json{{"read_only", options_.read_only},
                        {"backend", std::string(store_->backend())},
                        {"version", "0.1.0"}};
          }));
    s.Get("/api/overview", json_route([this](const httplib::Request&) { return api_.overview(); }));
    s.Get("/api/jobs",
          json_route([this](const httplib::Request& req) { return api_.jobs(params_of(req)); }));
    s.Get("/api/jobs/([^/]+)", json_route([this](const httplib::Request& req) {
            if (!req.params.empty()) throw ApiError(400, "this endpoint takes no parameters");
            return api_.job(req.matches[1]);
          }));
    s.Post("/api/jobs/bulk/([a-z]+)", json_route([this](const httplib::Request& req) {
             return api_.bulk_action(req.matches[1], req.body, actor(req));
           }));
    s.Post("/api/jobs/([^/]+)/([a-z]+)", json_route([this](const httplib::Request& req) {
             return api_.job_action(req.matches[1], req.matches[2], actor(req));
           }));
    s.Get("/api/jobs/([^/]+)/([a-z]+)", post_only());
    s.Get("/api/schedules", json_route([this](const httplib::Request& req) {
            if (!req.params.empty()) throw ApiError(400, "this endpoint takes no parameters");
            return api_.schedules();
          }));
    s.Post("/api/schedules/([a-z]+)", json_route([this](const httplib::Request& req) {
             return api_.schedule_action(req.matches[1], req.body, actor(req));
           }));
    s.Get("/api/schedules/([a-z]+)", post_only());
    s.Get("/api/workers", json_route([this](const httplib::Request&) { return api_.workers(); }));
    s.Get("/api/queues", json_route([this](const httplib::Request&) { return api_.queues(); }));
    s.Post("/api/queues/([a-z]+)", json_route([this](const httplib::Request& req) {
             return api_.queue_action(req.matches[1], req.body, actor(req));
           }));
    s.Get("/api/queues/([a-z]+)", post_only());
    s.Get("/api/audit",
          json_route([this](const httplib::Request& req) { return api_.audit(params_of(req)); }));
    s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      std::string text =
          options_.metrics ? options_.metrics->scrape(store_.get()) : scrape_store_metrics(*store_);
      res.set_header("Cache-Control", "no-store");
      res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
    });
  }

  std::shared_ptr<Store> store_;
  const DashboardOptions options_;
  Api api_;
  std::optional<dashboard::TokenCheck> tokens_;  // set when a token is configured
  dashboard::FailureLimiter limiter_;
  std::unique_ptr<dashboard::GuardedServer> server_;
  std::thread thread_;
  std::atomic<bool> listen_ended_{false};
  std::atomic<int> port_{0};
};

void Dashboard::check_options(const DashboardOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    throw Error(ErrorCode::kInvalidArgument,
                "dashboard port must be 0 to 65535, not " + std::to_string(options.port));
  }
  if (options.address.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "dashboard address is empty");
  }
  if (!is_loopback_address(options.address) && options.token.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "the dashboard listens on " + options.address +
                    ", which other machines can reach: give it an access token "
                    "(--token-file or ERGON_DASHBOARD_TOKEN), or listen on 127.0.0.1");
  }
  if (!options.token.empty()) dashboard::check_token(options.token);
  if (options.max_connections == 0 || options.threads == 0 ||
      options.header_timeout <= std::chrono::milliseconds::zero() ||
      options.header_timeout > std::chrono::hours(24) ||
      (options.max_failed_attempts > 0 && options.failed_attempts_window <= Duration::zero())) {
    throw Error(ErrorCode::kInvalidArgument,
                "dashboard max_connections, threads, header_timeout (at most 24 hours) and (with "
                "a limit on failed attempts) failed_attempts_window must be positive");
  }
}

Dashboard::Dashboard(std::shared_ptr<Store> store, DashboardOptions options) {
  if (!store) throw Error(ErrorCode::kInvalidArgument, "Dashboard needs a store");
  check_options(options);
  impl_ = std::make_unique<Impl>(std::move(store), std::move(options));
}

Dashboard::~Dashboard() = default;
void Dashboard::start() { impl_->start(); }
void Dashboard::stop() { impl_->stop(); }
int Dashboard::port() const { return impl_->port(); }
std::string Dashboard::url() const { return impl_->url(); }

}  // namespace ergon
