#include "wg/netstack/tcp_conn.h"

#include <errno.h>

#include <algorithm>

#include "wg/netstack/netstack.h"

extern "C" {
#include "lwip/tcp.h"
}

namespace gatehouse::wg {
namespace {

// on_writable waits for this much free send buffer, so a fast writer is woken per ~11 segments
// rather than per ACK.
constexpr size_t kWritableThreshold = TCP_SND_BUF / 4;

err_t recvCb(void* arg, struct tcp_pcb* pcb, struct pbuf* p, err_t err) {
  return static_cast<err_t>(TcpConn::onRecv(arg, pcb, p, err));
}
err_t sentCb(void* arg, struct tcp_pcb* pcb, u16_t len) {
  return static_cast<err_t>(TcpConn::onSent(arg, pcb, len));
}
void errCb(void* arg, err_t err) { TcpConn::onErr(arg, err); }

// Stops every lwIP callback into a TcpConn for this pcb.
void unhook(struct tcp_pcb* pcb) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);  // lwIP's tcp_recv_null then acknowledges and closes on FIN
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
}

}  // namespace

TcpConn::TcpConn(Netstack* stack, Endpoint local, Endpoint remote)
    : stack_(stack), local_(local), remote_(remote) {}

TcpConn::~TcpConn() {
  if (pcb_ != nullptr) {
    unhook(pcb_);
    tcp_abort(pcb_);
  }
}

void TcpConn::attachPcb(struct tcp_pcb* pcb) {
  pcb_ = pcb;
  tcp_arg(pcb, this);
  tcp_recv(pcb, recvCb);
  tcp_sent(pcb, sentCb);
  tcp_err(pcb, errCb);
  tcp_nagle_disable(pcb);  // a byte stream proxy: latency first, writes are already batched
}

void TcpConn::makePipe(const std::shared_ptr<TcpConn>& a, const std::shared_ptr<TcpConn>& b) {
  a->is_pipe_ = b->is_pipe_ = true;
  a->pipe_peer_ = b;
  b->pipe_peer_ = a;
  b->state_ = State::kConnected;
}

void TcpConn::setHandlers(TcpHandlers handlers) {
  if (state_ == State::kClosed) return;
  handlers_ = std::move(handlers);
  schedule();
}

size_t TcpConn::writable() const {
  if (state_ != State::kConnected || write_shut_) return 0;
  if (is_pipe_) {
    auto peer = pipe_peer_.lock();
    return peer && peer->open() ? kPipeWindow - std::min(kPipeWindow, pipe_unacked_) : 0;
  }
  if (pcb_ == nullptr || tcp_sndqueuelen(pcb_) >= TCP_SND_QUEUELEN) return 0;
  return tcp_sndbuf(pcb_);
}

size_t TcpConn::bufferedSend() const {
  if (is_pipe_) return pipe_unacked_;
  return pcb_ == nullptr ? 0 : TCP_SND_BUF - tcp_sndbuf(pcb_);
}

Result<size_t> TcpConn::write(std::span<const uint8_t> data) {
  if (state_ == State::kClosed) {
    return pending_error_.isOk() ? Status(EBADF, "write: connection is closed") : pending_error_;
  }
  if (state_ == State::kConnecting) return Status(ENOTCONN, "write: not connected yet");
  if (write_shut_) return Status(EPIPE, "write: connection was shut down for writing");
  size_t n = std::min(data.size(), writable());
  if (n > 0 && is_pipe_) {
    auto peer = pipe_peer_.lock();
    peer->rx_.insert(peer->rx_.end(), data.begin(), data.begin() + n);
    pipe_unacked_ += n;
    peer->schedule();
  } else if (n > 0) {
    err_t err = tcp_write(pcb_, data.data(), static_cast<u16_t>(std::min<size_t>(n, 0xffff)),
                          TCP_WRITE_FLAG_COPY);  // P5
    if (err == ERR_MEM) {
      n = 0;
    } else if (err != ERR_OK) {
      return Status(EIO, std::string("write: ") + lwip_strerr(err));
    } else {
      n = std::min<size_t>(n, 0xffff);
      tcp_output(pcb_);
    }
  }
  if (n < data.size()) want_writable_ = true;
  return n;
}

