// TcpConn: one TCP connection of a Netstack, used through callbacks on the node's loop (the
// in-process fast path). Backed by an lwIP pcb, or, for a dial to the node's own address, by an
// in-process pipe to the accepted end (P1: lwIP would abort on a self-addressed connection).
//
// Flow control, both directions bounded:
//   receive: arriving bytes are buffered and offered to on_data; the TCP window reopens
//            (tcp_recved, P6) only for the bytes on_data consumed. A reader that consumes less
//            pauses delivery until resumeReading(); the sender then stalls on a closed window.
//            Buffered receive data is at most one window (64 KiB, P2).
//   send:    write() copies (TCP_WRITE_FLAG_COPY, P5) at most what fits in the send buffer
//            (tcp_sndbuf, ≤ 64 KiB) and returns how much it took; on_writable fires once space
//            frees up (lwIP's sent callback) after a write() that did not take everything.
//
// Half-close and reset like kernel sockets: shutdownWrite() sends FIN and keeps receiving;
// on_eof fires once after the peer's FIN and all data before it were consumed. abort() sends
// RST; the peer sees ECONNRESET. close() is a graceful full close (FIN after pending data),
// even with unconsumed received data (unlike Linux, which resets then): reset with abort().
//
// Threads: loop thread only (see netstack.h). Handlers fire on the loop, never after close() or
// abort() returned, and at most one on_error (after which the connection is closed). Every
// method is safe after close: it returns EBADF (or does nothing). A handler may close() or
// abort() its own connection and go on using its captures: the handlers are released (from the
// loop) only after the running one returned.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "wg/net/addr.h"
#include "wg/status.h"

struct tcp_pcb;
struct pbuf;

namespace gatehouse::wg {

class Netstack;
class TcpListener;

struct TcpHandlers {
  // Returns how many of the offered bytes were consumed (0..data.size()).
  std::function<size_t(std::span<const uint8_t> data)> on_data = nullptr;
  std::function<void()> on_eof = nullptr;
  std::function<void()> on_writable = nullptr;
  std::function<void(const Status&)> on_error = nullptr;
};

class TcpConn : public std::enable_shared_from_this<TcpConn> {
 public:
  static constexpr size_t kPipeWindow = 65535;  // self-dial pipe: same bound as lwIP's window

  ~TcpConn();

  // Installs the handlers; data already buffered is offered from the loop soon after.
  void setHandlers(TcpHandlers handlers);
  // Bytes accepted (0..data.size()). EPIPE after shutdownWrite/close, ECONNRESET after a reset,
  // ENOTCONN while connecting, EBADF after close.
  Result<size_t> write(std::span<const uint8_t> data);
  // Bytes write() would accept now.
  size_t writable() const;
  Status shutdownWrite();
  void resumeReading();
  void close();
  void abort();

  bool open() const { return state_ != State::kClosed; }
  bool connected() const { return state_ == State::kConnected; }
  const Endpoint& localEndpoint() const { return local_; }
  const Endpoint& remoteEndpoint() const { return remote_; }
  size_t bufferedReceive() const { return rx_.size() - rx_head_; }
  size_t bufferedSend() const;  // written but not yet acknowledged by the peer

  // Internal: construction and lwIP / pipe events (tcp_conn.cc, netstack.cc).
  enum class State { kConnecting, kConnected, kClosed };
  TcpConn(Netstack* stack, Endpoint local, Endpoint remote);
  void attachPcb(struct tcp_pcb* pcb);
  static void makePipe(const std::shared_ptr<TcpConn>& a, const std::shared_ptr<TcpConn>& b);
  void setConnectCallback(std::function<void(const Status&)> fn) { on_connected_ = std::move(fn); }
  void setState(State s) { state_ = s; }
  void runDeferred();
  void fail(const Status& status);  // closes and reports on_error (or the connect callback)
  void finishConnect(const Status& status);  // ok: connected; else fail()
  void detach();                             // Netstack closing: abort without callbacks

  static int onRecv(void* arg, struct tcp_pcb* pcb, struct pbuf* p, int err);
  static int onSent(void* arg, struct tcp_pcb* pcb, uint16_t len);
  static void onErr(void* arg, int err);
  static int onConnected(void* arg, struct tcp_pcb* pcb, int err);

 private:
  void deliver();
  void consumed(size_t n);
  void peerFin();
  void markClosed();
  void releaseHandlers();
  void schedule();

  // Marks a handler invocation. Handlers are released only when none is running (markClosed).
  class DispatchScope {
   public:
    explicit DispatchScope(TcpConn* c);
    ~DispatchScope();
    DispatchScope(const DispatchScope&) = delete;
    DispatchScope& operator=(const DispatchScope&) = delete;

   private:
    TcpConn* c_;
  };

  Netstack* stack_;
  Endpoint local_, remote_;
  State state_ = State::kConnecting;
  struct tcp_pcb* pcb_ = nullptr;
  std::weak_ptr<TcpConn> pipe_peer_;  // self-dial backend
  bool is_pipe_ = false;

  TcpHandlers handlers_;
  std::function<void(const Status&)> on_connected_;
  std::vector<uint8_t> rx_;
  size_t rx_head_ = 0;
  bool paused_ = false;
  bool fin_received_ = false;
  bool eof_delivered_ = false;
  bool write_shut_ = false;
  bool want_writable_ = false;
  bool in_callback_ = false;    // inside an lwIP callback for this pcb
  bool aborted_in_cb_ = false;  // abort() inside it: the callback must return ERR_ABRT
  bool deferred_ = false;
  int dispatching_ = 0;      // handler invocations on the stack (DispatchScope)
  Status pending_error_;     // reported from the loop (pipe reset)
  size_t pipe_unacked_ = 0;  // bytes this pipe end wrote that the peer has not consumed
};

}  // namespace gatehouse::wg
