// Exchange: one request proxied to a provider (see connection.h).
#include <algorithm>

#include "proxy/config/credentials.h"
#include "proxy/gateway/connection.h"
#include "proxy/gateway/records.h"
#include "proxy/gateway/tool_records.h"
#include "proxy/tools/json_guard.h"

namespace gatehouse::proxy {
namespace {

constexpr size_t kPauseClientBytes = 1 << 20;  // pause the upstream past this much unsent
// A JSON response larger than this is forwarded unevaluated (counted): holding it whole costs
// memory and delays it.
constexpr size_t kMaxGuardedJsonBytes = size_t{16} << 20;

bool guardedRoute(RouteKind kind) {
  return kind == RouteKind::kAnthropicMessages || kind == RouteKind::kOpenAIChat ||
         kind == RouteKind::kOpenAIResponses;
}

}  // namespace

Exchange::Exchange(Gateway::Connection& client, http::RequestHead head, std::string body,
                   Route route, ModelRequest model, const ProviderConfig& provider,
                   std::string request_id, int64_t start_ms)
    : client_(client),
      gw_(client.gateway()),
      shared_(gw_.shared()),
      head_(std::move(head)),
      body_(std::move(body)),
      route_(route),
      model_(std::move(model)),
      provider_(&provider),
      request_id_(std::move(request_id)),
      start_ms_(start_ms),
      start_loop_ms_(uv_now(gw_.loop())) {
  // route_ holds views into the old head: re-derive them from our copy.
  route_.path = {};
  route_.query = {};
}

Exchange::~Exchange() {
  *alive_ = false;
  if (pending_acquire_ != nullptr) pending_acquire_->cancel();
  settleQuota(nullptr, Cost{});  // only if no record() settled it (it always does; belt and braces)
}

ApiKind Exchange::apiKind() const {
  switch (route_.kind) {
    case RouteKind::kAnthropicCountTokens:
      return ApiKind::kAnthropicCountTokens;
    case RouteKind::kOpenAIChat:
      return ApiKind::kOpenAiChat;
    case RouteKind::kOpenAIResponses:
      return ApiKind::kOpenAiResponses;
    default:
      return ApiKind::kAnthropicMessages;
  }
}

void Exchange::forward() {
  // The upstream request: the client's headers minus hop-by-hop, credentials, identity headers,
  // Host, framing and Accept-Encoding; then Host, identity encoding, the provider's headers and
  // key, and our own framing. The answer must arrive uncompressed: the usage tap, the tool-call
  // tap and the guardrails read it as it streams (a gzip answer would be recorded without usage
  // and pass every guardrail). The client's hop is the mesh or loopback, where size matters less.
  http::HeaderList out;
  for (const http::Header& h : head_.headers) {
    if (head_.headers.isHopByHop(h.name) || isStrippedInbound(h.name) ||
        http::equalsIgnoreCase(h.name, "host") ||
        http::equalsIgnoreCase(h.name, "content-length") ||
        http::equalsIgnoreCase(h.name, "expect") ||
        http::equalsIgnoreCase(h.name, "accept-encoding")) {
      continue;
    }
    out.add(h.name, h.value);
  }
  out.add("Host", provider_->url.hostHeader());
  out.add("Accept-Encoding", "identity");
  for (const auto& [n, v] : provider_->headers) out.set(n, v);
  std::optional<UpstreamCredential> cred = upstreamCredential(*provider_);
  if (cred) out.set(cred->name, std::string(cred->value.reveal()));
  out.add("Content-Length", std::to_string(body_.size()));
  auto head = http::serializeRequestHead(head_.method, provider_->url.target(head_.target), out);
  if (!head) {
    upstreamFailed(
        GatewayError::invalidRequest("request cannot be forwarded: " + head.status().message()),
        head.status().message());
    return;
  }
  request_bytes_ = std::move(head.value());
  request_bytes_ += body_;
  reserveQuota();
}

void Exchange::acquire() {
  pending_acquire_ =
      gw_.pool().acquire(provider_->target, [this](Result<std::unique_ptr<UpstreamConnection>> r) {
        pending_acquire_ = nullptr;
        onAcquired(std::move(r));
      });
}

void Exchange::onAcquired(Result<std::unique_ptr<UpstreamConnection>> r) {
  if (!r) {
    const Status& st = r.status();
    std::string what = "provider \"" + provider_->id + "\" (" + provider_->base_url +
                       ") unreachable: " + shared_.config->redact(st.message());
    if (st.code() == ETIMEDOUT) {
      upstreamFailed(GatewayError::gatewayTimeout(what), what);
    } else {
      upstreamFailed(GatewayError::badGateway(what), what);
    }
    return;
  }
  upstream_ = std::move(r.value());
  upstream_->setCallbacks(this);
  upstream_->setReadTimeout(provider_->read_timeout_ms);
  parser_ = http::ResponseParser(http::ResponseParser::Options{.reportInterim = false});
  parser_.expectResponseTo(head_.method);
  sendRequest();
}

void Exchange::sendRequest() {
  Status st = upstream_->write(request_bytes_);
  if (!st) {
    bool retry = upstream_->retryable() && !retried_;
    upstream_.reset();
    if (retry) {
      retried_ = true;
      acquire();
      return;
    }
    std::string what = "provider \"" + provider_->id + "\": " + st.message();
    upstreamFailed(GatewayError::badGateway(what), what);
  }
}

void Exchange::onUpstreamData(std::string_view bytes) {
  if (done_) return;
  // What this read produces for the client (head, body, last chunk) leaves in one write. The
  // connection outlives this call (deletion is deferred), so uncorking after is safe.
  Gateway::Connection& client = client_;
  client.cork();
  handleUpstreamBytes(bytes);
  client.uncork();
}

void Exchange::handleUpstreamBytes(std::string_view bytes) {
  auto r = parser_.feed(std::span<const char>(bytes.data(), bytes.size()));
  for (auto& ev : r.events) {
    if (done_) return;
    if (auto* h = std::get_if<http::ResponseHead>(&ev)) {
      onResponseHead(std::move(*h));
    } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
      onBody(b->data);
    } else if (std::get_if<http::MessageEnd>(&ev)) {
      onEnd();
      return;
    }
  }
  if (r.error && !done_) {
    std::string what =
        "provider \"" + provider_->id + "\" sent a malformed response: " + r.error->message;
    if (!head_sent_) {
      upstreamFailed(GatewayError::badGateway(what), what);
    } else {
      endChunked();
      record(what);
      finish(false, true);
    }
  }
}

