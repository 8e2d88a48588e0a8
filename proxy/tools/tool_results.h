// Tool results in a request: agents send the whole conversation every turn, and the results of
// the tool calls the model asked for earlier ride in it. Each result gives its call a status and
// a size (tool_call.h ToolResult); the log store applies them to the calls it recorded earlier.
//
//   Anthropic   user content blocks tool_result {tool_use_id, content, is_error}; is_error true
//               is an error.
//   Chat        messages {role: "tool", tool_call_id, content}.
//   Responses   input items function_call_output, custom_tool_call_output,
//               local_shell_call_output {call_id, output}, and shell_call_output whose output[]
//               entries carry outcome {type: "exit", exit_code}.
// Chat and Responses have no error flag. A Codex shell result says how the command ended: an
// output that is a JSON object with metadata.exit_code, or text starting "Exit code: N"; a
// non-zero code is an error. Anything else is ok.
// Size: a string content is its byte length; content made of blocks or parts counts the text of
// its text parts and the JSON length of any other part.
//
// Results are returned once per call id (the last one in the request wins), in request order.
// A body that is not JSON, or not the API's shape, gives no results. Thread safety: pure.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "proxy/tools/tool_call.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy::tools {

// A body with no result marker ("tool_result", "tool_call_id", "_output") is not parsed.
std::vector<ToolResult> extractToolResults(ApiKind kind, std::string_view request_body);
// False when `request_body` certainly holds no tool result (no marker): a cheap scan.
bool mayHoldToolResults(std::string_view request_body);

// The API names request records use: "anthropic.messages", "openai.chat", "openai.responses".
std::string_view apiKindName(ApiKind kind);
std::optional<ApiKind> parseApiKindName(std::string_view name);

}  // namespace gatehouse::proxy::tools
