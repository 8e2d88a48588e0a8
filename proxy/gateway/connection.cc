#include "proxy/gateway/connection.h"

#include <algorithm>
#include <cstring>

#include "proxy/config/credentials.h"
#include "proxy/gateway/admin_api.h"
#include "proxy/gateway/metrics.h"
#include "proxy/gateway/models.h"
#include "proxy/gateway/records.h"

namespace gatehouse::proxy {
namespace {

struct WriteReq {
  uv_write_t req;
  std::string data;
  Gateway::Connection* conn;
  std::shared_ptr<bool> alive;
};

std::vector<HeaderRef> headerRefs(const http::HeaderList& headers) {
  std::vector<HeaderRef> refs;
  refs.reserve(headers.size());
  for (const http::Header& h : headers) refs.push_back({h.name, h.value});
  return refs;
}

// The header lines of a head the parser refused before handing it over (a 431, or a 413 on the
// declared Content-Length), so the error still comes in the client's API shape.
ApiShape shapeFromRawHead(std::string_view raw) {
  if (size_t end = raw.find("\r\n\r\n"); end != std::string_view::npos) raw = raw.substr(0, end);
  std::vector<HeaderRef> refs;
  size_t pos = raw.find("\r\n");  // the request line is not a header
  while (pos != std::string_view::npos) {
    size_t next = raw.find("\r\n", pos + 2);
    std::string_view line =
        raw.substr(pos + 2, next == std::string_view::npos ? next : next - pos - 2);
    if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      refs.push_back({line.substr(0, colon), value});
    }
    pos = next;
  }
  return shapeFromHeaders(refs);
}

http::HeaderList errorHeaders(const ErrorResponse& r) {
  http::HeaderList h;
  h.add("content-type", r.content_type);
  for (const auto& [n, v] : r.headers) {
    if (http::equalsIgnoreCase(n, "connection")) continue;
    h.add(n, v);
  }
  return h;
}

}  // namespace

Gateway::Connection::Connection(Gateway& gw, std::optional<wg::Identity> identity,
                                std::string remote)
    : gw_(gw),
      identity_(std::move(identity)),
      remote_(std::move(remote)),
      parser_(http::RequestParser::Options{.maxHeaderBytes = gw.options().max_header_bytes,
                                           .maxBodyBytes = gw.options().max_body_bytes,
                                           .stopAfterMessage = true}) {
  tcp_ = new uv_tcp_t;
  uv_tcp_init(gw_.loop(), tcp_);
  tcp_->data = this;
  timer_ = new uv_timer_t;
  uv_timer_init(gw_.loop(), timer_);
  timer_->data = this;
}

Status Gateway::Connection::open(int fd) {
  int rc = uv_tcp_open(tcp_, fd);
  if (rc != 0) return Status(-rc, std::string("adopt client socket: ") + uv_strerror(rc));
  uv_tcp_nodelay(tcp_, 1);
  return Status::ok();
}

void Gateway::Connection::startReading() {
  armIdleTimer();
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(tcp_),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        // One buffer per loop thread: libuv fills it and calls the read callback right away,
        // which copies what it keeps (in_), so connections never hold on to it.
        thread_local char storage[64 * 1024];
        *buf = uv_buf_init(storage, sizeof storage);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        static_cast<Connection*>(s->data)->onRead(n, buf);
      });
}

void Gateway::Connection::armIdleTimer() {
  idle_deadline_ = uv_now(gw_.loop()) + static_cast<uint64_t>(gw_.options().idle_timeout_ms);
  armTimer(gw_.options().idle_timeout_ms);
}

void Gateway::Connection::armTimer(int64_t ms) {
  if (closing_) return;
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->onTimer(); },
      static_cast<uint64_t>(ms), 0);
}

void Gateway::Connection::onTimer() {
  if (exchange_) return;  // the upstream's read timeout governs a running exchange
  if (have_head_ || !parser_.idle()) {
    // A request started but did not finish in time (slowloris): 408 and close.
    GatewayError e = GatewayError::invalidRequest("request not received in time");
    e.status = 408;
    ++gw_.mutableCounters().client_errors;
    refuse(have_head_ ? shapeFromHeaders(headerRefs(head_.headers)) : shapeFromRawHead(raw_head_),
           e, true, RouteKind::kNotFound);
    return;
  }
  abort();  // idle keep-alive connection
}

