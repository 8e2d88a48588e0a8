// Tool calls through the gateway, in process: a Claude-Code-like exchange against the built-in
// C++ mock provider (a streamed turn whose answer is a Bash tool_use, then the next turn carrying
// the tool_result) lands in the log as one typed call with its parsed commands and result, and the
// admin API's /api/tools and /api/tools/stats answer from it. With logging.tool_calls off nothing
// is extracted. The client's bytes are the mock's bytes (extraction only reads a copy).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "proxy/config/gateway_config.h"
#include "proxy/gateway/gateway.h"
#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_store.h"
#include "proxy/logstore/log_writer.h"
#include "proxy/mock/mock_provider.h"
#include "tests/proxy/gateway_harness.h"

namespace gatehouse::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string request(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& headers = "") {
  return method + " " + target +
         " HTTP/1.1\r\nHost: ai\r\nConnection: close\r\nContent-Type: application/json\r\n" +
         headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The body of a response (de-chunked when chunked).
std::string bodyOf(const std::string& raw) {
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return "";
  std::string head = raw.substr(0, end);
  std::string rest = raw.substr(end + 4);
  if (head.find("Transfer-Encoding: chunked") == std::string::npos &&
      head.find("transfer-encoding: chunked") == std::string::npos) {
    return rest;
  }
  std::string out;
  size_t at = 0;
  while (at < rest.size()) {
    size_t eol = rest.find("\r\n", at);
    if (eol == std::string::npos) break;
    size_t n = std::strtoul(rest.c_str() + at, nullptr, 16);
    if (n == 0) break;
    out += rest.substr(eol + 2, n);
    at = eol + 2 + n + 2;
  }
  return out;
}

class GatewayToolsTest : public ::testing::Test {
 protected:
  void start(bool tool_calls, const std::string& guardrails = "") {
    ASSERT_TRUE(mock_.start({}).isOk());
    dir_ = std::filesystem::temp_directory_path() /
           ("gwtools-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::string text = R"({
      "loopback_listen": "127.0.0.1:0",
      "loopback_identity": {"user": "alice@example.com", "groups": ["group:eng"]},
      "providers": {"anthropic": {"kind": "anthropic", "local": true, "models": ["claude-*"],
                                  "base_url": "http://127.0.0.1:)" +
                       std::to_string(mock_.port()) + R"("}},
      "grants": [{"src": ["alice@example.com"], "models": ["*"], "role": "admin"}],
      "logging": {"tool_calls": )" +
                       std::string(tool_calls ? "true" : "false") + R"(},)" +
                       (guardrails.empty() ? "" : "\"guardrails\": " + guardrails + ",") + R"(
    })";
    auto cfg = parseGatewayConfig(text, LoadOptions{});
    ASSERT_TRUE(cfg) << cfg.status().message();
    auto config = std::make_shared<const GatewayConfig>(std::move(cfg.value()));
    db_ = (dir_ / "log.db").string();
    auto store = LogStore::open(db_);
    ASSERT_TRUE(store) << store.status().message();
    writer_ = std::make_unique<LogWriter>(std::move(store.value()), LogWriterOptions{});
    auto reader = LogReader::open(db_);
    ASSERT_TRUE(reader) << reader.status().message();
    reader_ = std::move(reader.value());

    GatewayOptions o;
    o.config = config;
    o.log = writer_.get();
    o.reader = reader_.get();
    gw_ = std::make_unique<RunningGateway>(std::move(o));
    ASSERT_TRUE(gw_->status().isOk()) << gw_->status().message();
    port_ = gw_->port();
  }

  void TearDown() override {
    gw_.reset();
    reader_.reset();
    writer_.reset();
    mock_.stop();
    std::filesystem::remove_all(dir_);
  }

  // Waits (bounded) until the log holds `n` requests: records are submitted as responses end.
  void waitRequests(size_t n) {
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      ASSERT_TRUE(writer_->flush(5s));
      auto page = reader_->listRequests({.limit = 100});
      ASSERT_TRUE(page);
      if (page->records.size() >= n) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "fewer than " << n << " records";
  }

  nlohmann::json api(const std::string& target) {
    return nlohmann::json::parse(bodyOf(roundTrip(port_, request("GET", target))), nullptr, false);
  }

  mock::MockProviderThread mock_;
  std::filesystem::path dir_;
  std::string db_;
  std::unique_ptr<LogWriter> writer_;
  std::unique_ptr<LogReader> reader_;
  std::unique_ptr<RunningGateway> gw_;
  uint16_t port_ = 0;
};

const std::string kHeaders =
    "anthropic-version: 2023-06-01\r\nx-api-key: -\r\nX-Claude-Code-Session-Id: sess-42\r\n";
const std::string kTools =
    R"("tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object"}}])";

TEST_F(GatewayToolsTest, ClaudeCodeLikeExchangeIsRecordedAndQueryable) {
  start(true);
  // Turn 1, streamed: the model answers with a Bash tool_use.
  std::string turn1 =
      R"({"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,)" + kTools +
      R"(,"messages":[{"role":"user","content":"bash: git rev-parse HEAD && grep -rn TODO . | head -5"}]})";
  std::string raw1 = roundTrip(port_, request("POST", "/v1/messages", turn1, kHeaders));
  std::string sse = bodyOf(raw1);
  ASSERT_NE(sse.find("input_json_delta"), std::string::npos) << raw1;
  // The mock's own bytes for the same request, for the pass-through check.
  http::RequestHead head;
  head.method = "POST";
  head.target = "/v1/messages";
  std::string direct = mock::respond(head, turn1, 1, false);
  EXPECT_EQ(sse, bodyOf(direct)) << "extraction must not change what the client receives";
  size_t at = sse.find("\"id\":\"toolu_");
  ASSERT_NE(at, std::string::npos);
  std::string tool_id = sse.substr(at + 6, sse.find('"', at + 6) - at - 6);

