// messaging/xml.h — just enough XML for the Azure Storage REST responses.
//
// The service answers with small, flat documents (QueueMessagesList, Error). This reads any
// well-formed document of elements, text, entities, CDATA, comments and processing
// instructions into a tree; it does not validate, resolve namespaces (a prefix is dropped) or
// accept a DOCTYPE. Pure functions: safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ergon::messaging {

struct XmlElement {
  std::string name;  // local name, without any namespace prefix
  std::string text;  // the element's own character data, entities decoded
  std::vector<XmlElement> children;

  // The first child called `child_name`, or nullptr.
  [[nodiscard]] const XmlElement* child(std::string_view child_name) const;
  // The text of the first child called `child_name`, or nullopt when there is none.
  [[nodiscard]] std::optional<std::string> child_text(std::string_view child_name) const;
};

// The root element, or nullopt when `document` is not well-formed (as far as this reader
// checks) or nests deeper than 64 elements.
std::optional<XmlElement> parse_xml(std::string_view document);

// Escapes &, <, >, " and ' (and CR, which a parser would turn into LF) so that `text` can stand in
// element content or an attribute.
std::string xml_escape(std::string_view text);

}  // namespace ergon::messaging
