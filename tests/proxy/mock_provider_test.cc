// The built-in mock provider over real loopback sockets: a MockProviderThread on 127.0.0.1:0,
// raw HTTP/1.1 requests, responses parsed with http::ResponseParser, SSE events with
// http::SseParser, and token counts read back by the usage tap (proxy/usage/usage.h) to match
// the documented formula. Also keep-alive, pipelining and error shapes.
#include "proxy/mock/mock_provider.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "proxy/http/sse.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy::mock {
namespace {

using nlohmann::json;

struct Response {
  int status = 0;
  http::HeaderList headers;
  std::string body;
};

class MockProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.start({}).isOk());
    ASSERT_NE(server_.port(), 0);
    fd_ = connectTo(server_.port());
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    server_.stop();
  }

  static int connectTo(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  void sendRaw(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  static std::string post(const std::string& path, const std::string& body,
                          const std::string& extra = "") {
    return "POST " + path + " HTTP/1.1\r\nHost: mock\r\ncontent-type: application/json\r\n" +
           extra + "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  // Reads `n` responses off the connection.
  std::vector<Response> read(size_t n) {
    std::vector<Response> out;
    char buf[8192];
    while (out.size() < n) {
      if (!pending_.empty()) {
        auto r = parser_.feed(pending_);
        pending_.erase(0, r.consumed);
        for (auto& ev : r.events) {
          if (auto* h = std::get_if<http::ResponseHead>(&ev)) {
            out.push_back({h->status, h->headers, {}});
          } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
            out.back().body.append(b->data);
          }
        }
        if (r.stop == http::StopReason::Error) {
          ADD_FAILURE() << r.error->message;
          return out;
        }
        if (out.size() >= n && r.stop != http::StopReason::NeedMore) break;
        if (out.size() >= n && parser_.idle()) break;
      }
      ssize_t got = recv(fd_, buf, sizeof buf, 0);
      if (got <= 0) {
        ADD_FAILURE() << "connection closed or timed out";
        return out;
      }
      pending_.append(buf, static_cast<size_t>(got));
    }
    return out;
  }

  Response roundTrip(const std::string& request, const std::string& method = "POST") {
    parser_.expectResponseTo(method);
    sendRaw(request);
    auto r = read(1);
    return r.empty() ? Response{} : r[0];
  }

  MockProviderThread server_;
  int fd_ = -1;
  http::ResponseParser parser_;
  std::string pending_;
};

std::vector<http::SseEvent> events(const std::string& body) {
  http::SseParser p;
  auto r = p.feed(body);
  EXPECT_TRUE(r.status.isOk());
  return r.events;
}

TapResult tapSse(ApiKind kind, const std::vector<http::SseEvent>& evs) {
  UsageTap tap(kind, BodyMode::kSse);
  for (const auto& e : evs) tap.onSseEvent(e.event == "message" ? "" : e.event, e.data);
  return tap.finish();
}

TapResult tapJson(ApiKind kind, const std::string& body) {
  UsageTap tap(kind, BodyMode::kJson);
  tap.onBody(body);
  return tap.finish();
}

const std::string kAnthropicBody =
    R"({"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi there"}]})";

TEST_F(MockProviderTest, AnthropicJson) {
  auto r = roundTrip(post("/v1/messages", kAnthropicBody, "anthropic-version: 2023-06-01\r\n"));
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  EXPECT_EQ(j["type"], "message");
  EXPECT_EQ(j["model"], "claude-sonnet-4-5");
  EXPECT_EQ(j["content"][0]["text"], "mock: hi there");
  EXPECT_EQ(j["stop_reason"], "end_turn");
  TapResult t = tapJson(ApiKind::kAnthropicMessages, r.body);
  EXPECT_EQ(t.end, TapEnd::kCompleted);
  EXPECT_EQ(t.usage.input, inputTokens(kAnthropicBody));
  EXPECT_EQ(t.usage.input, static_cast<int64_t>((kAnthropicBody.size() + 3) / 4));
  EXPECT_EQ(t.usage.output, 4);  // "mock: hi there" is 14 bytes
}

TEST_F(MockProviderTest, AnthropicStreamEventSequenceAndUsage) {
  std::string body =
      R"({"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"tell me a long story about a gateway"}]}]})";
  auto r = roundTrip(post("/v1/messages", body));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("content-type").value_or(""), "text/event-stream; charset=utf-8");
  auto evs = events(r.body);
  ASSERT_GE(evs.size(), 8u);
  std::vector<std::string> names;
  std::string text;
  for (const auto& e : evs) {
    names.push_back(e.event);
    json d = json::parse(e.data);
    EXPECT_EQ(d["type"], e.event);
    if (e.event == "content_block_delta") text += d["delta"]["text"].get<std::string>();
  }
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names[1], "content_block_start");
  EXPECT_EQ(names[2], "ping");
  EXPECT_EQ(names[names.size() - 3], "content_block_stop");
  EXPECT_EQ(names[names.size() - 2], "message_delta");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_GT(names.size() - 6, 1u);  // several text deltas
  EXPECT_EQ(text, "mock: tell me a long story about a gateway");
  TapResult t = tapSse(ApiKind::kAnthropicMessages, evs);
  EXPECT_EQ(t.end, TapEnd::kCompleted);
  EXPECT_EQ(t.stop_reason, "end_turn");
  EXPECT_EQ(t.usage.input, inputTokens(body));
  EXPECT_EQ(t.usage.output, outputTokens(text));
}

TEST_F(MockProviderTest, CountTokens) {
  auto r = roundTrip(post("/v1/messages/count_tokens", kAnthropicBody));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["input_tokens"], inputTokens(kAnthropicBody));
}