void Gateway::Connection::onRead(ssize_t n, const uv_buf_t* buf) {
  if (closing_) return;
  if (n < 0) {
    if (exchange_) {
      auto ex = std::move(exchange_);
      ex->clientGone();
    }
    abort();
    return;
  }
  if (n == 0) return;
  in_.append(buf->base, static_cast<size_t>(n));
  if (!busy_) {
    if (!have_head_ && parser_.idle()) armTimer(gw_.options().request_read_timeout_ms);
    process();
    if (!busy_ && !closing_ && !have_head_ && parser_.idle()) {
      // Only blank lines between requests (which HTTP/1.1 allows): still idle, and the idle
      // deadline stands, so a client cannot hold the connection open with them.
      uint64_t now = uv_now(gw_.loop());
      armTimer(idle_deadline_ > now ? static_cast<int64_t>(idle_deadline_ - now) : 0);
    }
  } else if (in_.size() > gw_.options().max_header_bytes + gw_.options().max_body_bytes) {
    abort();  // a client pipelining without reading answers: cut it off
  }
}

void Gateway::Connection::process() {
  while (!busy_ && !closing_ && !in_.empty()) {
    if (!have_head_) {
      size_t cap = gw_.options().max_header_bytes + 4;
      if (raw_head_.size() < cap) raw_head_.append(in_, 0, cap - raw_head_.size());
    }
    auto r = parser_.feed(std::span<const char>(in_.data(), in_.size()));
    for (auto& ev : r.events) {
      if (auto* h = std::get_if<http::RequestHead>(&ev)) {
        raw_head_.clear();
        have_head_ = true;
        head_ = std::move(*h);
        body_.clear();
        request_start_ms_ = gw_.nowMs();
        ++gw_.mutableCounters().requests;
        if (head_.expectContinue && !head_.upgrade) write("HTTP/1.1 100 Continue\r\n\r\n");
      } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
        body_.append(b->data);
      } else if (std::get_if<http::MessageEnd>(&ev)) {
        in_.erase(0, r.consumed);
        r.consumed = 0;
        handleRequest();
        break;
      }
    }
    if (r.consumed > 0) in_.erase(0, r.consumed);
    if (r.stop == http::StopReason::Upgrade) {
      // Only the WebSocket upgrade on /v1/responses is expected (Codex); handleRequest answered
      // it with 426 and the connection closes, so the bytes after the head are dropped.
      if (!busy_) handleRequest();
      in_.clear();
      return;
    }
    if (r.stop == http::StopReason::Error && r.error) {
      ++gw_.mutableCounters().client_errors;
      ApiShape shape =
          have_head_ ? shapeFromHeaders(headerRefs(head_.headers)) : shapeFromRawHead(raw_head_);
      GatewayError e = GatewayError::invalidRequest(r.error->message);
      e.status = r.error->httpStatus();
      if (e.status == 413) e = GatewayError::requestTooLarge(r.error->message);
      if (e.status == 431) e.message = "request headers too large: " + r.error->message;
      refuse(shape, e, true, RouteKind::kNotFound);
      return;
    }
    if (r.stop == http::StopReason::NeedMore) return;
  }
}

void Gateway::Connection::handleRequest() {
  busy_ = true;
  uv_timer_stop(timer_);
  std::vector<HeaderRef> refs = headerRefs(head_.headers);
  Route route = routeRequest(head_.method, head_.target, refs);
  if (head_.upgrade && route.kind != RouteKind::kResponsesWebSocket) {
    ++gw_.mutableCounters().client_errors;
    refuse(route.shape, GatewayError::invalidRequest("protocol upgrades are not supported"), true,
           route.kind);
    return;
  }
  if (auto err = routeError(route, head_.method)) {
    ++gw_.mutableCounters().client_errors;
    refuse(route.shape, *err, route.kind == RouteKind::kResponsesWebSocket, route.kind);
    return;
  }
  if (!identity_) {
    ++gw_.mutableCounters().denied;
    refuse(
        route.shape,
        GatewayError::permission("unknown peer " + remote_ + ": not in this gateway's network map"),
        false, route.kind);
    return;
  }
  if (route.kind == RouteKind::kModels) return handleModels(route);
  if (route.kind == RouteKind::kAdmin) return handleAdmin(route);
  const Shared& sh = gw_.shared();
  ModelRequest model;
  if (auto err = parseModelRequest(body_, &model)) {
    ++gw_.mutableCounters().client_errors;
    refuse(route.shape, *err, false, route.kind);
    return;
  }
  const ProviderConfig* provider = nullptr;
  if (auto err = selectProvider(*sh.config, route.kind, model.model, &provider)) {
    ++gw_.mutableCounters().client_errors;
    refuse(route.shape, *err, false, route.kind, model.model);
    return;
  }
  Decision d = sh.grants->checkModel(*identity_, provider->id, model.model);
  if (!d.allowed) {
    ++gw_.mutableCounters().denied;
    refuse(route.shape, GatewayError::permission(d.reason), false, route.kind, model.model);
    return;
  }
  ++gw_.mutableCounters().forwarded;
  exchange_ =
      std::make_unique<Exchange>(*this, std::move(head_), std::move(body_), route, std::move(model),
                                 *provider, newRequestId(), request_start_ms_);
  have_head_ = false;
  exchange_->start();
}

