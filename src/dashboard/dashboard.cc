// The dashboard's HTTP server: routes, the security checks in front of them, static assets.
//
// Every request passes the pre-routing checks first, in this order:
//   1. method: GET, HEAD and POST only (405 otherwise);
//   2. Host: without a token, a loopback dashboard answers only Host headers that name this
//      machine, so a page whose name an attacker re-points at 127.0.0.1 cannot read the API;
//   3. token (when configured): Authorization: Bearer, or the cookie /login sets (401);
//   4. POST only: read-only mode (403), the X-Ergon-Request header (403; a cross-site form
//      or a simple fetch cannot send it without a CORS preflight, which this server never
//      grants), and Origin / Sec-Fetch-Site must say the request comes from this page (403).
// Handlers then validate their own input (api.cc): bad input is a 4xx with a JSON message.
#include "ergon/dashboard.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "api.h"
#include "assets.h"
#include "http_util.h"

namespace ergon {

using dashboard::Api;
using dashboard::ApiError;
using nlohmann::json;

namespace {

constexpr const char* kCookieName = "ergon_token";
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
      : store_(std::move(store)), options_(std::move(options)), api_(store_) {}

  ~Impl() { stop(); }

  void start() {
    if (thread_.joinable()) return;
    server_ = std::make_unique<httplib::Server>();
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
    port_ = port;
    thread_ = std::thread([this] { server_->listen_after_bind(); });
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

  bool authorized(const httplib::Request& req) const {
    const std::string& token = options_.token;
    std::string auth = req.get_header_value("Authorization");
    if (auth.starts_with("Bearer ") && dashboard::constant_time_equal(auth.substr(7), token)) {
      return true;
    }
    auto cookie = dashboard::cookie_value(req.get_header_value("Cookie"), kCookieName);
    return cookie && dashboard::constant_time_equal(*cookie, token);
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
    if (!options_.token.empty() && req.path != "/login" && !authorized(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401,
                 "an access token is required: send Authorization: Bearer TOKEN, or open "
                 "/login?token=TOKEN once in the browser");
      return R::Handled;
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

  void configure(httplib::Server& s) {
    s.set_payload_max_length(1 << 20);
    s.set_keep_alive_timeout(2);
    s.set_read_timeout(10);
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
      if (!options_.token.empty()) {
        std::string given = req.get_param_value("token");
        if (!dashboard::constant_time_equal(given, options_.token)) {
          send_error(res, 401, "wrong or missing token");
          return;
        }
        res.set_header("Set-Cookie", std::string(kCookieName) + "=" + options_.token +
                                         "; HttpOnly; SameSite=Strict; Path=/");
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
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<int> port_{0};
};

Dashboard::Dashboard(std::shared_ptr<Store> store, DashboardOptions options) {
  if (!store) throw Error(ErrorCode::kInvalidArgument, "Dashboard needs a store");
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
                    ", which other machines can reach: give it an access token (--token or "
                    "ERGON_DASHBOARD_TOKEN), or listen on 127.0.0.1");
  }
  // The token travels in a cookie and a header: keep it to characters both carry safely.
  for (char c : options.token) {
    if (c <= ' ' || c >= 127 || c == ';' || c == ',' || c == '"' || c == '\\') {
      throw Error(ErrorCode::kInvalidArgument,
                  "the dashboard token may hold printable ASCII only, without spaces, quotes, "
                  "commas, semicolons or backslashes");
    }
  }
  impl_ = std::make_unique<Impl>(std::move(store), std::move(options));
}

Dashboard::~Dashboard() = default;
void Dashboard::start() { impl_->start(); }
void Dashboard::stop() { impl_->stop(); }
int Dashboard::port() const { return impl_->port(); }
std::string Dashboard::url() const { return impl_->url(); }

}  // namespace ergon