Status TcpConn::shutdownWrite() {
  if (state_ == State::kClosed) return Status(EBADF, "shutdown: connection is closed");
  if (state_ == State::kConnecting) return Status(ENOTCONN, "shutdown: not connected yet");
  if (write_shut_) return Status::ok();
  write_shut_ = true;
  want_writable_ = false;
  if (is_pipe_) {
    if (auto peer = pipe_peer_.lock()) peer->peerFin();
    return Status::ok();
  }
  if (pcb_ == nullptr) return Status::ok();
  if (fin_received_) {
    // Both directions are done: hand the pcb back to lwIP (see peerFin).
    peerFin();
    return Status::ok();
  }
  err_t err = tcp_shutdown(pcb_, 0, 1);
  if (err != ERR_OK) return Status(EIO, std::string("shutdown: ") + lwip_strerr(err));
  return Status::ok();
}

void TcpConn::resumeReading() {
  if (!paused_) return;
  paused_ = false;
  schedule();
}

void TcpConn::markClosed() {
  state_ = State::kClosed;
  want_writable_ = false;
  // on_connected_ never runs in place (fail and finishConnect call a copy): release it now.
  auto old_connect = std::make_shared<std::function<void(const Status&)>>(std::move(on_connected_));
  on_connected_ = nullptr;
  stack_->post([old_connect] {});
  if (dispatching_ == 0) releaseHandlers();  // else ~DispatchScope, once the handler returned
  stack_->untrack(this);
}

void TcpConn::releaseHandlers() {
  // Moving a std::function relocates small captures stored inline, so this must never run while
  // one of the handlers is on the stack (a handler that closes its own connection and then uses
  // its captures). Destroyed from the loop: the captures may own whoever called close().
  auto old = std::make_shared<TcpHandlers>(std::move(handlers_));
  handlers_ = {};
  stack_->post([old] {});
}

TcpConn::DispatchScope::DispatchScope(TcpConn* c) : c_(c) { ++c_->dispatching_; }

TcpConn::DispatchScope::~DispatchScope() {
  if (--c_->dispatching_ == 0 && c_->state_ == State::kClosed) c_->releaseHandlers();
}

void TcpConn::close() {
  if (state_ == State::kClosed) return;
  markClosed();
  if (is_pipe_) {
    if (auto peer = pipe_peer_.lock(); peer && !write_shut_) peer->peerFin();
    return;
  }
  if (pcb_ == nullptr) return;
  struct tcp_pcb* pcb = pcb_;
  pcb_ = nullptr;
  // Graceful even with unconsumed data (typically the request a handler answers and closes
  // inside on_data): lwIP would otherwise send RST. abort() is the way to reset.
  tcp_recved(pcb, static_cast<u16_t>(std::min<size_t>(bufferedReceive(), 0xffff)));
  unhook(pcb);
  if (tcp_close(pcb) != ERR_OK) {  // out of memory for the FIN: reset instead
    tcp_abort(pcb);
    if (in_callback_) aborted_in_cb_ = true;
  }
}

void TcpConn::abort() {
  if (state_ == State::kClosed) return;
  markClosed();
  if (is_pipe_) {
    if (auto peer = pipe_peer_.lock()) {
      peer->pending_error_ = Status(ECONNRESET, "connection reset by peer");
      peer->schedule();
    }
    return;
  }
  if (pcb_ == nullptr) return;
  struct tcp_pcb* pcb = pcb_;
  pcb_ = nullptr;
  unhook(pcb);
  tcp_abort(pcb);  // sends RST
  if (in_callback_) aborted_in_cb_ = true;
}

