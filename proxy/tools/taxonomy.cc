#include "proxy/tools/taxonomy.h"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace gatehouse::proxy::tools {
namespace {

constexpr std::array<std::pair<ToolType, std::string_view>, 9> kTypeNames = {{
    {ToolType::kOther, "other"},
    {ToolType::kShell, "shell"},
    {ToolType::kFileRead, "file_read"},
    {ToolType::kFileWrite, "file_write"},
    {ToolType::kFileEdit, "file_edit"},
    {ToolType::kSearch, "search"},
    {ToolType::kWeb, "web"},
    {ToolType::kMcp, "mcp"},
    {ToolType::kSubagent, "subagent"},
}};

constexpr std::array<std::pair<Agent, std::string_view>, 3> kAgentNames = {{
    {Agent::kClaudeCode, "claude_code"},
    {Agent::kCodex, "codex"},
    {Agent::kGeminiCli, "gemini_cli"},
}};

Status entryError(std::string_view agent, std::string_view name, std::string_view what) {
  return Status(EINVAL, "tool_names.json: agents." + std::string(agent) + "." + std::string(name) +
                            ": " + std::string(what));
}

std::string optionalString(const nlohmann::json& entry, const char* key) {
  auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string_view toString(ToolType t) {
  for (const auto& [type, name] : kTypeNames) {
    if (type == t) return name;
  }
  return "other";
}

std::optional<ToolType> parseToolType(std::string_view name) {
  for (const auto& [type, n] : kTypeNames) {
    if (n == name) return type;
  }
  return std::nullopt;
}

Result<std::shared_ptr<const Taxonomy>> Taxonomy::parse(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(EINVAL, "tool_names.json: not a JSON object");
  }
  auto t = std::make_shared<Taxonomy>();
  t->version_ = j.value("version", 0);
  t->mcp_prefix_ = j.value("mcp_prefix", std::string("mcp__"));
  auto agents = j.find("agents");
  if (agents == j.end() || !agents->is_object()) {
    return Status(EINVAL, "tool_names.json: want an \"agents\" object");
  }
  for (const auto& [agent_name, table] : agents->items()) {
    const Agent* agent = nullptr;
    for (const auto& a : kAgentNames) {
      if (a.second == agent_name) agent = &a.first;
    }
    if (agent == nullptr) {
      return Status(EINVAL, "tool_names.json: unknown agent \"" + agent_name +
                                "\" (want claude_code, codex or gemini_cli)");
    }
    if (!table.is_object()) return entryError(agent_name, "", "want an object of tools");
    for (const auto& [name, entry] : table.items()) {
      if (!entry.is_object()) return entryError(agent_name, name, "want an object");
      auto type = parseToolType(optionalString(entry, "type"));
      if (!type) return entryError(agent_name, name, "unknown or missing \"type\"");
      ToolSpec spec;
      spec.type = *type;
      spec.command_arg = optionalString(entry, "command");
      spec.argv_arg = optionalString(entry, "argv");
      spec.patch_arg = optionalString(entry, "patch");
      if (auto tg = entry.find("target"); tg != entry.end()) {
        if (!tg->is_array()) return entryError(agent_name, name, "\"target\" wants a list");
        for (const auto& v : *tg) {
          if (!v.is_string()) return entryError(agent_name, name, "\"target\" wants strings");
          spec.target.push_back(v.get<std::string>());
        }
      }
      t->tables_[static_cast<int>(*agent)][name] = std::move(spec);
    }
  }
  return std::shared_ptr<const Taxonomy>(std::move(t));
}

Classified Taxonomy::classify(std::string_view name, Agent preferred) const {
  Classified out;
  int first = static_cast<int>(preferred);
  for (int k = 0; k < 3; ++k) {
    int a = k == 0 ? first : (k <= first ? k - 1 : k);
    auto it = tables_[a].find(name);
    if (it != tables_[a].end()) {
      out.spec = it->second;
      out.known = true;
      return out;
    }
  }
  if (!mcp_prefix_.empty() && name.starts_with(mcp_prefix_)) {
    std::string_view rest = name.substr(mcp_prefix_.size());
    size_t sep = rest.find("__");
    if (sep != std::string_view::npos && sep > 0 && sep + 2 < rest.size()) {
      out.spec.type = ToolType::kMcp;
      out.mcp_server = std::string(rest.substr(0, sep));
      out.mcp_tool = std::string(rest.substr(sep + 2));
      out.known = true;
    }
  }
  return out;
}

const Taxonomy& defaultTaxonomy() {
  static const std::shared_ptr<const Taxonomy> table = [] {
    auto t = Taxonomy::parse(embeddedToolNames());
    // The embedded table is checked by a unit test; a broken build must not start.
    if (!t) std::abort();
    return t.value();
  }();
  return *table;
}

}  // namespace gatehouse::proxy::tools
