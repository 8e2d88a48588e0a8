#include "proxy/gateway/tool_records.h"

#include <nlohmann/json.hpp>

#include "proxy/tools/tool_results.h"

namespace gatehouse::proxy {

ToolCallRecord toRecord(const tools::ToolCall& call) {
  ToolCallRecord r;
  r.call_id = call.call_id;
  r.name = call.name;
  r.type = std::string(tools::toString(call.type));
  r.source = call.source;
  r.mcp_server = call.mcp_server;
  r.mcp_tool = call.mcp_tool;
  r.arguments = call.arguments;
  r.args_state = std::string(tools::toString(call.args_state));
  r.command = call.command;
  r.commands_json =
      tools::toJson(call.commands).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (const auto& c : call.commands) r.command_lines.push_back(tools::commandLine(c));
  r.shell_ok = call.shell_ok;
  r.target = call.target;
  return r;
}

void addToolRecords(const std::vector<tools::ToolCall>& calls, ApiKind kind,
                    std::string_view request_body, RequestRecord& rec,
                    const tools::Guardrails* rules, const std::vector<tools::BlockedCall>& blocked,
                    bool body_in_record) {
  for (size_t i = 0; i < calls.size(); ++i) {
    ToolCallRecord r = toRecord(calls[i]);
    if (rules != nullptr) {
      nlohmann::json matched = nlohmann::json::array();
      for (const tools::GuardMatch& m : rules->evaluate(calls[i])) {
        bool enforced = false;
        for (const auto& b : blocked) {
          enforced = enforced || (b.call_id == calls[i].call_id && b.match.rule == m.rule);
        }
        matched.push_back({{"rule", m.rule},
                           {"action", std::string(toString(m.action))},
                           {"enforced", enforced}});
      }
      r.guardrail = matched.dump();
    }
    if (r.call_id.empty()) r.call_id = rec.id + "#" + std::to_string(i);
    rec.tool_calls.push_back(std::move(r));
  }
  // The results are read on the writer thread (LogStore::insert); a body without a result
  // marker has none, so it is not even copied.
  if (!tools::mayHoldToolResults(request_body)) return;
  rec.tool_result_source = std::make_shared<const ToolResultSource>(
      ToolResultSource{std::string(tools::apiKindName(kind)),
                       body_in_record ? std::string() : std::string(request_body), body_in_record});
}

}  // namespace gatehouse::proxy
