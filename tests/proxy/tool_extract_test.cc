// Tool-call extraction: golden fixtures built from the documented wire formats
// (tests/proxy/fixtures/tools/cases.json) for Claude Code, Codex and OpenAI Chat, each fed whole
// and split at every byte through the gateway's own SSE parser, with the results of the next
// request applied; then the edges: truncation, malformed arguments, bounds, hostile input.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proxy/http/sse.h"
#include "proxy/tools/guardrail.h"
#include "proxy/tools/json_guard.h"
#include "proxy/tools/tool_results.h"
#include "proxy/tools/tool_tap.h"

namespace gatehouse::proxy::tools {
namespace {

using nlohmann::json;

const std::string kFixtures = std::string(GATEHOUSE_SOURCE_DIR) + "/tests/proxy/fixtures/tools/";

std::string fixture(const std::string& name) {
  std::ifstream in(kFixtures + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

ApiKind apiOf(const std::string& name) {
  if (name == "chat") return ApiKind::kOpenAiChat;
  if (name == "responses") return ApiKind::kOpenAiResponses;
  return ApiKind::kAnthropicMessages;
}

bool isSse(const std::string& file) { return file.ends_with(".sse"); }

// Feeds `body` to a tap in pieces of `chunk` bytes (SSE through http::SseParser).
std::vector<ToolCall> extract(ApiKind kind, const std::string& body, bool sse, size_t chunk) {
  ToolTap tap(kind, sse ? BodyMode::kSse : BodyMode::kJson);
  http::SseParser parser;
  for (size_t at = 0; at < body.size(); at += chunk) {
    std::string_view piece = std::string_view(body).substr(at, chunk);
    if (sse) {
      for (const auto& e : parser.feed(piece).events) tap.onSseEvent(e.event, e.data);
    } else {
      tap.onBody(piece);
    }
  }
  return tap.finish();
}

void applyResults(std::vector<ToolCall>& calls, const std::vector<ToolResult>& results) {
  for (const ToolResult& r : results) {
    for (ToolCall& c : calls) {
      if (c.call_id == r.call_id) {
        c.result = r.status;
        c.result_size = r.size;
      }
    }
  }
}

json toJsonList(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (const auto& c : calls) out.push_back(toJson(c));
  return out;
}

TEST(ToolExtract, GoldenFixtures) {
  json cases = json::parse(fixture("cases.json"));
  ASSERT_GE(cases.size(), 6u);
  for (const json& c : cases) {
    std::string name = c["name"];
    SCOPED_TRACE(name);
    ApiKind kind = apiOf(c["api"]);
    std::string body = fixture(c["response"]);
    json expected = json::parse(fixture(name + ".expected.json"));
    std::vector<ToolResult> results;
    if (c["request"].is_string()) results = extractToolResults(kind, fixture(c["request"]));
    for (size_t chunk : {body.size(), size_t{1}, size_t{7}, size_t{64}, size_t{4096}}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      auto calls = extract(kind, body, isSse(c["response"]), std::max<size_t>(chunk, 1));
      applyResults(calls, results);
      EXPECT_EQ(toJsonList(calls), expected) << toJsonList(calls).dump(1);
    }
  }
}

TEST(ToolExtract, ResultsFromRequests) {
  auto r = extractToolResults(ApiKind::kAnthropicMessages, fixture("claude_code_request.json"));
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[0].call_id, "toolu_01Bash");
  EXPECT_EQ(r[4].status, ResultStatus::kError);
  // The last result for an id wins; other shapes give nothing.
  r = extractToolResults(ApiKind::kOpenAiChat, R"({"messages":[
      {"role":"tool","tool_call_id":"a","content":"x"},{"role":"tool","tool_call_id":"a","content":"yy"},
      {"role":"tool","content":"no id"},{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].size, 2);
  EXPECT_TRUE(extractToolResults(ApiKind::kOpenAiChat, "not json").empty());
  EXPECT_TRUE(extractToolResults(ApiKind::kAnthropicMessages, R"({"messages":7})").empty());
  EXPECT_TRUE(extractToolResults(ApiKind::kAnthropicCountTokens, R"({"messages":[]})").empty());
  // Responses shell_call_output: a non-zero exit is an error.
  r = extractToolResults(ApiKind::kOpenAiResponses, R"({"input":[
      {"type":"shell_call_output","call_id":"s1","output":[{"stdout":"ab","stderr":"c",
        "outcome":{"type":"exit","exit_code":2}}]},
      {"type":"function_call_output","call_id":"f1","output":"Exit code: 0\nok"},
      {"type":"function_call_output","call_id":"f2","output":"{\"metadata\":{\"exit_code\":127}}"}]})");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (ToolResult{"s1", ResultStatus::kError, 3}));
  EXPECT_EQ(r[1].status, ResultStatus::kOk);
  EXPECT_EQ(r[2].status, ResultStatus::kError);
}

TEST(ToolExtract, AnthropicCallsAreNotTextDelayedOrDuplicated) {
  // The same id twice (a provider bug) is reported once.
  std::string body =
      R"({"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}},
      {"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}},
      {"type":"text","text":"x"}]})";
  auto calls = extract(ApiKind::kAnthropicMessages, body, false, body.size());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].commands.size(), 1u);
}