  // Turn 2: the history repeats the call and carries its result.
  nlohmann::json turn2 = nlohmann::json::parse(turn1);
  turn2["stream"] = false;
  turn2["messages"].push_back(
      {{"role", "assistant"},
       {"content",
        {{{"type", "tool_use"},
          {"id", tool_id},
          {"name", "Bash"},
          {"input", {{"command", "git rev-parse HEAD && grep -rn TODO . | head -5"}}}}}}});
  turn2["messages"].push_back(
      {{"role", "user"},
       {"content", {{{"type", "tool_result"}, {"tool_use_id", tool_id}, {"content", "3f2c1e0"}}}}});
  std::string raw2 = roundTrip(port_, request("POST", "/v1/messages", turn2.dump(), kHeaders));
  ASSERT_NE(raw2.find("200 OK"), std::string::npos) << raw2;
  waitRequests(2);

  nlohmann::json page = api("/api/tools");
  ASSERT_TRUE(page.is_object()) << page;
  ASSERT_EQ(page["tool_calls"].size(), 1u) << page.dump(1);
  const nlohmann::json& c = page["tool_calls"][0];
  EXPECT_EQ(c["call_id"], tool_id);
  EXPECT_EQ(c["name"], "Bash");
  EXPECT_EQ(c["type"], "shell");
  EXPECT_EQ(c["source"], "tool_use");
  EXPECT_EQ(c["args_state"], "complete");
  EXPECT_EQ(c["session_id"], "sess-42");
  EXPECT_EQ(c["identity"]["user_login"], "alice@example.com");
  EXPECT_EQ(c["identity"]["tags"], nlohmann::json::array());
  EXPECT_EQ(c["command"], "git rev-parse HEAD && grep -rn TODO . | head -5");
  EXPECT_EQ(c["commands"], nlohmann::json::parse(R"([{"argv":["git","rev-parse","HEAD"]},
      {"argv":["grep","-rn","TODO","."]},{"argv":["head","-5"]}])"));
  EXPECT_EQ(c["result"], "ok");
  EXPECT_EQ(c["result_size"], 7);
  EXPECT_NE(c["request_id"], c["result_request_id"]);

