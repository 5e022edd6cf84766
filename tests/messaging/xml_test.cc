// The small XML reader that parses the Queue service's answers.
#include "messaging/xml.h"

#include <gtest/gtest.h>

namespace ergon::messaging {
namespace {

TEST(AzureXml, ReadsAQueueMessagesListAsAzureSendsIt) {
  // Byte order mark, declaration, whitespace between elements, as the service sends them.
  const std::string doc =
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
      "<QueueMessagesList>\n"
      "  <QueueMessage>\n"
      "    <MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>\n"
      "    <InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime>\n"
      "    <PopReceipt>YzQ4Yzg1MDIGM0MDFiZDAwYzEw</PopReceipt>\n"
      "    <DequeueCount>1</DequeueCount>\n"
      "    <MessageText>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#233;&#xE9;</MessageText>\n"
      "  </QueueMessage>\n"
      "  <QueueMessage><MessageId>2</MessageId><MessageText/></QueueMessage>\n"
      "</QueueMessagesList>\n";
  std::optional<XmlElement> root = parse_xml(doc);
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->name, "QueueMessagesList");
  ASSERT_EQ(root->children.size(), 2u);
  const XmlElement& m = root->children[0];
  EXPECT_EQ(m.child_text("MessageId"), "5974b586-0df3-4e2d-ad0c-18e3892bfca2");
  EXPECT_EQ(m.child_text("DequeueCount"), "1");
  EXPECT_EQ(m.child_text("MessageText"), "a <b> & \"c\" 'd' \xc3\xa9\xc3\xa9");
  EXPECT_EQ(m.child_text("Missing"), std::nullopt);
  EXPECT_EQ(root->children[1].child_text("MessageText"), "");
  EXPECT_EQ(parse_xml("<QueueMessagesList />")->children.size(), 0u);
}

TEST(AzureXml, CdataCommentsAttributesAndPrefixes) {
  std::optional<XmlElement> root = parse_xml(
      "<!-- before --><ns:Error xmlns:ns='urn:x' a=\"1\"><Code>X</Code><!-- c -->"
      "<Message><![CDATA[<raw> & ]]>tail</Message></ns:Error><!-- after -->");
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->name, "Error");
  EXPECT_EQ(root->child_text("Code"), "X");
  EXPECT_EQ(root->child_text("Message"), "<raw> & tail");
}

TEST(AzureXml, RejectsMalformedDocuments) {
  for (const char* bad :
       {"", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a>&unknown;</a>", "<a>&#0;</a>",
        "<a>&#xD800;</a>", "<a>&#x110000;</a>", "<a>&amp</a>", "<a x=1></a>", "<a x=\"1></a>",
        "<a></a><b></b>", "<a></a>trailing", "<!DOCTYPE a><a></a>", "<a><!DOCTYPE b></a>",
        "<a><![CDATA[x</a>", "<a><!-- x</a>", "<>x</>"}) {
    EXPECT_FALSE(parse_xml(bad).has_value()) << bad;
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  EXPECT_FALSE(parse_xml(deep).has_value());  // nesting limit, not a stack overflow
}

TEST(AzureXml, EscapeRoundTripsThroughTheReader) {
  const std::string text = "a<b>&c\"d'e\r\nf\r";
  EXPECT_EQ(xml_escape(text), "a&lt;b&gt;&amp;c&quot;d&apos;e&#13;\nf&#13;");
  EXPECT_EQ(parse_xml("<t>" + xml_escape(text) + "</t>")->text, text);
}

}  // namespace
}  // namespace ergon::messaging
