#include "proxy/gateway/metrics.h"

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "proxy/hooks/webhooks.h"
#include "proxy/logstore/log_writer.h"
#include "proxy/quota/store.h"

namespace gatehouse::proxy {
namespace {

class Exposition {
 public:
  // One metric family: its HELP and TYPE lines, then samples.
  Exposition& family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    return *this;
  }
  Exposition& sample(uint64_t v) { return sample(nullptr, nullptr, v); }
  Exposition& sample(const char* label, const char* value, uint64_t v) {
    out_ += name_;
    if (label != nullptr) {
      out_ += '{';
      out_ += label;
      out_ += "=\"";
      out_ += value;
      out_ += "\"}";
    }
    out_ += ' ';
    out_ += std::to_string(v);
    out_ += '\n';
    return *this;
  }
  // A counter family with one label.
  Exposition& labelled(const char* name, const char* help, const char* label,
                       std::initializer_list<std::pair<const char*, uint64_t>> samples) {
    family(name, "counter", help);
    for (const auto& [value, v] : samples) sample(label, value, v);
    return *this;
  }
  Exposition& counter(const char* name, const char* help, uint64_t v) {
    return family(name, "counter", help).sample(v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  const char* name_ = "";
};

}  // namespace

std::string metricsText(const GatewayCounters& g, const QuotaStore* quotas, const LogWriter* log,
                        const WebhookDispatcher* webhooks) {
  Exposition e;
  e.counter("gatehouse_gateway_connections_total", "Client connections accepted.",
            g.connections.load());
  e.counter("gatehouse_gateway_requests_total", "HTTP requests received.", g.requests.load());
  e.counter("gatehouse_gateway_forwarded_total",
            "Requests past the grant check (on to quotas, hooks and the provider).",
            g.forwarded.load());
  e.counter("gatehouse_gateway_denied_total",
            "Requests refused for identity or grant (403, unknown peer).", g.denied.load());
  e.counter("gatehouse_gateway_client_errors_total",
            "4xx answers the gateway made itself (bad request, limits, no route).",
            g.client_errors.load());
  e.counter("gatehouse_gateway_upstream_errors_total",
            "Upstream unreachable, TLS failure or timeout (502/504).", g.upstream_errors.load());
  e.counter("gatehouse_gateway_client_aborts_total",
            "Exchanges the client left before the response ended.", g.client_aborts.load());
  e.labelled("gatehouse_hook_decisions_total", "pre_request hook outcomes.", "outcome",
             {{"allowed", g.hook_allowed.load()},
              {"blocked", g.hook_blocked.load()},
              {"modified", g.hook_modified.load()},
              {"failed", g.hook_failed.load()},
              {"fail_open", g.hook_fail_open.load()}});
  e.labelled("gatehouse_quota_events_total",
             "Quota decisions other than a plain admit (store_error: the store could not "
             "answer; fail_open: forwarded anyway).",
             "kind",
             {{"rejected", g.quota_rejected.load()},
              {"flagged", g.quota_flagged.load()},
              {"overdraft", g.quota_overdrafts.load()},
              {"store_error", g.quota_store_errors.load()},
              {"fail_open", g.quota_fail_open.load()}});
  if (quotas != nullptr) {
    const QuotaStoreCounters& q = quotas->counters();
    e.counter("gatehouse_quota_store_errors_total",
              "Store calls that failed (Redis unreachable, slow or erroring).", q.errors.load());
    e.counter("gatehouse_quota_store_flushes_total", "SQLite write-behind batches.",
              q.flushes.load());
    e.counter("gatehouse_quota_store_calls_total",
              "Redis script calls (each carries a batch of reserves and settles).", q.calls.load());
    e.counter("gatehouse_quota_allowance_reserves_total",
              "Reserves served from this replica's allowance, without a Redis call.",
              q.allowance_reserves.load());
    e.counter("gatehouse_quota_store_flush_errors_total",
              "SQLite write-behind batches that failed.", q.flush_errors.load());
  }
  e.counter("gatehouse_guardrail_blocked_total", "Tool calls a guardrail replaced.",
            g.guard_blocked.load());
  e.counter("gatehouse_guardrail_passthrough_total",
            "Responses forwarded without guardrail evaluation (malformed or too large).",
            g.guard_passthrough.load());
  if (log != nullptr) {
    LogWriterCounters l = log->counters();
    e.labelled("gatehouse_log_records_total",
               "Request log records (bodies_dropped: stored without bodies because the queue was "
               "full; dropped: not stored).",
               "state",
               {{"accepted", l.accepted},
                {"written", l.written},
                {"bodies_dropped", l.bodies_dropped},
                {"dropped", l.records_dropped},
                {"rejected", l.records_rejected},
                {"failed", l.records_failed},
                {"expired", l.records_expired}});
    e.counter("gatehouse_log_batches_total",
              "Committed log write transactions (records written / batches = records per batch).",
              l.batches);
    e.counter("gatehouse_log_write_errors_total", "Failed log write transactions (retried).",
              l.write_errors);
    e.family("gatehouse_log_queue_depth", "gauge", "Records waiting for the log writer.")
        .sample(l.queue_depth);
  }
  if (webhooks != nullptr) {
    WebhookCounters w = webhooks->counters();
    e.labelled("gatehouse_webhook_events_total",
               "Webhook events (stored: outbox rows; given_up: dead after max attempts).", "state",
               {{"published", w.published},
                {"dropped", w.dropped},
                {"stored", w.stored},
                {"delivered", w.delivered},
                {"failed_attempts", w.failed_attempts},
                {"given_up", w.given_up},
                {"store_errors", w.store_errors}});
  }
  return e.take();
}

}  // namespace gatehouse::proxy