void TcpConn::detach() {
  if (pcb_ != nullptr) {
    unhook(pcb_);
    tcp_abort(pcb_);
    pcb_ = nullptr;
  }
  state_ = State::kClosed;
  on_connected_ = nullptr;
  if (dispatching_ == 0) releaseHandlers();  // Netstack::close() may run inside a handler
}

void TcpConn::fail(const Status& status) {
  if (state_ == State::kClosed) return;
  auto keep = shared_from_this();
  bool connecting = state_ == State::kConnecting;
  auto on_connected = on_connected_;
  auto on_error = handlers_.on_error;
  if (is_pipe_) {
    if (auto peer = pipe_peer_.lock(); peer && peer->open() && status.code() != ECONNRESET) {
      peer->pending_error_ = Status(ECONNRESET, "connection reset by peer");
      peer->schedule();
    }
  } else if (pcb_ != nullptr) {
    struct tcp_pcb* pcb = pcb_;
    pcb_ = nullptr;
    unhook(pcb);
    tcp_abort(pcb);
    if (in_callback_) aborted_in_cb_ = true;
  }
  markClosed();
  pending_error_ = status;
  if (connecting) {
    if (on_connected) on_connected(status);
  } else if (on_error) {
    on_error(status);
  }
}

void TcpConn::finishConnect(const Status& status) {
  if (state_ != State::kConnecting) return;
  if (!status.isOk()) {
    fail(status);
    return;
  }
  state_ = State::kConnected;
  auto cb = std::move(on_connected_);
  on_connected_ = nullptr;
  if (cb) cb(status);
}

void TcpConn::schedule() {
  if (deferred_ || state_ == State::kClosed) return;
  deferred_ = true;
  stack_->post([self = shared_from_this()] {
    self->deferred_ = false;
    self->runDeferred();
  });
}

void TcpConn::runDeferred() {
  if (state_ == State::kClosed) return;
  if (!pending_error_.isOk()) {
    Status st = pending_error_;
    fail(st);
    return;
  }
  deliver();
  if (state_ != State::kClosed && want_writable_ && writable() > 0) {
    want_writable_ = false;
    DispatchScope scope(this);
    if (handlers_.on_writable) handlers_.on_writable();
  }
}

void TcpConn::deliver() {
  auto keep = shared_from_this();
  while (state_ != State::kClosed && !paused_ && handlers_.on_data && bufferedReceive() > 0) {
    std::span<const uint8_t> avail(rx_.data() + rx_head_, bufferedReceive());
    size_t n;
    {
      DispatchScope scope(this);
      n = std::min(handlers_.on_data(avail), avail.size());
    }
    if (state_ == State::kClosed) return;
    rx_head_ += n;
    consumed(n);
    if (n < avail.size()) paused_ = true;
  }
  if (rx_head_ == rx_.size()) {
    rx_.clear();
    rx_head_ = 0;
  } else if (rx_head_ >= 32768) {
    rx_.erase(rx_.begin(), rx_.begin() + static_cast<ptrdiff_t>(rx_head_));
    rx_head_ = 0;
  }
  if (state_ != State::kClosed && fin_received_ && bufferedReceive() == 0 && !eof_delivered_ &&
      handlers_.on_eof) {
    eof_delivered_ = true;
    DispatchScope scope(this);
    handlers_.on_eof();
  }
}

void TcpConn::consumed(size_t n) {
  if (n == 0) return;
  if (is_pipe_) {
    if (auto peer = pipe_peer_.lock()) {
      peer->pipe_unacked_ -= std::min(n, peer->pipe_unacked_);
      if (peer->want_writable_) peer->schedule();
    }
    return;
  }
  while (pcb_ != nullptr && n > 0) {  // P6: the window reopens only as the reader consumes
    u16_t k = static_cast<u16_t>(std::min<size_t>(n, 0xffff));
    tcp_recved(pcb_, k);
    n -= k;
  }
}

