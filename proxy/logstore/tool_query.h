// Tool-call queries over the log database (LOG_FORMAT.md §8): which tool calls ran (a filtered,
// paged list, newest first) and how many of each type each identity made per day (the "bash
// dominates" view). LogReader (log_query.h) runs them on its read-only connection; these are the
// query and result types with their JSON shapes.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse::proxy {

// A call matches when every set field matches.
struct ToolFilter {
  std::string type = {};     // shell, file_read, ... exact
  std::string name = {};     // tool name, exact
  std::string user = {};     // user_login, exact
  std::string tag = {};      // one of the caller's tags, exact
  std::string session = {};  // session id, exact
  // Word prefix of one of the call's parsed commands: "git" matches `git status` but not
  // `gitk`; "git rev-parse" matches `git rev-parse HEAD`.
  std::string command = {};
  // Guardrail matches: "any" (some rule matched), "flag", "block" (a rule with that action
  // matched), "enforced" (the gateway replaced the call); "" = no condition.
  std::string guardrail = {};
  std::optional<int64_t> since_ms = {};  // time_ms >= since_ms
  std::optional<int64_t> until_ms = {};  // time_ms < until_ms
};

struct ListToolsQuery {
  ToolFilter filter = {};
  size_t limit = 50;        // clamped to [1, 1000]
  std::string cursor = {};  // ToolPage::next_cursor of the previous page
  size_t offset = 0;
};

struct StoredToolCall {
  std::string call_id;
  std::string request_id;  // the request whose response asked for the call
  int64_t time_ms = 0;     // that request's start
  std::string node_id;
  std::string user_login;
  std::vector<std::string> tags;
  std::string session_id;
  std::string name;
  std::string type;
  std::string source;
  std::string mcp_server;
  std::string mcp_tool;
  std::string arguments;
  std::string args_state;
  std::string command;
  std::string commands_json;
  bool shell_ok = true;
  std::string target;
  std::string result_status;  // none (not seen yet), ok, error
  std::optional<int64_t> result_size;
  std::string result_request_id;      // the request that carried the result
  std::string guardrail_json = "[]";  // rules matched: [{"rule", "action", "enforced"}]
};

struct ToolPage {
  std::vector<StoredToolCall> calls;
  std::string next_cursor;  // empty when this is the last page
};

// Calls per (user, UTC day), by type. Sorted by day, newest first, then user.
struct ToolStatsRow {
  std::string user_login;
  std::string day;  // YYYY-MM-DD
  std::map<std::string, int64_t> by_type;
  int64_t total = 0;
  int64_t errors = 0;  // calls whose result was an error
};

nlohmann::json toJson(const StoredToolCall& call);
nlohmann::json toJson(const ToolPage& page);
nlohmann::json toJson(const std::vector<ToolStatsRow>& rows);

}  // namespace gatehouse::proxy
