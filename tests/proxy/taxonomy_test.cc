// Tool taxonomy: the shipped table parses and maps each agent's documented tool names
// (agents-and-mcp.md §2.3, §3.3, §4.2); mcp__ names split; unknown names are other; bad tables
// are refused with a message naming the entry.
#include "proxy/tools/taxonomy.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

namespace gatehouse::proxy::tools {
namespace {

ToolType typeOf(std::string_view name, Agent a = Agent::kClaudeCode) {
  return defaultTaxonomy().classify(name, a).spec.type;
}

TEST(Taxonomy, EmbeddedTableIsTheShippedFile) {
  std::ifstream in(std::string(GATEHOUSE_SOURCE_DIR) + "/proxy/tools/tool_names.json");
  std::string file{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(embeddedToolNames(), file);
  auto t = Taxonomy::parse(file);
  ASSERT_TRUE(t) << t.status().message();
  EXPECT_EQ((*t)->version(), 1);
}

TEST(Taxonomy, ClaudeCode) {
  EXPECT_EQ(typeOf("Bash"), ToolType::kShell);
  EXPECT_EQ(typeOf("Read"), ToolType::kFileRead);
  EXPECT_EQ(typeOf("Write"), ToolType::kFileWrite);
  EXPECT_EQ(typeOf("Edit"), ToolType::kFileEdit);
  EXPECT_EQ(typeOf("MultiEdit"), ToolType::kFileEdit);
  EXPECT_EQ(typeOf("NotebookEdit"), ToolType::kFileEdit);
  EXPECT_EQ(typeOf("Glob"), ToolType::kSearch);
  EXPECT_EQ(typeOf("Grep"), ToolType::kSearch);
  EXPECT_EQ(typeOf("WebFetch"), ToolType::kWeb);
  EXPECT_EQ(typeOf("WebSearch"), ToolType::kWeb);
  EXPECT_EQ(typeOf("Agent"), ToolType::kSubagent);
  EXPECT_EQ(typeOf("Task"), ToolType::kSubagent);
  EXPECT_EQ(typeOf("TodoWrite"), ToolType::kOther);
  Classified bash = defaultTaxonomy().classify("Bash", Agent::kClaudeCode);
  EXPECT_TRUE(bash.known);
  EXPECT_EQ(bash.spec.command_arg, "command");
  EXPECT_EQ(defaultTaxonomy().classify("Read", Agent::kClaudeCode).spec.target,
            std::vector<std::string>{"file_path"});
}

TEST(Taxonomy, Codex) {
  Classified shell = defaultTaxonomy().classify("shell", Agent::kCodex);
  EXPECT_EQ(shell.spec.type, ToolType::kShell);
  EXPECT_EQ(shell.spec.argv_arg, "command");
  EXPECT_EQ(typeOf("shell_command", Agent::kCodex), ToolType::kShell);
  EXPECT_EQ(defaultTaxonomy().classify("exec_command", Agent::kCodex).spec.command_arg, "cmd");
  Classified patch = defaultTaxonomy().classify("apply_patch", Agent::kCodex);
  EXPECT_EQ(patch.spec.type, ToolType::kFileEdit);
  EXPECT_EQ(patch.spec.patch_arg, "input");
  EXPECT_EQ(typeOf("read_file", Agent::kCodex), ToolType::kFileRead);
  EXPECT_EQ(typeOf("list_dir", Agent::kCodex), ToolType::kSearch);
  EXPECT_EQ(typeOf("update_plan", Agent::kCodex), ToolType::kOther);
}

TEST(Taxonomy, GeminiCli) {
  EXPECT_EQ(typeOf("run_shell_command", Agent::kGeminiCli), ToolType::kShell);
  EXPECT_EQ(typeOf("write_file", Agent::kGeminiCli), ToolType::kFileWrite);
  EXPECT_EQ(typeOf("replace", Agent::kGeminiCli), ToolType::kFileEdit);
  EXPECT_EQ(typeOf("grep_search", Agent::kGeminiCli), ToolType::kSearch);
  EXPECT_EQ(typeOf("search_file_content", Agent::kGeminiCli), ToolType::kSearch);
  EXPECT_EQ(typeOf("google_web_search", Agent::kGeminiCli), ToolType::kWeb);
  EXPECT_EQ(typeOf("codebase_investigator", Agent::kGeminiCli), ToolType::kSubagent);
  // read_file is in two tables: the preferred agent's entry (and its argument names) wins.
  EXPECT_EQ(defaultTaxonomy().classify("read_file", Agent::kGeminiCli).spec.target[1],
            "absolute_path");
  EXPECT_EQ(defaultTaxonomy().classify("read_file", Agent::kCodex).spec.target[1], "path");
  // Names only one agent uses are found from any API.
  EXPECT_EQ(typeOf("run_shell_command", Agent::kClaudeCode), ToolType::kShell);
  EXPECT_EQ(typeOf("Bash", Agent::kCodex), ToolType::kShell);
}

TEST(Taxonomy, Mcp) {
  Classified c = defaultTaxonomy().classify("mcp__github__create_issue", Agent::kClaudeCode);
  EXPECT_EQ(c.spec.type, ToolType::kMcp);
  EXPECT_EQ(c.mcp_server, "github");
  EXPECT_EQ(c.mcp_tool, "create_issue");
  c = defaultTaxonomy().classify("mcp__my_server__do__thing", Agent::kCodex);
  EXPECT_EQ(c.mcp_server, "my_server");
  EXPECT_EQ(c.mcp_tool, "do__thing");
  for (const char* bad : {"mcp__", "mcp__x", "mcp____t", "mcp__x__", "MCP__a__b"}) {
    c = defaultTaxonomy().classify(bad, Agent::kClaudeCode);
    EXPECT_EQ(c.spec.type, ToolType::kOther) << bad;
    EXPECT_FALSE(c.known) << bad;
  }
}

TEST(Taxonomy, UnknownIsOther) {
  Classified c = defaultTaxonomy().classify("frobnicate", Agent::kCodex);
  EXPECT_EQ(c.spec.type, ToolType::kOther);
  EXPECT_FALSE(c.known);
  EXPECT_EQ(typeOf(""), ToolType::kOther);
  EXPECT_EQ(typeOf("bash"), ToolType::kOther);  // names are case-sensitive
}

TEST(Taxonomy, TypeNamesRoundTrip) {
  for (ToolType t : {ToolType::kOther, ToolType::kShell, ToolType::kFileRead, ToolType::kFileWrite,
                     ToolType::kFileEdit, ToolType::kSearch, ToolType::kWeb, ToolType::kMcp,
                     ToolType::kSubagent}) {
    EXPECT_EQ(parseToolType(toString(t)), t);
  }
  EXPECT_FALSE(parseToolType("edit"));
}

TEST(Taxonomy, BadTablesNameTheEntry) {
  auto t = Taxonomy::parse("[]");
  EXPECT_FALSE(t);
  t = Taxonomy::parse(R"({"agents": {"claude_code": {"Bash": {"type": "shel"}}}})");
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().message().find("agents.claude_code.Bash"), std::string::npos);
  t = Taxonomy::parse(R"({"agents": {"vim": {}}})");
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().message().find("vim"), std::string::npos);
  t = Taxonomy::parse(R"({"agents": {"codex": {"x": {"type": "shell", "target": "p"}}}})");
  EXPECT_FALSE(t);
}

}  // namespace
}  // namespace gatehouse::proxy::tools
