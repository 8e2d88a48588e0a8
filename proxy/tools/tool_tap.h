// ToolTap: finds the tool calls in a copy of an LLM provider's response, JSON or SSE, fed the
// same way as the usage tap (proxy/usage/usage.h) and beside it. The calls come out typed and
// normalized (tool_call.h).
//
// Where calls are (llm-wire-formats.md §2, §3, §4; agents-and-mcp.md §6):
//   Anthropic JSON   content[] blocks of type tool_use {id, name, input}.
//   Anthropic SSE    content_block_start with a tool_use block opens a call at its index;
//                    input_json_delta.partial_json fragments are concatenated; content_block_stop
//                    completes it. Arguments are the concatenated fragments as sent (the start
//                    block's `input` when no fragment came).
//   Chat JSON        choices[].message.tool_calls[] {id, function {name, arguments}}.
//   Chat SSE         choices[].delta.tool_calls[] {index, id?, function {name?, arguments?}},
//                    merged per (choice, index); complete at that choice's finish_reason or at
//                    [DONE].
//   Responses JSON   output[] items function_call, custom_tool_call, local_shell_call,
//                    shell_call, mcp_call (local_shell_call / shell_call arguments are the
//                    item's `action` object, as JSON text).
//   Responses SSE    response.output_item.added opens a call at output_index;
//                    *.function_call_arguments.delta, *.custom_tool_call_input.delta,
//                    *.mcp_call_arguments.delta and *.shell_call_command.delta append to it;
//                    response.output_item.done completes it from the full item; the terminal
//                    response.* event's output[] adds any call not seen yet.
// Calls are reported in the order they completed, once per call id. A call still open when the
// response ends (a cut stream, a stream without its final events) is reported with args_state
// kTruncated and the fragments received; a call whose complete arguments are not JSON is
// kMalformed. Neither is an error of the tap: provider bytes only ever produce records and
// counters, never a crash.
//
// Bounds (ToolTapOptions): a JSON body or one SSE event over max_body_bytes is dropped (counted);
// one call's arguments over max_argument_bytes stop growing and the call is kTruncated; past
// max_calls further calls are counted and dropped.
//
// Thread safety: one tap per response, one thread. Sans-I/O: no sockets, clock or threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "proxy/tools/tool_call.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy::tools {

// False when a JSON response body of `kind` cannot hold a tool call, so it need not be parsed
// for one: the marker of every call type the tap and the guard look at ("tool_use",
// "tool_calls", "_call") is absent and the body has no \u escape (the only way JSON could spell
// a marker without its literal bytes). True otherwise, also when unsure.
bool mayHoldToolCalls(ApiKind kind, std::string_view body);
// Whether JSON text may contain `marker` as a string: it does literally, or it has a \u escape
// (the only way JSON can spell a marker without its bytes). The cheap test before a parse.
bool mayMention(std::string_view json_text, std::string_view marker);

struct ToolTapOptions {
  size_t max_body_bytes = size_t{32} << 20;
  size_t max_argument_bytes = size_t{4} << 20;
  size_t max_calls = 1024;
};

struct ToolTapStats {
  uint64_t events = 0;
  uint64_t parse_errors = 0;   // JSON bodies or event data that did not parse
  uint64_t oversized = 0;      // bodies, events or arguments over their bound
  uint64_t dropped_calls = 0;  // calls past max_calls
};

// The agent whose tool names an API most likely carries (taxonomy lookup order).
Agent agentFor(ApiKind kind);

// The call a complete Responses output item makes (function_call, custom_tool_call,
// local_shell_call, shell_call, mcp_call): id, name, source, MCP server and raw arguments, not
// normalized; nullopt for any other item.
std::optional<ToolCall> responsesToolCall(const nlohmann::ordered_json& item);

class ToolTap {
 public:
  ToolTap(ApiKind kind, BodyMode mode, ToolTapOptions options = {});

  void onBody(std::string_view bytes);
  void onSseEvent(std::string_view event_name, std::string_view data);
  // End of the response: open calls become kTruncated. Idempotent; later input is ignored.
  const std::vector<ToolCall>& finish();

  const std::vector<ToolCall>& calls() const { return calls_; }
  const ToolTapStats& stats() const { return stats_; }

 private:
  struct Open {
    std::string call_id;
    std::string name;
    std::string source;
    std::string arguments;
    std::string initial;     // Anthropic: the start block's input, used when no fragment came
    std::string mcp_server;  // Responses mcp_call: server_label
    bool oversized = false;
  };
  using Key = std::pair<int64_t, int64_t>;  // (block or output index, Chat: tool index)

  void parseBody();
  void anthropicEvent(std::string_view name, std::string_view data);
  void chatEvent(std::string_view data);
  void responsesEvent(std::string_view name, std::string_view data);
  void append(Open& open, std::string_view fragment);
  void complete(Open open, bool truncated);
  void completeAll(bool truncated);
  void emit(ToolCall call);
  bool roomToOpen();
  void responsesItem(const nlohmann::ordered_json& item);  // a complete Responses output item
  static Open openFromItem(const nlohmann::ordered_json& item);

  ApiKind kind_;
  BodyMode mode_;
  ToolTapOptions options_;
  ToolTapStats stats_;
  std::string body_;
  std::map<Key, Open> open_;
  std::unordered_set<std::string> seen_ids_;
  std::vector<ToolCall> calls_;
  bool finished_ = false;
};

}  // namespace gatehouse::proxy::tools
