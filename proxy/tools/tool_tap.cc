#include "proxy/tools/tool_tap.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "proxy/tools/json_access.h"

namespace gatehouse::proxy::tools {
namespace {

using json = nlohmann::ordered_json;

// The event's name: the SSE event field, or the data's "type" when the stream has no names.
std::string eventType(std::string_view name, const json& data) {
  if (!name.empty() && name != "message") return std::string(name);
  return str(data, "type");
}

bool isResponsesToolItem(std::string_view type) {
  return type == "function_call" || type == "custom_tool_call" || type == "local_shell_call" ||
         type == "shell_call" || type == "mcp_call";
}

}  // namespace

bool mayMention(std::string_view json_text, std::string_view marker) {
  return json_text.find(marker) != std::string_view::npos ||
         json_text.find("\\u") != std::string_view::npos;
}

bool mayHoldToolCalls(ApiKind kind, std::string_view body) {
  switch (kind) {
    case ApiKind::kAnthropicMessages:
      return mayMention(body, "tool_use");
    case ApiKind::kOpenAiChat:
      return mayMention(body, "tool_calls");
    case ApiKind::kOpenAiResponses:
      return mayMention(body, "_call");
    default:
      return true;
  }
}

Agent agentFor(ApiKind kind) {
  switch (kind) {
    case ApiKind::kOpenAiChat:
    case ApiKind::kOpenAiResponses:
      return Agent::kCodex;
    default:
      return Agent::kClaudeCode;
  }
}

// A Responses tool item's identity: call id (an mcp_call has only `id`), name (shell items have
// none: named after the tool that makes them) and, for MCP, the server. local_shell_call /
// shell_call arguments are the item's `action` object, as JSON text.
std::optional<ToolCall> responsesToolCall(const json& item) {
  std::string type = str(item, "type");
  if (!isResponsesToolItem(type)) return std::nullopt;
  ToolCall c;
  c.source = type;
  c.call_id = str(item, "call_id");
  if (c.call_id.empty()) c.call_id = str(item, "id");
  c.name = str(item, "name");
  if (c.name.empty() && type == "local_shell_call") c.name = "local_shell";
  if (c.name.empty() && type == "shell_call") c.name = "shell";
  if (type == "mcp_call") c.mcp_server = str(item, "server_label");
  if (type == "function_call" || type == "mcp_call") {
    c.arguments = str(item, "arguments");
  } else if (type == "custom_tool_call") {
    c.arguments = str(item, "input");
  } else {
    c.arguments = member(item, "action").dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return c;
}

ToolTap::ToolTap(ApiKind kind, BodyMode mode, ToolTapOptions options)
    : kind_(kind), mode_(mode), options_(options) {}

void ToolTap::onBody(std::string_view bytes) {
  if (finished_ || mode_ != BodyMode::kJson) return;
  if (body_.size() + bytes.size() > options_.max_body_bytes) {
    ++stats_.oversized;
    body_.clear();
    body_.shrink_to_fit();
    finished_ = true;  // nothing more can be read from a dropped body
    return;
  }
  body_.append(bytes);
}

void ToolTap::onSseEvent(std::string_view event_name, std::string_view data) {
  if (finished_ || mode_ != BodyMode::kSse) return;
  ++stats_.events;
  if (data.size() > options_.max_body_bytes) {
    ++stats_.oversized;
    return;
  }
  switch (kind_) {
    case ApiKind::kAnthropicMessages:
      anthropicEvent(event_name, data);
      break;
    case ApiKind::kOpenAiChat:
      chatEvent(data);
      break;
    case ApiKind::kOpenAiResponses:
      responsesEvent(event_name, data);
      break;
    default:
      break;
  }
}

const std::vector<ToolCall>& ToolTap::finish() {
  if (!finished_ && mode_ == BodyMode::kJson) parseBody();
  finished_ = true;
  completeAll(/*truncated=*/true);
  return calls_;
}

void ToolTap::append(Open& open, std::string_view fragment) {
  if (open.oversized) return;
  size_t room =
      options_.max_argument_bytes - std::min(open.arguments.size(), options_.max_argument_bytes);
  if (fragment.size() > room) {
    // Keep the prefix that fits: the record shows what the call started with.
    open.arguments.append(fragment.substr(0, room));
    open.oversized = true;
    ++stats_.oversized;
    return;
  }
  open.arguments.append(fragment);
}

bool ToolTap::roomToOpen() {
  // Open calls count against max_calls too, so a stream of starts that never stop stays bounded.
  if (open_.size() + calls_.size() < options_.max_calls) return true;
  ++stats_.dropped_calls;
  return false;
}

void ToolTap::emit(ToolCall call) {
  if (!call.call_id.empty() && !seen_ids_.insert(call.call_id).second) return;
  if (calls_.size() >= options_.max_calls) {
    ++stats_.dropped_calls;
    return;
  }
  normalize(call, agentFor(kind_));
  calls_.push_back(std::move(call));
}

void ToolTap::complete(Open open, bool truncated) {
  ToolCall call;
  call.call_id = std::move(open.call_id);
  call.name = std::move(open.name);
  call.source = std::move(open.source);
  call.mcp_server = std::move(open.mcp_server);
  if (open.arguments.empty() && !open.initial.empty() && !open.oversized) {
    append(open, open.initial);
  }
  call.arguments = std::move(open.arguments);
  if (truncated || open.oversized) {
    call.args_state = ArgsState::kTruncated;
  } else if (call.source != "custom_tool_call" && !call.arguments.empty() &&
             !json::accept(call.arguments)) {
    call.args_state = ArgsState::kMalformed;
  }
  emit(std::move(call));
}

void ToolTap::completeAll(bool truncated) {
  auto open = std::move(open_);
  open_.clear();
  for (auto& [key, o] : open) complete(std::move(o), truncated);
}

void ToolTap::parseBody() {
  if (!mayHoldToolCalls(kind_, body_)) {  // most answers: no call, no parse
    std::string().swap(body_);
    return;
  }
  json j = json::parse(body_, nullptr, false);
  body_.clear();
  body_.shrink_to_fit();
  if (j.is_discarded()) {
    ++stats_.parse_errors;
    return;
  }
  if (kind_ == ApiKind::kAnthropicMessages) {
    const json& content = member(j, "content");
    if (!content.is_array()) return;
    for (const json& block : content) {
      if (str(block, "type") != "tool_use") continue;
      Open o;
      o.call_id = str(block, "id");
      o.name = str(block, "name");
      o.source = "tool_use";
      append(o, member(block, "input").dump(-1, ' ', false, json::error_handler_t::replace));
      complete(std::move(o), false);
    }
  } else if (kind_ == ApiKind::kOpenAiChat) {
    const json& choices = member(j, "choices");
    if (!choices.is_array()) return;
    for (const json& choice : choices) {
      const json& tcs = member(member(choice, "message"), "tool_calls");
      if (!tcs.is_array()) continue;
      for (const json& tc : tcs) {
        Open o;
        o.call_id = str(tc, "id");
        o.name = str(member(tc, "function"), "name");
        o.source = "tool_calls";
        append(o, str(member(tc, "function"), "arguments"));
        complete(std::move(o), false);
      }
    }
  } else if (kind_ == ApiKind::kOpenAiResponses) {
    const json& output = member(j, "output");
    if (!output.is_array()) return;
    for (const json& item : output) responsesItem(item);
  }
}

void ToolTap::anthropicEvent(std::string_view name, std::string_view data) {
  // A named event is its name's type (eventType): only these four act below, and a delta or a
  // block stop only on an open call. Decided without looking at the data.
  if (!name.empty() && name != "message") {
    if (name == "content_block_delta" || name == "content_block_stop") {
      if (open_.empty()) return;
    } else if (name != "content_block_start" && name != "message_stop") {
      return;
    }
  }
  // Text and thinking deltas are most of a stream: skip the parse of an event that cannot open,
  // feed or close a call (no "tool_use" / "input_json_delta" in it, no \u escape that could
  // spell one, and, with a call open, a content delta).
  if (!mayMention(data, "tool_use") && !mayMention(data, "input_json_delta") &&
      (open_.empty() || name == "content_block_delta")) {
    return;
  }
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded()) {
    ++stats_.parse_errors;
    return;
  }
  std::string type = eventType(name, j);
  int64_t index = num(j, "index", -1);
  if (type == "content_block_start") {
    const json& block = member(j, "content_block");
    if (str(block, "type") != "tool_use") return;
    Open o;
    o.call_id = str(block, "id");
    o.name = str(block, "name");
    o.source = "tool_use";
    const json& input = member(block, "input");
    if (!input.is_null()) o.initial = input.dump(-1, ' ', false, json::error_handler_t::replace);
    // A repeated index means the first block never stopped: report it as cut off.
    if (auto it = open_.find({index, 0}); it != open_.end()) {
      complete(std::move(it->second), true);
      open_.erase(it);
    }
    if (!roomToOpen()) return;
    open_[{index, 0}] = std::move(o);
  } else if (type == "content_block_delta") {
    auto it = open_.find({index, 0});
    const json& delta = member(j, "delta");
    if (it == open_.end() || str(delta, "type") != "input_json_delta") return;
    append(it->second, str(delta, "partial_json"));
  } else if (type == "content_block_stop") {
    auto it = open_.find({index, 0});
    if (it == open_.end()) return;
    Open o = std::move(it->second);
    open_.erase(it);
    complete(std::move(o), false);
  } else if (type == "message_stop") {
    finished_ = true;
    completeAll(true);
  }
}

void ToolTap::chatEvent(std::string_view data) {
  if (data == "[DONE]") {
    completeAll(false);
    finished_ = true;
    return;
  }
  // Most chunks are content deltas: with no call open, only a chunk with "tool_calls" (or a
  // \u escape that could spell it) matters.
  if (open_.empty() && !mayMention(data, "tool_calls")) {
    return;
  }
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded()) {
    ++stats_.parse_errors;
    return;
  }
  const json& choices = member(j, "choices");
  if (!choices.is_array()) return;
  for (const json& choice : choices) {
    int64_t ci = num(choice, "index", 0);
    const json& tcs = member(member(choice, "delta"), "tool_calls");
    if (tcs.is_array()) {
      for (const json& tc : tcs) {
        Key key{ci, num(tc, "index", 0)};
        if (!open_.contains(key) && !roomToOpen()) continue;
        auto [it, inserted] = open_.try_emplace(key);
        Open& o = it->second;
        if (inserted) o.source = "tool_calls";
        if (std::string id = str(tc, "id"); !id.empty() && o.call_id.empty()) o.call_id = id;
        const json& fn = member(tc, "function");
        if (std::string n = str(fn, "name"); !n.empty()) o.name += n;
        append(o, str(fn, "arguments"));
      }
    }
    if (member(choice, "finish_reason").is_string()) {
      for (auto it = open_.begin(); it != open_.end();) {
        if (it->first.first != ci) {
          ++it;
          continue;
        }
        Open o = std::move(it->second);
        it = open_.erase(it);
        complete(std::move(o), false);
      }
    }
  }
}