void Gateway::Connection::handleModels(const Route& route) {
  const Shared& sh = gw_.shared();
  std::vector<std::string> models = sh.grants->grantedModels(*identity_, sh.config->providers);
  std::string body = modelsBody(route.shape, models, *sh.config);
  http::HeaderList h{{"content-type", "application/json"}};
  answer(200, std::move(h), std::move(body), route.kind);
}

void Gateway::Connection::handleAdmin(const Route& route) {
  const Shared& sh = gw_.shared();
  Decision d = sh.grants->checkAdmin(*identity_);
  if (!d.allowed) {
    ++gw_.mutableCounters().denied;
    refuse(route.shape, GatewayError::permission(d.reason), false, route.kind);
    return;
  }
  if (route.path == "/api/quotas" || route.path.rfind("/api/quotas/", 0) == 0) {
    return handleQuotaAdmin(route);
  }
  if (route.path == "/api/metrics" && head_.method == "GET") {
    http::HeaderList h{{"content-type", "text/plain; version=0.0.4; charset=utf-8"}};
    answer(200, std::move(h),
           metricsText(gw_.counters(), gw_.quotaStore(), gw_.options().log, gw_.options().webhooks),
           route.kind);
    return;
  }
  AdminResponse r = handleAdminRequest(gw_.options().reader, head_.method, head_.target);
  http::HeaderList h{{"content-type", "application/json"}};
  // Admin answers are logged without their bodies: they are the log itself.
  std::string error = r.status >= 400 ? "admin API answered " + std::to_string(r.status) : "";
  answer(r.status, std::move(h), std::move(r.body), route.kind, error);
}

void Gateway::Connection::refuse(ApiShape shape, const GatewayError& error, bool close_after,
                                 RouteKind kind, const std::string& model) {
  ErrorResponse r = errorResponse(shape, error);
  busy_ = true;
  answer(r.status, errorHeaders(r), std::move(r.body), kind, error.message, model, close_after);
}

void Gateway::Connection::answer(int status, http::HeaderList headers, std::string body,
                                 RouteKind kind, const std::string& error, const std::string& model,
                                 bool close_after) {
  std::string id = newRequestId();
  headers.add("x-gatehouse-request-id", id);
  recordAnswer(status, error, kind, model, id, kind == RouteKind::kAdmin ? std::string() : body);
  respond(status, std::move(headers), std::move(body), close_after);
}

void Gateway::Connection::recordAnswer(int status, const std::string& error, RouteKind kind,
                                       const std::string& model, const std::string& request_id,
                                       const std::string& response_body) {
  if (!gw_.wantsRecords()) return;
  const GatewayConfig& cfg = *gw_.shared().config;
  RequestRecord rec;
  rec.id = request_id;
  int64_t now = gw_.nowMs();
  if (have_head_) {
    fillRecordRequest(rec, identity_, head_);
    rec.start_ms = request_start_ms_;
  } else {
    // The head never parsed (malformed, too large, too slow): what there is of its first line.
    if (identity_) rec.identity = recordIdentity(*identity_);
    rec.start_ms = now;
    std::string_view line(raw_head_);
    line = line.substr(0, std::min<size_t>(line.find("\r\n"), 512));
    size_t sp = line.find(' ');
    rec.method = std::string(line.substr(0, std::min<size_t>(sp, 16)));
    if (sp != std::string_view::npos) {
      std::string_view target = line.substr(sp + 1);
      rec.path = std::string(target.substr(0, target.find(' ')));
    }
  }
  rec.api_kind = apiKindName(kind);
  rec.model = model;
  rec.status = status;
  rec.error = cfg.redact(error);
  rec.latency_ms = std::max<int64_t>(0, now - rec.start_ms);
  rec.response_headers = {};
  if (cfg.logging.bodies) {
    size_t cap = gw_.options().max_logged_body_bytes;
    if (have_head_ && kind != RouteKind::kAdmin) rec.request_body = body_.substr(0, cap);
    rec.response_body = response_body.substr(0, cap);
  }
  gw_.submitRecord(std::move(rec));
}

