#include "proxy/tools/json_guard.h"

#include "proxy/tools/json_access.h"
#include "proxy/tools/tool_tap.h"

namespace gatehouse::proxy::tools {
namespace {

using json = nlohmann::ordered_json;

// Anthropic content[]: tool_use blocks.
void guardAnthropic(const Guardrails& rules, json& body, std::vector<BlockedCall>& blocked) {
  json& content = body["content"];
  int released = 0;
  for (json& block : content) {
    if (str(block, "type") != "tool_use") continue;
    ToolCall call;
    call.call_id = str(block, "id");
    call.name = str(block, "name");
    call.source = "tool_use";
    call.arguments = member(block, "input").dump(-1, ' ', false, json::error_handler_t::replace);
    std::optional<BlockedCall> b = blockingMatch(rules, std::move(call), Agent::kClaudeCode);
    if (!b) {
      ++released;
      continue;
    }
    block = {{"type", "text"}, {"text", blockedText(*b)}};
    blocked.push_back(std::move(*b));
  }
  if (!blocked.empty() && released == 0 && str(body, "stop_reason") == "tool_use") {
    body["stop_reason"] = "end_turn";
  }
}

// Chat choices[].message.tool_calls[].
void guardChat(const Guardrails& rules, json& body, std::vector<BlockedCall>& blocked) {
  for (json& choice : body["choices"]) {
    if (!choice.is_object() || !member(choice, "message").is_object()) continue;
    json& message = choice["message"];
    if (!member(message, "tool_calls").is_array()) continue;
    json kept = json::array();
    std::string text = str(message, "content");
    size_t before = blocked.size();
    for (json& tc : message["tool_calls"]) {
      ToolCall call;
      call.call_id = str(tc, "id");
      call.name = str(member(tc, "function"), "name");
      call.source = "tool_calls";
      call.arguments = str(member(tc, "function"), "arguments");
      std::optional<BlockedCall> b = blockingMatch(rules, std::move(call), Agent::kCodex);
      if (!b) {
        kept.push_back(std::move(tc));
        continue;
      }
      text += (text.empty() ? "" : "\n\n") + blockedText(*b);
      blocked.push_back(std::move(*b));
    }
    if (blocked.size() == before) continue;
    message["content"] = text;
    if (kept.empty()) {
      message.erase("tool_calls");
      if (str(choice, "finish_reason") == "tool_calls") choice["finish_reason"] = "stop";
    } else {
      message["tool_calls"] = std::move(kept);
    }
  }
}

// Responses output[] items.
void guardResponses(const Guardrails& rules, json& body, std::vector<BlockedCall>& blocked) {
  for (json& item : body["output"]) {
    std::optional<ToolCall> call = responsesToolCall(item);
    if (!call || call->source == "mcp_call") continue;  // MCP calls ran at the provider
    std::optional<BlockedCall> b = blockingMatch(rules, std::move(*call), Agent::kCodex);
    if (!b) continue;
    item = blockedMessageItem(str(item, "id"), *b);
    blocked.push_back(std::move(*b));
  }
}

}  // namespace

json blockedMessageItem(const std::string& item_id, const BlockedCall& b) {
  return {{"id", "msg_gatehouse_" + item_id},
          {"type", "message"},
          {"status", "completed"},
          {"role", "assistant"},
          {"content", json::array({{{"type", "output_text"},
                                    {"text", blockedText(b)},
                                    {"annotations", json::array()},
                                    {"logprobs", json::array()}}})}};
}

std::vector<BlockedCall> guardJsonBody(ApiKind kind, const Guardrails& rules, std::string& body) {
  std::vector<BlockedCall> blocked;
  if (!mayHoldToolCalls(kind, body)) return blocked;
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return blocked;
  const char* list = kind == ApiKind::kAnthropicMessages ? "content"
                     : kind == ApiKind::kOpenAiChat      ? "choices"
                     : kind == ApiKind::kOpenAiResponses ? "output"
                                                         : nullptr;
  if (list == nullptr || !member(j, list).is_array()) return blocked;
  if (kind == ApiKind::kAnthropicMessages) guardAnthropic(rules, j, blocked);
  if (kind == ApiKind::kOpenAiChat) guardChat(rules, j, blocked);
  if (kind == ApiKind::kOpenAiResponses) guardResponses(rules, j, blocked);
  if (!blocked.empty()) body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return blocked;
}

}  // namespace gatehouse::proxy::tools
