// Guardrails in a non-streamed (JSON) response: every tool call of the body is evaluated and a
// blocked one is replaced before the agent sees it (stream_guard.h does the same for streams).
//
//   Anthropic Messages  a blocked tool_use block becomes a text block with the explanation at the
//                       same position; stop_reason "tool_use" becomes "end_turn" when every
//                       tool_use was blocked
//   Chat Completions    a blocked message.tool_calls[] entry is removed and the explanation is
//                       appended to message.content; with no call left, tool_calls goes and
//                       finish_reason "tool_calls" becomes "stop"
//   Responses           a blocked function_call, custom_tool_call, local_shell_call or shell_call
//                       item of output[] becomes a message item with one output_text part
// The body is rewritten only when something was blocked (then re-serialized, members in their
// order); otherwise it is left untouched, byte for byte. A body that is not JSON is left alone.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proxy/tools/stream_guard.h"

namespace gatehouse::proxy::tools {

// Evaluates the calls in `body`, a complete response of `kind`; rewrites it when one was
// blocked. Returns the blocked calls.
std::vector<BlockedCall> guardJsonBody(ApiKind kind, const Guardrails& rules, std::string& body);

// The Responses message item that stands in for a blocked output item `item_id`.
nlohmann::ordered_json blockedMessageItem(const std::string& item_id, const BlockedCall& b);

}  // namespace gatehouse::proxy::tools