void Gateway::Connection::cork() { corked_ = true; }

void Gateway::Connection::uncork() {
  if (!corked_) return;
  corked_ = false;
  if (!cork_buf_.empty()) write(std::exchange(cork_buf_, {}));
}

bool Gateway::Connection::write(std::string bytes) {
  if (closing_ || bytes.empty()) return !closing_;
  if (corked_) {
    cork_buf_ += bytes;
    return true;
  }
  if (queued_bytes_ == 0) {
    // Nothing queued: hand the bytes to the socket now. A uv_write that completes at once still
    // costs an epoll_ctl (libuv re-arms the watcher when it drains); most responses fit the
    // socket buffer whole. Whatever does not fit (or an error) goes the queued way below.
    uv_buf_t now = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(tcp_), &now, 1);
    if (n == static_cast<int>(bytes.size())) return true;
    if (n > 0) bytes.erase(0, static_cast<size_t>(n));
  }
  auto* w = new WriteReq{{}, std::move(bytes), this, alive_};
  queued_bytes_ += w->data.size();
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp_), &buf, 1,
                    [](uv_write_t* req, int status) {
                      auto* w = reinterpret_cast<WriteReq*>(req);
                      if (*w->alive) {
                        Connection* c = w->conn;
                        c->queued_bytes_ -= w->data.size();
                        if (status < 0) {
                          if (c->exchange_) {
                            auto ex = std::move(c->exchange_);
                            ex->clientGone();
                          }
                          c->abort();
                        } else if (c->queued_bytes_ == 0) {
                          c->onDrained();
                        }
                      }
                      delete w;
                    });
  if (rc != 0) {
    queued_bytes_ -= w->data.size();
    delete w;
    return false;
  }
  return true;
}

void Gateway::Connection::onDrained() {
  if (close_after_write_) {
    abort();
    return;
  }
  if (exchange_) exchange_->clientDrained();
}

void Gateway::Connection::respond(int status, http::HeaderList headers, std::string body,
                                  bool close_after) {
  headers.set("content-length", std::to_string(body.size()));
  if (close_after || !head_.keepAlive) headers.set("connection", "close");
  auto head = http::serializeResponseHead(status, "", headers);
  std::string out = head ? std::move(head.value()) : "HTTP/1.1 500 Internal Server Error\r\n\r\n";
  out += body;
  write(std::move(out));
  finishRequest(close_after || !head_.keepAlive);
}

void Gateway::Connection::respondError(ApiShape shape, const GatewayError& error,
                                       const std::string& request_id, bool close_after) {
  ErrorResponse r = errorResponse(shape, error);
  busy_ = true;
  http::HeaderList headers = errorHeaders(r);
  headers.add("x-gatehouse-request-id", request_id);
  respond(r.status, std::move(headers), std::move(r.body), close_after);
}

void Gateway::Connection::exchangeDone(bool close_after) {
  dropExchange();
  finishRequest(close_after);
}

void Gateway::Connection::dropExchange() {
  // Destroyed later: we may be inside one of the exchange's callbacks.
  if (exchange_) {
    Exchange* ex = exchange_.release();
    gw_.defer([ex] { delete ex; });
  }
}

void Gateway::Connection::finishRequest(bool close_after) {
  uncork();
  have_head_ = false;
  body_.clear();
  raw_head_.clear();
  if (close_after) {
    close_after_write_ = true;
    if (queued_bytes_ == 0) abort();
    return;
  }
  busy_ = false;
  armIdleTimer();
  // A pipelined request may already be waiting; parse it outside the current callback stack.
  if (!in_.empty()) {
    gw_.defer([this, alive = alive_] {
      if (*alive && !busy_ && !closing_) process();
    });
  }
}

void Gateway::Connection::abort() {
  if (closing_) return;
  closing_ = true;
  if (exchange_) {
    auto ex = std::move(exchange_);
    ex->clientGone();
  }
  closeHandle();
}

void Gateway::Connection::closeHandle() {
  *alive_ = false;
  gw_.forget(this);
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    delete reinterpret_cast<uv_tcp_t*>(h);
    delete c;
  });
}

}  // namespace gatehouse::proxy
