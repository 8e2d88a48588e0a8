// LogReader's tool-call queries (tool_query.h, LOG_FORMAT.md §8).
#include "proxy/logstore/tool_query.h"

#include <sqlite3.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "proxy/logstore/log_db.h"
#include "proxy/logstore/log_query.h"

namespace gatehouse::proxy {
namespace {

using logstore::SqlQuery;
using logstore::SqlStmt;
using logstore::toValidUtf8;

constexpr const char* kToolColumns =
    "c.id, c.call_id, c.request_id, c.time_ms, c.node_id, c.user_login, c.tags, c.session_id, "
    "c.name, c.type, c.source, c.mcp_server, c.mcp_tool, c.arguments, c.args_state, c.command, "
    "c.commands, c.shell_ok, c.target, c.result_status, c.result_size, c.result_request_id, "
    "c.guardrail";

StoredToolCall readCall(const SqlStmt& s) {
  StoredToolCall c;
  c.call_id = s.text(1);
  c.request_id = s.text(2);
  c.time_ms = s.i64(3);
  c.node_id = s.text(4);
  c.user_login = s.text(5);
  c.tags = logstore::stringsFromJson(s.text(6));
  c.session_id = s.text(7);
  c.name = s.text(8);
  c.type = s.text(9);
  c.source = s.text(10);
  c.mcp_server = s.text(11);
  c.mcp_tool = s.text(12);
  c.arguments = s.text(13);
  c.args_state = s.text(14);
  c.command = s.text(15);
  c.commands_json = s.text(16);
  c.shell_ok = s.i64(17) != 0;
  c.target = s.text(18);
  c.result_status = s.text(19);
  c.result_size = s.optI64(20);
  c.result_request_id = s.isNull(21) ? "" : s.text(21);
  c.guardrail_json = s.text(22);
  return c;
}

// " WHERE ..." for `f` over tool_calls (alias c).
void appendToolWhere(const ToolFilter& f, SqlQuery& q) {
  q.sql += " WHERE 1";
  auto text = [&q](const char* clause, const std::string& v) {
    if (v.empty()) return;
    q.sql += clause;
    q.args.emplace_back(v);
  };
  text(" AND c.type = ?", f.type);
  text(" AND c.name = ?", f.name);
  text(" AND c.user_login = ?", f.user);
  text(" AND c.session_id = ?", f.session);
  text(" AND EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value = ?)", f.tag);
  if (!f.command.empty()) {
    // Exact command, or the prefix followed by a space: a word prefix, no LIKE escaping.
    q.sql +=
        " AND EXISTS (SELECT 1 FROM tool_commands k WHERE k.call = c.id AND (k.line = ? OR "
        "substr(k.line, 1, ?) = ?))";
    q.args.emplace_back(f.command);
    q.args.emplace_back(static_cast<int64_t>(f.command.size() + 1));
    q.args.emplace_back(f.command + " ");
  }
  if (f.guardrail == "any") {
    q.sql += " AND c.guardrail != '[]'";
  } else if (f.guardrail == "enforced") {
    q.sql +=
        " AND EXISTS (SELECT 1 FROM json_each(c.guardrail) WHERE "
        "json_extract(value, '$.enforced') = 1)";
  } else if (!f.guardrail.empty()) {
    q.sql +=
        " AND EXISTS (SELECT 1 FROM json_each(c.guardrail) WHERE "
        "json_extract(value, '$.action') = ?)";
    q.args.emplace_back(f.guardrail);
  }
  if (f.since_ms) {
    q.sql += " AND c.time_ms >= ?";
    q.args.emplace_back(*f.since_ms);
  }
  if (f.until_ms) {
    q.sql += " AND c.time_ms < ?";
    q.args.emplace_back(*f.until_ms);
  }
}

}  // namespace

nlohmann::json toJson(const StoredToolCall& c) {
  auto commands = nlohmann::json::parse(c.commands_json, nullptr, false);
  if (commands.is_discarded()) commands = nlohmann::json::array();
  auto guardrail = nlohmann::json::parse(c.guardrail_json, nullptr, false);
  if (guardrail.is_discarded()) guardrail = nlohmann::json::array();
  nlohmann::json tags = nlohmann::json::array();
  for (const auto& t : c.tags) tags.push_back(toValidUtf8(t));
  return {{"call_id", toValidUtf8(c.call_id)},
          {"request_id", c.request_id},
          {"time_ms", c.time_ms},
          {"identity",
           {{"node_id", c.node_id}, {"user_login", toValidUtf8(c.user_login)}, {"tags", tags}}},
          {"session_id", toValidUtf8(c.session_id)},
          {"name", toValidUtf8(c.name)},
          {"type", c.type},
          {"source", c.source},
          {"mcp_server", toValidUtf8(c.mcp_server)},
          {"mcp_tool", toValidUtf8(c.mcp_tool)},
          {"arguments", toValidUtf8(c.arguments)},
          {"args_state", c.args_state},
          {"command", toValidUtf8(c.command)},
          {"commands", commands},
          {"shell_ok", c.shell_ok},
          {"target", toValidUtf8(c.target)},
          {"result", c.result_status},
          {"result_size", c.result_size ? nlohmann::json(*c.result_size) : nlohmann::json()},
          {"result_request_id",
           c.result_request_id.empty() ? nlohmann::json() : nlohmann::json(c.result_request_id)},
          {"guardrail", guardrail}};
}

nlohmann::json toJson(const ToolPage& page) {
  auto calls = nlohmann::json::array();
  for (const auto& c : page.calls) calls.push_back(toJson(c));
  return {{"tool_calls", calls},
          {"next_cursor",
           page.next_cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(page.next_cursor)}};
}

nlohmann::json toJson(const std::vector<ToolStatsRow>& rows) {
  auto out = nlohmann::json::array();
  for (const auto& r : rows) {
    out.push_back({{"user_login", toValidUtf8(r.user_login)},
                   {"day", r.day},
                   {"by_type", r.by_type},
                   {"total", r.total},
                   {"errors", r.errors}});
  }
  return out;
}

Result<ToolPage> LogReader::listTools(const ListToolsQuery& query) {
  SqlQuery q;
  q.sql = std::string("SELECT ") + kToolColumns + " FROM tool_calls c";
  appendToolWhere(query.filter, q);
  if (!query.cursor.empty()) {
    int64_t time_ms, id;
    if (!logstore::parseCursor(query.cursor, &time_ms, &id)) {
      return Status(EINVAL, "bad cursor \"" + query.cursor + "\": pass next_cursor unchanged");
    }
    q.sql += " AND (c.time_ms, c.id) < (?, ?)";
    q.args.emplace_back(time_ms);
    q.args.emplace_back(id);
  }
  q.sql += " ORDER BY c.time_ms DESC, c.id DESC";
  size_t limit = logstore::clampLimit(query.limit);
  logstore::appendPage(limit + 1, query.offset, q);  // one extra row says a next page exists

  ToolPage page;
  int64_t last_id = 0;
  std::lock_guard lock(mu_);
  Status s = logstore::forEachRow(db_, q, [&](const SqlStmt& row) {
    if (page.calls.size() == limit) {
      page.next_cursor = logstore::makeCursor(page.calls.back().time_ms, last_id);
      return;
    }
    page.calls.push_back(readCall(row));
    last_id = row.i64(0);
  });
  if (!s) return s;
  return page;
}

Result<std::vector<ToolStatsRow>> LogReader::toolStats(const ToolFilter& filter) {
  SqlQuery q;
  q.sql =
      "SELECT c.user_login, strftime('%Y-%m-%d', c.time_ms / 1000, 'unixepoch') AS day, c.type, "
      "COUNT(*), SUM(c.result_status = 'error') FROM tool_calls c";
  appendToolWhere(filter, q);
  q.sql += " GROUP BY 1, 2, 3 ORDER BY 2 DESC, 1, 3";

  std::vector<ToolStatsRow> rows;
  std::lock_guard lock(mu_);
  Status s = logstore::forEachRow(db_, q, [&](const SqlStmt& row) {
    std::string user = row.text(0), day = row.text(1);
    if (rows.empty() || rows.back().user_login != user || rows.back().day != day) {
      rows.push_back(ToolStatsRow{user, day, {}, 0, 0});
    }
    ToolStatsRow& r = rows.back();
    int64_t n = row.i64(3);
    r.by_type[row.text(2)] = n;
    r.total += n;
    r.errors += row.i64(4);
  });
  if (!s) return s;
  return rows;
}

}  // namespace gatehouse::proxy