TEST(ToolExtract, ChatJsonAndMalformedArguments) {
  std::string body = R"({"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[
      {"id":"c1","type":"function","function":{"name":"shell","arguments":"{\"command\":[\"bash\",\"-lc\",\"echo hi > /tmp/x\"]}"}},
      {"id":"c2","type":"function","function":{"name":"shell","arguments":"{\"command\":"}},
      {"id":"c3","type":"function","function":{"name":"frobnicate","arguments":"{}"}}]}}]})";
  auto calls = extract(ApiKind::kOpenAiChat, body, false, 5);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].command, "echo hi > /tmp/x");
  ASSERT_EQ(calls[0].commands.size(), 1u);
  EXPECT_EQ(calls[0].commands[0].redirects, std::vector<std::string>{">/tmp/x"});
  EXPECT_EQ(calls[1].args_state, ArgsState::kMalformed);
  EXPECT_EQ(calls[2].type, ToolType::kOther);
  EXPECT_EQ(calls[2].name, "frobnicate");
}

TEST(ToolExtract, ChatStreamCutBeforeFinish) {
  std::vector<std::pair<std::string, std::string>> events = {
      {"",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"Bash","arguments":"{\"comm"}}]}}]})"},
  };
  ToolTap tap(ApiKind::kOpenAiChat, BodyMode::kSse);
  for (auto& [n, d] : events) tap.onSseEvent(n, d);
  EXPECT_TRUE(tap.calls().empty());  // not complete yet
  auto calls = tap.finish();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].args_state, ArgsState::kTruncated);
  EXPECT_EQ(calls[0].arguments, "{\"comm");
}

TEST(ToolExtract, ResponsesMcpCallAndShellCall) {
  std::string body = R"({"output":[
      {"type":"mcp_call","id":"mcp_1","server_label":"deepwiki","name":"ask_question","arguments":"{\"q\":\"x\"}"},
      {"type":"shell_call","call_id":"sh_1","action":{"commands":["ls -la","cat a.txt | wc -l"]}},
      {"type":"message","content":[]}]})";
  auto calls = extract(ApiKind::kOpenAiResponses, body, false, body.size());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].type, ToolType::kMcp);
  EXPECT_EQ(calls[0].mcp_server, "deepwiki");
  EXPECT_EQ(calls[0].mcp_tool, "ask_question");
  EXPECT_EQ(calls[1].type, ToolType::kShell);
  EXPECT_EQ(calls[1].command, "ls -la\ncat a.txt | wc -l");
  EXPECT_EQ(calls[1].commands.size(), 3u);
}

TEST(ToolExtract, ResponsesStreamCutMidArguments) {
  ToolTap tap(ApiKind::kOpenAiResponses, BodyMode::kSse);
  tap.onSseEvent(
      "response.output_item.added",
      R"({"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","call_id":"c9","name":"shell","arguments":""}})");
  tap.onSseEvent(
      "response.function_call_arguments.delta",
      R"({"type":"response.function_call_arguments.delta","output_index":0,"delta":"{\"command\":[\"rm\""})");
  auto calls = tap.finish();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].call_id, "c9");
  EXPECT_EQ(calls[0].args_state, ArgsState::kTruncated);
  EXPECT_EQ(calls[0].type, ToolType::kShell);
}

TEST(ToolExtract, Bounds) {
  ToolTapOptions o;
  o.max_argument_bytes = 16;
  o.max_calls = 2;
  ToolTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse, o);
  for (int i = 0; i < 4; ++i) {
    std::string idx = std::to_string(i);
    tap.onSseEvent("content_block_start", R"({"index":)" + idx +
                                              R"(,"content_block":{"type":"tool_use","id":"t)" +
                                              idx + R"(","name":"Bash","input":{}}})");
    tap.onSseEvent(
        "content_block_delta",
        R"({"index":)" + idx +
            R"(,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"a very long command\"}"}})");
    tap.onSseEvent("content_block_stop", R"({"index":)" + idx + "}");
  }
  auto calls = tap.finish();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].args_state, ArgsState::kTruncated);
  EXPECT_EQ(tap.stats().dropped_calls, 2u);
  EXPECT_EQ(tap.stats().oversized, 2u);  // dropped calls are not even opened

  ToolTapOptions small;
  small.max_body_bytes = 10;
  ToolTap json_tap(ApiKind::kAnthropicMessages, BodyMode::kJson, small);
  json_tap.onBody(R"({"content":[{"type":"tool_use"}]})");
  EXPECT_TRUE(json_tap.finish().empty());
  EXPECT_EQ(json_tap.stats().oversized, 1u);
}

