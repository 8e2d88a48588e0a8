// SSE parser: provider sample streams (llm-wire-formats.md §2.2, §3, §4.3), line terminators,
// every byte split, comments, retry, ids, field syntax, UTF-8, limits and stream offsets.
#include "proxy/http/sse.h"

#include <gtest/gtest.h>

namespace gatehouse::proxy::http {
namespace {

using namespace std::string_literals;

const std::string kAnthropic =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":"
    "{\"input_tokens\":25,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Héllo 世界 🎉\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":15}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

const std::string kOpenAiChat =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":2,\"total_tokens\":11}}\n\n"
    "data: [DONE]\n\n";

const std::string kOpenAiResponses =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"sequence_number\":0}\n\n"
    "event: response.function_call_arguments.delta\n"
    "data: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"a\"}\n\n"
    "event: response.completed\n"
    "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3}}}\n\n";

std::string replaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) {
    s.replace(at, from.size(), to);
  }
  return s;
}

std::string describe(const std::vector<SseEvent>& events, bool withOffsets = true) {
  std::string out;
  for (const auto& e : events) {
    out += "[" + e.event + "|" + e.data + "|" + e.id + "|" +
           (e.retry ? std::to_string(*e.retry) : "-") +
           (withOffsets ? "|" + std::to_string(e.end) : "") + "]\n";
  }
  return out;
}

std::vector<SseEvent> feedPieces(std::string_view stream, const std::vector<size_t>& cuts,
                                 SseParser::Options options = {}) {
  SseParser parser(options);
  std::vector<SseEvent> all;
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t to = i < cuts.size() ? cuts[i] : stream.size();
    auto r = parser.feed(stream.substr(from, to - from));
    EXPECT_TRUE(r.status.isOk()) << r.status.message();
    EXPECT_LE(r.boundary, to);
    for (auto& e : r.events) all.push_back(std::move(e));
    from = to;
  }
  EXPECT_EQ(parser.offset(), stream.size());
  return all;
}

// Events from one feed; then the same from a cut at every offset and from single bytes.
std::vector<SseEvent> expectSplitInvariant(std::string_view stream) {
  std::vector<SseEvent> whole = feedPieces(stream, {});
  std::string expected = describe(whole);
  for (size_t k = 1; k < stream.size(); ++k) {
    EXPECT_EQ(describe(feedPieces(stream, {k})), expected) << "cut at " << k;
  }
  std::vector<size_t> bytes;
  for (size_t k = 1; k < stream.size(); ++k) bytes.push_back(k);
  EXPECT_EQ(describe(feedPieces(stream, bytes)), expected) << "one byte at a time";
  return whole;
}

TEST(SseParser, AnthropicStream) {
  auto events = expectSplitInvariant(kAnthropic);
  ASSERT_EQ(events.size(), 7u);
  const char* types[] = {"message_start",       "content_block_start", "ping",
                         "content_block_delta", "content_block_stop",  "message_delta",
                         "message_stop"};
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].event, types[i]);
  EXPECT_EQ(events[2].data, "{\"type\": \"ping\"}");
  EXPECT_NE(events[3].data.find("Héllo 世界 🎉"), std::string::npos);
  EXPECT_EQ(events.back().end, kAnthropic.size());
  // Each event's bytes, cut at the reported offsets, parse back to exactly that event.
  uint64_t start = 0;
  for (const auto& e : events) {
    auto again = feedPieces(std::string_view(kAnthropic).substr(start, e.end - start), {});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].data, e.data);
    start = e.end;
  }
}

TEST(SseParser, OpenAiStreams) {
  auto chat = expectSplitInvariant(kOpenAiChat);
  ASSERT_EQ(chat.size(), 4u);
  for (const auto& e : chat) EXPECT_EQ(e.event, "message");  // no event field: spec default
  EXPECT_EQ(chat.back().data, "[DONE]");
  auto responses = expectSplitInvariant(kOpenAiResponses);
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[1].event, "response.function_call_arguments.delta");
  EXPECT_EQ(responses[1].data,
            "{\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"a\"}");
}

TEST(SseParser, CrLfAndCrTerminatorsGiveTheSameEvents) {
  std::string lf = kAnthropic + kOpenAiChat;
  std::string expected = describe(feedPieces(lf, {}), /*withOffsets=*/false);
  for (std::string_view eol : {"\r\n", "\r"}) {
    std::string stream = replaceAll(lf, "\n", eol);
    auto events = expectSplitInvariant(stream);
    EXPECT_EQ(describe(events, false), expected) << "eol size " << eol.size();
  }
  // Mixed terminators in one stream.
  auto mixed = expectSplitInvariant("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r");
  EXPECT_EQ(describe(mixed), "[message|a\nb\nc||-|26]\n[message|d||-|36]\n");
}

TEST(SseParser, CrlfEventEndsAfterTheCr) {
  SseParser p;
  auto r = p.feed("data: x\r\n\r");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].end, 10u);
  EXPECT_EQ(r.boundary, 10u);
  r = p.feed("\ndata: y\r\n\r\n");  // the LF pairs with the CR: no empty line, no extra event
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].data, "y");
  EXPECT_EQ(r.boundary, p.offset());
}

