// ToolCall: one tool call an agent's model asked for, as the gateway records it, and the result
// the agent later sent back for it. The response tap (tool_tap.h) finds calls in responses; the
// request reader (tool_results.h) finds results in the next requests' history; normalize() types
// a call with the taxonomy and reads its command and target out of the arguments.
//
// What normalize() fills, from the tool's name (taxonomy.h) and its raw arguments:
//   type, mcp_server, mcp_tool  taxonomy; Responses `local_shell_call` / `shell_call` are shell
//                               and `mcp_call` items are mcp (server = server_label) whatever
//                               their name.
//   command                     shell calls: the script text (`Bash.command`, the `-c` script of
//                               a Codex `["bash","-lc",script]` argv, `shell_call` commands
//                               joined by newlines), or a plain argv joined by spaces.
//   commands, shell_ok          the parsed commands (shell_parse.h); a plain argv (no shell in
//                               between) is one command as given. shell_ok = false keeps
//                               `command` raw and `shell_error` says why.
//   target                      the first string among the tool's target arguments (path,
//                               pattern, url, query); for apply_patch, the first file the patch
//                               names (`*** Add|Update|Delete File: <path>`).
// Arguments that are not valid JSON (args_state kMalformed) or were cut off at the end of a
// stream (kTruncated) are kept raw; nothing is read out of them.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tools/shell_parse.h"
#include "proxy/tools/taxonomy.h"

namespace gatehouse::proxy::tools {

enum class ArgsState : uint8_t {
  kComplete,   // arguments complete and well-formed (JSON, or raw text for custom tools)
  kMalformed,  // complete but not valid JSON
  kTruncated,  // the response ended (or hit a size bound) before the call was complete
};
std::string_view toString(ArgsState s);  // "complete", "malformed", "truncated"

enum class ResultStatus : uint8_t { kNone, kOk, kError };
std::string_view toString(ResultStatus s);  // "none", "ok", "error"

struct ToolCall {
  std::string call_id;  // toolu_…, call_…; empty when the provider gave none
  std::string name;     // as the model sent it
  // Where it came from: "tool_use" (Anthropic), "tool_calls" (OpenAI Chat), "function_call",
  // "custom_tool_call", "local_shell_call", "shell_call", "mcp_call" (OpenAI Responses).
  std::string source;
  std::string arguments;  // raw: JSON text, or the custom tool's input text
  ArgsState args_state = ArgsState::kComplete;

  ToolType type = ToolType::kOther;
  std::string mcp_server;
  std::string mcp_tool;
  std::string command;
  std::vector<ShellCommand> commands;
  bool shell_ok = true;
  std::string shell_error;
  std::string target;

  ResultStatus result = ResultStatus::kNone;
  std::optional<int64_t> result_size;  // bytes of the result content

  bool operator==(const ToolCall&) const = default;
};

// A result found in a request: the call it answers, ok or error, and its size in bytes.
struct ToolResult {
  std::string call_id;
  ResultStatus status = ResultStatus::kOk;
  int64_t size = 0;
  bool operator==(const ToolResult&) const = default;
};

// Types `call` and reads its command and target (see the header comment).
void normalize(ToolCall& call, Agent agent, const Taxonomy& taxonomy = defaultTaxonomy());

// The file paths an apply_patch text names, in order.
std::vector<std::string> patchPaths(std::string_view patch);

// {"call_id", "name", "source", "type", "arguments", "args_state", "mcp_server"?, "mcp_tool"?,
//  "command"?, "commands"?, "shell_ok"?, "shell_error"?, "target"?, "result", "result_size"}:
// optional members only when they apply (shell calls carry command, commands, shell_ok).
nlohmann::json toJson(const ToolCall& call);

}  // namespace gatehouse::proxy::tools
