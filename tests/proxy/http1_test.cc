// HTTP/1.1 codec: header list rules, request and response parsers (every byte split, pipelining,
// chunked framing, limits, Expect, upgrades, malformed input), serializers and a round trip.
#include "proxy/http/http1.h"

#include <gtest/gtest.h>

#include <random>

namespace gatehouse::proxy::http {
namespace {

// --- a transcript of everything a parser reported, independent of how the bytes were split ---

std::string describe(const HeaderList& headers) {
  std::string out;
  for (const Header& h : headers) out += " | " + h.name + ": " + h.value;
  return out;
}

std::string describe(const RequestHead& h) {
  return h.method + " " + h.target + " HTTP/" + std::to_string(h.versionMajor) + "." +
         std::to_string(h.versionMinor) + " ka=" + std::to_string(h.keepAlive) +
         " expect=" + std::to_string(h.expectContinue) + " upgrade=" + std::to_string(h.upgrade) +
         "(" + h.upgradeProtocol + ") framing=" + std::to_string(static_cast<int>(h.framing)) +
         " len=" + (h.contentLength ? std::to_string(*h.contentLength) : "-") + describe(h.headers);
}

std::string describe(const ResponseHead& h) {
  return std::to_string(h.status) + " " + h.reason + " HTTP/" + std::to_string(h.versionMajor) +
         "." + std::to_string(h.versionMinor) + " ka=" + std::to_string(h.keepAlive) +
         " upgrade=" + std::to_string(h.upgrade) +
         " framing=" + std::to_string(static_cast<int>(h.framing)) +
         " len=" + (h.contentLength ? std::to_string(*h.contentLength) : "-") + describe(h.headers);
}

struct Message {
  std::string head, body, trailers;
  bool ended = false;
};

struct Transcript {
  std::vector<Message> messages;
  std::vector<std::string> interim;
  std::optional<HttpError> error;
  bool upgraded = false;
  std::string rest;  // bytes after an upgrade

  std::string str() const {
    std::string out;
    for (const auto& i : interim) out += "interim " + i + "\n";
    for (const auto& m : messages) {
      out += m.head + "\n  body[" + m.body + "] trailers[" + m.trailers +
             "] ended=" + std::to_string(m.ended) + "\n";
    }
    if (error) out += "error " + std::string(errorKindName(error->kind)) + "\n";
    if (upgraded) out += "upgraded rest[" + rest + "]\n";
    return out;
  }
};

template <typename Event>
void apply(Transcript& t, std::vector<Event>& events) {
  for (auto& e : events) {
    std::visit(
        [&](auto& ev) {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, RequestHead> || std::is_same_v<T, ResponseHead>) {
            t.messages.emplace_back().head = describe(ev);
          } else if constexpr (std::is_same_v<T, InterimResponse>) {
            t.interim.push_back(describe(ev.head));
          } else if constexpr (std::is_same_v<T, BodyChunk>) {
            ASSERT_FALSE(t.messages.empty());
            EXPECT_FALSE(ev.data.empty());
            t.messages.back().body += ev.data;
          } else {
            ASSERT_FALSE(t.messages.empty());
            t.messages.back().ended = true;
            t.messages.back().trailers = describe(ev.trailers);
          }
        },
        e);
  }
}

// Feeds `wire` cut at `cuts` (ascending offsets), keeping unconsumed bytes as a server would.
template <typename Parser>
Transcript run(Parser& parser, std::string_view wire, const std::vector<size_t>& cuts,
               bool finish = false) {
  Transcript t;
  std::string buf;
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t to = i < cuts.size() ? cuts[i] : wire.size();
    buf.append(wire.substr(from, to - from));
    from = to;
    for (;;) {
      auto r = parser.feed(buf);
      apply(t, r.events);
      EXPECT_LE(r.consumed, buf.size());
      buf.erase(0, r.consumed);
      if (r.stop == StopReason::Error) {
        t.error = r.error;
        return t;
      }
      if (r.stop == StopReason::Upgrade) {
        t.upgraded = true;
        t.rest = buf + std::string(wire.substr(from));
        return t;
      }
      if (r.stop == StopReason::MessageEnd && !buf.empty()) continue;
      break;
    }
  }
  if (finish) {
    auto r = parser.finish();
    apply(t, r.events);
    if (r.error) t.error = r.error;
  }
  return t;
}