ToolTap::Open ToolTap::openFromItem(const json& item) {
  Open o;
  if (std::optional<ToolCall> c = responsesToolCall(item)) {
    o.call_id = std::move(c->call_id);
    o.name = std::move(c->name);
    o.source = std::move(c->source);
    o.mcp_server = std::move(c->mcp_server);
  }
  return o;
}

void ToolTap::responsesItem(const json& item) {
  std::optional<ToolCall> c = responsesToolCall(item);
  if (!c) return;
  Open o = openFromItem(item);
  append(o, c->arguments);
  bool truncated = o.oversized;
  complete(std::move(o), truncated);
}

void ToolTap::responsesEvent(std::string_view name, std::string_view data) {
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded()) {
    ++stats_.parse_errors;
    return;
  }
  std::string type = eventType(name, j);
  int64_t index = num(j, "output_index", -1);
  if (type == "response.output_item.added") {
    const json& item = member(j, "item");
    if (!isResponsesToolItem(str(item, "type"))) return;
    if (!open_.contains({index, 0}) && !roomToOpen()) return;
    open_[{index, 0}] = openFromItem(item);
  } else if (type == "response.function_call_arguments.delta" ||
             type == "response.custom_tool_call_input.delta" ||
             type == "response.mcp_call_arguments.delta" ||
             type == "response.shell_call_command.delta") {
    auto it = open_.find({index, 0});
    if (it != open_.end()) append(it->second, str(j, "delta"));
  } else if (type == "response.output_item.done") {
    open_.erase({index, 0});
    responsesItem(member(j, "item"));
  } else if (type == "response.completed" || type == "response.incomplete" ||
             type == "response.failed") {
    const json& output = member(member(j, "response"), "output");
    if (output.is_array()) {
      for (const json& item : output) responsesItem(item);
    }
    finished_ = true;
    completeAll(true);
  }
}

}  // namespace gatehouse::proxy::tools
