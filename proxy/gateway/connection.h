// One client connection of the gateway and the exchange (request → upstream → response) in
// progress on it. Internal to proxy/gateway.
//
// Connection: reads bytes, feeds the RequestParser one request at a time (pipelined requests wait
// in the input buffer until the current exchange ends), answers what the gateway answers itself
// (errors, /v1/models, the admin API) and hands model calls to an Exchange. Writes go out in
// order through uv_write; when the client reads slower than the upstream sends, the upstream is
// paused (readDisable) until the client's write queue drains.
//
// Exchange: one proxied request. Acquire an upstream connection from the pool, write the request,
// parse the response, write it to the client as it arrives (chunked when the upstream's length is
// not known), tap a copy for usage, and when it ends (or the client or upstream goes away) write
// the RequestRecord. Retries once on a fresh connection when nothing reached the upstream.
//
// Thread: the gateway's loop only. Lifetime: a Connection frees itself after its handle closed;
// an Exchange belongs to its Connection.
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/config/errors.h"
#include "proxy/config/routes.h"
#include "proxy/gateway/gateway.h"
#include "proxy/hooks/http_call.h"
#include "proxy/http/http1.h"
#include "proxy/http/sse.h"
#include "proxy/logstore/record.h"
#include "proxy/tools/stream_guard.h"
#include "proxy/tools/tool_tap.h"
#include "proxy/upstream/connection.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy {

class Exchange;

class Gateway::Connection {
 public:
  Connection(Gateway& gw, std::optional<wg::Identity> identity, std::string remote);
  Status open(int fd);  // adopt an fd
  uv_tcp_t* handle() { return tcp_; }
  void startReading();
  void abort();  // close now (client gone, shutdown)

  // Writes bytes in order; false if the connection is closing.
  bool write(std::string bytes);
  // Between cork() and uncork(), writes are gathered and go out as one (a response head and the
  // body that came in the same read: one syscall, one segment). Finishing a request uncorks.
  void cork();
  void uncork();
  size_t writeQueueBytes() const { return queued_bytes_; }
  // A response the gateway produced itself: status, headers, body; then the next request.
  void respond(int status, http::HeaderList headers, std::string body, bool close_after = false);
  void respondError(ApiShape shape, const GatewayError& error, const std::string& request_id,
                    bool close_after = false);
  // The exchange finished (response complete or failed); `close_after` ends the connection.
  void exchangeDone(bool close_after);
  // Deletes the exchange once the current callback stack unwinds (it may be calling us).
  void dropExchange();

  Gateway& gateway() { return gw_; }
  const std::optional<wg::Identity>& identity() const { return identity_; }
  // planFor(config.quotas, identity()) for the next request, computed once per connection and
  // configuration (the identity is fixed for the connection's life; a reload brings a new
  // config) and reused while no one else holds it; its slot is empty, its amounts are the last
  // request's (setAmounts overwrites them). Needs identity().
  std::shared_ptr<QuotaPlan> quotaPlan(const std::shared_ptr<const GatewayConfig>& config);
  const std::string& remote() const { return remote_; }
  void setRemote(std::string r) { remote_ = std::move(r); }
  bool closing() const { return closing_; }
  void onDrained();  // write queue emptied

 private:
  friend class Exchange;
  void onRead(ssize_t n, const uv_buf_t* buf);
  void process();
  void handleRequest();
  void handleModels(const Route& route);
  void handleAdmin(const Route& route);
  void handleQuotaAdmin(const Route& route);  // quota_admin.cc
  void finishRequest(bool close_after);
  // What the gateway answers itself (refusals, errors, /v1/models, the admin API): the response
  // plus one log record, so that denied and malformed requests are audited like proxied ones.
  // (respond()/respondError() alone write no record: the Exchange logs its own.)
  void refuse(ApiShape shape, const GatewayError& error, bool close_after, RouteKind kind,
              const std::string& model = "");
  void answer(int status, http::HeaderList headers, std::string body, RouteKind kind,
              const std::string& error = "", const std::string& model = "",
              bool close_after = false);
  void recordAnswer(int status, const std::string& error, RouteKind kind, const std::string& model,
                    const std::string& request_id, const std::string& response_body);
  void armIdleTimer();
  void armTimer(int64_t ms);
  void onTimer();
  void closeHandle();