TEST_F(MockProviderTest, ChatJsonAndStreamWithUsage) {
  std::string body =
      R"({"model":"gpt-5","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"ping"}]})";
  auto r = roundTrip(post("/v1/chat/completions", body));
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "mock: ping");
  TapResult t = tapJson(ApiKind::kOpenAiChat, r.body);
  EXPECT_EQ(t.usage.input, inputTokens(body));
  EXPECT_EQ(t.usage.output, outputTokens("mock: ping"));

  std::string sbody =
      R"({"model":"gpt-5","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]})";
  auto s = roundTrip(post("/v1/chat/completions", sbody));  // same connection: keep-alive
  ASSERT_EQ(s.status, 200);
  auto evs = events(s.body);
  ASSERT_GE(evs.size(), 4u);
  EXPECT_EQ(evs.back().data, "[DONE]");
  json usageChunk = json::parse(evs[evs.size() - 2].data);
  EXPECT_TRUE(usageChunk["choices"].empty());
  EXPECT_EQ(usageChunk["usage"]["prompt_tokens"], inputTokens(sbody));
  TapResult ts = tapSse(ApiKind::kOpenAiChat, evs);
  EXPECT_EQ(ts.end, TapEnd::kCompleted);
  EXPECT_TRUE(ts.usage.present);
  EXPECT_EQ(ts.usage.output, outputTokens("mock: ping"));
}

TEST_F(MockProviderTest, ChatStreamWithoutUsageHasNoUsageChunk) {
  std::string body =
      R"({"model":"gpt-5","stream":true,"messages":[{"role":"user","content":"x"}]})";
  auto r = roundTrip(post("/v1/chat/completions", body));
  auto evs = events(r.body);
  ASSERT_GE(evs.size(), 2u);
  EXPECT_EQ(evs.back().data, "[DONE]");
  for (const auto& e : evs) EXPECT_EQ(e.data.find("\"usage\""), std::string::npos);
  EXPECT_FALSE(tapSse(ApiKind::kOpenAiChat, evs).usage.present);
}

TEST_F(MockProviderTest, ResponsesJsonAndStream) {
  std::string body = R"({"model":"gpt-5","input":"what is up"})";
  auto r = roundTrip(post("/v1/responses", body));
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  EXPECT_EQ(j["status"], "completed");
  EXPECT_EQ(j["output"][0]["content"][0]["text"], "mock: what is up");
  EXPECT_EQ(tapJson(ApiKind::kOpenAiResponses, r.body).usage.input, inputTokens(body));

  std::string sbody =
      R"({"model":"gpt-5","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"what is up"}]}]})";
  auto s = roundTrip(post("/v1/responses", sbody));
  auto evs = events(s.body);
  ASSERT_GE(evs.size(), 8u);
  EXPECT_EQ(evs.front().event, "response.created");
  EXPECT_EQ(evs.back().event, "response.completed");
  std::string text;
  for (const auto& e : evs) {
    if (e.event == "response.output_text.delta")
      text += json::parse(e.data)["delta"].get<std::string>();
  }
  EXPECT_EQ(text, "mock: what is up");
  TapResult t = tapSse(ApiKind::kOpenAiResponses, evs);
  EXPECT_EQ(t.end, TapEnd::kCompleted);
  EXPECT_EQ(t.usage.input, inputTokens(sbody));
  EXPECT_EQ(t.usage.output, outputTokens(text));
}

TEST_F(MockProviderTest, ModelsByHeaders) {
  auto a = roundTrip("GET /v1/models HTTP/1.1\r\nHost: m\r\nanthropic-version: 2023-06-01\r\n\r\n",
                     "GET");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(json::parse(a.body)["data"][0]["type"], "model");
  auto o = roundTrip("GET /v1/models HTTP/1.1\r\nHost: m\r\n\r\n", "GET");
  ASSERT_EQ(o.status, 200);
  EXPECT_EQ(json::parse(o.body)["object"], "list");
}

TEST_F(MockProviderTest, PipelinedRequestsAnsweredInOrder) {
  std::string one = post("/v1/chat/completions",
                         R"({"model":"gpt-5","messages":[{"role":"user","content":"one"}]})");
  std::string two = post("/v1/chat/completions",
                         R"({"model":"gpt-5","messages":[{"role":"user","content":"two"}]})");
  parser_.expectResponseTo("POST");
  parser_.expectResponseTo("POST");
  sendRaw(one + two);
  auto rs = read(2);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(json::parse(rs[0].body)["choices"][0]["message"]["content"], "mock: one");
  EXPECT_EQ(json::parse(rs[1].body)["choices"][0]["message"]["content"], "mock: two");
}

TEST_F(MockProviderTest, ErrorsAreProviderShaped) {
  auto bad = roundTrip(post("/v1/messages", "{not json"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["type"], "error");
  auto missing = roundTrip(post("/v1/nope", "{}"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(json::parse(missing.body).contains("error"));
}

TEST(MockProviderCore, ReplyIsCutOnUtf8Boundary) {
  std::string longText(300, 'a');
  longText[193] = '\xc3';  // "é" at reply bytes 199-200: straddles the 200-byte cut
  longText[194] = '\xa9';
  http::RequestHead head;
  head.method = "POST";
  head.target = "/v1/chat/completions";
  std::string body = R"({"model":"m","messages":[{"role":"user","content":")" + longText + "\"}]}";
  std::string resp = respond(head, body, 1, true);
  size_t at = resp.find("\r\n\r\n");
  ASSERT_NE(at, std::string::npos);
  json j = json::parse(resp.substr(at + 4));
  std::string text = j["choices"][0]["message"]["content"];
  EXPECT_LE(text.size(), 200u);
  EXPECT_FALSE(http::sanitizeUtf8(text));
}

}  // namespace
}  // namespace gatehouse::proxy::mock