// Parses `wire` whole, then cut once at every offset, then one byte at a time: all must agree.
template <typename MakeParser>
Transcript expectSplitInvariant(std::string_view wire, MakeParser make, bool finish = false) {
  auto whole = make();
  Transcript expected = run(whole, wire, {}, finish);
  for (size_t k = 1; k < wire.size(); ++k) {
    auto p = make();
    EXPECT_EQ(run(p, wire, {k}, finish).str(), expected.str()) << "cut at " << k;
  }
  std::vector<size_t> bytes;
  for (size_t k = 1; k < wire.size(); ++k) bytes.push_back(k);
  auto p = make();
  EXPECT_EQ(run(p, wire, bytes, finish).str(), expected.str()) << "one byte at a time";
  return expected;
}

RequestParser requestParser(RequestParser::Options o = {}) { return RequestParser(o); }
ResponseParser responseParser(ResponseParser::Options o = {}) { return ResponseParser(o); }

const std::string kBody = R"({"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,)"
                          R"("messages":[{"role":"user","content":"Hello"}]})";

std::string anthropicRequest() {
  return "POST /v1/messages?beta=true&q=a%20b HTTP/1.1\r\n"
         "Host: ai.tailnet\r\n"
         "x-api-key: -\r\n"
         "anthropic-version: 2023-06-01\r\n"
         "Content-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
}

const std::string kChunkedRequest =
    "POST /v1/chat/completions HTTP/1.1\r\n"
    "Host: ai\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Trailer: X-Checksum\r\n"
    "\r\n"
    "7;ext=1\r\n{\"a\":1,\r\n"
    "5;name=\"quoted value\";flag\r\n\"b\":2\r\n"
    "1\r\n}\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "\r\n";

// --- header list ---

TEST(HeaderList, KeepsCaseAndOrderAndLooksUpCaseInsensitively) {
  HeaderList h{{"Content-Type", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}, {"Host", "h"}};
  EXPECT_EQ(h.get("content-type"), "a");
  EXPECT_EQ(h.getAll("X-DUP"), (std::vector<std::string_view>{"1", "2"}));
  EXPECT_EQ(h.getJoined("x-dup"), "1, 2");
  EXPECT_FALSE(h.get("missing"));
  h.set("X-DUP", "3");
  EXPECT_EQ(describe(h), " | Content-Type: a | X-Dup: 3 | Host: h");
  h.set("New", "n");
  EXPECT_EQ(h.remove("content-TYPE"), 1u);
  EXPECT_EQ(describe(h), " | X-Dup: 3 | Host: h | New: n");
}

TEST(HeaderList, HopByHopIncludesConnectionListedNames) {
  EXPECT_TRUE(isHopByHop("transfer-encoding"));
  EXPECT_TRUE(isHopByHop("Proxy-Authorization"));
  EXPECT_TRUE(isHopByHop("te"));
  EXPECT_FALSE(isHopByHop("Content-Length"));
  HeaderList h{{"Connection", "keep-alive, X-Hop , Upgrade"},
               {"X-Hop", "1"},
               {"Keep-Alive", "timeout=5"},
               {"anthropic-beta", "tools-2024"},
               {"Upgrade", "websocket"},
               {"Content-Length", "3"}};
  EXPECT_TRUE(h.isHopByHop("x-hop"));
  EXPECT_TRUE(h.hasToken("connection", "UPGRADE"));
  EXPECT_FALSE(h.hasToken("connection", "close"));
  EXPECT_EQ(h.removeHopByHop(), 4u);
  EXPECT_EQ(describe(h), " | anthropic-beta: tools-2024 | Content-Length: 3");
}

