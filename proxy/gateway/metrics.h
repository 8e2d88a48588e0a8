// GET /api/metrics: the gateway's counters in the Prometheus text exposition format (version
// 0.0.4), for a scraper on the mesh with the admin role. Every counter is monotonic since the
// process started; *_queue_depth and quota_in_flight are gauges.
//
//   gatehouse_gateway_*_total        connections, requests, forwarded, denied, errors, aborts
//   gatehouse_hook_decisions_total   {outcome} pre_request hook answers
//   gatehouse_quota_events_total     {kind} rejected, flagged, overdraft, store_error, fail_open
//   gatehouse_quota_store_*          the store's own errors and write-behind flushes
//   gatehouse_guardrail_*_total      tool calls blocked, responses passed unevaluated
//   gatehouse_log_records_total      {state} accepted, written, bodies_dropped, dropped, ...
//   gatehouse_webhook_events_total   {state} published, dropped, stored, delivered, ...
//
// Reading is lock-free (atomics) except the log writer's and the webhook dispatcher's counter
// snapshots, which take their queue locks briefly.
#pragma once

#include <string>

#include "proxy/gateway/gateway.h"

namespace gatehouse::proxy {

class LogWriter;
class WebhookDispatcher;

std::string metricsText(const GatewayCounters& gateway, const QuotaStore* quotas,
                        const LogWriter* log, const WebhookDispatcher* webhooks);

}  // namespace gatehouse::proxy
