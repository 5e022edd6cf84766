#include "store/text_rules.h"

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "ergon/error.h"
#include "store/store.h"

namespace ergon {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence starting at text[i], 0 if there is none there.
// The range of the second byte excludes overlong forms, surrogates and code points above
// U+10FFFF (RFC 3629, table 3-7 of the Unicode standard).
std::size_t sequence_at(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > text.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

// The code point of a well-formed sequence of `len` bytes at text[i].
std::uint32_t code_point(std::string_view text, std::size_t i, std::size_t len) {
  auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(text[k]) & 0xFF; };
  if (len == 1) return byte(i);
  std::uint32_t cp = byte(i) & (0xFF >> (len + 1));
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
  return cp;
}

bool is_control(std::uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

std::string hex_escape(const char* format, std::uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, format, static_cast<unsigned>(value));
  return buf;
}

// Walks a payload without building it: SAX events, so neither the depth check nor the parse
// itself recurses (a 10,000-deep document costs no stack).
class PayloadChecker {
 public:
  using json = nlohmann::json;
  enum class Fault { kNone, kSyntax, kDepth, kNul };

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t& s) { return no_nul(s); }
  bool key(json::string_t& s) { return no_nul(s); }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return enter(); }
  bool start_array(std::size_t) { return enter(); }
  bool end_object() { return leave(); }
  bool end_array() { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    fault_ = Fault::kSyntax;
    return false;
  }
  [[nodiscard]] Fault fault() const { return fault_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    fault_ = Fault::kDepth;
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }
  bool no_nul(const json::string_t& s) {
    if (s.find('\0') == std::string::npos) return true;
    fault_ = Fault::kNul;
    return false;
  }

  int depth_ = 0;
  Fault fault_ = Fault::kNone;
};

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = sequence_at(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void check_identifier(std::string_view what, std::string_view value, std::size_t max_bytes,
                      bool optional) {
  const std::string name(what);
  if (value.size() > max_bytes || (value.empty() && !optional)) {
    throw Error(ErrorCode::kInvalidArgument, name + " must be " +
                                                 (optional ? "at most " : "1 to ") +
                                                 std::to_string(max_bytes) + " bytes");
  }
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t len = sequence_at(value, i);
    if (len == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  name + " is not valid UTF-8 (byte " + std::to_string(i) + " is " +
                      hex_escape("\\x%02x", static_cast<unsigned char>(value[i])) + ")");
    }
    if (const std::uint32_t cp = code_point(value, i, len); is_control(cp)) {
      throw Error(ErrorCode::kInvalidArgument,
                  name + " must not contain control characters (byte " + std::to_string(i) +
                      " is " + hex_escape(cp < 0x80 ? "\\x%02x" : "\\u%04x", cp) + ")");
    }
    i += len;
  }
}

void check_filter(const JobFilter& filter) {
  const std::pair<const char*, const std::optional<std::string>*> texts[] = {
      {"job type", &filter.job_type},
      {"queue", &filter.queue},
      {"text", &filter.text},
      {"tag", &filter.tag}};
  for (const auto& [what, value] : texts) {
    if (!*value) continue;
    if (!is_valid_utf8(**value) || (*value)->find('\0') != std::string::npos) {
      throw Error(ErrorCode::kInvalidArgument, std::string("the ") + what +
                                                   " filter is not valid UTF-8 without NUL "
                                                   "bytes: '" +
                                                   printable(**value) + "'");
    }
  }
}

void check_job_data(std::string_view job_type, std::string_view json) {
  check_json("job_data of '" + std::string(job_type) + "'", json);
}

void check_json(const std::string& of, std::string_view json) {
  // nlohmann's parser takes a NUL byte for the end of its input, so "{}\0junk" would pass; no
  // JSON text holds a raw NUL (in a string it must be written \u0000).
  if (json.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument, of + " is not valid JSON");
  }
  PayloadChecker checker;
  if (nlohmann::json::sax_parse(json.begin(), json.end(), &checker)) return;
  switch (checker.fault()) {
    case PayloadChecker::Fault::kDepth:
      throw Error(ErrorCode::kInvalidArgument,
                  of + " is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    case PayloadChecker::Fault::kNul:
      throw Error(ErrorCode::kInvalidArgument,
                  of + " holds a NUL character (\\u0000), which PostgreSQL cannot store");
    case PayloadChecker::Fault::kSyntax:
    case PayloadChecker::Fault::kNone:
      break;
  }
  throw Error(ErrorCode::kInvalidArgument, of + " is not valid JSON");
}

std::string clean_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  // Stop copying once the cut is certain: a character is at most 4 bytes.
  const std::size_t enough = max_bytes > std::string::npos - 4 ? std::string::npos : max_bytes + 4;
  for (std::size_t i = 0; i < text.size() && out.size() < enough;) {
    const std::size_t len = sequence_at(text, i);
    if (len == 0 || text[i] == '\0') {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out.size() <= max_bytes ? out : truncate_utf8(out, max_bytes);
}

std::string printable(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = sequence_at(text, i);
    if (len == 0) {
      out += hex_escape("\\x%02x", static_cast<unsigned char>(text[i]));
      ++i;
      continue;
    }
    const std::uint32_t cp = code_point(text, i, len);
    const bool bidi = (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
    if (keep_newlines && (cp == '\n' || cp == '\t')) {
      out += static_cast<char>(cp);
    } else if (is_control(cp) || bidi) {
      out += hex_escape(cp < 0x80 ? "\\x%02x" : "\\u%04x", cp);
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace ergon
