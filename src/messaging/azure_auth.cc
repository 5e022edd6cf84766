#include "messaging/azure_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>

#include "ergon/error.h"

namespace ergon::messaging {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

[[noreturn]] void config_error(const std::string& what) {
  throw Error(ErrorCode::kConfig, "azure connection string: " + what);
}

// "scheme://host[:port][/path]" with a non-empty host and no query or fragment.
bool valid_endpoint(std::string_view url) {
  std::size_t rest;
  if (url.starts_with("http://")) {
    rest = 7;
  } else if (url.starts_with("https://")) {
    rest = 8;
  } else {
    return false;
  }
  std::string_view authority = url.substr(rest, url.find('/', rest) - rest);
  if (authority.empty() || authority.front() == ':') return false;
  return url.find_first_of("?# \t\r\n") == std::string_view::npos;
}

}  // namespace

AzureConnection parse_connection_string(std::string_view text) {
  // Keys are case-insensitive; remember each under its lower-case name.
  std::map<std::string, std::string> values;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view segment = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (segment.empty()) continue;
    std::size_t eq = segment.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      // Only the part before any '=' could be echoed, and there is none here; a segment
      // without '=' may be a pasted key, so it is not quoted.
      config_error("a segment is not of the form Key=Value");
    }
    std::string key = lower(trim(segment.substr(0, eq)));
    std::string value(trim(segment.substr(eq + 1)));
    if (!values.emplace(key, value).second) {
      config_error("key '" + std::string(trim(segment.substr(0, eq))) + "' appears twice");
    }
  }
  auto get = [&](const char* key) -> const std::string* {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  };

  if (const std::string* dev = get("usedevelopmentstorage")) {
    if (!iequals(*dev, "true")) config_error("UseDevelopmentStorage must be 'true'");
    if (get("developmentstorageproxyuri") != nullptr) {
      config_error("DevelopmentStorageProxyUri is not supported");
    }
    return AzureConnection{std::string(kDevStoreAccountName), std::string(kDevStoreAccountKey),
                           std::string(kDevStoreQueueEndpoint)};
  }

  AzureConnection c;
  const std::string* name = get("accountname");
  if (name == nullptr || name->empty()) {
    if (get("sharedaccesssignature") != nullptr) {
      config_error("SharedAccessSignature is not supported; use AccountName and AccountKey");
    }
    config_error("AccountName is missing");
  }
  // Account names are 3-24 lower-case letters and digits; the emulator's custom accounts may
  // differ, so only reject what could not appear in a URL host or path.
  for (char ch : *name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') {
      config_error("AccountName '" + *name + "' has characters other than letters and digits");
    }
  }
  c.account_name = *name;

  const std::string* key = get("accountkey");
  if (key == nullptr || key->empty()) {
    if (get("sharedaccesssignature") != nullptr) {
      config_error("SharedAccessSignature is not supported; use AccountKey");
    }
    config_error("AccountKey is missing");
  }
  std::optional<std::string> decoded = base64_decode(*key);
  if (!decoded || decoded->empty()) config_error("AccountKey is not valid base64");
  c.account_key = *key;

  if (const std::string* endpoint = get("queueendpoint")) {
    std::string url = *endpoint;
    while (url.size() > 1 && url.back() == '/') url.pop_back();
    if (!valid_endpoint(url)) {
      config_error("QueueEndpoint '" + *endpoint +
                   "' is not an http:// or https:// URL with a host");
    }
    c.queue_endpoint = url;
    return c;
  }
  std::string protocol = "https";
  if (const std::string* p = get("defaultendpointsprotocol")) {
    protocol = lower(*p);
    if (protocol != "http" && protocol != "https") {
      config_error("DefaultEndpointsProtocol '" + *p + "' is neither http nor https");
    }
  }
  std::string suffix = "core.windows.net";
  if (const std::string* s = get("endpointsuffix")) {
    suffix = *s;
    while (!suffix.empty() && suffix.back() == '/') suffix.pop_back();
    if (suffix.empty() || suffix.find_first_of("/?#:@ \t") != std::string::npos) {
      config_error("EndpointSuffix '" + *s + "' is not a host name suffix");
    }
  }
  c.queue_endpoint = protocol + "://" + c.account_name + ".queue." + suffix;
  return c;
}

std::string shared_key_string_to_sign(std::string_view account, const SignedRequestParts& request) {
  auto header = [&](std::string_view name) -> std::string {
    for (const auto& [n, v] : request.headers) {
      if (iequals(n, name)) return std::string(trim(v));
    }
    return {};
  };
  std::string out;
  out += request.method;
  out += '\n';
  for (const char* name :
       {"Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",
        "Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"}) {
    std::string value = header(name);
    // Since version 2015-02-21 a zero Content-Length is signed as the empty string.
    if (iequals(name, "Content-Length") && value == "0") value.clear();
    out += value;
    out += '\n';
  }

  // Canonicalized headers: x-ms-*, lower-case names, sorted, runs of whitespace in the value
  // folded to one space.
  std::map<std::string, std::string> ms;
  for (const auto& [n, v] : request.headers) {
    std::string name = lower(trim(n));
    if (!name.starts_with("x-ms-")) continue;
    std::string value;
    bool space = false;
    for (char ch : trim(v)) {
      if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
        space = true;
        continue;
      }
      if (space) value += ' ';
      space = false;
      value += ch;
    }
    ms[name] = value;
  }
  for (const auto& [n, v] : ms) {
    out += n;
    out += ':';
    out += v;
    out += '\n';
  }

  // Canonicalized resource. With a path-style endpoint the path already starts with the
  // account, which is why it appears twice: "/devstoreaccount1/devstoreaccount1/queue".
  out += '/';
  out += account;
  out += request.path.empty() ? std::string_view("/") : request.path;
  std::map<std::string, std::vector<std::string>> query;
  for (const auto& [n, v] : request.query) query[lower(n)].push_back(v);
  for (auto& [n, vs] : query) {
    std::sort(vs.begin(), vs.end());
    out += '\n';
    out += n;
    out += ':';
    for (std::size_t i = 0; i < vs.size(); ++i) {
      if (i > 0) out += ',';
      out += vs[i];
    }
  }
  return out;
}

