#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "ergon/dashboard.h"
#include "ergon/error.h"

namespace ergon::dashboard {

namespace {

// The HMAC's message: fixed, so that a token always gives the same cookie; versioned, so that a
// future change of the cookie's meaning can make the old ones invalid.
constexpr std::string_view kCookieLabel = "ergon-dashboard-session-v1";

std::string hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

std::string sha256(std::string_view s) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return {reinterpret_cast<const char*>(md), sizeof md};
}

bool same_digest(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

void check_token(std::string_view token) {
  if (token.size() < kDashboardMinTokenLength) {
    throw Error(ErrorCode::kInvalidArgument,
                "the dashboard token must be at least " + std::to_string(kDashboardMinTokenLength) +
                    " characters long (it has " + std::to_string(token.size()) +
                    "); make one with `openssl rand -hex 16`");
  }
  for (char c : token) {
    if (c <= ' ' || c >= 127 || c == ';' || c == ',' || c == '"' || c == '\\') {
      throw Error(ErrorCode::kInvalidArgument,
                  "the dashboard token may hold printable ASCII only, without spaces, quotes, "
                  "commas, semicolons or backslashes");
    }
  }
}

std::optional<std::string_view> bearer_credential(std::string_view h) {
  constexpr std::string_view kScheme = "bearer";
  if (h.size() <= kScheme.size() || h[kScheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = h[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return std::nullopt;
  }
  h.remove_prefix(kScheme.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.empty()) return std::nullopt;
  return h;
}

std::string session_cookie_value(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(kCookieLabel.data()), kCookieLabel.size(), md, &len);
  return hex(md, len);
}

TokenCheck::TokenCheck(std::string_view token)
    : digest_(sha256(token)), cookie_(session_cookie_value(token)) {}

bool TokenCheck::token_matches(std::string_view given) const {
  return same_digest(sha256(given), digest_);
}

bool TokenCheck::cookie_matches(std::string_view given) const {
  // Digests again: a cookie of another length takes as long as a wrong one of the right length.
  return same_digest(sha256(given), sha256(cookie_));
}

FailureLimiter::FailureLimiter(Clock& clock, int max_failures, Duration window)
    : clock_(clock), max_failures_(max_failures), window_(window) {}

std::optional<Duration> FailureLimiter::limited(const std::string& address) {
  if (max_failures_ <= 0) return std::nullopt;
  TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  auto it = windows_.find(address);
  if (it == windows_.end() || it->second.failures < max_failures_) return std::nullopt;
  // Differences of two instants, never start + window: a window of years must not wrap.
  Duration elapsed = std::chrono::duration_cast<Duration>(now - it->second.start);
  if (elapsed >= window_) {
    windows_.erase(it);
    return std::nullopt;
  }
  return window_ - elapsed;
}

void FailureLimiter::record_failure(const std::string& address) {
  if (max_failures_ <= 0) return;
  TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  auto it = windows_.find(address);
  if (it != windows_.end() &&
      std::chrono::duration_cast<Duration>(now - it->second.start) >= window_) {
    windows_.erase(it);
    it = windows_.end();
  }
  if (it == windows_.end()) {
    make_room(now);
    it = windows_.emplace(address, Window{now, 0}).first;
  }
  it->second.failures = std::min(it->second.failures + 1, max_failures_);
}

void FailureLimiter::make_room(TimePoint now) {
  if (windows_.size() < kMaxAddresses) return;
  std::erase_if(windows_, [&](const auto& kv) {
    return std::chrono::duration_cast<Duration>(now - kv.second.start) >= window_;
  });
  if (windows_.size() < kMaxAddresses) return;
  auto oldest = std::min_element(
      windows_.begin(), windows_.end(),
      [](const auto& a, const auto& b) { return a.second.start < b.second.start; });
  windows_.erase(oldest);
}

}  // namespace ergon::dashboard

namespace ergon {

std::string read_dashboard_token_file(const std::string& path) {
  constexpr std::size_t kMaxBytes = 4096;
  auto refuse = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "dashboard token file " + path + ": " + why);
  };
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec) throw refuse(ec.message());
  // A device or a FIFO could give no end (/dev/zero) or block; a token lives in a plain file.
  if (st.type() != std::filesystem::file_type::regular) throw refuse("not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw refuse(std::strerror(errno));
  std::string token(kMaxBytes + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw refuse("cannot be read");
  if (token.size() > kMaxBytes) throw refuse("larger than 4 KiB: not a token");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) throw refuse("empty");
  if ((st.permissions() & (std::filesystem::perms::group_read |
                           std::filesystem::perms::others_read)) != std::filesystem::perms::none) {
    spdlog::warn("dashboard token file {} is readable by other users (chmod 600 it)", path);
  }
  return token;
}

}  // namespace ergon
