// Webhook events (HOOKS.md "Events"), sans I/O: what the gateway posts after the fact, built from
// a request's log record (request_complete, tool_call, guardrail_block) or a quota event.
//
// Each event has an idempotency id that depends only on what it is about: "evt_" + 32 hex digits
// of SHA-256(request id, kind, index). The same event built twice (a retry, a restart) has the
// same id, which receivers use to deduplicate (the webhook-id header).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/logstore/record.h"

namespace gatehouse::proxy {

struct WebhookEvent {
  std::string id;    // "evt_…"
  std::string kind;  // request_complete, tool_call, guardrail_block, quota
  int64_t timestamp_ms = 0;
  std::string payload;  // {"id","type","timestamp","data":{...}}: the body that is signed
};

std::string webhookEventId(std::string_view request_id, std::string_view kind, size_t index);

// "2026-11-26T06:45:15.123Z".
std::string rfc3339Ms(int64_t unix_ms);

// The events of one finished request, for the kinds `wanted` accepts, stamped `now_ms`.
std::vector<WebhookEvent> recordEvents(const RequestRecord& record,
                                       const std::function<bool(std::string_view)>& wanted,
                                       int64_t now_ms);

struct QuotaEventInfo {
  std::string kind;  // rejected, flagged, overdraft, store_error, fail_open
  std::string bucket;
  std::string identity;
  std::string request_id;
  std::string message;
};
WebhookEvent quotaWebhookEvent(const QuotaEventInfo& e, int64_t now_ms);

}  // namespace gatehouse::proxy