TEST(HeaderList, FieldSyntax) {
  EXPECT_TRUE(isValidHeaderName("x-api-key"));
  EXPECT_FALSE(isValidHeaderName("bad name"));
  EXPECT_FALSE(isValidHeaderName("a:b"));
  EXPECT_FALSE(isValidHeaderName(""));
  EXPECT_TRUE(isValidHeaderValue("a, b\tc"));
  EXPECT_TRUE(isValidHeaderValue(""));
  EXPECT_FALSE(isValidHeaderValue("a\r\nX-Injected: 1"));
  EXPECT_FALSE(isValidHeaderValue(std::string("a\0b", 3)));
  EXPECT_FALSE(isValidHeaderValue(" padded"));
}

// --- requests ---

TEST(RequestParser, ParsesAtEverySplit) {
  std::string wire = anthropicRequest();
  Transcript t = expectSplitInvariant(wire, [] { return requestParser(); });
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_EQ(t.messages[0].head,
            "POST /v1/messages?beta=true&q=a%20b HTTP/1.1 ka=1 expect=0 upgrade=0() framing=1 "
            "len=" +
                std::to_string(kBody.size()) +
                " | Host: ai.tailnet | x-api-key: - | anthropic-version: 2023-06-01"
                " | Content-Type: application/json | Content-Length: " +
                std::to_string(kBody.size()));
  EXPECT_EQ(t.messages[0].body, kBody);
  EXPECT_TRUE(t.messages[0].ended);
  EXPECT_FALSE(t.error);
}

TEST(RequestParser, ChunkedWithExtensionsAndTrailersAtEverySplit) {
  Transcript t = expectSplitInvariant(kChunkedRequest, [] { return requestParser(); });
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_EQ(t.messages[0].body, R"({"a":1,"b":2})");
  EXPECT_EQ(t.messages[0].trailers, " | X-Checksum: abc");
  EXPECT_NE(t.messages[0].head.find("framing=2"), std::string::npos);
  EXPECT_TRUE(t.messages[0].ended);
}

TEST(RequestParser, PipelinedRequestsOneAtATime) {
  std::string wire = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + anthropicRequest() + kChunkedRequest;
  RequestParser parser;
  std::string_view rest = wire;
  std::vector<std::string> targets;
  while (!rest.empty()) {
    auto r = parser.feed(rest);
    ASSERT_EQ(r.stop, StopReason::MessageEnd);
    ASSERT_FALSE(r.events.empty());
    targets.push_back(std::get<RequestHead>(r.events.front()).target);
    EXPECT_TRUE(std::holds_alternative<MessageEnd>(r.events.back()));
    EXPECT_TRUE(parser.idle());
    rest.remove_prefix(r.consumed);
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"/a", "/v1/messages?beta=true&q=a%20b",
                                               "/v1/chat/completions"}));
  EXPECT_EQ(parser.offset(), wire.size());

  Transcript t = expectSplitInvariant(wire, [] { return requestParser(); });
  EXPECT_EQ(t.messages.size(), 3u);
  Transcript all =
      expectSplitInvariant(wire, [] { return requestParser({.stopAfterMessage = false}); });
  EXPECT_EQ(all.str(), t.str());
}

TEST(RequestParser, KeepAliveExpectAndVersions) {
  auto head = [](std::string wire) {
    RequestParser p;
    auto r = p.feed(wire);
    EXPECT_FALSE(r.error) << r.error->message;
    return std::get<RequestHead>(r.events.at(0));
  };
  EXPECT_FALSE(head("GET / HTTP/1.0\r\n\r\n").keepAlive);
  EXPECT_TRUE(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive);
  EXPECT_FALSE(head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keepAlive);
  RequestHead h =
      head("POST /v1/messages HTTP/1.1\r\nexpect:  100-Continue  \r\nContent-Length: 5\r\n\r\n");
  EXPECT_TRUE(h.expectContinue);
  EXPECT_EQ(h.headers.get("Expect"), "100-Continue");  // OWS trimmed, case kept
  EXPECT_EQ(h.contentLength, 5u);
  EXPECT_FALSE(head("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n").expectContinue);
}