  EXPECT_EQ(api("/api/tools?command=git%20rev-parse")["tool_calls"].size(), 1u);
  EXPECT_EQ(api("/api/tools?command=grep")["tool_calls"].size(), 1u);
  EXPECT_EQ(api("/api/tools?command=rm")["tool_calls"].size(), 0u);
  EXPECT_EQ(api("/api/tools?type=file_read")["tool_calls"].size(), 0u);
  EXPECT_EQ(api("/api/tools?user=alice@example.com&session=sess-42")["tool_calls"].size(), 1u);
  EXPECT_EQ(api("/api/tools?session=other")["tool_calls"].size(), 0u);
  nlohmann::json stats = api("/api/tools/stats");
  ASSERT_EQ(stats["rows"].size(), 1u) << stats;
  EXPECT_EQ(stats["rows"][0]["by_type"]["shell"], 1);
  EXPECT_EQ(stats["rows"][0]["user_login"], "alice@example.com");
  EXPECT_EQ(api("/api/tools?cursor=bad")["error"]["status"], 400);
  EXPECT_EQ(api("/api/tools?type=bash")["error"]["status"], 400);
}

TEST_F(GatewayToolsTest, JsonResponseIsRecordedToo) {
  start(true);
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: cat ./README.md"}]})";
  std::string raw = roundTrip(port_, request("POST", "/v1/messages", body, kHeaders));
  ASSERT_NE(raw.find("\"tool_use\""), std::string::npos) << raw;
  waitRequests(1);
  nlohmann::json page = api("/api/tools?type=shell");
  ASSERT_EQ(page["tool_calls"].size(), 1u) << page;
  EXPECT_EQ(page["tool_calls"][0]["commands"][0]["argv"],
            nlohmann::json::array({"cat", "./README.md"}));
  EXPECT_EQ(page["tool_calls"][0]["result"], "none");
}

TEST_F(GatewayToolsTest, OffMeansNoExtraction) {
  start(false);
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: ls"}]})";
  std::string raw = roundTrip(port_, request("POST", "/v1/messages", body, kHeaders));
  ASSERT_NE(raw.find("\"tool_use\""), std::string::npos) << raw;
  waitRequests(1);
  EXPECT_EQ(api("/api/tools")["tool_calls"].size(), 0u);
}

TEST_F(GatewayToolsTest, StreamedRmRfRootIsReplacedBeforeTheClientSeesIt) {
  start(true);
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: rm -rf /"}]})";
  std::string raw = roundTrip(port_, request("POST", "/v1/messages", body, kHeaders));
  std::string sse = bodyOf(raw);
  ASSERT_NE(sse.find("message_stop"), std::string::npos) << raw;
  EXPECT_EQ(sse.find("\"tool_use\""), std::string::npos) << sse;
  EXPECT_EQ(sse.find("input_json_delta"), std::string::npos) << sse;
  EXPECT_NE(sse.find("mock: running"), std::string::npos) << "text before the call arrives";
  EXPECT_NE(sse.find("rule \\\"rm-rf-root\\\""), std::string::npos) << sse;
  EXPECT_NE(sse.find("\"stop_reason\":\"end_turn\""), std::string::npos) << sse;
  waitRequests(1);
  nlohmann::json page = api("/api/tools");
  ASSERT_EQ(page["tool_calls"].size(), 1u) << page;
  EXPECT_EQ(page["tool_calls"][0]["command"], "rm -rf /");
  EXPECT_EQ(page["tool_calls"][0]["guardrail"],
            nlohmann::json::parse(R"([{"rule":"rm-rf-root","action":"block","enforced":true}])"));
  EXPECT_EQ(api("/api/tools?guardrail=enforced")["tool_calls"].size(), 1u);
  EXPECT_EQ(api("/api/tools?guardrail=block")["tool_calls"].size(), 1u);
  EXPECT_EQ(api("/api/tools?guardrail=flag")["tool_calls"].size(), 0u);
  EXPECT_EQ(api("/api/tools?guardrail=maybe")["error"]["status"], 400);
}

// The value of header `name` in a raw response, or "".
std::string headerOf(const std::string& raw, const std::string& name) {
  std::string head = raw.substr(0, raw.find("\r\n\r\n") + 2);
  for (size_t at = 0; (at = head.find("\r\n", at)) != std::string::npos;) {
    at += 2;
    size_t colon = head.find(':', at);
    if (colon == std::string::npos) break;
    if (http::equalsIgnoreCase(head.substr(at, colon - at), name)) {
      return head.substr(colon + 2, head.find("\r\n", colon) - colon - 2);
    }
  }
  return "";
}

TEST_F(GatewayToolsTest, JsonRmRfRootIsReplacedWithItsOwnLength) {
  start(true);
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: rm -rf /"}]})";
  std::string raw = roundTrip(port_, request("POST", "/v1/messages", body, kHeaders));
  ASSERT_NE(raw.find("200 OK"), std::string::npos) << raw;
  std::string json_body = bodyOf(raw);
  EXPECT_EQ(headerOf(raw, "content-length"), std::to_string(json_body.size())) << raw;
  EXPECT_EQ(headerOf(raw, "transfer-encoding"), "");
  nlohmann::json j = nlohmann::json::parse(json_body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << json_body;
  EXPECT_EQ(json_body.find("\"tool_use\""), std::string::npos) << json_body;
  ASSERT_EQ(j["content"].size(), 2u);
  EXPECT_EQ(j["content"][0]["text"], "mock: running");
  EXPECT_NE(j["content"][1]["text"].get<std::string>().find("rule \"rm-rf-root\""),
            std::string::npos);
  EXPECT_EQ(j["stop_reason"], "end_turn");
  waitRequests(1);
  nlohmann::json page = api("/api/tools");
  ASSERT_EQ(page["tool_calls"].size(), 1u) << page;
  EXPECT_EQ(page["tool_calls"][0]["guardrail"],
            nlohmann::json::parse(R"([{"rule":"rm-rf-root","action":"block","enforced":true}])"));
  EXPECT_EQ(gw_->gateway().counters().guard_blocked.load(), 1u);
}

TEST_F(GatewayToolsTest, HarmlessJsonIsByteIdentical) {
  start(true);
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: ls -la /tmp"}]})";
  std::string raw = roundTrip(port_, request("POST", "/v1/messages", body, kHeaders));
  http::RequestHead head;
  head.method = "POST";
  head.target = "/v1/messages";
  std::string direct = mock::respond(head, body, 1, false);
  ASSERT_NE(bodyOf(raw).find("\"tool_use\""), std::string::npos) << raw;
  EXPECT_EQ(bodyOf(raw), bodyOf(direct));
  EXPECT_EQ(headerOf(raw, "content-length"), headerOf(direct, "content-length"));
  EXPECT_EQ(gw_->gateway().counters().guard_blocked.load(), 0u);
}

TEST_F(GatewayToolsTest, GuardrailsCanBeTurnedOff) {
  start(true, R"({"builtin": false})");
  std::string body = R"({"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,)" + kTools +
                     R"(,"messages":[{"role":"user","content":"bash: rm -rf /"}]})";
  std::string sse = bodyOf(roundTrip(port_, request("POST", "/v1/messages", body, kHeaders)));
  http::RequestHead head;
  head.method = "POST";
  head.target = "/v1/messages";
  EXPECT_EQ(sse, bodyOf(mock::respond(head, body, 1, false)));
  waitRequests(1);
  EXPECT_EQ(api("/api/tools")["tool_calls"][0]["guardrail"], nlohmann::json::array());
}

}  // namespace
}  // namespace gatehouse::proxy
