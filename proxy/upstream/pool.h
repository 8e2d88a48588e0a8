// Keep-alive pool of upstream connections, one idle list per UpstreamTarget (scheme, host, port,
// TLS trust). The gateway acquires a connection per request, writes the request, reads the
// response, and releases the connection: reusable if the response was complete and both sides
// framed it (HTTP/1.1 keep-alive), otherwise not.
//
//   acquire(target, cb) → cb(connection) on the loop: an idle one (most recently used first) if
//                         one is still open, else a new one (resolve, connect, TLS)
//   release(conn, true) → back on the idle list, watched for EOF; expires after idle_timeout_ms
//   release(conn, false) or destroy it → closed
//
// Idle connections keep reading: a server that closes one (FIN, reset, close_notify) or sends
// bytes out of turn gets it dropped at once, so acquire() rarely hands out a dead connection. The
// race remains (the server may close while our request is in flight); UpstreamConnection's
// retryable() tells the caller when one retry on a fresh connection is safe.
//
// Thread: the loop's thread only. Callbacks fire on the loop, never inside acquire() (even a ready
// idle connection is handed out from a zero-delay timer, so callers need no reentrancy guards).
//
// Ownership: the pool owns idle connections and pending acquires; a handed-out connection belongs
// to the caller until release(). Destroying the pool closes its idle connections and cancels
// pending acquires without callbacks; handed-out connections stay valid (but cannot be released
// into a destroyed pool). Run the loop afterwards so libuv can free the handles.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "proxy/upstream/connection.h"
#include "proxy/upstream/target.h"
#include "proxy/upstream/tls.h"
#include "wg/status.h"

namespace gatehouse::proxy {

struct PoolOptions {
  // A busy gateway keeps as many warm connections as it has calls in flight: evicting them only
  // to connect again costs a TCP (and TLS) handshake per request.
  size_t max_idle_per_upstream = 256;
  // Below the 60–120 s keep-alive of the large providers' front ends, so we usually drop first.
  int64_t idle_timeout_ms = 55'000;
  ConnectionOptions connection;
};

struct PoolStats {
  uint64_t connects = 0;            // new connections established (TLS verified)
  uint64_t connect_failures = 0;    // resolve or TCP connect failed or timed out
  uint64_t handshake_failures = 0;  // TLS handshake failed or timed out, or the cert did not verify
  uint64_t reuses = 0;              // acquires served by an idle connection
  uint64_t idle_closed = 0;         // idle connections the server closed (or broke) under us
  uint64_t idle_expired = 0;        // idle connections we closed after idle_timeout_ms
  uint64_t idle_evicted = 0;        // dropped because max_idle_per_upstream was reached
  uint64_t released_closed = 0;     // released as not reusable (or found closed)

  PoolStats& operator+=(const PoolStats& o);
};

// Envoy-style handle for an operation in flight. Valid until its callback fires or cancel().
class Cancellable {
 public:
  // Stops the operation; its callback will not fire. Frees what it started.
  virtual void cancel() = 0;

 protected:
  ~Cancellable() = default;
};

class UpstreamPool {
 public:
  using AcquireCallback = std::function<void(Result<std::unique_ptr<UpstreamConnection>>)>;

  explicit UpstreamPool(uv_loop_t* loop, PoolOptions options = {});
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // `cb` fires exactly once unless the returned handle is cancelled first. On success the
  // connection is open, has no callbacks set and a fresh exchange (reused() says whether it came
  // from the idle list). Errors are the connection's (refused, timeout, certificate…) or a TLS
  // configuration error (unreadable CA file). `options` (e.g. a provider's own timeouts) apply
  // to a new connection; null means PoolOptions::connection.
  Cancellable* acquire(const UpstreamTarget& target, AcquireCallback cb,
                       const ConnectionOptions* options = nullptr);
  // Takes the connection back. Reusable connections go idle (if still open, fully flushed, and
  // the idle list has room after evicting the oldest); others are closed.
  void release(std::unique_ptr<UpstreamConnection> connection, bool reusable);

  // Closes every idle connection (e.g. after a config reload changed a provider).
  void closeIdle();

  PoolStats stats() const;
  PoolStats stats(const UpstreamTarget& target) const;
  size_t idleCount() const;
  size_t idleCount(const UpstreamTarget& target) const;

  // The shared TlsContext for `options`, created on first use (loading a CA bundle costs a few
  // milliseconds, paid once per distinct options).
  Result<std::shared_ptr<TlsContext>> tlsContext(const TlsOptions& options);

 private:
  struct Upstream;
  struct IdleEntry;
  struct Waiter;

  Upstream& upstreamFor(const UpstreamTarget& target);
  const Upstream* findUpstream(const UpstreamTarget& target) const;
  void dispatch();
  void serve(Waiter* waiter);
  void onConnected(Waiter* waiter, const Status& status);
  void complete(Waiter* waiter, Result<std::unique_ptr<UpstreamConnection>> result);
  void removeWaiter(Waiter* waiter);
  void dropIdle(IdleEntry* entry);
  void armSweep();
  void sweep();

  uv_loop_t* loop_;
  PoolOptions options_;
  std::map<std::string, std::unique_ptr<Upstream>> upstreams_;   // by poolKey()
  std::map<std::string, std::shared_ptr<TlsContext>> contexts_;  // by trust files
  std::list<std::unique_ptr<Waiter>> waiters_;
  std::deque<Waiter*> queued_;  // acquired, not yet served
  uv_timer_t* dispatch_timer_;
  uv_timer_t* sweep_timer_;
};

}  // namespace gatehouse::proxy
