// The libuv side of an upstream connection. Life of a connection:
//
//   connect() ─ IP literal ─────────────────┐
//       └─ uv_getaddrinfo → addresses ──────┴→ uv_tcp_connect (next address on failure)
//            → TLS: session.start(), feed reads until open │ plain: open at once
//            → connect done(ok) → write()/onUpstreamData… → onUpstreamClose or cancel()
//
// One uv_timer serves both deadlines: the connect deadline (resolve through handshake) and the
// read timeout (silence since the last activity of an exchange). It re-arms lazily: reads only
// stamp last_activity_, and the timer, when it fires early, sleeps for the remainder.
//
// Every libuv object sits in its own heap block with an `owner` back-pointer. Detaching clears the
// pointer and starts the close; the callback that finally runs frees the block and finds no owner,
// so the UpstreamConnection itself can vanish at any moment.
#include "proxy/upstream/connection.h"

#include <netdb.h>

#include <cerrno>
#include <cstring>

namespace gatehouse::proxy {

struct UpstreamConnection::Socket {
  uv_tcp_t tcp;
  uv_connect_t connect;
  UpstreamConnection* owner = nullptr;
};

struct UpstreamConnection::Resolver {
  uv_getaddrinfo_t req;
  UpstreamConnection* owner = nullptr;
};

namespace {

struct WriteReq {
  uv_write_t req;
  std::string data;
};

// Reads are consumed synchronously (fed to TLS or delivered), so one buffer per thread suffices
// for every connection on that thread's loop.
void allocReadBuffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  thread_local char storage[64 * 1024];
  *buf = uv_buf_init(storage, sizeof storage);
}

Status uvError(int code, const std::string& what) {
  // libuv codes are negated errno values on Unix, except getaddrinfo's UV_EAI_*.
  if (code > -1000) return Status::fromErrno(-code, what);
  return {EHOSTUNREACH, what + ": " + uv_strerror(code)};
}

std::string formatAddress(const sockaddr_storage& ss) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  uv_ip4_name(a, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
}

const char* stageName(UpstreamConnection::State s) {
  switch (s) {
    case UpstreamConnection::State::kResolving:
      return "resolving";
    case UpstreamConnection::State::kConnecting:
      return "TCP connect";
    case UpstreamConnection::State::kHandshaking:
      return "TLS handshake";
    default:
      return "connect";
  }
}

bool peerGone(int uv_code) {
  return uv_code == UV_EOF || uv_code == UV_ECONNRESET || uv_code == UV_EPIPE;
}

}  // namespace

UpstreamConnection::UpstreamConnection(uv_loop_t* loop, UpstreamTarget target,
                                       std::shared_ptr<TlsContext> tls, ConnectionOptions options)
    : loop_(loop),
      target_(std::move(target)),
      tls_context_(std::move(tls)),
      options_(options),
      read_timeout_ms_(options.read_timeout_ms) {}

UpstreamConnection::~UpstreamConnection() {
  cancel();
  *alive_ = false;
}

void UpstreamConnection::connect(ConnectCallback done) {
  if (state_ != State::kNew) return;
  connect_done_ = std::move(done);
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  connect_deadline_ = static_cast<int64_t>(uv_now(loop_)) + options_.connect_timeout_ms;

  if (target_.tls != (tls_context_ != nullptr)) {
    state_ = State::kConnecting;
    deferred_failure_ = Status(
        EINVAL, "upstream " + target_.authority() +
                    (target_.tls ? " needs a TLS context" : " is plain TCP but got a TLS context"));
    armTimer();
    return;
  }
  sockaddr_storage ss{};
  if (uv_ip4_addr(target_.host.c_str(), target_.port, reinterpret_cast<sockaddr_in*>(&ss)) == 0 ||
      uv_ip6_addr(target_.host.c_str(), target_.port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) {
    addresses_.push_back(ss);
    state_ = State::kConnecting;
    connectNext();
  } else {
    resolve();
  }
  armTimer();
}

void UpstreamConnection::resolve() {
  state_ = State::kResolving;
  resolver_ = new Resolver;
  resolver_->owner = this;
  resolver_->req.data = resolver_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(target_.port);
  int rc = uv_getaddrinfo(
      loop_, &resolver_->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* r = static_cast<Resolver*>(req->data);
        UpstreamConnection* owner = r->owner;
        delete r;
        if (!owner) return uv_freeaddrinfo(res);
        owner->resolver_ = nullptr;
        owner->onResolved(status, res);
      },
      target_.host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete resolver_;
    resolver_ = nullptr;
    deferred_failure_ = uvError(rc, "cannot resolve host " + target_.host);
  }
}

