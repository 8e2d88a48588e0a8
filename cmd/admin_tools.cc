// `gatehouse admin tools`: the tool calls agents made through the gateway (/api/tools) and the
// counts by type per user and day (/api/tools/stats), as tables or JSON. Where the answers come
// from (--gateway URL or --db PATH) and the exit status are those of the other gateway admin
// commands (cmd/gateway_admin.h); registered with them.
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/gateway_admin.h"
#include "cmd/table.h"

namespace gatehouse::cmd {
namespace {

struct ToolsFlags {
  GatewayFilterFlags filter;  // user, tag, session, since, until (model and status unused)
  std::string type, name, command, guardrail;
  size_t limit = 50;
  bool stats = false;
};

// Milliseconds as "YYYY-MM-DD HH:MM" UTC.
std::string whenMs(const nlohmann::json& ms) {
  return when(ms.is_number_integer() ? nlohmann::json(ms.get<int64_t>() / 1000) : ms);
}

std::string what(const nlohmann::json& c) {
  std::string w = c.value("command", "");
  if (w.empty()) w = c.value("target", "");
  if (w.empty()) w = c.value("arguments", "");
  for (char& ch : w) {
    if (ch == '\n' || ch == '\t') ch = ' ';
  }
  if (w.size() > 100) w = w.substr(0, 97) + "...";
  if (c.value("args_state", "complete") != "complete") {
    w += "  [" + c.value("args_state", "") + "]";
  }
  for (const auto& g : c.value("guardrail", nlohmann::json::array())) {
    w += "  [" + g.value("action", "") + (g.value("enforced", false) ? "ed" : "") + ": " +
         g.value("rule", "") + "]";
  }
  return w;
}

int run(const GatewayAdminSource& src, const ToolsFlags& f) {
  std::string error;
  std::string q = filterQuery(f.filter, &error);
  if (!error.empty()) {
    std::cerr << "gatehouse admin tools: " << error << "\n";
    return 2;
  }
  for (auto [k, v] : {std::pair<const char*, const std::string*>{"type", &f.type},
                      {"name", &f.name},
                      {"command", &f.command},
                      {"guardrail", &f.guardrail}}) {
    if (!v->empty()) q += (q.empty() ? "" : "&") + std::string(k) + "=" + urlEncode(*v);
  }
  if (!f.stats) q += (q.empty() ? "" : "&") + std::string("limit=") + std::to_string(f.limit);
  std::string target =
      std::string(f.stats ? "/api/tools/stats" : "/api/tools") + (q.empty() ? "" : "?" + q);
  GatewayAdminReply r = gatewayAdminCall(src, "GET", target);
  if (r.exit_code != 0) {
    std::cerr << "gatehouse admin tools: " << r.error << "\n";
    return r.exit_code;
  }
  if (src.json_out) {
    std::cout << r.body.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  if (f.stats) {
    for (const auto& s : r.body.value("rows", nlohmann::json::array())) {
      std::string by;
      for (const auto& [type, n] : s["by_type"].items()) {
        by += (by.empty() ? "" : "  ") + type + " " + cell(n);
      }
      rows.push_back(
          {cell(s["day"]), cell(s["user_login"]), cell(s["total"]), cell(s["errors"]), by});
    }
    printTable({"DAY", "USER", "CALLS", "ERRORS", "BY TYPE"}, rows);
    return 0;
  }
  for (const auto& c : r.body.value("tool_calls", nlohmann::json::array())) {
    rows.push_back({whenMs(c["time_ms"]), cell(c["identity"]["user_login"]), cell(c["type"]),
                    cell(c["name"]), cell(c["result"]), what(c)});
  }
  printTable({"TIME (UTC)", "USER", "TYPE", "TOOL", "RESULT", "COMMAND / TARGET"}, rows);
  if (r.body.contains("next_cursor") && r.body["next_cursor"].is_string()) {
    std::cout << "(more: raise --limit)\n";
  }
  return 0;
}

}  // namespace

void registerAdminTools(CLI::App* admin) {
  auto src = std::make_shared<GatewayAdminSource>();
  auto f = std::make_shared<ToolsFlags>();
  CLI::App* tools = admin->add_subcommand(
      "tools", "tool calls agents made through the gateway (shell, file, search, web, mcp, ...)");
  addGatewaySourceOptions(tools, src.get());
  tools->add_flag("--stats", f->stats, "counts by type per user and UTC day");
  tools->add_option("--type", f->type,
                    "shell, file_read, file_write, file_edit, search, web, mcp, subagent, other");
  tools->add_option("--name", f->name, "tool name as the agent sent it (Bash, shell, ...)");
  tools->add_option("--command", f->command,
                    "a command word prefix, e.g. \"git push\" (matches each parsed command)");
  tools->add_option("--guardrail", f->guardrail,
                    "only calls a guardrail matched: any, flag, block or enforced");
  tools->add_option("--user", f->filter.user, "only this user (login)");
  tools->add_option("--tag", f->filter.tag, "only nodes with this tag (tag:x)");
  tools->add_option("--session", f->filter.session, "only this session id");
  tools->add_option("--since", f->filter.since,
                    "from: Unix ms, 2026-11-25, RFC 3339, or 30m/24h/7d ago");
  tools->add_option("--until", f->filter.until, "to (exclusive): same forms as --since");
  tools->add_option("--limit", f->limit, "at most this many calls")->capture_default_str();
  tools->callback([=] { setExitCode(run(*src, *f)); });
}

}  // namespace gatehouse::cmd
