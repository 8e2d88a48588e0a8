// Tool taxonomy: what kind of action a tool call is (run a shell command, read a file, edit one,
// search, fetch from the web, call an MCP server, start a sub-agent), from the tool's name as the
// coding agent sent it, and where in its arguments the command or target sits.
//
// The mapping tables for Claude Code, Codex CLI and Gemini CLI live in one data file,
// proxy/tools/tool_names.json, compiled into the binary at build time (CMake embeds it), so the
// gateway needs no data file at run time and the table is reviewed as data. Lookup order: the
// agent that matches the API first (Anthropic → Claude Code, OpenAI → Codex, Gemini → Gemini CLI),
// then the other tables, so a name only one agent uses is found from any API. `mcp__<server>__<
// tool>` names (Claude Code, Codex) are `mcp` with the server and tool split at the first `__`
// after the prefix. Any other name is `other`, with the name kept by the caller.
//
// Thread safety: a Taxonomy is immutable after construction; share it freely. defaultTaxonomy()
// is built once (function-local static) from the embedded table.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wg/status.h"

namespace gatehouse::proxy::tools {

enum class ToolType : uint8_t {
  kOther,
  kShell,
  kFileRead,
  kFileWrite,
  kFileEdit,
  kSearch,
  kWeb,
  kMcp,
  kSubagent,
};
std::string_view toString(ToolType t);                         // "shell", "file_read", ...
std::optional<ToolType> parseToolType(std::string_view name);  // inverse; nullopt if unknown

enum class Agent : uint8_t { kClaudeCode, kCodex, kGeminiCli };

// How one tool name is read.
struct ToolSpec {
  ToolType type = ToolType::kOther;
  std::string command_arg;          // argument holding a shell command string
  std::string argv_arg;             // argument holding an argv array
  std::string patch_arg;            // argument holding apply_patch text (or the custom input)
  std::vector<std::string> target;  // arguments whose first string value is the target
};

struct Classified {
  ToolSpec spec;
  std::string mcp_server;  // for mcp__server__tool names
  std::string mcp_tool;
  bool known = false;  // the name is in a table or is an mcp__ name
};

class Taxonomy {
 public:
  // Parses a tool_names.json text; the error names the entry at fault.
  static Result<std::shared_ptr<const Taxonomy>> parse(std::string_view json);

  Classified classify(std::string_view name, Agent preferred) const;
  int version() const { return version_; }

 private:
  int version_ = 0;
  std::string mcp_prefix_;
  std::map<std::string, ToolSpec, std::less<>> tables_[3];  // by Agent
};

// The table compiled in from proxy/tools/tool_names.json.
std::string_view embeddedToolNames();
const Taxonomy& defaultTaxonomy();

}  // namespace gatehouse::proxy::tools
