// HuJSON: comments and trailing commas, positions of values and keys, error positions.
#include "control/hujson.h"

#include <gtest/gtest.h>

namespace gatehouse::control {
namespace {

TEST(HuJson, CommentsAndTrailingCommasKeepOffsets) {
  std::string text =
      "{\n"
      "  // a comment \"with quotes\"\n"
      "  \"a\": [1, 2, /* inline */ 3,],\n"
      "  \"b\": \"// not a comment\",\n"
      "}\n";
  auto s = standardizeHuJson(text);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), text.size());
  auto doc = parseHuJson(text);
  ASSERT_TRUE(doc.ok()) << doc.errors()[0].message;
  EXPECT_EQ(doc->root()["a"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ(doc->root()["b"], "// not a comment");
  EXPECT_EQ(doc->valuePos("/a").line, 3);
  EXPECT_EQ(doc->valuePos("/a").column, 8);
  EXPECT_EQ(doc->valuePos("/a/2").column, 28);
  EXPECT_EQ(doc->keyPos("/b").line, 4);
  EXPECT_EQ(doc->keyPos("/b").column, 3);
  EXPECT_EQ(doc->valuePos("").line, 1);
}

TEST(HuJson, PointerEscapesSlashAndTilde) {
  auto doc = parseHuJson("{\"a/b\": {\"c~d\": 1}}");
  ASSERT_TRUE(doc.ok());
  std::string p = JsonDoc::child(JsonDoc::child("", "a/b"), "c~d");
  EXPECT_EQ(p, "/a~1b/c~0d");
  EXPECT_EQ(doc->valuePos(p).column, 17);
  EXPECT_EQ(doc->keyPos(p).column, 10);
}

TEST(HuJson, EscapedKeysDecode) {
  auto doc = parseHuJson("{\"a\\u0041\": 1}");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->keyPos("/aA").column, 2);
}

struct BadCase {
  const char* text;
  int line;
  int column;
  const char* message;
};

TEST(HuJson, ErrorsNameLineColumnAndFix) {
  const BadCase cases[] = {
      {"{\n  /* never closed\n}", 2, 3, "unterminated /* comment: close it with */"},
      {"{\"a\": 1}\n  x", 2, 3,
       "trailing garbage after the top-level object: remove it, or put everything inside one "
       "{...}"},
      {"{\"a\": 1} {\"b\": 2}", 1, 10,
       "trailing garbage after the top-level object: remove it, or put everything inside one "
       "{...}"},
      {"{\"a\": 1, / x}", 1, 10, "unexpected '/': comments start with // or /*"},
      {"{\n  \"a\": 1,\n  \"a\": 2\n}", 3, 3,
       "duplicate key \"a\": merge the two entries into one"},
      {"{\n  \"a\": tru\n}", 2, 8,
       "invalid JSON: syntax error while parsing value - invalid literal"},
      {"{\"a\": 1.2.3}", 1, 7, "invalid JSON: syntax error while parsing object - invalid literal"},
      {"[,]", 1, 2,
       "invalid JSON: syntax error while parsing value - unexpected ','; expected '[', '{', or a "
       "literal"},
      {"{\"a\" 1}", 1, 6,
       "invalid JSON: syntax error while parsing object separator - unexpected number literal; "
       "expected ':'"},
      {"  \n // only a comment\n", 0, 0,
       "empty document: expected a JSON object such as {\"grants\": []}"},
      {"[1,,]", 1, 4,
       "invalid JSON: syntax error while parsing value - unexpected ','; expected '[', '{', or a "
       "literal"},
  };
  for (const BadCase& c : cases) {
    auto doc = parseHuJson(c.text);
    ASSERT_FALSE(doc.ok()) << c.text;
    ASSERT_EQ(doc.errors().size(), 1u);
    const Diagnostic& d = doc.errors()[0];
    EXPECT_EQ(d.line, c.line) << c.text;
    EXPECT_EQ(d.column, c.column) << c.text;
    EXPECT_EQ(d.message, c.message) << c.text;
  }
}

TEST(HuJson, DiagnosticFormat) {
  Diagnostic d{3, 7, "bad"};
  EXPECT_EQ(d.format("p.hujson"), "p.hujson:3:7: bad");
  EXPECT_EQ(Diagnostic({0, 0, "empty"}).format("p"), "p: empty");
}

}  // namespace
}  // namespace gatehouse::control
