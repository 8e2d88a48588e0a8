// Webhook events. See events.h and HOOKS.md.
#include "proxy/hooks/events.h"

#include <time.h>

#include <nlohmann/json.hpp>

#include "proxy/hooks/hook_payload.h"
#include "proxy/hooks/signature.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

json optional(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

WebhookEvent makeEvent(std::string id, std::string kind, int64_t now_ms, json data) {
  WebhookEvent e;
  e.id = std::move(id);
  e.kind = std::move(kind);
  e.timestamp_ms = now_ms;
  json j = {
      {"id", e.id}, {"type", e.kind}, {"timestamp", rfc3339Ms(now_ms)}, {"data", std::move(data)}};
  e.payload = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return e;
}

json guardrailJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_array() ? j : json::array();
}

json toolJson(const RequestRecord& r, const ToolCallRecord& c) {
  return {{"request_id", r.id},
          {"identity", identityJson(r.identity)},
          {"model", r.model},
          {"call_id", c.call_id},
          {"name", c.name},
          {"type", c.type},
          {"source", c.source},
          {"mcp_server", c.mcp_server},
          {"mcp_tool", c.mcp_tool},
          {"arguments", c.arguments},
          {"command", c.command},
          {"target", c.target},
          {"guardrail", guardrailJson(c.guardrail)}};
}

}  // namespace

std::string webhookEventId(std::string_view request_id, std::string_view kind, size_t index) {
  std::string key(request_id);
  key += '\n';
  key += kind;
  key += '\n';
  key += std::to_string(index);
  return "evt_" + sha256Hex(key, 32);
}

std::string rfc3339Ms(int64_t unix_ms) {
  time_t s = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&s, &tm);
  char buf[80];  // a year past 9999 or a negative time still fits
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

std::vector<WebhookEvent> recordEvents(const RequestRecord& r,
                                       const std::function<bool(std::string_view)>& wanted,
                                       int64_t now_ms) {
  std::vector<WebhookEvent> out;
  if (wanted("request_complete")) {
    const RecordTokens& t = r.tokens;
    json data = {{"request_id", r.id},
                 {"start", rfc3339Ms(r.start_ms)},
                 {"identity", identityJson(r.identity)},
                 {"session_id", r.session_id},
                 {"user_agent", r.user_agent},
                 {"provider", r.provider},
                 {"api", r.api_kind},
                 {"model", r.model},
                 {"method", r.method},
                 {"path", r.path},
                 {"status", r.status},
                 {"error", r.error},
                 {"hook", r.hook},
                 {"latency_ms", r.latency_ms},
                 {"ttfb_ms", optional(r.ttfb_ms)},
                 {"streamed", r.streamed},
                 {"partial", r.partial},
                 {"usage",
                  {{"input_tokens", optional(t.input)},
                   {"output_tokens", optional(t.output)},
                   {"cache_read_tokens", optional(t.cache_read)},
                   {"cache_write_5m_tokens", optional(t.cache_write_5m)},
                   {"cache_write_1h_tokens", optional(t.cache_write_1h)},
                   {"reasoning_tokens", optional(t.reasoning)}}},
                 {"cost_nanodollars", optional(r.cost_nanodollars)},
                 {"tool_calls", r.tool_calls.size()}};
    out.push_back(makeEvent(webhookEventId(r.id, "request_complete", 0), "request_complete", now_ms,
                            std::move(data)));
  }
  bool tools = wanted("tool_call");
  bool blocks = wanted("guardrail_block");
  size_t match_index = 0;
  for (size_t i = 0; i < r.tool_calls.size(); ++i) {
    const ToolCallRecord& c = r.tool_calls[i];
    if (tools) {
      out.push_back(
          makeEvent(webhookEventId(r.id, "tool_call", i), "tool_call", now_ms, toolJson(r, c)));
    }
    if (!blocks) continue;
    json matches = guardrailJson(c.guardrail);
    for (const json& m : matches) {
      if (!m.is_object()) continue;
      json data = {{"request_id", r.id},
                   {"identity", identityJson(r.identity)},
                   {"model", r.model},
                   {"call_id", c.call_id},
                   {"tool", c.name},
                   {"command", c.command.empty() ? c.arguments : c.command},
                   {"rule", m.value("rule", "")},
                   {"action", m.value("action", "")},
                   {"enforced", m.value("enforced", false)}};
      out.push_back(makeEvent(webhookEventId(r.id, "guardrail_block", match_index++),
                              "guardrail_block", now_ms, std::move(data)));
    }
  }
  return out;
}

WebhookEvent quotaWebhookEvent(const QuotaEventInfo& e, int64_t now_ms) {
  json data = {{"kind", e.kind},
               {"bucket", e.bucket},
               {"identity", e.identity},
               {"request_id", e.request_id},
               {"message", e.message}};
  // One event per (request, kind, bucket): a request reports each at most once.
  std::string id = webhookEventId(e.request_id, "quota:" + e.kind + ":" + e.bucket, 0);
  return makeEvent(std::move(id), "quota", now_ms, std::move(data));
}

}  // namespace gatehouse::proxy
