// dashboard/auth.h — the access token: its rules, the Bearer header, the session cookie derived
// from it, and the limit on wrong attempts per client address.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "ergon/clock.h"

namespace ergon::dashboard {

// Throws Error(kInvalidArgument) unless `token` is long enough and made of characters that a
// header and a cookie carry safely.
void check_token(std::string_view token);

// The credential of an Authorization header whose scheme is Bearer, in any case (RFC 7235:
// auth-scheme is case-insensitive, then one or more spaces); nullopt for another scheme or an
// empty credential.
std::optional<std::string_view> bearer_credential(std::string_view authorization);

// What the session cookie holds for `token`: hex of HMAC-SHA256 keyed with the token over a
// fixed label. It does not reveal the token and is not accepted as one; every dashboard with
// the same token (replicas, restarts) accepts it, and changing the token invalidates it.
std::string session_cookie_value(std::string_view token);

// Counts wrong attempts per client address in fixed windows on a Clock: the window opens at
// an address's first failure; once it holds `max_failures`, the address is limited until the
// window closes. Bounded: at most kMaxAddresses are remembered (expired ones go first, then
// the oldest). Thread-safe.
class FailureLimiter {
 public:
  static constexpr std::size_t kMaxAddresses = 4096;

  FailureLimiter(Clock& clock, int max_failures, Duration window);

  // The time left until `address` may try again; nullopt when it is not limited.
  std::optional<Duration> limited(const std::string& address);
  void record_failure(const std::string& address);

 private:
  struct Window {
    TimePoint start;
    int failures = 0;
  };
  void make_room(TimePoint now);  // requires mu_

  Clock& clock_;
  const int max_failures_;
  const Duration window_;
  std::mutex mu_;
  std::map<std::string, Window> windows_;  // guarded by mu_
};

// The checks against one configured token. The token itself is kept only as its SHA-256, and a
// given token is compared digest to digest in constant time, so neither its content nor its
// length shows in the time an answer takes.
class TokenCheck {
 public:
  explicit TokenCheck(std::string_view token);
  [[nodiscard]] bool token_matches(std::string_view given) const;
  [[nodiscard]] bool cookie_matches(std::string_view given) const;
  [[nodiscard]] const std::string& cookie_value() const { return cookie_; }

 private:
  std::string digest_;  // SHA-256 of the token
  std::string cookie_;  // session_cookie_value(token)
};

}  // namespace ergon::dashboard