void UpstreamConnection::onResolved(int status, addrinfo* res) {
  if (status != 0) {
    uv_freeaddrinfo(res);
    return fail(uvError(status, "cannot resolve host " + target_.host));
  }
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    addresses_.push_back(ss);
  }
  uv_freeaddrinfo(res);
  state_ = State::kConnecting;
  connectNext();
}

// Tries the remaining addresses in resolver order; a synchronous failure moves on at once, and
// exhausting the list fails through the timer so that connect() never calls back inline.
void UpstreamConnection::connectNext() {
  while (next_address_ < addresses_.size()) {
    const sockaddr_storage& addr = addresses_[next_address_++];
    peer_address_ = formatAddress(addr);
    socket_ = new Socket;
    socket_->owner = this;
    uv_tcp_init(loop_, &socket_->tcp);
    socket_->tcp.data = socket_;
    socket_->connect.data = socket_;
    int rc =
        uv_tcp_connect(&socket_->connect, &socket_->tcp, reinterpret_cast<const sockaddr*>(&addr),
                       [](uv_connect_t* req, int status) {
                         auto* s = static_cast<Socket*>(req->data);
                         if (s->owner) s->owner->onConnected(status);
                       });
    if (rc == 0) return;
    last_connect_error_ = uvError(rc, connectWhat());
    closeSocket();
  }
  if (last_connect_error_.isOk()) {
    last_connect_error_ = Status(EHOSTUNREACH, "host " + target_.host + " has no address");
  }
  deferred_failure_ = last_connect_error_;
  armTimer();
}

std::string UpstreamConnection::connectWhat() const {
  std::string what = "connect to " + target_.authority();
  if (!peer_address_.empty() && peer_address_ != target_.authority()) {
    what += " (" + peer_address_ + ")";
  }
  return what + " failed";
}

void UpstreamConnection::onConnected(int status) {
  if (status != 0) {
    last_connect_error_ = uvError(status, connectWhat());
    closeSocket();
    return connectNext();
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&socket_->tcp);
  uv_tcp_nodelay(&socket_->tcp, 1);
  // Kernel keepalive notices a provider that vanished while our connection sat idle.
  uv_tcp_keepalive(&socket_->tcp, 1, 60);
  uv_read_start(stream, allocReadBuffer, [](uv_stream_t* st, ssize_t n, const uv_buf_t* buf) {
    auto* s = static_cast<Socket*>(st->data);
    if (s->owner) s->owner->onRead(n, buf->base);
  });
  reading_ = true;
  if (!tls_context_) return finishConnect();

  state_ = State::kHandshaking;
  auto session = TlsSession::create(tls_context_, target_.host);
  if (!session) return fail(session.status());
  tls_ = std::move(session.value());
  Status s = tls_->start();
  if (s) s = flushTls();
  if (!s) fail(s);
}

void UpstreamConnection::finishConnect() {
  state_ = State::kOpen;
  armTimer();
  if (read_disabled_) applyReading();
  ConnectCallback done = std::move(connect_done_);
  connect_done_ = nullptr;
  if (done) done(Status::ok());
}

void UpstreamConnection::onRead(ssize_t nread, const char* data) {
  if (nread == 0) return;
  if (nread < 0) {
    int code = static_cast<int>(nread);
    closed_by_peer_ = peerGone(code);
    if (state_ == State::kHandshaking) {
      return fail(
          Status(EPROTO, "TLS handshake with host " + target_.host + " failed: " +
                             (code == UV_EOF ? std::string("the server closed the connection")
                                             : std::string(uv_strerror(code)))));
    }
    return fail(code == UV_EOF ? Status::ok()
                               : uvError(code, "read from " + target_.authority() + " failed"));
  }
  if (!tls_) return deliver({data, static_cast<size_t>(nread)});

  std::shared_ptr<bool> alive = alive_;
  Status s = tls_->feed({reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(nread)});
  if (s) s = flushTls();
  if (!s) return fail(s);
  if (state_ == State::kHandshaking) {
    if (!tls_->open()) return;
    finishConnect();
    if (!*alive || state_ != State::kOpen) return;
  }
  std::string plain = tls_->takePlaintext();
  if (!plain.empty()) {
    deliver(plain);
    if (!*alive || state_ != State::kOpen) return;
  }
  if (tls_->state() == TlsSession::State::kPeerClosed) {
    closed_by_peer_ = true;
    fail(Status::ok());
  }
}