std::string shared_key_signature(std::string_view string_to_sign, std::string_view key) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(string_to_sign.data()), string_to_sign.size(),
           mac.data(), &mac_len) == nullptr) {
    throw Error(ErrorCode::kStore, "azure queue: HMAC-SHA256 failed (OpenSSL)");
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_len));
}

namespace {
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
    out += kAlphabet[n & 63];
  }
  std::size_t left = bytes.size() - i;
  if (left == 1) {
    std::uint32_t n = byte(i) << 16;
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += "==";
  } else if (left == 2) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    std::uint32_t n = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      int v = 0;
      if (k < 4 - static_cast<std::size_t>(pad)) {
        v = base64_value(text[i + k]);
        if (v < 0) return std::nullopt;
      }
      n = n << 6 | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>(n >> 16 & 0xff);
    if (pad == 2) {
      if ((n & 0xffff) != 0) return std::nullopt;  // non-zero pad bits: not canonical
      break;
    }
    out += static_cast<char>(n >> 8 & 0xff);
    if (pad == 1) {
      if ((n & 0xff) != 0) return std::nullopt;
      break;
    }
    out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {
constexpr std::array<std::string_view, 7> kWeekdays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void two_digits(std::string& out, unsigned v) {
  out += static_cast<char>('0' + v / 10 % 10);
  out += static_cast<char>('0' + v % 10);
}

// Reads exactly `n` digits.
std::optional<int> read_digits(std::string_view& s, std::size_t n) {
  if (s.size() < n) return std::nullopt;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  return v;
}

bool consume(std::string_view& s, std::string_view what) {
  if (!s.starts_with(what)) return false;
  s.remove_prefix(what.size());
  return true;
}
}  // namespace

std::string format_http_date(TimePoint t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto days = floor<std::chrono::days>(secs);
  year_month_day ymd{days};
  hh_mm_ss<seconds> hms{secs - days};
  std::string out;
  out += kWeekdays[weekday{days}.c_encoding()];
  out += ", ";
  two_digits(out, static_cast<unsigned>(ymd.day()));
  out += ' ';
  out += kMonths[static_cast<unsigned>(ymd.month()) - 1];
  out += ' ';
  out += std::to_string(static_cast<int>(ymd.year()));
  out += ' ';
  two_digits(out, static_cast<unsigned>(hms.hours().count()));
  out += ':';
  two_digits(out, static_cast<unsigned>(hms.minutes().count()));
  out += ':';
  two_digits(out, static_cast<unsigned>(hms.seconds().count()));
  out += " GMT";
  return out;
}

std::optional<TimePoint> parse_http_date(std::string_view s) {
  using namespace std::chrono;
  s = trim(s);
  // The weekday is redundant; accept any of the names and check nothing else about it.
  if (s.size() < 5 || s[3] != ',' || s[4] != ' ') return std::nullopt;
  if (std::find(kWeekdays.begin(), kWeekdays.end(), s.substr(0, 3)) == kWeekdays.end()) {
    return std::nullopt;
  }
  s.remove_prefix(5);
  auto d = read_digits(s, 2);
  if (!d || !consume(s, " ") || s.size() < 4) return std::nullopt;
  auto m = std::find(kMonths.begin(), kMonths.end(), s.substr(0, 3));
  if (m == kMonths.end() || s[3] != ' ') return std::nullopt;
  s.remove_prefix(4);
  auto y = read_digits(s, 4);
  if (!y || !consume(s, " ")) return std::nullopt;
  auto hh = read_digits(s, 2);
  if (!hh || !consume(s, ":")) return std::nullopt;
  auto mm = read_digits(s, 2);
  if (!mm || !consume(s, ":")) return std::nullopt;
  auto ss = read_digits(s, 2);
  if (!ss || s != " GMT") return std::nullopt;
  year_month_day ymd{year{*y}, month{static_cast<unsigned>(m - kMonths.begin() + 1)},
                     day{static_cast<unsigned>(*d)}};
  if (!ymd.ok() || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  sys_seconds t = sys_days{ymd} + hours{*hh} + minutes{*mm} + seconds{*ss};
  // TimePoint counts nanoseconds and ends in 2262; the service writes "never" (a message put
  // with messagettl=-1) as 31 Dec 9999.
  if (t >= floor<seconds>(TimePoint::max())) return TimePoint::max();
  if (t <= ceil<seconds>(TimePoint::min())) return TimePoint::min();
  return TimePoint(t);
}

}  // namespace ergon::messaging
