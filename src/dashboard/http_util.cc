#include "http_util.h"

#include "ergon/dashboard.h"

namespace ergon::dashboard {

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    std::size_t end = header.find(';');
    std::string_view part = header.substr(0, end);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return std::nullopt;
}

std::string host_of(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    std::size_t close = h.find(']');
    return std::string(close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1));
  }
  std::size_t colon = h.find(':');
  return std::string(h.substr(0, colon));
}

bool is_loopback_host_header(std::string_view host_header) {
  return is_loopback_address(host_of(host_header));
}

std::optional<std::string> cross_site_refusal(std::string_view origin, std::string_view host,
                                              std::string_view sec_fetch_site) {
  if (!sec_fetch_site.empty() && sec_fetch_site != "same-origin" && sec_fetch_site != "none") {
    return "cross-site request refused (Sec-Fetch-Site: " + std::string(sec_fetch_site) + ")";
  }
  if (!origin.empty()) {
    std::string expected_http = "http://" + std::string(host);
    std::string expected_https = "https://" + std::string(host);  // behind a TLS proxy
    if (origin != expected_http && origin != expected_https) {
      return "cross-site request refused (Origin " + std::string(origin) + " is not " +
             expected_http + ")";
    }
  }
  return std::nullopt;
}

}  // namespace ergon::dashboard

namespace ergon {

bool is_loopback_address(const std::string& a) {
  if (a == "localhost" || a == "::1" || a == "[::1]") return true;
  // 127.0.0.0/8, written as a dotted quad.
  if (!a.starts_with("127.")) return false;
  int dots = 0;
  for (char c : a) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace ergon