void UpstreamConnection::deliver(std::string_view bytes) {
  exchange_received_ += bytes.size();
  last_activity_ = static_cast<int64_t>(uv_now(loop_));
  if (!callbacks_) {
    // Nobody asked: a server talking out of turn breaks HTTP/1.1 framing for the next request.
    return shutdownIo(Status(EPROTO, "unsolicited bytes from " + target_.authority()));
  }
  callbacks_->onUpstreamData(bytes);
}

Status UpstreamConnection::write(std::string_view bytes) {
  if (state_ != State::kOpen) {
    if (state_ == State::kClosed) {
      return Status(EPIPE, "connection to " + target_.authority() + " is closed" +
                               (close_status_.isOk() ? "" : ": " + close_status_.message()));
    }
    return Status(ENOTCONN, "connection to " + target_.authority() + " is not open yet");
  }
  if (bytes.empty()) return Status::ok();
  bool first_write = exchange_written_ == 0;
  exchange_written_ += bytes.size();
  if (first_write) {
    // The read timeout starts with the request: a connection waiting for its first write is
    // not waiting on the server.
    last_activity_ = static_cast<int64_t>(uv_now(loop_));
    armTimer();
  }
  Status s;
  if (tls_) {
    s = tls_->write({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    if (s) s = flushTls();
  } else {
    s = sendRaw(std::string(bytes));
  }
  if (!s) {
    shutdownIo(s);
    return s;
  }
  exchange_sent_ = true;
  return s;
}

Status UpstreamConnection::flushTls() {
  if (!tls_ || !tls_->hasCiphertext()) return Status::ok();
  return sendRaw(tls_->takeCiphertext());
}

Status UpstreamConnection::sendRaw(std::string bytes) {
  if (!socket_) return Status(EPIPE, "connection to " + target_.authority() + " is closed");
  auto* w = new WriteReq;
  w->data = std::move(bytes);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&socket_->tcp), &buf, 1,
                    [](uv_write_t* req, int status) {
                      auto* s = static_cast<Socket*>(req->handle->data);
                      delete reinterpret_cast<WriteReq*>(req);
                      if (s->owner) s->owner->onWriteDone(status);
                    });
  if (rc != 0) {
    delete w;
    closed_by_peer_ = peerGone(rc);
    return uvError(rc, "write to " + target_.authority() + " failed");
  }
  ++writes_in_flight_;
  return Status::ok();
}

void UpstreamConnection::onWriteDone(int status) {
  if (writes_in_flight_ > 0) --writes_in_flight_;
  if (status != 0) {
    closed_by_peer_ = peerGone(status);
    return fail(uvError(status, "write to " + target_.authority() + " failed"));
  }
  last_activity_ = static_cast<int64_t>(uv_now(loop_));
  if (writes_in_flight_ == 0 && state_ == State::kOpen && callbacks_) {
    callbacks_->onUpstreamDrained();
  }
}

void UpstreamConnection::readDisable(bool disable) {
  if (read_disabled_ == disable) return;
  read_disabled_ = disable;
  // A paused reader is not a silent server: restart the silence clock on resume.
  if (!disable) last_activity_ = static_cast<int64_t>(uv_now(loop_));
  if (state_ == State::kOpen) applyReading();
}

void UpstreamConnection::applyReading() {
  if (!socket_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&socket_->tcp);
  if (read_disabled_ && reading_) {
    uv_read_stop(stream);
    reading_ = false;
  } else if (!read_disabled_ && !reading_) {
    uv_read_start(stream, allocReadBuffer, [](uv_stream_t* st, ssize_t n, const uv_buf_t* buf) {
      auto* s = static_cast<Socket*>(st->data);
      if (s->owner) s->owner->onRead(n, buf->base);
    });
    reading_ = true;
  }
  armTimer();
}