TEST(RequestParser, ExpectContinueHeadArrivesBeforeTheBody) {
  // The server answers 100 Continue after the head, and only then does the body come.
  RequestParser p;
  auto r =
      p.feed("POST /v1/responses HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_TRUE(std::get<RequestHead>(r.events[0]).expectContinue);
  EXPECT_FALSE(p.idle());
  r = p.feed("ok");
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(std::get<BodyChunk>(r.events[0]).data, "ok");
}

const std::string kWebSocketRequest =
    "GET /v1/responses HTTP/1.1\r\n"
    "Host: ai\r\n"
    "Authorization: Bearer -\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "OpenAI-Beta: responses_websockets=2026-02-06\r\n"
    "\r\n"
    "\x81\x05hello";

TEST(RequestParser, WebSocketUpgradeOnResponsesEndpoint) {
  Transcript t = expectSplitInvariant(kWebSocketRequest, [] { return requestParser(); });
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_TRUE(t.upgraded);
  EXPECT_EQ(t.rest, "\x81\x05hello");
  EXPECT_NE(
      t.messages[0].head.find("GET /v1/responses HTTP/1.1 ka=1 expect=0 upgrade=1(websocket)"),
      std::string::npos)
      << t.messages[0].head;

  RequestParser p;
  auto r = p.feed(kWebSocketRequest);
  EXPECT_EQ(r.stop, StopReason::Upgrade);
  EXPECT_EQ(r.consumed, kWebSocketRequest.size() - 7);
}

TEST(RequestParser, UpgradeWithoutConnectionUpgradeIsNotOne) {
  RequestParser p;
  auto r = p.feed("GET /v1/responses HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(r.stop, StopReason::MessageEnd);
  auto& head = std::get<RequestHead>(r.events.at(0));
  EXPECT_FALSE(head.upgrade);
  EXPECT_EQ(head.upgradeProtocol, "websocket");
}

TEST(RequestParser, DecliningAnUpgradeContinuesAsHttp) {
  std::string wire =
      "POST /up HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc"
      "GET /next HTTP/1.1\r\n\r\n";
  RequestParser p;
  auto r = p.feed(wire);
  ASSERT_EQ(r.stop, StopReason::Upgrade);
  EXPECT_EQ(std::get<RequestHead>(r.events.at(0)).upgradeProtocol, "h2c");
  EXPECT_EQ(std::get<BodyChunk>(r.events.at(1)).data, "abc");
  r = p.feed(std::string_view(wire).substr(r.consumed));  // declined: keep speaking HTTP/1.1
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(std::get<RequestHead>(r.events.at(0)).target, "/next");
}

TEST(RequestParser, ConnectIsAnUpgrade) {
  RequestParser p;
  auto r = p.feed("CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\nTLS");
  EXPECT_EQ(r.stop, StopReason::Upgrade);
  auto& head = std::get<RequestHead>(r.events.at(0));
  EXPECT_EQ(head.method, "CONNECT");
  EXPECT_EQ(head.target, "api.anthropic.com:443");
  EXPECT_TRUE(head.upgrade);
  EXPECT_EQ(r.consumed, 67u);  // everything but "TLS"
}

TEST(RequestParser, HeaderLimitIsExactWhateverTheSplit) {
  std::string head =
      "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(100, 'p') + "\r\n\r\n";
  Transcript ok =
      expectSplitInvariant(head, [&] { return requestParser({.maxHeaderBytes = head.size()}); });
  EXPECT_FALSE(ok.error);
  EXPECT_EQ(ok.messages.size(), 1u);
  Transcript over = expectSplitInvariant(
      head, [&] { return requestParser({.maxHeaderBytes = head.size() - 1}); });
  ASSERT_TRUE(over.error);
  EXPECT_EQ(over.error->kind, ErrorKind::HeaderTooLarge);
  EXPECT_EQ(over.error->httpStatus(), 431);
  EXPECT_TRUE(over.messages.empty());
}

TEST(RequestParser, EndlessHeadersFailBeforeTheHeadEnds) {
  RequestParser p;  // default 64 KiB
  auto r = p.feed("POST / HTTP/1.1\r\n");
  std::string line = "X-Filler: " + std::string(1000, 'f') + "\r\n";
  size_t fed = 0;
  while (!r.error && fed < 200 * 1024) {
    r = p.feed(line);
    fed += line.size();
  }
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::HeaderTooLarge);
  EXPECT_LE(fed, 66u * 1024);
  EXPECT_NE(r.error->message.find("65536"), std::string::npos) << r.error->message;
  // Sticky.
  auto again = p.feed("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(again.stop, StopReason::Error);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(RequestParser, DeclaredBodyTooLargeFailsBeforeAnyBodyByte) {
  RequestParser p({.maxBodyBytes = 10});
  auto r = p.feed("POST /v1/messages HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::BodyTooLarge);
  EXPECT_EQ(r.error->httpStatus(), 413);
  EXPECT_TRUE(r.events.empty());

  RequestParser fits({.maxBodyBytes = 10});
  EXPECT_FALSE(fits.feed("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789").error);
}

TEST(RequestParser, ChunkedBodyTooLarge) {
  std::string wire = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("0123456") +
                     chunk("789a") + std::string(lastChunk());
  Transcript t = expectSplitInvariant(wire, [] { return requestParser({.maxBodyBytes = 10}); });
  ASSERT_TRUE(t.error);
  EXPECT_EQ(t.error->kind, ErrorKind::BodyTooLarge);
  Transcript fits = expectSplitInvariant(wire, [] { return requestParser({.maxBodyBytes = 11}); });
  EXPECT_FALSE(fits.error);
  EXPECT_EQ(fits.messages.at(0).body, "0123456789a");
}

TEST(RequestParser, TrailersCountAgainstTheHeaderLimit) {
  std::string wire =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + std::string(200, 't') +
      "\r\n\r\n";
  RequestParser p({.maxHeaderBytes = 100});
  auto r = p.feed(wire);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::HeaderTooLarge);
}

TEST(RequestParser, InvalidRequestsAreBadRequest) {
  const char* bad[] = {
      "FOO / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET /a b HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET / HTTP/1.1\r\n\x01: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",
      // A bare CR that llhttp 8.1 would take as the end of the headers (CVE-2023-30589).
      "GET / HTTP/1.1\r\nX: 1\r\n\rGET /smuggled HTTP/1.1\r\n\r\n",
  };
  for (const char* wire : bad) {
    RequestParser p;
    auto r = p.feed(wire);
    ASSERT_TRUE(r.error) << wire;
    EXPECT_EQ(r.stop, StopReason::Error);
    EXPECT_EQ(r.error->kind, ErrorKind::BadRequest) << wire;
    EXPECT_EQ(r.error->httpStatus(), 400);
    EXPECT_NE(r.error->message.find(" at offset "), std::string::npos) << r.error->message;
    EXPECT_FALSE(r.error->toStatus().isOk());
  }
}

TEST(RequestParser, ErrorsCarryLlhttpsReason) {
  RequestParser p;
  auto r = p.feed("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message,
            "HPE_INVALID_CONTENT_LENGTH: Invalid character in Content-Length at offset 32");
  EXPECT_EQ(r.error->offset, 32u);
}

TEST(RequestParser, BareCrIsRejectedWhateverTheSplit) {
  Transcript t = expectSplitInvariant(
      "GET /a HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 0\r\n\rGET /smuggled "
      "HTTP/1.1\r\n\r\n",
      [] { return requestParser({.stopAfterMessage = false}); });
  ASSERT_TRUE(t.error);
  EXPECT_EQ(t.error->kind, ErrorKind::BadRequest);
  EXPECT_EQ(t.messages.size(), 1u) << t.str();  // only /a
}

TEST(RequestParser, ObsFoldBecomesASpace) {
  RequestParser p;
  auto r = p.feed("GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\r\n");
  ASSERT_FALSE(r.error) << r.error->message;
  auto& head = std::get<RequestHead>(r.events.at(0));
  ASSERT_TRUE(head.headers.get("X-Long"));
  EXPECT_TRUE(isValidHeaderValue(*head.headers.get("X-Long"))) << *head.headers.get("X-Long");
}

TEST(RequestParser, EofMidRequest) {
  RequestParser idle;
  EXPECT_FALSE(idle.feed("GET / HTTP/1.1\r\n\r\n").error);
  EXPECT_FALSE(idle.finish().error);

  RequestParser mid;
  EXPECT_FALSE(mid.feed("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").error);
  auto r = mid.finish();
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::UnexpectedEof);
}

// --- responses ---

std::string sseResponse() {
  std::string wire =
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  wire += chunk("event: message_start\ndata: {\"type\":\"message_start\"}\n\n");
  wire += chunk("event: ping\ndata: {\"type\": \"ping\"}\n\n");
  wire += chunk("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  return wire + std::string(lastChunk());
}

TEST(ResponseParser, ChunkedStreamAtEverySplit) {
  Transcript t = expectSplitInvariant(sseResponse(), [] { return responseParser(); });
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_EQ(t.messages[0].body,
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
            "event: ping\ndata: {\"type\": \"ping\"}\n\n"
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  EXPECT_EQ(t.messages[0].head,
            "200 OK HTTP/1.1 ka=1 upgrade=0 framing=2 len=- | content-type: text/event-stream"
            " | Transfer-Encoding: chunked");
}

TEST(ResponseParser, ContentLengthAndPipelinedHead) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"  // HEAD: no body despite the length
      "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
  auto make = [] {
    ResponseParser p;
    p.expectResponseTo("GET");
    p.expectResponseTo("HEAD");
    p.expectResponseTo("POST");
    return p;
  };
  Transcript t = expectSplitInvariant(wire, make);
  ASSERT_EQ(t.messages.size(), 3u) << t.str();
  EXPECT_EQ(t.messages[0].body, "abc");
  EXPECT_EQ(t.messages[1].body, "");
  EXPECT_NE(t.messages[1].head.find("framing=0 len=100"), std::string::npos);
  EXPECT_TRUE(t.messages[1].ended);
  EXPECT_EQ(t.messages[2].body, "no");
}

TEST(ResponseParser, NoBodyFor204And304) {
  std::string wire =
      "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  Transcript t = expectSplitInvariant(wire, [] { return responseParser(); });
  ASSERT_EQ(t.messages.size(), 3u) << t.str();
  EXPECT_EQ(t.messages[0].body + t.messages[1].body, "");
  EXPECT_EQ(t.messages[2].body, "ok");
}

TEST(ResponseParser, CloseDelimitedBodyEndsAtFinish) {
  std::string wire = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n";
  Transcript t = expectSplitInvariant(
      wire, [] { return responseParser(); }, /*finish=*/true);
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_EQ(t.messages[0].body, "data: 1\n\n");
  EXPECT_TRUE(t.messages[0].ended);
  EXPECT_NE(t.messages[0].head.find("ka=0 upgrade=0 framing=3"), std::string::npos);
  EXPECT_FALSE(t.error);
}

TEST(ResponseParser, TruncatedBodyIsUnexpectedEof) {
  ResponseParser p;
  p.expectResponseTo("POST");
  EXPECT_FALSE(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").error);
  auto r = p.finish();
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::UnexpectedEof);
  EXPECT_EQ(r.error->httpStatus(), 502);

  ResponseParser none;
  none.expectResponseTo("POST");
  auto closed = none.finish();
  ASSERT_TRUE(closed.error);
  EXPECT_EQ(closed.error->kind, ErrorKind::UnexpectedEof);
}

TEST(ResponseParser, InterimResponsesReportedOrSkipped) {
  std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  Transcript t = expectSplitInvariant(wire, [] { return responseParser(); });
  ASSERT_EQ(t.interim.size(), 2u) << t.str();
  EXPECT_EQ(t.interim[0].substr(0, 12), "100 Continue");
  ASSERT_EQ(t.messages.size(), 1u);
  EXPECT_EQ(t.messages[0].body, "ok");
  Transcript skipped =
      expectSplitInvariant(wire, [] { return responseParser({.reportInterim = false}); });
  EXPECT_TRUE(skipped.interim.empty());
  EXPECT_EQ(skipped.messages.size(), 1u);
}

TEST(ResponseParser, SwitchingProtocolsHandsOverTheRest) {
  std::string wire =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
  Transcript t = expectSplitInvariant(wire, [] { return responseParser(); });
  EXPECT_TRUE(t.upgraded);
  EXPECT_EQ(t.rest, "\x81\x02hi");
  ASSERT_EQ(t.messages.size(), 1u);
  EXPECT_NE(t.messages[0].head.find("101 Switching Protocols HTTP/1.1 ka=1 upgrade=1"),
            std::string::npos)
      << t.messages[0].head;
}

TEST(ResponseParser, ConnectSuccessIsAnUpgrade) {
  ResponseParser p;
  p.expectResponseTo("CONNECT");
  auto r = p.feed("HTTP/1.1 200 Connection established\r\n\r\nTLS");
  EXPECT_EQ(r.stop, StopReason::Upgrade);
  EXPECT_EQ(r.consumed, 39u);
  EXPECT_TRUE(std::get<ResponseHead>(r.events.at(0)).upgrade);
}

TEST(ResponseParser, MalformedResponseIsBadGateway) {
  ResponseParser p;
  auto r = p.feed("HTTP/1.1 2x0 OK\r\n\r\n");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind, ErrorKind::BadResponse);
  EXPECT_EQ(r.error->httpStatus(), 502);
}

// --- serializers ---

TEST(Serialize, RequestHead) {
  auto s = serializeRequestHead("POST", "/v1/messages?beta=true",
                                {{"Host", "api.anthropic.com"}, {"x-api-key", "sk"}});
  ASSERT_TRUE(s) << s.status().message();
  EXPECT_EQ(*s,
            "POST /v1/messages?beta=true HTTP/1.1\r\nHost: api.anthropic.com\r\n"
            "x-api-key: sk\r\n\r\n");
  EXPECT_FALSE(serializeRequestHead("POST", "/a", {{"X", "1\r\nX-Injected: 2"}}));
  EXPECT_FALSE(serializeRequestHead("POST", "/a", {{"X Y", "1"}}));
  EXPECT_FALSE(serializeRequestHead("PO ST", "/a", {}));
  EXPECT_FALSE(serializeRequestHead("GET", "/a b", {}));
  EXPECT_FALSE(serializeRequestHead("GET", "", {}));
}

TEST(Serialize, ResponseHeadAndReasons) {
  auto s = serializeResponseHead(431, "", {{"Connection", "close"}});
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(*serializeResponseHead(529, "", {}), "HTTP/1.1 529 \r\n\r\n");
  EXPECT_EQ(*serializeResponseHead(200, "Fine", {}), "HTTP/1.1 200 Fine\r\n\r\n");
  EXPECT_FALSE(serializeResponseHead(200, "a\r\nb", {}));
  EXPECT_FALSE(serializeResponseHead(42, "", {}));
  EXPECT_EQ(reasonPhrase(413), "Content Too Large");
  EXPECT_EQ(reasonPhrase(426), "Upgrade Required");
  EXPECT_EQ(reasonPhrase(599), "");
}

TEST(Serialize, Chunks) {
  EXPECT_EQ(chunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(chunk(std::string(255, 'x')).substr(0, 4), "ff\r\n");
  EXPECT_EQ(chunk(""), "");
  EXPECT_EQ(lastChunk(), "0\r\n\r\n");
}

TEST(Serialize, RoundTripThroughTheParsers) {
  std::mt19937 rng(7);
  std::string body;
  for (int i = 0; i < 3000; ++i) body.push_back(static_cast<char>(rng()));
  HeaderList headers{{"Host", "ai"}, {"Transfer-Encoding", "chunked"}, {"X-Case", "MiXeD"}};
  std::string wire = *serializeRequestHead("PUT", "/x?y=1", headers);
  for (size_t at = 0; at < body.size(); at += 700) wire += chunk(body.substr(at, 700));
  wire += lastChunk();
  RequestParser p;
  Transcript t = run(p, wire, {});
  ASSERT_EQ(t.messages.size(), 1u) << t.str();
  EXPECT_EQ(t.messages[0].body, body);

  std::string response = *serializeResponseHead(200, "", headers);
  response += chunk(body) + std::string(lastChunk());
  ResponseParser rp;
  Transcript rt = run(rp, response, {});
  ASSERT_EQ(rt.messages.size(), 1u);
  EXPECT_EQ(rt.messages[0].body, body);
  EXPECT_NE(rt.messages[0].head.find("X-Case: MiXeD"), std::string::npos);
}

}  // namespace
}  // namespace gatehouse::proxy::http
