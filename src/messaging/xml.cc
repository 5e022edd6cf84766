#include "messaging/xml.h"

#include <cctype>
#include <cstdint>

namespace ergon::messaging {
namespace {

constexpr int kMaxDepth = 64;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool is_name_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == ':' || u >= 0x80;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18);
    out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Reader {
 public:
  explicit Reader(std::string_view doc) : s_(doc) {}

  std::optional<XmlElement> document() {
    if (s_.starts_with("\xEF\xBB\xBF")) s_.remove_prefix(3);  // Azure sends a UTF-8 BOM
    if (!skip_misc()) return std::nullopt;
    XmlElement root;
    if (!element(root, 0)) return std::nullopt;
    if (!skip_misc() || !s_.empty()) return std::nullopt;
    return root;
  }

 private:
  // Whitespace, comments and processing instructions (the prolog and what follows the root).
  bool skip_misc() {
    for (;;) {
      while (!s_.empty() && is_space(s_.front())) s_.remove_prefix(1);
      if (s_.starts_with("<?")) {
        if (!skip_past("?>")) return false;
      } else if (s_.starts_with("<!--")) {
        if (!skip_past("-->")) return false;
      } else {
        return true;
      }
    }
  }

  bool skip_past(std::string_view end) {
    std::size_t at = s_.find(end);
    if (at == std::string_view::npos) return false;
    s_.remove_prefix(at + end.size());
    return true;
  }

  bool name(std::string& out) {
    std::size_t n = 0;
    while (n < s_.size() && is_name_char(s_[n])) ++n;
    if (n == 0) return false;
    std::string_view full = s_.substr(0, n);
    std::size_t colon = full.rfind(':');
    out = std::string(colon == std::string_view::npos ? full : full.substr(colon + 1));
    s_.remove_prefix(n);
    return !out.empty();
  }

  // Attributes are read for well-formedness and dropped. Leaves s_ at '>' or "/>".
  bool attributes() {
    for (;;) {
      bool spaced = false;
      while (!s_.empty() && is_space(s_.front())) {
        s_.remove_prefix(1);
        spaced = true;
      }
      if (s_.empty()) return false;
      if (s_.front() == '>' || s_.starts_with("/>")) return true;
      std::string ignored;
      if (!spaced || !name(ignored)) return false;
      while (!s_.empty() && is_space(s_.front())) s_.remove_prefix(1);
      if (s_.empty() || s_.front() != '=') return false;
      s_.remove_prefix(1);
      while (!s_.empty() && is_space(s_.front())) s_.remove_prefix(1);
      if (s_.empty() || (s_.front() != '"' && s_.front() != '\'')) return false;
      char quote = s_.front();
      std::size_t close = s_.find(quote, 1);
      if (close == std::string_view::npos) return false;
      if (s_.substr(1, close - 1).find('<') != std::string_view::npos) return false;
      s_.remove_prefix(close + 1);
    }
  }

  // Decodes character data up to the next '<' into `out`.
  bool text(std::string& out) {
    while (!s_.empty() && s_.front() != '<') {
      char c = s_.front();
      if (c != '&') {
        out += c;
        s_.remove_prefix(1);
        continue;
      }
      std::size_t semi = s_.find(';');
      if (semi == std::string_view::npos || semi > 12) return false;
      std::string_view entity = s_.substr(1, semi - 1);
      s_.remove_prefix(semi + 1);
      if (entity == "lt") {
        out += '<';
      } else if (entity == "gt") {
        out += '>';
      } else if (entity == "amp") {
        out += '&';
      } else if (entity == "quot") {
        out += '"';
      } else if (entity == "apos") {
        out += '\'';
      } else if (entity.size() >= 2 && entity[0] == '#') {
        bool hex = entity[1] == 'x';
        std::string_view digits = entity.substr(hex ? 2 : 1);
        if (digits.empty()) return false;
        std::uint32_t cp = 0;
        for (char d : digits) {
          int v;
          if (d >= '0' && d <= '9') {
            v = d - '0';
          } else if (hex && d >= 'a' && d <= 'f') {
            v = d - 'a' + 10;
          } else if (hex && d >= 'A' && d <= 'F') {
            v = d - 'A' + 10;
          } else {
            return false;
          }
          cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
          if (cp > 0x10FFFF) return false;
        }
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        append_utf8(out, cp);
      } else {
        return false;
      }
    }
    return true;
  }

  bool element(XmlElement& e, int depth) {
    if (depth >= kMaxDepth || !s_.starts_with("<")) return false;
    s_.remove_prefix(1);
    if (!name(e.name) || !attributes()) return false;
    if (s_.starts_with("/>")) {
      s_.remove_prefix(2);
      return true;
    }
    s_.remove_prefix(1);  // '>'
    for (;;) {
      if (!text(e.text)) return false;
      if (s_.empty()) return false;  // unclosed element
      if (s_.starts_with("</")) {
        s_.remove_prefix(2);
        std::string closing;
        if (!name(closing) || closing != e.name) return false;
        while (!s_.empty() && is_space(s_.front())) s_.remove_prefix(1);
        if (s_.empty() || s_.front() != '>') return false;
        s_.remove_prefix(1);
        return true;
      }
      if (s_.starts_with("<!--")) {
        if (!skip_past("-->")) return false;
      } else if (s_.starts_with("<![CDATA[")) {
        s_.remove_prefix(9);
        std::size_t end = s_.find("]]>");
        if (end == std::string_view::npos) return false;
        e.text += s_.substr(0, end);
        s_.remove_prefix(end + 3);
      } else if (s_.starts_with("<?")) {
        if (!skip_past("?>")) return false;
      } else if (s_.starts_with("<!")) {
        return false;  // DOCTYPE and friends are not accepted
      } else {
        e.children.emplace_back();
        if (!element(e.children.back(), depth + 1)) return false;
      }
    }
  }

  std::string_view s_;
};

}  // namespace

const XmlElement* XmlElement::child(std::string_view child_name) const {
  for (const XmlElement& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::optional<std::string> XmlElement::child_text(std::string_view child_name) const {
  const XmlElement* c = child(child_name);
  if (c == nullptr) return std::nullopt;
  return c->text;
}

std::optional<XmlElement> parse_xml(std::string_view document) {
  return Reader(document).document();
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      // A parser turns a literal CR (and CR LF) into LF; a character reference survives.
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace ergon::messaging
