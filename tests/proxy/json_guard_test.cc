// Guardrails in non-streamed responses: a blocked call becomes the explanation in each API's
// shape (Anthropic text block + end_turn, Chat content + stop, Responses message item); a
// response with only harmless calls is left byte for byte; malformed bodies are left alone.
#include "proxy/tools/json_guard.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace gatehouse::proxy::tools {
namespace {

using nlohmann::json;

std::string guard(ApiKind kind, std::string& body, size_t* blocked = nullptr) {
  std::vector<BlockedCall> b = guardJsonBody(kind, *Guardrails::builtin(), body);
  if (blocked != nullptr) *blocked = b.size();
  return b.empty() ? "" : b[0].match.rule;
}

TEST(JsonGuard, AnthropicToolUseBecomesText) {
  std::string body =
      R"({"id":"msg_1","type":"message","role":"assistant","model":"claude",)"
      R"("content":[{"type":"text","text":"Cleaning up."},)"
      R"({"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"rm -rf /"}}],)"
      R"("stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":9}})";
  EXPECT_EQ(guard(ApiKind::kAnthropicMessages, body), "rm-rf-root");
  json j = json::parse(body);
  ASSERT_EQ(j["content"].size(), 2u);
  EXPECT_EQ(j["content"][1]["type"], "text");
  EXPECT_NE(j["content"][1]["text"].get<std::string>().find("(rm -rf /)"), std::string::npos);
  EXPECT_EQ(j["stop_reason"], "end_turn");
  EXPECT_EQ(j["usage"]["output_tokens"], 9);
  EXPECT_EQ(body.substr(0, 16), R"({"id":"msg_1","t)") << "member order kept";
}

TEST(JsonGuard, AnthropicMixedKeepsToolUse) {
  std::string body =
      R"({"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}},)"
      R"({"type":"tool_use","id":"b","name":"Bash","input":{"command":"rm -rf ~"}}],)"
      R"("stop_reason":"tool_use"})";
  size_t n = 0;
  guard(ApiKind::kAnthropicMessages, body, &n);
  EXPECT_EQ(n, 1u);
  json j = json::parse(body);
  EXPECT_EQ(j["content"][0]["type"], "tool_use");
  EXPECT_EQ(j["content"][1]["type"], "text");
  EXPECT_EQ(j["stop_reason"], "tool_use");
}

TEST(JsonGuard, ChatToolCallBecomesContent) {
  std::string body =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-5","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function",)"
      R"("function":{"name":"shell","arguments":"{\"command\":\"rm -rf /\"}"}}]},"logprobs":null,)"
      R"("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},)"
      R"("system_fingerprint":"fp_1"})";
  EXPECT_EQ(guard(ApiKind::kOpenAiChat, body), "rm-rf-root");
  json j = json::parse(body);
  const json& m = j["choices"][0]["message"];
  EXPECT_FALSE(m.contains("tool_calls"));
  EXPECT_NE(m["content"].get<std::string>().find("rm-rf-root"), std::string::npos);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["system_fingerprint"], "fp_1");
  EXPECT_EQ(j["usage"]["total_tokens"], 3);
}

TEST(JsonGuard, ChatKeepsHarmlessCallsAfterABlockedOne) {
  std::string body =
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","tool_calls":[)"
      R"({"id":"c1","type":"function","function":{"name":"shell","arguments":"{\"command\":\"rm -rf /\"}"}},)"
      R"({"id":"c2","type":"function","function":{"name":"shell","arguments":"{\"command\":\"ls\"}"}}]},)"
      R"("finish_reason":"tool_calls"}]})";
  guard(ApiKind::kOpenAiChat, body);
  json j = json::parse(body);
  const json& m = j["choices"][0]["message"];
  ASSERT_EQ(m["tool_calls"].size(), 1u);
  EXPECT_EQ(m["tool_calls"][0]["id"], "c2");
  EXPECT_EQ(m["content"].get<std::string>().substr(0, 19), "Sure.\n\n[gatehouse] ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
}

TEST(JsonGuard, ResponsesItemBecomesMessage) {
  std::string body =
      R"({"id":"resp_1","object":"response","status":"completed","output":[)"
      R"({"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"command\":\"rm -rf /\"}","call_id":"call_1","name":"shell"},)"
      R"({"id":"lsh_1","type":"local_shell_call","status":"completed","call_id":"call_2","action":{"type":"exec","command":["bash","-lc","rm -rf ~"]}},)"
      R"({"id":"ctc_1","type":"custom_tool_call","status":"completed","call_id":"call_3","name":"apply_patch","input":"*** Begin Patch"}],)"
      R"("usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}})";
  size_t n = 0;
  guard(ApiKind::kOpenAiResponses, body, &n);
  EXPECT_EQ(n, 2u);
  json j = json::parse(body);
  ASSERT_EQ(j["output"].size(), 3u);
  for (int i : {0, 1}) {
    EXPECT_EQ(j["output"][i]["type"], "message");
    EXPECT_EQ(j["output"][i]["role"], "assistant");
    EXPECT_EQ(j["output"][i]["content"][0]["type"], "output_text");
    EXPECT_NE(j["output"][i]["content"][0]["text"].get<std::string>().find("rm-rf-root"),
              std::string::npos);
  }
  EXPECT_EQ(j["output"][2]["type"], "custom_tool_call");
  EXPECT_EQ(j["usage"]["total_tokens"], 3);
}

TEST(JsonGuard, HarmlessAndMalformedBodiesAreUntouched) {
  const std::vector<std::pair<ApiKind, std::string>> cases = {
      {ApiKind::kAnthropicMessages,
       R"({"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls  -la"}}], "x": 1.50})"},
      {ApiKind::kOpenAiChat,
       R"({"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"shell","arguments":"{\"command\": \"pwd\"}"}}]}}], "y": 1e3})"},
      {ApiKind::kOpenAiResponses,
       R"({"output":[{"type":"function_call","name":"shell","arguments":"not json rm -rf /"}]})"},
      {ApiKind::kOpenAiChat, R"({"choices":[{"message":{"tool_calls":"no"}}]})"},
      {ApiKind::kOpenAiResponses, R"({"output":{"type":"function_call"}})"},
      {ApiKind::kAnthropicMessages,
       R"({"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"rm -rf /")"},
      {ApiKind::kAnthropicMessages, "[1,2]"},
      {ApiKind::kAnthropicCountTokens, R"({"input_tokens":3})"},
  };
  for (const auto& [kind, text] : cases) {
    std::string body = text;
    size_t n = 1;
    guard(kind, body, &n);
    EXPECT_EQ(n, 0u) << text;
    EXPECT_EQ(body, text);
  }
}

}  // namespace
}  // namespace gatehouse::proxy::tools