void Exchange::onUpstreamClose(const Status& status) {
  if (done_) return;
  if (status.isOk()) {
    auto r = parser_.finish();
    for (auto& ev : r.events) {
      if (auto* h = std::get_if<http::ResponseHead>(&ev)) onResponseHead(std::move(*h));
      if (auto* b = std::get_if<http::BodyChunk>(&ev)) onBody(b->data);
      if (std::get_if<http::MessageEnd>(&ev)) {
        onEnd();
        return;
      }
    }
  }
  if (!head_sent_ && upstream_ && upstream_->retryable() && !retried_) {
    retried_ = true;
    upstream_.reset();
    acquire();
    return;
  }
  std::string what = "provider \"" + provider_->id + "\" closed the connection" +
                     (status.isOk() ? "" : ": " + shared_.config->redact(status.message()));
  if (!head_sent_) {
    if (status.code() == ETIMEDOUT) {
      upstreamFailed(GatewayError::gatewayTimeout(what), what);
    } else {
      upstreamFailed(GatewayError::badGateway(what), what);
    }
    return;
  }
  // Mid-stream: end the client's response cleanly (last chunk) and close the connection, so the
  // client sees a complete HTTP message and its SDK reports the missing end event.
  upstream_.reset();
  endChunked();
  record("upstream failed mid-stream: " + what);
  finish(false, true);
}

