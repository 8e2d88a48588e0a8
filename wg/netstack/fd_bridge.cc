#include "wg/netstack/fd_bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace gatehouse::wg {
namespace {

constexpr size_t kReadChunk = 65536;

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void closeWithReset(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

bool sameAddr(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

}  // namespace

Status makeLoopbackPair(int* ours, int* theirs) {
  int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lst < 0) return Status::fromErrno(errno, "fd pair: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lst, 8) != 0 ||
      getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(lst);
    return Status::fromErrno(e, "fd pair: listen on 127.0.0.1 (is the loopback interface up?)");
  }
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    if (c >= 0) ::close(c);
    ::close(lst);
    return Status::fromErrno(e, "fd pair: connect to 127.0.0.1");
  }
  sockaddr_in mine{};
  len = sizeof mine;
  getsockname(c, reinterpret_cast<sockaddr*>(&mine), &len);
  int a = -1;
  for (int tries = 0; tries < 16 && a < 0; ++tries) {
    sockaddr_in peer{};
    len = sizeof peer;
    int s = accept4(lst, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s < 0) break;
    if (sameAddr(peer, mine)) {
      a = s;
    } else {
      closeWithReset(s);  // someone else raced to our listener
    }
  }
  ::close(lst);
  if (a < 0) {
    ::close(c);
    return Status(EIO, "fd pair: could not accept our own loopback connection");
  }
  setNoDelay(a);
  setNoDelay(c);
  *ours = a;
  *theirs = c;
  return Status::ok();
}

FdBridge::FdBridge(std::shared_ptr<TcpConn> conn, int fd, DoneFn on_done)
    : conn_(std::move(conn)), fd_(fd), on_done_(std::move(on_done)) {}

FdBridge* FdBridge::start(uv_loop_t* loop, std::shared_ptr<TcpConn> conn, int fd, DoneFn on_done) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  // The fd may be a TCP socket the caller accepted or connected (a forward's local client, a
  // reverse proxy's target): a bridge relays what arrives at once, so Nagle must not hold a
  // reply's second segment for the peer's delayed ACK (40 ms on Linux). Not TCP: no effect.
  setNoDelay(fd);
  auto* b = new FdBridge(std::move(conn), fd, std::move(on_done));
  uv_poll_init_socket(loop, &b->poll_, fd);
  b->poll_.data = b;
  b->conn_->setHandlers({
      .on_data = [b](std::span<const uint8_t> d) { return b->onConnData(d); },
      .on_eof = [b] { b->onConnEof(); },
      .on_writable = [b] { b->onConnWritable(); },
      .on_error = [b](const Status&) { b->onConnError(); },
  });
  b->updatePoll();
  return b;
}

void FdBridge::updatePoll() {
  if (finished_) return;
  int events = 0;
  if (!fd_eof_ && up_head_ == up_.size()) events |= UV_READABLE;
  if (want_fd_write_) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    uv_poll_stop(&poll_);
    return;
  }
  uv_poll_start(&poll_, events, [](uv_poll_t* h, int status, int ev) {
    static_cast<FdBridge*>(h->data)->onPoll(status, ev);
  });
}

void FdBridge::onPoll(int status, int events) {
  if (status < 0) {
    finish(true, true);
    return;
  }
  if ((events & UV_WRITABLE) && want_fd_write_) {
    want_fd_write_ = false;
    conn_->resumeReading();
  }
  if (events & UV_READABLE) readSocket();
  updatePoll();
}

void FdBridge::readSocket() {
  while (!finished_ && !fd_eof_ && up_head_ == up_.size()) {
    size_t space = conn_->writable();
    if (space == 0) return;  // on_writable resumes
    up_.resize(std::min(space, kReadChunk));
    up_head_ = 0;
    ssize_t n = ::read(fd_, up_.data(), up_.size());
    if (n < 0) {
      up_.clear();
      if (errno == EAGAIN || errno == EINTR) return;
      finish(false, true);  // ECONNRESET and friends: reset the mesh side
      return;
    }
    up_.resize(static_cast<size_t>(n));
    if (n == 0) {
      fd_eof_ = true;
      if (!conn_->shutdownWrite().isOk()) finish(true, true);
      maybeDone();
      return;
    }
    if (!flushUp()) return;
  }
}

// Hands buffered socket bytes to the conn. False when some stay (waiting for on_writable).
bool FdBridge::flushUp() {
  while (up_head_ < up_.size()) {
    auto r = conn_->write({up_.data() + up_head_, up_.size() - up_head_});
    if (!r.isOk()) {
      finish(true, true);
      return false;
    }
    if (*r == 0) return false;
    up_head_ += *r;
  }
  up_.clear();
  up_head_ = 0;
  return true;
}

void FdBridge::onConnWritable() {
  if (finished_) return;
  if (flushUp()) readSocket();
  updatePoll();
}

size_t FdBridge::onConnData(std::span<const uint8_t> data) {
  if (finished_) return 0;
  ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) n = 0;
    if (n < 0) {  // EPIPE / ECONNRESET: the fd user is gone; reset the mesh side, like a kernel
      finish(true, true);
      return 0;
    }
  }
  if (static_cast<size_t>(n) < data.size()) {
    want_fd_write_ = true;
    updatePoll();
  }
  return static_cast<size_t>(n);
}

void FdBridge::onConnEof() {
  conn_eof_ = true;
  ::shutdown(fd_, SHUT_WR);
  maybeDone();
}

void FdBridge::onConnError() { finish(true, false); }

void FdBridge::maybeDone() {
  if (fd_eof_ && conn_eof_ && up_head_ == up_.size()) finish(false, false);
}

void FdBridge::abort() { finish(true, true); }

void FdBridge::finish(bool reset_fd, bool reset_conn) {
  if (finished_) return;
  finished_ = true;
  if (reset_conn) {
    conn_->abort();
  } else {
    conn_->close();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) {
    auto* b = static_cast<FdBridge*>(h->data);
    auto done = std::move(b->on_done_);
    if (done) done(b);
    delete b;
  });
  // uv_close took the fd out of epoll synchronously, so it can be closed now.
  if (reset_fd) {
    closeWithReset(fd_);
  } else {
    ::close(fd_);
  }
  fd_ = -1;
}

}  // namespace gatehouse::wg
