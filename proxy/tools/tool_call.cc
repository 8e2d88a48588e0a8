#include "proxy/tools/tool_call.h"

#include <nlohmann/json.hpp>

namespace gatehouse::proxy::tools {
namespace {

using nlohmann::json;

std::string stringArg(const json& args, const std::string& key) {
  if (key.empty() || !args.is_object()) return "";
  auto it = args.find(key);
  return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// An argv array of strings, or nullopt when `v` is not one.
std::optional<std::vector<std::string>> argvOf(const json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& a : v) {
    if (!a.is_string()) return std::nullopt;
    out.push_back(a.get<std::string>());
  }
  return out;
}

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

void setScript(ToolCall& call, std::string script) {
  call.command = std::move(script);
  ShellParse p = parseShell(call.command);
  call.shell_ok = p.ok;
  call.shell_error = std::move(p.error);
  call.commands = std::move(p.commands);
}

void setArgv(ToolCall& call, std::vector<std::string> argv) {
  std::string script = shellScriptOf(argv);
  if (!script.empty()) {
    setScript(call, std::move(script));
    return;
  }
  call.command = joinArgv(argv);
  ShellCommand command;
  command.argv = std::move(argv);
  call.commands = {std::move(command)};
}

}  // namespace

std::string_view toString(ArgsState s) {
  switch (s) {
    case ArgsState::kComplete:
      return "complete";
    case ArgsState::kMalformed:
      return "malformed";
    case ArgsState::kTruncated:
      return "truncated";
  }
  return "complete";
}

std::string_view toString(ResultStatus s) {
  switch (s) {
    case ResultStatus::kNone:
      return "none";
    case ResultStatus::kOk:
      return "ok";
    case ResultStatus::kError:
      return "error";
  }
  return "none";
}

std::vector<std::string> patchPaths(std::string_view patch) {
  static constexpr std::string_view kMarkers[] = {
      "*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: "};
  std::vector<std::string> out;
  while (!patch.empty()) {
    size_t nl = patch.find('\n');
    std::string_view line = patch.substr(0, nl);
    patch = nl == std::string_view::npos ? std::string_view() : patch.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (std::string_view m : kMarkers) {
      if (line.starts_with(m) && line.size() > m.size()) {
        out.emplace_back(line.substr(m.size()));
        break;
      }
    }
  }
  return out;
}

void normalize(ToolCall& call, Agent agent, const Taxonomy& taxonomy) {
  Classified c = taxonomy.classify(call.name, agent);
  call.type = c.spec.type;
  if (call.source == "mcp_call") {
    // Responses MCP items name the server apart (server_label, set by the tap).
    call.type = ToolType::kMcp;
    if (call.mcp_tool.empty()) call.mcp_tool = call.name;
  } else {
    call.mcp_server = c.mcp_server;
    call.mcp_tool = c.mcp_tool;
  }
  if (call.args_state != ArgsState::kComplete) return;

  if (call.source == "custom_tool_call") {
    // Freeform input: only a patch tool has something to read.
    if (!c.spec.patch_arg.empty()) {
      auto paths = patchPaths(call.arguments);
      if (!paths.empty()) call.target = paths.front();
    }
    return;
  }
  json args =
      json::parse(call.arguments.empty() ? std::string_view("{}") : call.arguments, nullptr, false);
  if (args.is_discarded()) return;

  if (call.source == "local_shell_call") {
    call.type = ToolType::kShell;
    if (auto argv = argvOf(args.is_object() ? args.value("command", json()) : json())) {
      setArgv(call, std::move(*argv));
    }
    return;
  }
  if (call.source == "shell_call") {
    call.type = ToolType::kShell;
    auto cmds = args.is_object() ? argvOf(args.value("commands", json())) : std::nullopt;
    if (cmds) {
      std::string script;
      for (const auto& s : *cmds) script += (script.empty() ? "" : "\n") + s;
      setScript(call, std::move(script));
    }
    return;
  }
  if (!c.spec.command_arg.empty()) {
    if (std::string s = stringArg(args, c.spec.command_arg); !s.empty()) setScript(call, s);
  } else if (!c.spec.argv_arg.empty() && args.is_object()) {
    auto it = args.find(c.spec.argv_arg);
    if (it != args.end()) {
      if (auto argv = argvOf(*it)) {
        setArgv(call, std::move(*argv));
      } else if (it->is_string()) {
        setScript(call, it->get<std::string>());
      }
    }
  }
  if (!c.spec.patch_arg.empty()) {
    auto paths = patchPaths(stringArg(args, c.spec.patch_arg));
    if (!paths.empty()) call.target = paths.front();
  }
  for (const std::string& key : c.spec.target) {
    if (std::string s = stringArg(args, key); !s.empty()) {
      call.target = s;
      break;
    }
  }
}

json toJson(const ToolCall& call) {
  json j = {
      {"call_id", call.call_id},     {"name", call.name},
      {"source", call.source},       {"type", std::string(toString(call.type))},
      {"arguments", call.arguments}, {"args_state", std::string(toString(call.args_state))},
  };
  if (!call.mcp_server.empty()) j["mcp_server"] = call.mcp_server;
  if (!call.mcp_tool.empty()) j["mcp_tool"] = call.mcp_tool;
  if (call.type == ToolType::kShell) {
    j["command"] = call.command;
    j["commands"] = toJson(call.commands);
    j["shell_ok"] = call.shell_ok;
    if (!call.shell_ok) j["shell_error"] = call.shell_error;
  }
  if (!call.target.empty()) j["target"] = call.target;
  j["result"] = std::string(toString(call.result));
  j["result_size"] = call.result_size ? json(*call.result_size) : json();
  return j;
}

}  // namespace gatehouse::proxy::tools
