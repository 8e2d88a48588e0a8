// One connection from the gateway to a provider: resolve → TCP connect → TLS handshake (or plain
// TCP for a provider marked local) → bytes both ways → close. It moves bytes only: the gateway
// serializes requests and parses responses (proxy/http), this carries them.
//
// Thread: the loop's thread only; every callback fires on it, from a libuv callback, never from
// inside a method of this class (connect(), write() and friends return before anything fires).
//
// Ownership: the caller (or UpstreamPool) owns the UpstreamConnection. Its libuv handles and
// requests live in separate heap blocks freed in their own close/completion callbacks, so the
// object may be destroyed at any time — including from inside one of its callbacks — and the
// loop finishes the cleanup. Destroying or cancel()ing stops all callbacks at once.
//
// Callback contract:
//   connect(done): `done` fires exactly once, unless cancel()/destruction comes first. On ok the
//     connection is kOpen; on error it is kClosed and failedIn() says which stage failed.
//   Callbacks::onUpstreamData: plaintext from the server, in order, zero or more times while open
//     and reading is enabled. Set callbacks before the first write().
//   Callbacks::onUpstreamClose: at most once, when an open connection ends on its own: the server
//     closed it (ok status), an I/O or TLS error, or the read timeout (ETIMEDOUT). Not fired for
//     cancel(), close(), destruction, or a write() that returned an error.
//   Callbacks::onUpstreamDrained: every queued write has been handed to the kernel.
//
// Retrying ("nothing sent yet"): an exchange is what the current owner wrote and read since it got
// the connection. nothingSent() is the strict signal: no byte of the request was handed to the
// socket, so a retry cannot double-send. retryable() adds the keep-alive race: the connection came
// from the pool and the server closed it (FIN, reset, EPIPE) before any response byte, which is a
// server timing out an idle connection while our request was in flight. That is the bet browsers
// make; a server could in principle have acted on the request, so a caller that must never
// double-send (LLM calls cost money) may insist on nothingSent(). Either way: retry once, on a
// fresh connection.
//
// The process must ignore SIGPIPE: libuv writes with write(2), and a reset peer would otherwise
// kill it instead of producing EPIPE.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/upstream/target.h"
#include "proxy/upstream/tls.h"
#include "wg/status.h"

namespace gatehouse::proxy {

struct ConnectionOptions {
  // Resolve + TCP connect + TLS handshake, end to end.
  int64_t connect_timeout_ms = 10'000;
  // Longest silence from the server once the exchange has written something. Long by default:
  // a non-streaming completion can think for minutes before its first byte.
  int64_t read_timeout_ms = 600'000;
};

class UpstreamConnection {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    virtual void onUpstreamData(std::string_view bytes) = 0;
    // Ok status: the server closed (TCP FIN or TLS close_notify). Otherwise the error.
    virtual void onUpstreamClose(const Status& status) = 0;
    virtual void onUpstreamDrained() {}
  };
  using ConnectCallback = std::function<void(const Status&)>;

  enum class State { kNew, kResolving, kConnecting, kHandshaking, kOpen, kClosed };

  // `tls` must be non-null iff target.tls.
  UpstreamConnection(uv_loop_t* loop, UpstreamTarget target, std::shared_ptr<TlsContext> tls,
                     ConnectionOptions options);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Starts resolve/connect/handshake. Call once.
  void connect(ConnectCallback done);
  // Stops everything now: pending connect, reads, timers. No callback fires afterwards.
  // Idempotent; the destructor calls it.
  void cancel();
  // Like cancel(), but first queues a TLS close_notify (best effort) so the server sees a clean
  // end.
  void close();

  void setCallbacks(Callbacks* callbacks) { callbacks_ = callbacks; }
  // Queues bytes for the server. Errors (not open, TLS failure, socket error) close the
  // connection and are returned here rather than through onUpstreamClose.
  Status write(std::string_view bytes);
  // Flow control for streaming to a slow client: stops reading from the socket (and the read
  // timeout) until re-enabled.
  void readDisable(bool disable);
  // Overrides options.read_timeout_ms for this connection (0 = none), e.g. per provider.
  void setReadTimeout(int64_t ms);

  State state() const { return state_; }
  bool isOpen() const { return state_ == State::kOpen; }
  // The stage a failed connect() or a closed connection ended in.
  State failedIn() const { return failed_in_; }
  const UpstreamTarget& target() const { return target_; }
  // "127.0.0.1:8443" once connected, for logs.
  const std::string& peerAddress() const { return peer_address_; }
  // Negotiated ALPN ("http/1.1"), empty for plain TCP.
  std::string alpn() const;
  // Bytes accepted by write() but not yet handed to the kernel.
  size_t bufferedBytes() const;

  // --- the current exchange (reset when the pool hands the connection to a new owner) ---
  bool reused() const { return reused_; }
  uint64_t bytesWritten() const { return exchange_written_; }
  uint64_t bytesReceived() const { return exchange_received_; }
  // No byte of this exchange reached the socket.
  bool nothingSent() const { return !exchange_sent_; }
  // See "Retrying" above. Meaningful after write() failed or onUpstreamClose fired.
  bool retryable() const;

  struct Socket;    // one TCP handle, freed in its close callback (connection.cc)
  struct Resolver;  // one uv_getaddrinfo request, freed in its callback

 private:
  friend class UpstreamPool;
  // Called by the pool when a connection goes idle or changes owner: a new exchange starts.
  void resetExchange();

  void resolve();
  void onResolved(int status, struct addrinfo* res);
  void connectNext();
  std::string connectWhat() const;
  void onConnected(int status);
  void finishConnect();
  void onRead(ssize_t nread, const char* data);
  void deliver(std::string_view bytes);
  Status sendRaw(std::string bytes);
  Status flushTls();
  void onWriteDone(int status);
  void applyReading();
  bool readTimeoutActive() const;
  void armTimer();
  void onTimer();
  // Ends a connect() in failure (fires `done`) or an open connection (fires onUpstreamClose).
  void fail(const Status& status);
  // Closes every libuv object and the TLS session; fires nothing.
  void shutdownIo(const Status& status);
  void closeSocket();

  uv_loop_t* loop_;
  UpstreamTarget target_;
  std::shared_ptr<TlsContext> tls_context_;
  ConnectionOptions options_;
  int64_t read_timeout_ms_;
  Callbacks* callbacks_ = nullptr;
  ConnectCallback connect_done_;
  State state_ = State::kNew;
  State failed_in_ = State::kNew;
  Status close_status_;

  Socket* socket_ = nullptr;
  Resolver* resolver_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::unique_ptr<TlsSession> tls_;
  std::vector<sockaddr_storage> addresses_;
  size_t next_address_ = 0;
  Status last_connect_error_;
  Status deferred_failure_;  // reported from the timer so no callback fires inside a method
  std::string peer_address_;

  int64_t connect_deadline_ = 0;  // uv_now() ms
  int64_t last_activity_ = 0;     // uv_now() ms of the last read, completed write or resume
  bool read_disabled_ = false;
  bool reading_ = false;
  size_t writes_in_flight_ = 0;

  bool reused_ = false;
  uint64_t exchange_written_ = 0;
  uint64_t exchange_received_ = 0;
  bool exchange_sent_ = false;  // some write of this exchange was handed to libuv
  bool closed_by_peer_ = false;

  // Flipped to false by the destructor; callers of user callbacks hold a copy to notice.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gatehouse::proxy