  Gateway& gw_;
  std::optional<wg::Identity> identity_;
  std::shared_ptr<const GatewayConfig> plan_config_;  // what quota_plan_ was computed for
  std::shared_ptr<QuotaPlan> quota_plan_;
  std::string remote_;
  uv_tcp_t* tcp_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  http::RequestParser parser_;
  std::string in_;  // bytes read, not yet consumed by the parser
  // The current request's bytes until its head parses (capped): the error shape for a refused head.
  std::string raw_head_;
  bool have_head_ = false;
  http::RequestHead head_;
  std::string body_;
  int64_t request_start_ms_ = 0;
  uint64_t idle_deadline_ = 0;  // loop ms: an idle keep-alive connection closes then
  std::unique_ptr<Exchange> exchange_;
  bool busy_ = false;  // a request is being answered: stop parsing further ones
  bool closing_ = false;
  bool close_after_write_ = false;
  size_t queued_bytes_ = 0;
  bool corked_ = false;
  std::string cork_buf_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class Exchange final : public UpstreamConnection::Callbacks {
 public:
  Exchange(Gateway::Connection& client, http::RequestHead head, std::string body, Route route,
           ModelRequest model, const ProviderConfig& provider, std::string request_id,
           int64_t start_ms);
  ~Exchange() override;
  // Asks the pre_request hook when there is one (hook_exchange.cc), then forward().
  void start();
  // The client went away: stop the upstream and log what was seen.
  void clientGone();
  void clientDrained();

  void onUpstreamData(std::string_view bytes) override;
  void handleUpstreamBytes(std::string_view bytes);
  void onUpstreamClose(const Status& status) override;

 private:
  // Quotas (quota_exchange.cc): concurrency slot and reservation, then acquire(); settlement.
  void reserveQuota();
  void onReserved(Result<ReserveOutcome> r);
  // `cost`: costOfResponse() of `tap` (record() prices the response once for both).
  void settleQuota(const TapResult* tap, const Cost& cost);
  // The pre_request hook's answer (hook_exchange.cc); forward() builds the upstream request.
  void onHookAnswer(Result<HttpReply> reply);
  void hookFailed(const std::string& why);
  void hookRefuse(const GatewayError& error);
  void forward();
  void refuse(const GatewayError& error);
  void acquire();
  void onAcquired(Result<std::unique_ptr<UpstreamConnection>> r);
  void sendRequest();
  void upstreamFailed(const GatewayError& error, const std::string& log_error);
  void onResponseHead(http::ResponseHead head);
  void onBody(std::string_view data);
  void onEnd();
  void finish(bool reusable, bool close_client);
  void record(const std::string& error);
  void endChunked();  // flushes the guard, then the last chunk
  // Non-streamed guarded responses: the head and body wait for the body's end (a rewrite changes
  // Content-Length). sendHeld() forwards them as they came; guardHeld() evaluates them first.
  void sendHeld();
  void guardHeld();
  ApiKind apiKind() const;

  Gateway::Connection& client_;
  Gateway& gw_;
  Gateway::Shared shared_;  // snapshot at request start
  http::RequestHead head_;
  std::string body_;
  Route route_;
  std::string path_copy_;  // route_ views point here
  ModelRequest model_;
  const ProviderConfig* provider_;
  std::string request_id_;
  int64_t start_ms_;
  uint64_t start_loop_ms_;

  Cancellable* pending_acquire_ = nullptr;
  std::unique_ptr<UpstreamConnection> upstream_;
  bool retried_ = false;
  std::string request_bytes_;
  http::ResponseParser parser_;
  bool head_sent_ = false;
  bool chunked_ = false;
  int status_ = 0;
  http::HeaderList response_headers_;
  std::optional<int64_t> ttfb_ms_;
  bool sse_ = false;
  std::unique_ptr<http::SseParser> sse_parser_;
  std::unique_ptr<UsageTap> tap_;
  std::unique_ptr<tools::ToolTap> tool_tap_;   // null when logging.tool_calls is off
  std::unique_ptr<tools::StreamGuard> guard_;  // streamed responses with guardrails
  bool holding_json_ = false;                  // a JSON response waits for guardHeld()
  std::string held_reason_;
  std::string held_body_;
  std::vector<tools::BlockedCall> json_blocked_;
  std::string logged_response_;
  bool response_truncated_ = false;
  bool done_ = false;
  bool paused_ = false;
  // Quotas.
  std::shared_ptr<const QuotaPlan> quota_plan_;  // set once amounts are known
  QuotaTaken quota_taken_;
  QuotaAmounts quota_reserved_;
  bool quota_held_ = false;      // reserved, not yet settled
  std::string concurrency_key_;  // non-empty while a concurrency slot is held
  // The pre_request hook.
  std::unique_ptr<HttpCall> hook_call_;                         // while asking
  std::string hook_outcome_;                                    // RequestRecord::hook
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace gatehouse::proxy
