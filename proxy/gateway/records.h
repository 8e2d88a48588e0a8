// Request log records (proxy/logstore/record.h) as the gateway fills them: the fields every
// answered request has, for the Exchange (proxied calls) and the Connection (what the gateway
// answers itself: refusals, errors, /v1/models, the admin API). Internal to proxy/gateway.
#pragma once

#include <optional>
#include <string>

#include "proxy/config/routes.h"
#include "proxy/http/http1.h"
#include "proxy/logstore/record.h"
#include "wg/node.h"

namespace gatehouse::proxy {

// "anthropic.messages", "openai.chat", … for model calls; routeName() for the rest.
std::string apiKindName(RouteKind kind);

// Identity, session id (Claude Code's X-Claude-Code-Session-Id, Codex's session_id), user agent,
// method, path and request headers (the store redacts credentials) of a parsed request.
void fillRecordRequest(RequestRecord& rec, const std::optional<wg::Identity>& identity,
                       const http::RequestHead& head);
// The same, moving the header strings out of `headers` (head.headers, when the exchange is over
// and they are not needed any more) instead of copying them.
void fillRecordRequest(RequestRecord& rec, const std::optional<wg::Identity>& identity,
                       http::HeaderList&& headers, const http::RequestHead& head);

// Identity only (a request whose head never parsed).
RequestIdentity recordIdentity(const wg::Identity& id);

std::vector<RecordHeader> toRecordHeaders(const http::HeaderList& h);
std::vector<RecordHeader> toRecordHeaders(http::HeaderList&& h);

}  // namespace gatehouse::proxy