void TcpConn::peerFin() {
  fin_received_ = true;
  if (!is_pipe_ && pcb_ != nullptr && write_shut_) {
    // FIN both ways: lwIP finishes alone (TIME_WAIT / LAST_ACK) and may free the pcb without
    // telling us, so let go of it now. Whatever we still buffer needs no window any more.
    struct tcp_pcb* pcb = pcb_;
    pcb_ = nullptr;
    tcp_recved(pcb, static_cast<u16_t>(std::min<size_t>(bufferedReceive(), 0xffff)));
    unhook(pcb);
    if (tcp_close(pcb) != ERR_OK) {
      tcp_abort(pcb);
      if (in_callback_) aborted_in_cb_ = true;
    }
  }
  if (is_pipe_) {
    schedule();
  } else {
    deliver();
  }
}

// ---- lwIP callbacks (L7: on the loop thread, from input() or the timeouts timer) ----

int TcpConn::onRecv(void* arg, struct tcp_pcb* pcb, struct pbuf* p, int err) {
  auto* c = static_cast<TcpConn*>(arg);
  if (c == nullptr) {
    if (p != nullptr) {
      tcp_recved(pcb, p->tot_len);
      pbuf_free(p);
    }
    return ERR_OK;
  }
  auto keep = c->shared_from_this();
  c->in_callback_ = true;
  c->aborted_in_cb_ = false;
  if (p == nullptr) {
    c->peerFin();
  } else {
    for (struct pbuf* q = p; q != nullptr; q = q->next) {
      auto* b = static_cast<const uint8_t*>(q->payload);
      c->rx_.insert(c->rx_.end(), b, b + q->len);
    }
    pbuf_free(p);
    c->deliver();
  }
  c->in_callback_ = false;
  return c->aborted_in_cb_ ? ERR_ABRT : ERR_OK;
}

int TcpConn::onSent(void* arg, struct tcp_pcb*, uint16_t) {
  auto* c = static_cast<TcpConn*>(arg);
  if (c == nullptr) return ERR_OK;
  auto keep = c->shared_from_this();
  c->in_callback_ = true;
  c->aborted_in_cb_ = false;
  if (c->want_writable_ && c->writable() >= std::min<size_t>(kWritableThreshold, TCP_SND_BUF)) {
    c->want_writable_ = false;
    DispatchScope scope(c);
    if (c->handlers_.on_writable) c->handlers_.on_writable();
  }
  c->in_callback_ = false;
  return c->aborted_in_cb_ ? ERR_ABRT : ERR_OK;
}

void TcpConn::onErr(void* arg, int err) {
  auto* c = static_cast<TcpConn*>(arg);
  if (c == nullptr) return;
  c->pcb_ = nullptr;  // lwIP has freed it
  bool connecting = c->state_ == State::kConnecting;
  Status st;
  switch (err) {
    case ERR_RST:
      st = connecting
               ? Status(ECONNREFUSED, "dial " + c->remote_.toString() + ": connection refused")
               : Status(ECONNRESET, "connection reset by peer");
      break;
    case ERR_ABRT:
      st = Status(connecting ? ETIMEDOUT : ECONNABORTED,
                  connecting ? "dial " + c->remote_.toString() + ": connection timed out"
                             : "connection aborted (retransmission timeout)");
      break;
    default:
      st = Status(EIO, std::string("connection error: ") + lwip_strerr(static_cast<err_t>(err)));
  }
  c->fail(st);
}

int TcpConn::onConnected(void* arg, struct tcp_pcb*, int err) {
  auto* c = static_cast<TcpConn*>(arg);
  if (c == nullptr) return ERR_OK;
  auto keep = c->shared_from_this();
  c->in_callback_ = true;
  c->aborted_in_cb_ = false;
  c->finishConnect(err == ERR_OK ? Status::ok() : Status(ECONNREFUSED, "connect failed"));
  c->in_callback_ = false;
  return c->aborted_in_cb_ ? ERR_ABRT : ERR_OK;
}

}  // namespace gatehouse::wg
