#include "proxy/gateway/records.h"

namespace gatehouse::proxy {
namespace {

bool isSessionHeader(std::string_view name) {
  return http::equalsIgnoreCase(name, "x-claude-code-session-id") ||
         http::equalsIgnoreCase(name, "session_id") || http::equalsIgnoreCase(name, "session-id");
}

}  // namespace

std::vector<RecordHeader> toRecordHeaders(const http::HeaderList& h) {
  std::vector<RecordHeader> out;
  out.reserve(h.size());
  for (const http::Header& x : h) out.push_back({x.name, x.value});
  return out;
}

std::vector<RecordHeader> toRecordHeaders(http::HeaderList&& h) {
  std::vector<RecordHeader> out;
  out.reserve(h.size());
  for (http::Header& x : h.release()) out.push_back({std::move(x.name), std::move(x.value)});
  return out;
}

RequestIdentity recordIdentity(const wg::Identity& id) {
  RequestIdentity r;
  r.node_id = id.node_id;
  r.node_name = id.name;
  r.user_login = id.user_login;
  r.user_display_name = id.user_display_name;
  r.groups = id.groups;
  r.tags = id.tags;
  return r;
}

std::string apiKindName(RouteKind k) {
  switch (k) {
    case RouteKind::kAnthropicMessages:
      return "anthropic.messages";
    case RouteKind::kAnthropicCountTokens:
      return "anthropic.count_tokens";
    case RouteKind::kOpenAIChat:
      return "openai.chat";
    case RouteKind::kOpenAIResponses:
      return "openai.responses";
    default:
      return std::string(routeName(k));
  }
}

namespace {

void fillFrom(RequestRecord& rec, const std::optional<wg::Identity>& identity,
              const http::HeaderList& headers, const http::RequestHead& head) {
  if (identity) rec.identity = recordIdentity(*identity);
  for (const http::Header& h : headers) {
    if (isSessionHeader(h.name) && rec.session_id.empty()) rec.session_id = h.value;
    if (http::equalsIgnoreCase(h.name, "user-agent")) rec.user_agent = h.value;
  }
  rec.method = head.method;
  rec.path = head.target;
}

}  // namespace

void fillRecordRequest(RequestRecord& rec, const std::optional<wg::Identity>& identity,
                       const http::RequestHead& head) {
  fillFrom(rec, identity, head.headers, head);
  rec.request_headers = toRecordHeaders(head.headers);
}

void fillRecordRequest(RequestRecord& rec, const std::optional<wg::Identity>& identity,
                       http::HeaderList&& headers, const http::RequestHead& head) {
  fillFrom(rec, identity, headers, head);
  rec.request_headers = toRecordHeaders(std::move(headers));
}

}  // namespace gatehouse::proxy
