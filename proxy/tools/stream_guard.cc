#include "proxy/tools/stream_guard.h"

#include "proxy/tools/json_access.h"
#include "proxy/tools/tool_tap.h"

namespace gatehouse::proxy::tools {
namespace {

using json = nlohmann::ordered_json;

std::string sseEvent(std::string_view name, const json& data) {
  return "event: " + std::string(name) +
         "\ndata: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// The text block that stands in for a blocked tool_use at `index`.
std::string replacement(int64_t index, const BlockedCall& b) {
  return sseEvent("content_block_start", {{"type", "content_block_start"},
                                          {"index", index},
                                          {"content_block", {{"type", "text"}, {"text", ""}}}}) +
         sseEvent("content_block_delta",
                  {{"type", "content_block_delta"},
                   {"index", index},
                   {"delta", {{"type", "text_delta"}, {"text", blockedText(b)}}}}) +
         sseEvent("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
}

}  // namespace

std::string blockedText(const BlockedCall& b) {
  return "[gatehouse] Blocked the tool call " + b.name + " (" + b.match.command + "): rule \"" +
         b.match.rule + "\": " + b.match.message + ".";
}

std::optional<BlockedCall> blockingMatch(const Guardrails& rules, ToolCall call, Agent agent) {
  if (call.args_state == ArgsState::kComplete && call.source != "custom_tool_call" &&
      !call.arguments.empty() && !json::accept(call.arguments)) {
    call.args_state = ArgsState::kMalformed;
  }
  normalize(call, agent);
  for (GuardMatch& m : rules.evaluate(call)) {
    if (m.action == GuardAction::kBlock) return BlockedCall{call.call_id, call.name, std::move(m)};
  }
  return std::nullopt;
}

StreamGuard::StreamGuard(std::shared_ptr<const Guardrails> rules, size_t max_held_bytes)
    : rules_(std::move(rules)), max_held_bytes_(max_held_bytes) {}

std::string StreamGuard::feed(std::string_view bytes) {
  if (passthrough_) return std::string(bytes);
  pending_.append(bytes);
  http::SseFeedResult r = parser_.feed(bytes);
  std::string out;
  if (!r.status.isOk()) {
    // Unreadable stream: hand over what is held and everything after it, unevaluated.
    giveUp(out);
    out += std::move(pending_);
    pending_.clear();
    return out;
  }
  for (const http::SseEvent& e : r.events) {
    size_t len = static_cast<size_t>(e.end - pending_base_);
    onEvent(e, std::string_view(pending_).substr(0, len), out);
    pending_.erase(0, len);
    pending_base_ = e.end;
    if (passthrough_) {
      out += std::move(pending_);
      pending_.clear();
      break;
    }
  }
  return out;
}

std::string StreamGuard::finish() {
  // A cut stream: with a call held, the bytes after it (comments, half an event) go with it.
  std::string out = dropHeld() ? std::string() : std::move(pending_);
  pending_.clear();
  return out;
}

void StreamGuard::giveUp(std::string& out) {
  passthrough_ = true;
  out += releaseHeld();
}

std::optional<BlockedCall> StreamGuard::evaluate(ToolCall call, Agent agent) {
  std::optional<BlockedCall> b = blockingMatch(*rules_, std::move(call), agent);
  if (b) blocked_.push_back(*b);
  return b;
}

std::unique_ptr<StreamGuard> makeStreamGuard(ApiKind kind, std::shared_ptr<const Guardrails> rules,
                                             size_t max_held_bytes) {
  switch (kind) {
    case ApiKind::kAnthropicMessages:
      return std::make_unique<AnthropicStreamGuard>(std::move(rules), max_held_bytes);
    case ApiKind::kOpenAiChat:
      return std::make_unique<ChatStreamGuard>(std::move(rules), max_held_bytes);
    case ApiKind::kOpenAiResponses:
      return std::make_unique<ResponsesStreamGuard>(std::move(rules), max_held_bytes);
    default:
      return nullptr;
  }
}

AnthropicStreamGuard::AnthropicStreamGuard(std::shared_ptr<const Guardrails> rules,
                                           size_t max_held_bytes)
    : StreamGuard(std::move(rules), max_held_bytes) {}

std::string AnthropicStreamGuard::releaseHeld() {
  holding_ = false;
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

bool AnthropicStreamGuard::dropHeld() {
  bool held = holding_;
  holding_ = false;
  held_.clear();
  return held;
}

void AnthropicStreamGuard::onEvent(const http::SseEvent& e, std::string_view raw,
                                   std::string& out) {
  // Not holding a call, only a tool_use block start (or the stop_reason "tool_use" to fix after
  // a block) matters; an event without "tool_use" and without a \u escape that could spell it
  // passes as it came, unparsed (every text and thinking delta).
  if (!holding_ && !mayMention(e.data, "tool_use")) {
    out.append(raw);
    return;
  }
  json j = json::parse(e.data, nullptr, false);
  std::string type = e.event != "message" ? e.event : str(j, "type");
  int64_t index = num(j, "index", -1);
  if (holding_) {
    held_.append(raw);
    if (type == "content_block_delta" && index == held_index_) {
      const json& delta = member(j, "delta");
      if (str(delta, "type") == "input_json_delta") held_input_ += str(delta, "partial_json");
    }
    if (held_.size() > max_held_bytes_) {
      giveUp(out);  // too big to judge: never stall, hand it over as it came
      return;
    }
    if (type == "content_block_stop" && index == held_index_) completeHeld(out);
    return;
  }
  if (type == "content_block_start" && str(member(j, "content_block"), "type") == "tool_use") {
    const json& block = member(j, "content_block");
    holding_ = true;
    held_index_ = index;
    held_.assign(raw);
    held_id_ = str(block, "id");
    held_name_ = str(block, "name");
    held_input_.clear();
    const json& input = member(block, "input");
    held_initial_ =
        input.is_null() ? "" : input.dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  if (type == "message_delta" && !blocked_.empty() && tool_uses_released_ == 0 &&
      str(member(j, "delta"), "stop_reason") == "tool_use") {
    j["delta"]["stop_reason"] = "end_turn";
    out += sseEvent("message_delta", j);
    return;
  }
  out.append(raw);
}

void AnthropicStreamGuard::completeHeld(std::string& out) {
  holding_ = false;
  ToolCall call;
  call.call_id = held_id_;
  call.name = held_name_;
  call.source = "tool_use";
  call.arguments = held_input_.empty() ? held_initial_ : held_input_;
  if (std::optional<BlockedCall> b = evaluate(std::move(call), Agent::kClaudeCode)) {
    out += replacement(held_index_, *b);
  } else {
    ++tool_uses_released_;
    out += std::move(held_);
  }
  held_.clear();
}

}  // namespace gatehouse::proxy::tools
