// WebhookDispatcher: posts events (events.h) to the configured webhooks, signed (signature.h),
// from the durable outbox (outbox.h), on a thread of its own. DESIGN.md "post-event webhooks
// (durable outbox)"; the wire format is HOOKS.md "Webhooks".
//
//   gateway loop ──publish()──▶ bounded queue ──webhook thread──▶ outbox (SQLite) ──▶ POST
//                                                                    ▲                  │
//                                                                    └─ 2xx: delete; else
//                                                                       attempts+1, backoff
//
// The webhook thread runs its own libuv loop with its own UpstreamPool, and posts with HttpCall
// (the gateway's upstream client: http:// to loopback or mesh addresses, https:// verified
// against the system roots). It is the only thread that touches the outbox file; the gateway's
// loop only appends to the queue under a mutex. When the queue is full, publish() drops the
// event, counts it and logs a line: delivery never slows a request.
//
// Delivery is at least once: an event is deleted after its webhook answered 2xx, so a crash
// between the answer and the delete sends it again, with the same webhook-id. Pending events
// (queued ones are written to the outbox on shutdown) are sent after a restart.
//
// Thread safety: publish(), wants() and counters() from any thread. The destructor writes the
// queue to the outbox, abandons deliveries in flight (they stay pending, due at once) and joins.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config/hooks_config.h"
#include "proxy/hooks/events.h"
#include "proxy/hooks/http_call.h"
#include "proxy/hooks/outbox.h"

namespace gatehouse::proxy {

struct WebhookOptions {
  std::vector<WebhookConfig> webhooks;
  std::string database;  // the outbox file
  uint32_t max_attempts = 12;
  int64_t base_backoff_ms = 1000;
  int64_t max_backoff_ms = 300'000;
  size_t queue_size = 10'000;
  size_t max_in_flight = 8;
  std::function<int64_t()> now_ms;              // wall clock (Unix ms); empty = system clock
  std::function<void(const std::string&)> log;  // one line per notable event; empty = stderr

  static WebhookOptions fromConfig(const HooksConfig& hooks);
};

struct WebhookCounters {
  uint64_t published = 0;        // events accepted by publish()
  uint64_t dropped = 0;          // events refused: queue full
  uint64_t stored = 0;           // outbox rows written (one per event and webhook)
  uint64_t delivered = 0;        // 2xx answers
  uint64_t failed_attempts = 0;  // non-2xx, timeouts, connection errors
  uint64_t given_up = 0;         // rows marked dead after max_attempts
  uint64_t store_errors = 0;     // outbox writes that failed
};

class WebhookDispatcher {
 public:
  // Opens the outbox (errors name the file) and starts the thread.
  static Result<std::unique_ptr<WebhookDispatcher>> start(WebhookOptions options);
  ~WebhookDispatcher();
  WebhookDispatcher(const WebhookDispatcher&) = delete;
  WebhookDispatcher& operator=(const WebhookDispatcher&) = delete;

  // Whether some webhook subscribes to `kind` (skip building events nobody wants).
  bool wants(std::string_view kind) const;
  // Queues an event; false when it was dropped (queue full, or stopping).
  bool publish(WebhookEvent event);
  WebhookCounters counters() const;

 private:
  struct Worker;
  WebhookDispatcher(WebhookOptions options, std::unique_ptr<Outbox> outbox);
  void run();  // the webhook thread's one step (webhooks.cc)
  void deliver(OutboxRow row, int64_t now);

  const WebhookOptions options_;
  std::unique_ptr<Worker> worker_;  // the thread's state (loop, pool, outbox)
  mutable std::mutex mu_;
  std::deque<WebhookEvent> queue_;  // guarded by mu_
  bool stop_ = false;               // guarded by mu_
  std::atomic<uint64_t> published_{0}, dropped_{0}, stored_{0}, delivered_{0}, failed_attempts_{0},
      given_up_{0}, store_errors_{0};
  std::thread thread_;
};

}  // namespace gatehouse::proxy