// JSON answers without a call marker are not parsed for calls (the common case, and most of the
// tap's cost); a marker spelled with \u escapes still gets the full parse, so an answer cannot
// hide a call from the tap or the guardrails that way.
TEST(ToolExtract, SkipsTheParseOnlyWhenNoCallCanBeThere) {
  EXPECT_FALSE(mayHoldToolCalls(ApiKind::kAnthropicMessages,
                                R"({"content":[{"type":"text","text":"hi"}]})"));
  EXPECT_TRUE(
      mayHoldToolCalls(ApiKind::kAnthropicMessages, R"({"content":[{"type":"tool_use"}]})"));
  EXPECT_FALSE(mayHoldToolCalls(ApiKind::kOpenAiChat, R"({"choices":[{"message":{}}]})"));
  EXPECT_TRUE(mayHoldToolCalls(ApiKind::kOpenAiChat, R"({"tool_calls":[]})"));
  EXPECT_FALSE(mayHoldToolCalls(ApiKind::kOpenAiResponses, R"({"output":[{"type":"message"}]})"));
  EXPECT_TRUE(mayHoldToolCalls(ApiKind::kOpenAiResponses, R"({"output":[{"type":"shell_call"}]})"));
  std::string escaped = R"({"content":[{"type":"tool\u005fuse","id":"toolu_1","name":"Bash",)"
                        R"("input":{"command":"rm -rf /"}}]})";
  EXPECT_TRUE(mayHoldToolCalls(ApiKind::kAnthropicMessages, escaped));
  auto calls = extract(ApiKind::kAnthropicMessages, escaped, false, 7);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].command, "rm -rf /");
  // The guard sees it too.
  auto blocked = guardJsonBody(ApiKind::kAnthropicMessages, *Guardrails::builtin(), escaped);
  ASSERT_EQ(blocked.size(), 1u);
  json rewritten = json::parse(escaped, nullptr, false);
  ASSERT_TRUE(rewritten.is_object());
  EXPECT_EQ(rewritten["content"][0]["type"], "text");
}

// A named Anthropic event is decided by its name before its data is searched; without names
// (Bedrock-style "message" events) the data's type decides. Both give the same calls, and an
// event whose name cannot act is ignored whatever its data mentions.
TEST(ToolExtract, AnthropicEventNamesDecideBeforeTheData) {
  std::string named = fixture("claude_code_stream.sse");
  std::string unnamed;
  std::istringstream lines(named);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("event:", 0) != 0) unnamed += line + "\n";
  }
  ASSERT_NE(unnamed, named);
  auto want = extract(ApiKind::kAnthropicMessages, named, true, named.size());
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(toJsonList(extract(ApiKind::kAnthropicMessages, unnamed, true, unnamed.size())),
            toJsonList(want));
  // A message_delta (stop_reason "tool_use") and an unknown event carrying a whole tool_use
  // block open nothing.
  std::string noise =
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"tool_use\"}}\n\nevent: future_event\ndata: {\"type\":\"content_block_start\",\"index\":9,"
      "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"Bash\",\"input\":{}}}"
      "\n\n";
  EXPECT_TRUE(extract(ApiKind::kAnthropicMessages, noise, true, noise.size()).empty());
}

// Garbage is counted where it could have held a call; events that cannot (no call marker, no \u
// escape) are skipped unparsed, which is most of a stream.
TEST(ToolExtract, HostileInputIsCountedNotFatal) {
  for (ApiKind kind :
       {ApiKind::kAnthropicMessages, ApiKind::kOpenAiChat, ApiKind::kOpenAiResponses}) {
    ToolTap tap(kind, BodyMode::kSse);
    for (const char* d :
         {"{", "[]", "null", "{\"index\":\"x\",\"content_block\":7}", "{\"choices\":[1,null]}",
          "{\"choices\":[{\"delta\":{\"tool_calls\":[7,{\"index\":-1}]}}]}",
          "{\"type\":\"response.output_item.done\",\"item\":[]}",
          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\"}"
          "}",
          // Cut short where a call starts: parsed (they could hold one), and counted.
          "{\"type\":\"content_block_start\",\"content_block\":{\"type\":\"tool_use\"",
          "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,",
          "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\""}) {
      tap.onSseEvent("", d);
      tap.onSseEvent("content_block_start", d);
    }
    tap.finish();
    EXPECT_GT(tap.stats().parse_errors, 0u);
  }
}

}  // namespace
}  // namespace gatehouse::proxy::tools