void Exchange::onResponseHead(http::ResponseHead head) {
  status_ = head.status;
  http::HeaderList out;
  for (const http::Header& h : head.headers) {
    if (head.headers.isHopByHop(h.name) || http::equalsIgnoreCase(h.name, "content-length")) {
      continue;
    }
    out.add(h.name, h.value);
  }
  chunked_ = head.framing != http::BodyFraming::Length && head.framing != http::BodyFraming::None;
  if (head.framing == http::BodyFraming::Length && head.contentLength) {
    out.add("Content-Length", std::to_string(*head.contentLength));
  } else if (head.framing == http::BodyFraming::None) {
    out.add("Content-Length", "0");
  } else {
    out.add("Transfer-Encoding", "chunked");
  }
  out.add("x-gatehouse-request-id", request_id_);
  if (!head_.keepAlive) out.add("Connection", "close");
  auto ct = head.headers.get("content-type");
  sse_ = ct && ct->find("text/event-stream") != std::string_view::npos;
  // Guardrails act on answers that may hold tool calls, read as they came: a compressed body is
  // left alone. A guard may change lengths: streams must be chunked; a JSON body is held whole.
  const auto& rules = shared_.config->guardrails;
  auto encoding = head.headers.get("content-encoding");
  bool guard = rules && !rules->rules().empty() && status_ == 200 && guardedRoute(route_.kind) &&
               (!encoding || http::equalsIgnoreCase(*encoding, "identity"));
  if (guard && sse_ && chunked_) {
    guard_ = tools::makeStreamGuard(apiKind(), rules);
  } else if (guard && !sse_ && ct && ct->find("json") != std::string_view::npos &&
             head_.method != "HEAD") {
    holding_json_ = true;
  }
  auto bytes = http::serializeResponseHead(head.status, head.reason, out);
  response_headers_ = std::move(out);
  if (!bytes) {
    upstreamFailed(GatewayError::badGateway("provider response head cannot be forwarded"),
                   bytes.status().message());
    return;
  }
  head_sent_ = true;
  ttfb_ms_ = static_cast<int64_t>(uv_now(gw_.loop()) - start_loop_ms_);
  if (holding_json_) {
    held_reason_ = std::string(head.reason);  // sent by sendHeld()
  } else {
    client_.write(std::move(bytes.value()));
  }
  tap_ = std::make_unique<UsageTap>(apiKind(), sse_ ? BodyMode::kSse : BodyMode::kJson);
  if (shared_.config->logging.tool_calls) {
    tool_tap_ =
        std::make_unique<tools::ToolTap>(apiKind(), sse_ ? BodyMode::kSse : BodyMode::kJson);
  }
  if (sse_) sse_parser_ = std::make_unique<http::SseParser>();
}

void Exchange::sendHeld() {
  if (!holding_json_) return;
  holding_json_ = false;
  auto bytes = http::serializeResponseHead(status_, held_reason_, response_headers_);
  if (!bytes) return;  // checked when held: the same headers serialized then
  client_.write(std::move(bytes.value()));
  if (!held_body_.empty()) client_.write(chunked_ ? http::chunk(held_body_) : held_body_);
  held_body_.clear();
  held_body_.shrink_to_fit();
}

void Exchange::guardHeld() {
  if (!holding_json_) return;
  json_blocked_ = tools::guardJsonBody(apiKind(), *shared_.config->guardrails, held_body_);
  if (!json_blocked_.empty()) {
    gw_.mutableCounters().guard_blocked += json_blocked_.size();
    // Rewritten: our own length, whatever the upstream's framing was.
    http::HeaderList out;
    for (const http::Header& h : response_headers_) {
      if (http::equalsIgnoreCase(h.name, "content-length") ||
          http::equalsIgnoreCase(h.name, "transfer-encoding")) {
        continue;
      }
      out.add(h.name, h.value);
    }
    out.add("Content-Length", std::to_string(held_body_.size()));
    response_headers_ = std::move(out);
    chunked_ = false;
  }
  sendHeld();
}

void Exchange::onBody(std::string_view data) {
  if (data.empty()) return;
  if (holding_json_) {
    held_body_.append(data);
    if (held_body_.size() > kMaxGuardedJsonBytes) {
      ++gw_.mutableCounters().guard_passthrough;
      sendHeld();
    }
  } else if (guard_) {
    std::string out = guard_->feed(data);
    if (!out.empty()) client_.write(http::chunk(out));
  } else {
    client_.write(chunked_ ? http::chunk(data) : std::string(data));
  }
  if (sse_) {
    auto r = sse_parser_->feed(std::span<const char>(data.data(), data.size()));
    for (const http::SseEvent& e : r.events) {
      tap_->onSseEvent(e.event, e.data);
      if (tool_tap_) tool_tap_->onSseEvent(e.event, e.data);
    }
  } else {
    tap_->onBody(data);
    if (tool_tap_) tool_tap_->onBody(data);
  }
  const GatewayConfig& cfg = *shared_.config;
  if (cfg.logging.bodies) {
    size_t room = gw_.options().max_logged_body_bytes -
                  std::min(logged_response_.size(), gw_.options().max_logged_body_bytes);
    if (data.size() > room) response_truncated_ = true;
    logged_response_.append(data.substr(0, std::min(room, data.size())));
  }
  if (!paused_ && upstream_ && client_.writeQueueBytes() > kPauseClientBytes) {
    paused_ = true;
    upstream_->readDisable(true);
  }
}

void Exchange::clientDrained() {
  if (paused_ && upstream_) {
    paused_ = false;
    upstream_->readDisable(false);
  }
}

void Exchange::endChunked() {
  sendHeld();  // a response cut short is forwarded as it came, unevaluated
  if (!chunked_) return;
  if (guard_) {
    std::string rest = guard_->finish();
    if (!rest.empty()) client_.write(http::chunk(rest));
  }
  client_.write(std::string(http::lastChunk()));
}