void UpstreamConnection::setReadTimeout(int64_t ms) {
  read_timeout_ms_ = ms;
  armTimer();
}

bool UpstreamConnection::readTimeoutActive() const {
  return state_ == State::kOpen && read_timeout_ms_ > 0 && exchange_written_ > 0 && !read_disabled_;
}

void UpstreamConnection::armTimer() {
  if (!timer_) return;
  int64_t now = static_cast<int64_t>(uv_now(loop_));
  int64_t due = -1;
  if (!deferred_failure_.isOk()) {
    due = now;
  } else if (state_ != State::kOpen && state_ != State::kClosed && state_ != State::kNew) {
    due = connect_deadline_;
  } else if (readTimeoutActive()) {
    due = last_activity_ + read_timeout_ms_;
  }
  uv_timer_stop(timer_);
  if (due < 0) return;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        if (t->data) static_cast<UpstreamConnection*>(t->data)->onTimer();
      },
      static_cast<uint64_t>(std::max<int64_t>(due - now, 0)), 0);
}

void UpstreamConnection::onTimer() {
  int64_t now = static_cast<int64_t>(uv_now(loop_));
  if (!deferred_failure_.isOk()) return fail(std::exchange(deferred_failure_, Status::ok()));
  if (state_ == State::kResolving || state_ == State::kConnecting ||
      state_ == State::kHandshaking) {
    if (now >= connect_deadline_) {
      return fail(Status(ETIMEDOUT, "connect to " + target_.authority() + " timed out after " +
                                        std::to_string(options_.connect_timeout_ms) + " ms (" +
                                        stageName(state_) + ")"));
    }
  } else if (readTimeoutActive() && now - last_activity_ >= read_timeout_ms_) {
    return fail(Status(ETIMEDOUT, "read timeout: no bytes from " + target_.authority() + " for " +
                                      std::to_string(read_timeout_ms_) + " ms"));
  }
  armTimer();
}

void UpstreamConnection::fail(const Status& status) {
  if (state_ == State::kClosed) return;
  State was = state_;
  shutdownIo(status);
  if (was != State::kOpen) {
    ConnectCallback done = std::move(connect_done_);
    connect_done_ = nullptr;
    if (done) done(status);
  } else if (callbacks_) {
    callbacks_->onUpstreamClose(status);
  }
}

void UpstreamConnection::shutdownIo(const Status& status) {
  if (state_ == State::kClosed) return;
  failed_in_ = state_;
  state_ = State::kClosed;
  close_status_ = status;
  deferred_failure_ = Status::ok();
  closeSocket();
  if (resolver_) {
    resolver_->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolver_->req));  // its callback frees it
    resolver_ = nullptr;
  }
  if (timer_) {
    timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  tls_.reset();
}

void UpstreamConnection::closeSocket() {
  if (!socket_) return;
  socket_->owner = nullptr;
  // Pending connect and write requests complete with UV_ECANCELED before the close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&socket_->tcp),
           [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
  socket_ = nullptr;
  reading_ = false;
  writes_in_flight_ = 0;
}

void UpstreamConnection::cancel() {
  connect_done_ = nullptr;
  shutdownIo(Status(ECANCELED, "cancelled"));
}

void UpstreamConnection::close() {
  if (state_ == State::kOpen && tls_) {
    // uv_write tries the socket synchronously, so the alert usually leaves before the close.
    tls_->shutdown();
    (void)flushTls();
  }
  cancel();
}

std::string UpstreamConnection::alpn() const { return tls_ ? tls_->alpn() : std::string(); }

size_t UpstreamConnection::bufferedBytes() const {
  return socket_
             ? uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&socket_->tcp))
             : 0;
}

bool UpstreamConnection::retryable() const {
  return nothingSent() || (reused_ && exchange_received_ == 0 && closed_by_peer_);
}

void UpstreamConnection::resetExchange() {
  exchange_written_ = 0;
  exchange_received_ = 0;
  exchange_sent_ = false;
  closed_by_peer_ = false;
  read_timeout_ms_ = options_.read_timeout_ms;
  callbacks_ = nullptr;
  readDisable(false);
  armTimer();
}

}  // namespace gatehouse::proxy
