// One POST over the upstream pool. See http_call.h.
#include "proxy/hooks/http_call.h"

#include <cerrno>

namespace gatehouse::proxy {

std::unique_ptr<HttpCall> HttpCall::post(uv_loop_t* loop, UpstreamPool& pool,
                                         const HookEndpoint& endpoint, const Headers& headers,
                                         std::string body, int64_t timeout_ms,
                                         size_t max_reply_bytes, Done done) {
  std::unique_ptr<HttpCall> call(
      new HttpCall(loop, pool, endpoint.target, max_reply_bytes, std::move(done)));
  http::HeaderList h;
  h.add("Host", endpoint.host);
  h.add("Content-Type", "application/json");
  h.add("User-Agent", "gatehouse-hooks/1");
  for (const auto& [n, v] : headers) h.add(n, v);
  h.add("Content-Length", std::to_string(body.size()));
  auto head = http::serializeRequestHead("POST", endpoint.path, h);
  call->timeout_ms_ = timeout_ms;
  if (!head) {
    // Reported from the loop like every other outcome: a zero-delay deadline.
    call->failure_ = Status(EINVAL, "request cannot be sent: " + head.status().message());
    timeout_ms = 0;
  }
  uv_timer_start(
      call->timer_,
      [](uv_timer_t* t) {
        auto* c = static_cast<HttpCall*>(t->data);
        if (!c->failure_) return c->complete(c->failure_);
        c->complete(Status(ETIMEDOUT, c->target_.authority() + " did not answer within " +
                                          std::to_string(c->timeout_ms_) + " ms"));
      },
      static_cast<uint64_t>(timeout_ms), 0);
  if (!head) return call;
  call->request_ = std::move(head.value()) + body;
  call->connection_options_.connect_timeout_ms = timeout_ms;
  call->connection_options_.read_timeout_ms = timeout_ms;
  call->acquire();
  return call;
}

HttpCall::HttpCall(uv_loop_t* loop, UpstreamPool& pool, UpstreamTarget target,
                   size_t max_reply_bytes, Done done)
    : loop_(loop),
      pool_(pool),
      target_(std::move(target)),
      max_reply_bytes_(max_reply_bytes),
      done_(std::move(done)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

HttpCall::~HttpCall() {
  if (pending_ != nullptr) pending_->cancel();
  conn_.reset();
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void HttpCall::acquire() {
  pending_ = pool_.acquire(
      target_,
      [this](Result<std::unique_ptr<UpstreamConnection>> r) {
        pending_ = nullptr;
        onAcquired(std::move(r));
      },
      &connection_options_);
}

void HttpCall::onAcquired(Result<std::unique_ptr<UpstreamConnection>> r) {
  if (!r) return complete(r.status());  // the pool's error names the address and the stage
  conn_ = std::move(r.value());
  conn_->setCallbacks(this);
  parser_ = http::ResponseParser(http::ResponseParser::Options{.reportInterim = false});
  parser_.expectResponseTo("POST");
  reply_ = {};
  Status st = conn_->write(request_);
  if (!st) {
    bool retry = conn_->retryable() && !retried_;
    conn_.reset();
    if (retry) {
      retried_ = true;
      return acquire();
    }
    complete(Status(st.code(), "send to " + target_.authority() + ": " + st.message()));
  }
}

void HttpCall::onUpstreamData(std::string_view bytes) {
  handle(parser_.feed(std::span<const char>(bytes.data(), bytes.size())));
}

void HttpCall::handle(http::FeedResult<http::ResponseEvent> r) {
  for (auto& ev : r.events) {
    if (auto* h = std::get_if<http::ResponseHead>(&ev)) {
      reply_.status = h->status;
      keep_alive_ = h->keepAlive;
    } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
      if (reply_.body.size() + b->data.size() > max_reply_bytes_) {
        return complete(Status(
            EMSGSIZE, "the answer is larger than " + std::to_string(max_reply_bytes_) + " bytes"));
      }
      reply_.body.append(b->data);
    } else if (std::get_if<http::MessageEnd>(&ev)) {
      bool reusable = keep_alive_ && parser_.idle();
      conn_->setCallbacks(nullptr);
      pool_.release(std::move(conn_), reusable);
      return complete(std::move(reply_));
    }
  }
  if (r.error) complete(Status(EPROTO, "malformed HTTP answer: " + r.error->message));
}

void HttpCall::onUpstreamClose(const Status& status) {
  if (status.isOk()) {
    auto r = parser_.finish();
    bool ended = false;
    for (const auto& ev : r.events) ended = ended || std::holds_alternative<http::MessageEnd>(ev);
    if (ended) {
      conn_.reset();
      for (auto& ev : r.events) {
        if (auto* h = std::get_if<http::ResponseHead>(&ev)) reply_.status = h->status;
        if (auto* b = std::get_if<http::BodyChunk>(&ev)) reply_.body.append(b->data);
      }
      return complete(std::move(reply_));
    }
  }
  if (reply_.status == 0 && conn_ && conn_->retryable() && !retried_) {
    retried_ = true;
    conn_.reset();
    return acquire();
  }
  conn_.reset();
  complete(Status(status.isOk() ? ECONNRESET : status.code(),
                  target_.authority() + " closed the connection before answering" +
                      (status.isOk() ? "" : ": " + status.message())));
}

void HttpCall::complete(Result<HttpReply> r) {
  if (!done_) return;
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  conn_.reset();
  uv_timer_stop(timer_);
  // Last: `done` may destroy this call.
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(r));
}

}  // namespace gatehouse::proxy
