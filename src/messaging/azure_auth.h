// messaging/azure_auth.h — the pieces of the Azure Storage REST protocol that are pure
// functions: connection strings, Shared Key signing, base64 and HTTP dates.
//
// They are separate from the client (azure_queue.h) so that unit tests can check each against
// hand-made vectors without a server. Everything here is a pure function of its arguments and
// safe to call from any thread.
//
// Shared Key, as the Queue service checks it (version 2009-09-19 and later):
//   signature = base64(HMAC-SHA256(base64decode(AccountKey), UTF-8(StringToSign)))
//   Authorization: SharedKey <account>:<signature>
// where StringToSign is built by shared_key_string_to_sign() below.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ergon/types.h"

namespace ergon::messaging {

// Where a storage account's queue service is and how to sign for it.
struct AzureConnection {
  std::string account_name;
  // The account key as written in the connection string (base64; validated by
  // parse_connection_string). A secret: no error message or log line contains it.
  std::string account_key;
  // The queue service's base URL without a trailing '/': "https://acct.queue.core.windows.net",
  // or path-style "http://127.0.0.1:10001/devstoreaccount1" (emulator).
  std::string queue_endpoint;
};

// The emulator's published development account (UseDevelopmentStorage=true).
inline constexpr std::string_view kDevStoreAccountName = "devstoreaccount1";
inline constexpr std::string_view kDevStoreAccountKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
inline constexpr std::string_view kDevStoreQueueEndpoint =
    "http://127.0.0.1:10001/devstoreaccount1";

// Parses an Azure Storage connection string: `Key=Value` pairs separated by ';' (keys are
// case-insensitive, empty segments are ignored, values may contain '='). Understood keys:
//   UseDevelopmentStorage=true                    the emulator's development account
//   AccountName, AccountKey                       both required otherwise
//   QueueEndpoint                                 explicit endpoint (http:// or https://), or
//   DefaultEndpointsProtocol (http|https, default https) + EndpointSuffix (default
//   core.windows.net)                             → <protocol>://<account>.queue.<suffix>
// Other keys (BlobEndpoint, TableEndpoint, ...) are ignored. SharedAccessSignature is not
// supported. Throws Error(kConfig) naming the missing or bad key; never includes the key.
AzureConnection parse_connection_string(std::string_view text);

// The parts of an HTTP request that Shared Key signs.
struct SignedRequestParts {
  std::string_view method;  // "GET", "PUT", ...
  // The URL path exactly as sent (percent-encoded), from the first '/', without the query.
  // With a path-style endpoint it starts with the account: "/devstoreaccount1/myqueue".
  std::string_view path;
  // Query parameters, decoded (the signature covers decoded values).
  std::vector<std::pair<std::string, std::string>> query;
  // Every header sent, names in any case.
  std::vector<std::pair<std::string, std::string>> headers;
};

// The Shared Key StringToSign, lines joined by '\n':
//   VERB, Content-Encoding, Content-Language, Content-Length (empty when 0), Content-MD5,
//   Content-Type, Date, If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range,
//   then the canonicalized x-ms- headers (lower-case name ':' value, sorted by name, each
//   followed by '\n'), then the canonicalized resource: "/" account path, and for each query
//   parameter sorted by lower-case name "\n" name ":" value (several values sorted and
//   comma-separated).
std::string shared_key_string_to_sign(std::string_view account, const SignedRequestParts& request);

// base64(HMAC-SHA256(key, string_to_sign)); `key` is the decoded account key.
std::string shared_key_signature(std::string_view string_to_sign, std::string_view key);

// Standard base64 (RFC 4648 §4) with '=' padding.
std::string base64_encode(std::string_view bytes);
// Strict: nullopt for characters outside the alphabet, wrong padding or non-zero pad bits.
std::optional<std::string> base64_decode(std::string_view text);

// Percent-encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string percent_encode(std::string_view text);

// RFC 1123 dates as HTTP and x-ms-date use them: "Sun, 11 Oct 2009 21:49:13 GMT". Formatting
// does not depend on the C locale.
std::string format_http_date(TimePoint t);
// Dates past TimePoint's range (2262; the service's "never" is 31 Dec 9999) become
// TimePoint::max(), dates before it TimePoint::min().
std::optional<TimePoint> parse_http_date(std::string_view text);

}  // namespace ergon::messaging
