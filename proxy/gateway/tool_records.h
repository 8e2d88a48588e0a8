// The gateway's side of tool-call recording: turns what the response tap found (proxy/tools) and
// the results a request carried into the RequestRecord fields the log store writes.
//
// Thread safety: pure functions, called on the gateway loop at the end of an exchange.
#pragma once

#include <string_view>
#include <vector>

#include "proxy/logstore/record.h"
#include "proxy/tools/stream_guard.h"
#include "proxy/tools/tool_call.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy {

// Fills rec.tool_calls from `calls` (ids invented as "<request id>#<n>" where the provider gave
// none), each with the guardrail rules it matches (`rules` may be null; `blocked` are the calls a
// stream guard replaced, marked enforced), and rec.tool_result_source from `request_body`
// (only when it may hold results; the log writer's thread reads them). `body_in_record`: the
// caller puts the same bytes, whole, in rec.request_body, so the source points there instead
// of copying them (a Claude Code request is hundreds of KB).
void addToolRecords(const std::vector<tools::ToolCall>& calls, ApiKind kind,
                    std::string_view request_body, RequestRecord& rec,
                    const tools::Guardrails* rules = nullptr,
                    const std::vector<tools::BlockedCall>& blocked = {},
                    bool body_in_record = false);

ToolCallRecord toRecord(const tools::ToolCall& call);

}  // namespace gatehouse::proxy
