// dashboard/http_util.h — the security checks of the dashboard, apart from the server so that
// tests can call them directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ergon::dashboard {

// The value of cookie `name` in a Cookie header, if present.
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);

// The host part of a Host header ("127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1").
std::string host_of(std::string_view host_header);

// Whether a Host header names this machine (localhost, 127.x.x.x, ::1): a dashboard on a
// loopback address without a token accepts only those, so that a web page whose name is made
// to resolve to 127.0.0.1 (DNS rebinding) cannot read the API.
bool is_loopback_host_header(std::string_view host_header);

// Cross-site checks of a state-changing request: Origin, when sent, must be this server
// ("http://" + Host); Sec-Fetch-Site, when sent, must be same-origin or none. Returns the
// reason to refuse, or nullopt.
std::optional<std::string> cross_site_refusal(std::string_view origin, std::string_view host,
                                              std::string_view sec_fetch_site);

}  // namespace ergon::dashboard
