// Gateway: the identity-aware LLM reverse proxy (DESIGN.md "Gateway request path").
//
//   connection (tailnet fd + whoIs identity, or the loopback listener's configured identity)
//   → HTTP/1.1 request (proxy/http RequestParser: limits → 431/413/400)
//   → route (proxy/config/routes.h) → model + provider → grant check (403 in the client's shape)
//   → upstream request: client credentials, identity and hop-by-hop headers stripped, the
//     provider's key injected, body forwarded byte for byte (proxy/upstream pool, TLS verified)
//   → response streamed back as it arrives (SSE frames never held), a copy parsed by the usage
//     tap (proxy/usage) → cost → one RequestRecord to the LogWriter (proxy/logstore).
//   Quotas (proxy/quota, when the config has "quotas" rules): after the grant check the caller's
//   concurrency slot is taken and the worst case reserved in every bucket its rules name (async
//   for Redis) before the upstream is acquired; over a limit → 429 in the client's shape with
//   Retry-After and the bucket's name. The reservation settles to the real cost when the exchange
//   ends, however it ends (response complete, client gone, upstream error).
//   Hooks (proxy/hooks, HOOKS.md; when the config has "hooks"): after the grant check and before
//   the quota reservation, the pre_request hook is asked (hook_exchange.cc, async on the loop):
//   allow, block (403), modify (the hook's body is forwarded), or, when it fails, 503 or forward
//   per its failure policy. Every finished request's record (and every quota event) also becomes
//   webhook events, handed to the WebhookDispatcher's queue (its own thread, never this loop).
//
// Threads: everything runs on one libuv loop (the gateway's). adoptFromAnyThread() is the only
// entry point for other threads (the node's accept thread hands tailnet connections over).
// Ownership: the Gateway owns its connections, the upstream pool and the loopback listener; it
// borrows the loop and the LogWriter. close() stops accepting and aborts live connections; run
// the loop afterwards so libuv frees the handles, then destroy.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/config/gateway_config.h"
#include "proxy/config/grants.h"
#include "proxy/hooks/webhooks.h"
#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_writer.h"
#include "proxy/quota/estimate.h"
#include "proxy/quota/store.h"
#include "proxy/upstream/pool.h"
#include "proxy/usage/pricing.h"
#include "wg/node.h"