TEST(SseParser, CommentsAndBoundaries) {
  std::string stream = ": keepalive\n\nevent: a\n: comment inside\ndata: 1\n\n:ping\n";
  auto events = expectSplitInvariant(stream);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "a");
  EXPECT_EQ(events[0].data, "1");
  SseParser p;
  EXPECT_EQ(p.feed(": keepalive\n").boundary, 12u);  // a lone comment is forwardable at once
  auto r = p.feed("\nevent: a\n");
  EXPECT_EQ(r.boundary, 13u);  // the event has started
  EXPECT_TRUE(p.inEvent());
  r = p.feed("data: 1\n\n");
  EXPECT_EQ(r.boundary, p.offset());
  EXPECT_FALSE(p.inEvent());
}

TEST(SseParser, FieldSyntax) {
  auto events = expectSplitInvariant(
      "data:no-space\n\n"
      "data:  two spaces\n\n"
      "data\n\n"              // field with no colon: empty data line → event with ""
      "data\ndata\n\n"        // two empty data lines → "\n"
      "event: only-type\n\n"  // no data: nothing dispatched, type reset
      "data: x\nunknown: y\nDATA: z\n\n"
      "data: a:b:c\n\n"
      "event:t\ndata: multi\ndata: line\n\n");
  EXPECT_EQ(describe(events, false),
            "[message|no-space||-]\n"
            "[message| two spaces||-]\n"
            "[message|||-]\n"
            "[message|\n||-]\n"
            "[message|x||-]\n"
            "[message|a:b:c||-]\n"
            "[t|multi\nline||-]\n");
}

TEST(SseParser, RetryField) {
  SseParser p;
  auto r = p.feed("retry: 3000\n\ndata: a\nretry: 1500\n\ndata: b\nretry: 15x\nretry:\n\n");
  ASSERT_EQ(r.events.size(), 2u);  // the retry-only block dispatched nothing
  EXPECT_EQ(r.events[0].data, "a");
  EXPECT_EQ(r.events[0].retry, 1500);
  EXPECT_FALSE(r.events[1].retry);  // invalid values are ignored
  EXPECT_EQ(p.reconnectionTime(), 1500);
  auto big = p.feed("retry: 99999999999999999999999\ndata: c\n\n");
  EXPECT_FALSE(big.events.at(0).retry);  // overflow: not all-digits-in-range, ignored
}

TEST(SseParser, LastEventIdPersists) {
  SseParser p;
  std::string stream =
      "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
      "id: bad\0id\ndata: d\n\nid: 7\n\n"s;
  auto r = p.feed(stream);
  ASSERT_EQ(r.events.size(), 4u);
  EXPECT_EQ(r.events[0].id, "1");
  EXPECT_EQ(r.events[1].id, "1");   // not reset by dispatch
  EXPECT_EQ(r.events[2].id, "");    // "id" with no value resets it
  EXPECT_EQ(r.events[3].id, "");    // a value with NUL is ignored
  EXPECT_EQ(p.lastEventId(), "7");  // set even by a block without data
}

TEST(SseParser, Utf8SplitBomAndReplacement) {
  std::string stream =
      "\xEF\xBB\xBF"
      "data: 日本語 é 🎉\n\n";
  auto events = expectSplitInvariant(stream);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "日本語 é 🎉");
  // A BOM that does not lead the stream is just data (here, part of a field name).
  auto later = feedPieces(
      "data: a\n\n\xEF\xBB\xBF"
      "data: b\n\n",
      {});
  EXPECT_EQ(later.size(), 1u);
  // Invalid UTF-8 becomes U+FFFD, one per maximal subpart, even when split.
  auto bad = expectSplitInvariant(
      "data: a\xFF"
      "b\xE2\x82"
      "c\xF0\x9F\x8E\n\n");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].data,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xEF\xBF\xBD");
  std::string s = "\xED\xA0\x80";  // a UTF-16 surrogate: three replacements
  EXPECT_TRUE(sanitizeUtf8(s));
  EXPECT_EQ(s, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  std::string ok = "plain ascii é";
  EXPECT_FALSE(sanitizeUtf8(ok));
}

TEST(SseParser, UnfinishedEventIsNotDispatched) {
  SseParser p;
  auto r = p.feed("data: complete\n\ndata: partial\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.boundary, 16u);
  EXPECT_TRUE(p.inEvent());
  EXPECT_EQ(p.offset(), 30u);
}

TEST(SseParser, EventSizeLimit) {
  SseParser::Options small{.maxEventBytes = 64};
  std::string fits = "data: " + std::string(40, 'a') + "\n\n";
  EXPECT_EQ(feedPieces(fits + fits + fits, {}, small).size(), 3u);

  std::string grows;
  for (int i = 0; i < 10; ++i) grows += "data: " + std::string(10, 'b') + "\n";
  for (size_t cut : {size_t{0}, size_t{5}, size_t{33}}) {
    SseParser p(small);
    auto r = p.feed(std::string_view(grows).substr(0, cut));
    if (r.status.isOk()) r = p.feed(std::string_view(grows).substr(cut));
    ASSERT_FALSE(r.status.isOk());
    EXPECT_EQ(r.status.code(), EMSGSIZE);
    EXPECT_FALSE(p.feed("\n").status.isOk());  // sticky
  }
  SseParser line(small);  // one endless line
  SseFeedResult r;
  for (int i = 0; i < 10 && r.status.isOk(); ++i) r = line.feed(std::string(20, 'x'));
  EXPECT_EQ(r.status.code(), EMSGSIZE);
}

}  // namespace
}  // namespace gatehouse::proxy::http