void Exchange::onEnd() {
  guardHeld();
  endChunked();
  // The response's last bytes leave now: the bookkeeping below (usage, tool calls, cost, the
  // log record, the quota settlement) is not on the client's path. The connection outlives
  // this call (deletion is deferred), and record() writes nothing to it.
  client_.uncork();
  bool reusable = upstream_ && parser_.idle();
  record("");
  finish(reusable, !head_.keepAlive);
}

void Exchange::upstreamFailed(const GatewayError& error, const std::string& log_error) {
  if (done_) return;
  ++gw_.mutableCounters().upstream_errors;
  status_ = error.status;
  record(log_error);
  done_ = true;
  upstream_.reset();
  client_.respondError(route_.shape, error, request_id_);
  client_.dropExchange();  // respondError finished the request on the connection
}

void Exchange::finish(bool reusable, bool close_client) {
  if (done_) return;
  done_ = true;
  if (upstream_) {
    upstream_->setCallbacks(nullptr);
    if (paused_) upstream_->readDisable(false);
    gw_.pool().release(std::move(upstream_), reusable);
  }
  client_.exchangeDone(close_client);
}

void Exchange::clientGone() {
  if (done_) return;
  ++gw_.mutableCounters().client_aborts;
  done_ = true;
  if (pending_acquire_ != nullptr) {
    pending_acquire_->cancel();
    pending_acquire_ = nullptr;
  }
  hook_call_.reset();
  upstream_.reset();  // closes the upstream connection now: the provider stops generating
  record("client disconnected");
  // The connection owns us and is closing; it deletes us.
}

void Exchange::record(const std::string& error) {
  TapResult tr;
  Cost cost;  // priced once, for the settlement and the record
  if (tap_) {
    tr = tap_->finish();
    if (shared_.prices) {
      cost = costOfResponse(*shared_.prices, providerOf(apiKind()), model_.model, tr,
                            CostDetail::kNanosOnly);
    }
  }
  settleQuota(tap_ ? &tr : nullptr, cost);
  if (!gw_.wantsRecords()) return;
  RequestRecord rec;
  rec.id = request_id_;
  rec.start_ms = start_ms_;
  fillRecordRequest(rec, client_.identity(), std::move(head_.headers), head_);
  rec.provider = provider_->id;
  rec.api_kind = apiKindName(route_.kind);
  rec.model = tr.model.empty() ? model_.model : tr.model;
  rec.status = head_sent_ || status_ != 0 ? status_ : 0;
  rec.error = shared_.config->redact(error);
  rec.hook = hook_outcome_;
  rec.latency_ms = static_cast<int64_t>(uv_now(gw_.loop()) - start_loop_ms_);
  rec.ttfb_ms = ttfb_ms_;
  rec.streamed = sse_;
  rec.partial = tap_ && tr.end == TapEnd::kPartial && !error.empty();
  if (tap_ && tr.usage.present) {
    rec.tokens.input = tr.usage.input;
    rec.tokens.output = tr.usage.output;
    rec.tokens.cache_read = tr.usage.cache_read;
    rec.tokens.cache_write_5m = tr.usage.cache_write_5m;
    rec.tokens.cache_write_1h = tr.usage.cache_write_1h;
    rec.tokens.reasoning = tr.usage.reasoning;
  }
  if (cost.known) rec.cost_nanodollars = cost.nanos;
  if (guard_) {
    gw_.mutableCounters().guard_blocked += guard_->blocked().size();
    if (guard_->passthrough()) ++gw_.mutableCounters().guard_passthrough;
  }
  bool body_logged_whole =
      shared_.config->logging.bodies && body_.size() <= gw_.options().max_logged_body_bytes;
  if (shared_.config->logging.tool_calls) {
    static const std::vector<tools::ToolCall> kNone;
    addToolRecords(tool_tap_ ? tool_tap_->finish() : kNone, apiKind(), body_, rec,
                   shared_.config->guardrails.get(), guard_ ? guard_->blocked() : json_blocked_,
                   body_logged_whole);
  }
  rec.response_headers = toRecordHeaders(std::move(response_headers_));
  if (shared_.config->logging.bodies) {
    // The exchange is over: the body moves into the record rather than being copied.
    if (body_.size() > gw_.options().max_logged_body_bytes) {
      body_.resize(gw_.options().max_logged_body_bytes);
    }
    rec.request_body = std::move(body_);
    if (head_sent_) rec.response_body = std::move(logged_response_);
  }
  gw_.submitRecord(std::move(rec));
}

}  // namespace gatehouse::proxy