namespace gatehouse::proxy {

// Something the quota layer wants an operator (or, later, a hook) to know about.
struct QuotaEvent {
  std::string kind;  // "rejected" | "flagged" | "overdraft" | "store_error" | "fail_open"
  std::string bucket;
  std::string identity;
  std::string request_id;
  std::string message;
};

struct GatewayOptions {
  std::shared_ptr<const GatewayConfig> config;
  std::shared_ptr<const PriceTable> prices;
  LogWriter* log = nullptr;     // optional: no request log when null
  LogReader* reader = nullptr;  // optional: the admin API answers 503 without it
  size_t max_header_bytes = 64 * 1024;
  uint64_t max_body_bytes = 32 * 1024 * 1024;
  int64_t idle_timeout_ms = 120'000;         // keep-alive connection with no request in progress
  int64_t request_read_timeout_ms = 60'000;  // a request's head and body must arrive within this
  size_t max_logged_body_bytes = 8 * 1024 * 1024;  // per body; larger bodies are logged truncated
  std::function<int64_t()> now_ms;                 // wall clock (Unix ms); empty = the system clock
  // Quota state. Null with quota rules in the config: the gateway opens the store the config
  // names (quotas.store) itself. close() closes it (SQLite: final write; Redis: drains).
  std::shared_ptr<QuotaStore> quota_store;
  // The hook point for quota events (loop thread). Counted in GatewayCounters either way.
  std::function<void(const QuotaEvent&)> on_quota_event;
  // Post-event webhooks (optional; borrowed, must outlive the gateway): request_complete,
  // tool_call and guardrail_block from every record, quota from every QuotaEvent.
  WebhookDispatcher* webhooks = nullptr;
};

struct GatewayCounters {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> forwarded{0};  // past the grant check
  std::atomic<uint64_t> denied{0};
  std::atomic<uint64_t> client_errors{0};       // 4xx the gateway answered itself
  std::atomic<uint64_t> upstream_errors{0};     // 502/504
  std::atomic<uint64_t> client_aborts{0};       // client went away mid-exchange
  std::atomic<uint64_t> hook_allowed{0};        // pre_request hook answered allow
  std::atomic<uint64_t> hook_blocked{0};        // ... block (403)
  std::atomic<uint64_t> hook_modified{0};       // ... modify (its body was forwarded)
  std::atomic<uint64_t> hook_failed{0};         // timeout, connect error, non-2xx, bad answer
  std::atomic<uint64_t> hook_fail_open{0};      // ... and the request went ahead (fail_open)
  std::atomic<uint64_t> quota_rejected{0};      // 429: a bucket or a concurrency limit
  std::atomic<uint64_t> quota_flagged{0};       // allowed past an on_exceed = flag bucket
  std::atomic<uint64_t> quota_overdrafts{0};    // an overdraft target lent
  std::atomic<uint64_t> quota_store_errors{0};  // the store could not answer a reserve
  std::atomic<uint64_t> quota_fail_open{0};     // ... and the request went ahead (fail_open)
  std::atomic<uint64_t> guard_blocked{0};       // tool calls a guardrail replaced
  std::atomic<uint64_t> guard_passthrough{0};   // responses forwarded unevaluated (bad, too big)
};

class Gateway {
 public:
  Gateway(uv_loop_t* loop, GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // A connected stream socket and who is on the other end (nullopt: not in the network map →
  // every request gets 403). Loop thread only.
  void adopt(int fd, std::optional<wg::Identity> identity, std::string remote);
  // Same, from any thread (posted to the loop).
  void adoptFromAnyThread(int fd, std::optional<wg::Identity> identity, std::string remote);
  // The config's loopback listener with its configured identity (operator/test option). Returns
  // the bound port. Loop thread only.
  Result<uint16_t> listenLoopback(const wg::Endpoint& at, wg::Identity identity);
  void close();

  // Replaces config and prices for new requests (requests in flight keep theirs). Loop thread.
  void reload(std::shared_ptr<const GatewayConfig> config,
              std::shared_ptr<const PriceTable> prices);

  const GatewayCounters& counters() const { return counters_; }
  UpstreamPool& pool() { return *pool_; }

  // ---- internal (connection.cc, exchange.cc) ----
  struct Shared {
    std::shared_ptr<const GatewayConfig> config;
    std::shared_ptr<const PriceTable> prices;
    std::shared_ptr<const GrantSet> grants;
  };
  const Shared& shared() const { return shared_; }
  const GatewayOptions& options() const { return options_; }
  uv_loop_t* loop() const { return loop_; }
  int64_t nowMs() const;
  GatewayCounters& mutableCounters() { return counters_; }
  QuotaStore* quotaStore() const { return store_.get(); }
  ConcurrencyLimiter& concurrency() { return concurrency_; }
  void quotaEvent(QuotaEvent e);
  // A finished request's record: its webhook events, then the log writer (either may be absent).
  void submitRecord(RequestRecord record);
  bool wantsRecords() const { return options_.log != nullptr || options_.webhooks != nullptr; }
  class Connection;
  void forget(Connection* c);
  // Runs `fn` on the loop after the current callback stack unwinds (the next loop iteration): a
  // connection deleting the exchange that is calling it, or parsing a pipelined request outside
  // the callback that finished the previous one. One timer serves every deferral.
  void defer(std::function<void()> fn);
  void acceptLoopback(uv_stream_t* server, const wg::Identity& identity);

 private:
  struct Listener;
  uv_loop_t* loop_;
  GatewayOptions options_;
  Shared shared_;
  std::unique_ptr<UpstreamPool> pool_;
  GatewayCounters counters_;
  std::shared_ptr<QuotaStore> store_;
  ConcurrencyLimiter concurrency_;
  std::set<Connection*> connections_;
  Listener* listener_ = nullptr;
  uv_async_t* async_ = nullptr;
  uv_timer_t* defer_timer_ = nullptr;
  std::vector<std::function<void()>> deferred_;
  void runDeferred();
  std::mutex adopt_mu_;
  struct Pending {
    int fd;
    std::optional<wg::Identity> identity;
    std::string remote;
  };
  std::vector<Pending> pending_;
  bool closed_ = false;
};

// A fresh request id: 32 hex digits, 48 bits of Unix ms then 80 random bits (time-ordered).
std::string newRequestId();

}  // namespace gatehouse::proxy
