// HttpCall: one JSON POST to a hook or webhook endpoint and its answer, asynchronous on a libuv
// loop, over the gateway's upstream client (proxy/upstream: UpstreamPool, plain TCP or TLS).
//
//   post() → pool.acquire(endpoint) → write request → parse response (proxy/http) → done(reply)
//
// The whole call has one deadline (`timeout_ms`: connect, send, answer); past it `done` gets
// ETIMEDOUT. A pooled keep-alive connection that turns out closed before any answer byte is
// retried once on a fresh one (UpstreamConnection::retryable). The answer body is capped
// (`max_reply_bytes`, then EMSGSIZE).
//
// Thread: the loop's thread only. `done` fires exactly once, from a libuv callback (never inside
// post()), unless the HttpCall is destroyed first; destroying it cancels everything, and it may
// be destroyed from inside `done`. The pool must outlive the call.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/config/hooks_config.h"
#include "proxy/http/http1.h"
#include "proxy/upstream/pool.h"

namespace gatehouse::proxy {

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpCall final : public UpstreamConnection::Callbacks {
 public:
  using Done = std::function<void(Result<HttpReply>)>;
  using Headers = std::vector<std::pair<std::string, std::string>>;

  static std::unique_ptr<HttpCall> post(uv_loop_t* loop, UpstreamPool& pool,
                                        const HookEndpoint& endpoint, const Headers& headers,
                                        std::string body, int64_t timeout_ms,
                                        size_t max_reply_bytes, Done done);
  ~HttpCall() override;
  HttpCall(const HttpCall&) = delete;
  HttpCall& operator=(const HttpCall&) = delete;

  void onUpstreamData(std::string_view bytes) override;
  void onUpstreamClose(const Status& status) override;

 private:
  HttpCall(uv_loop_t* loop, UpstreamPool& pool, UpstreamTarget target, size_t max_reply_bytes,
           Done done);
  void acquire();
  void onAcquired(Result<std::unique_ptr<UpstreamConnection>> r);
  void handle(http::FeedResult<http::ResponseEvent> r);
  void complete(Result<HttpReply> r);

  uv_loop_t* loop_;
  UpstreamPool& pool_;
  UpstreamTarget target_;
  size_t max_reply_bytes_;
  Done done_;
  std::string request_;
  ConnectionOptions connection_options_;
  Cancellable* pending_ = nullptr;
  std::unique_ptr<UpstreamConnection> conn_;
  http::ResponseParser parser_;
  HttpReply reply_;
  bool retried_ = false;
  bool keep_alive_ = false;  // the answer allows reusing the connection
  int64_t timeout_ms_ = 0;
  Status failure_;               // a request that could not be serialized, reported from the timer
  uv_timer_t* timer_ = nullptr;  // freed in its close callback
};

}  // namespace gatehouse::proxy
