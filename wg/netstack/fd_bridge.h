// FdBridge: joins a TcpConn to a kernel stream socket, so a netstack connection can be used
// through a plain file descriptor (blocking I/O, any event loop, any language) or forwarded to a
// local TCP client (`gatehouse bridge`).
//
// Semantics mirror kernel TCP on both sides:
//   socket → conn: bytes, EOF (the fd user's shutdown(SHUT_WR) or close) → shutdownWrite (FIN);
//                  ECONNRESET on the socket → abort() (RST to the mesh peer).
//   conn → socket: bytes, on_eof (peer FIN) → shutdown(fd, SHUT_WR) (the fd user reads EOF);
//                  on_error (RST, timeout) → the socket is closed with SO_LINGER 0, so a TCP fd
//                  user gets ECONNRESET. EPIPE writing to the socket → abort().
// Backpressure: nothing is buffered beyond one read's worth. A socket that does not drain pauses
// the conn (its TCP window closes); a conn without send space stops reading the socket.
//
// makeLoopbackPair() builds the socket pair handed to fd users: a connected TCP pair over
// 127.0.0.1 (not AF_UNIX: only TCP can deliver a reset, i.e. ECONNRESET, to the other end). The
// accepted end is checked to be the one we connected, so another local process racing to connect
// to the short-lived listener gets nothing.
//
// Threads: an FdBridge lives on the netstack's loop; create and abort it there. It owns the fd
// and frees itself after on_done has fired (the fd is closed by then).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <vector>

#include "wg/netstack/tcp_conn.h"
#include "wg/status.h"

namespace gatehouse::wg {

// *ours is non-blocking, *theirs blocking; both close-on-exec, TCP_NODELAY.
Status makeLoopbackPair(int* ours, int* theirs);

class FdBridge {
 public:
  using DoneFn = std::function<void(FdBridge*)>;
  // Takes ownership of `fd` (made non-blocking). `on_done` fires once, on the loop, when both
  // directions have finished or either side failed.
  static FdBridge* start(uv_loop_t* loop, std::shared_ptr<TcpConn> conn, int fd, DoneFn on_done);
  // Resets both sides (node shutting down). on_done still fires.
  void abort();

 private:
  FdBridge(std::shared_ptr<TcpConn> conn, int fd, DoneFn on_done);
  ~FdBridge() = default;
  size_t onConnData(std::span<const uint8_t> data);
  void onConnEof();
  void onConnError();
  void onConnWritable();
  void onPoll(int status, int events);
  void readSocket();
  bool flushUp();
  void updatePoll();
  void finish(bool reset_fd, bool reset_conn);
  void maybeDone();

  std::shared_ptr<TcpConn> conn_;
  int fd_;
  DoneFn on_done_;
  uv_poll_t poll_;
  int poll_events_ = -1;
  std::vector<uint8_t> up_;  // read from the socket, not yet taken by the conn
  size_t up_head_ = 0;
  bool fd_eof_ = false;    // socket sent EOF; FIN forwarded once up_ drained
  bool conn_eof_ = false;  // conn delivered EOF; socket shut for writing
  bool want_fd_write_ = false;
  bool finished_ = false;
};

}  // namespace gatehouse::wg
