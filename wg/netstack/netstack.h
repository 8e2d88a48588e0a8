// Netstack: a userspace TCP/IP stack for one node, on lwIP 2.1.3 as Debian packages it
// (reference §14). IP packets the WireGuard device decrypts go in through input(); packets lwIP
// sends come out through the PacketFn given at creation (the node hands them to the device).
//
// Integration (reference §14.2): lwIP runs in single-threaded mode on one libuv loop.
// lwip_init() runs once per process (guarded), after srand() from libsodium (P4); never
// tcpip_init() (L1). One point-to-point netif per node with input = ip_input (L2, L3); the stack's
// timeouts run from one uv_timer (L4); raw API only (L5). lwIP's state is process-global (pcb
// lists, netif list, timeouts), so every Netstack of a process must live on the same loop:
// create() fails with EBUSY otherwise. Several Netstacks on that loop are isolated from each
// other: every pcb is bound to its node's netif and addresses, inbound packets must be addressed
// to the node, and packets lwIP routes out of the wrong netif are handed to the node that owns
// their source address.
//
// Safety filter on input: a packet reaches lwIP only if its destination is one of the node's
// addresses and its source is not (nor loopback, unspecified or multicast). lwIP answers such
// packets through netif_loop_output, which aborts the process in this build (P1). For the same
// reason dials and datagrams to the node's own addresses never enter lwIP: they are served by an
// in-process pipe (TcpConn) or delivered directly (UdpSocket). Only TCP, UDP and ICMP(v6) (IPv6:
// at most one fragment header) reach lwIP: Debian's build compiles in UDP-Lite, and a UDP-Lite
// datagram whose checksum coverage exceeds its length trips an LWIP_ASSERT (abort).
//
// Threads: none of this is thread-safe (P9). Every call, and every callback, happens on the loop
// thread (L7). Callbacks fire either inside input() / the timer (lwIP events) or from a deferred
// loop callback (self-dial pipes, buffered data after setHandlers); never inside the call that
// registered them, except where noted.
//
// TIME_WAIT: the side that closes first keeps a TIME_WAIT pcb (~330 bytes) for 2 MSL (2 min),
// and Debian's lwIP (MEMP_MEM_MALLOC) never reclaims one early (tcp_kill_timewait only runs when a
// fixed pool is exhausted), so a server that closes many connections would grow without bound.
// Each Netstack therefore keeps at most NetstackOptions::max_timewait of its own: when one more
// enters TIME_WAIT, the oldest (by lwIP's measure, tcp_ticks - pcb->tmr) are aborted silently
// and counted in timewait_evicted. An evicted pcb no longer guards its 4-tuple against old
// duplicates; the port choice of a reused 4-tuple and TCP's sequence checks then apply, as when
// a kernel recycles TIME_WAIT sockets. close() drops the node's remaining TIME_WAIT pcbs.
//
// Ownership: Netstack owns its netif and the lwIP pcbs; TcpConn, TcpListener and UdpSocket are
// shared_ptr handles (the stack keeps its own reference while lwIP may still call back). Closing
// or destroying the Netstack aborts what is left and makes every handle return EBADF.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "wg/net/addr.h"
#include "wg/netstack/tcp_conn.h"
#include "wg/status.h"

struct netif;
struct udp_pcb;

namespace gatehouse::wg {

struct NetstackOptions {
  std::vector<IpAddr> addresses;  // the node's tunnel addresses (IPv4 and/or IPv6)
  uint16_t mtu = 1420;
  std::string name = "gh";  // for logs only
  // TIME_WAIT pcbs this node keeps at most (see above); 0 keeps none.
  size_t max_timewait = 4096;
};

struct NetstackCounters {
  uint64_t in_packets = 0;        // handed to lwIP
  uint64_t in_not_local = 0;      // dropped: destination is not one of our addresses
  uint64_t in_bad_source = 0;     // dropped: our own / loopback / unspecified / multicast source
  uint64_t in_malformed = 0;      // dropped: not an IPv4/IPv6 packet
  uint64_t in_bad_protocol = 0;   // dropped: not TCP/UDP/ICMP (e.g. UDP-Lite, v6 ext. headers)
  uint64_t out_packets = 0;       // handed to the PacketFn
  uint64_t out_redirected = 0;    // routed out of another node's netif, handed to its owner
  uint64_t timewait_evicted = 0;  // TIME_WAIT pcbs aborted early: over max_timewait
};

class UdpSocket;
using PacketFn = std::function<void(std::span<const uint8_t> ip_packet)>;
using AcceptFn = std::function<void(std::shared_ptr<TcpConn>)>;

class Netstack {
 public:
  static Result<std::unique_ptr<Netstack>> create(uv_loop_t* loop, NetstackOptions options,
                                                  PacketFn output);
  ~Netstack();
  Netstack(const Netstack&) = delete;
  Netstack& operator=(const Netstack&) = delete;

  // One decrypted IP packet from the tunnel. Copies it; never fails loudly (drops are counted).
  void input(std::span<const uint8_t> ip_packet);

  bool isLocal(const IpAddr& a) const;
  const std::vector<IpAddr>& addresses() const { return options_.addresses; }
  // The node's address of `family`, or nullopt.
  std::optional<IpAddr> addressOf(IpAddr::Family family) const;
  const NetstackCounters& counters() const { return counters_; }
  // This node's TCP connections in TIME_WAIT now (≤ max_timewait). O(all TIME_WAIT pcbs).
  size_t timeWaitCount() const;
  uv_loop_t* loop() const { return loop_; }

  // TCP listener on `port` (0 = any free port) on every node address. EADDRINUSE when taken.
  Result<std::shared_ptr<TcpListener>> listenTcp(uint16_t port, AcceptFn on_accept);
  // Starts a connection; `on_connected` fires exactly once, later, with ok or an error
  // (ECONNREFUSED, ETIMEDOUT after timeout_ms, EHOSTUNREACH, ...). Errors found at once
  // (EINVAL, EAFNOSUPPORT: no node address of that family) are returned instead, and then the
  // callback never fires. The returned handle can abort() the attempt.
  Result<std::shared_ptr<TcpConn>> dialTcp(const Endpoint& to, int64_t timeout_ms,
                                           std::function<void(const Status&)> on_connected);
  Result<std::shared_ptr<UdpSocket>> listenUdp(uint16_t port);

  // Aborts every connection, closes listeners and sockets, removes the netif. Idempotent.
  void close();
  bool closed() const { return closed_; }

  // Internal (tcp_conn.cc, netstack.cc). post(): run `task` from the loop soon, outside any
  // lwIP callback (dropped if the stack closes first).
  void post(std::function<void()> task);
  void track(const std::shared_ptr<TcpConn>& conn);
  void untrack(TcpConn* conn);
  struct netif* netif() {
    return netif_.get();
  }
  // Delivers a packet lwIP sent; `redirected` when another node's netif carried it.
  void emit(std::span<const uint8_t> packet, bool redirected);

 private:
  friend class TcpListener;
  friend class UdpSocket;
  Netstack(uv_loop_t* loop, NetstackOptions options, PacketFn output);
  Status init();
  void runTasks();
  // Aborts this node's oldest TIME_WAIT pcbs beyond `keep`; returns how many.
  size_t dropTimeWait(size_t keep);
  struct DialTimer;
  void startDialTimer(const std::shared_ptr<TcpConn>& conn, int64_t timeout_ms);
  Result<std::shared_ptr<TcpConn>> dialSelf(const Endpoint& to,
                                            std::function<void(const Status&)> on_connected);

  uv_loop_t* loop_;
  NetstackOptions options_;
  PacketFn output_;
  std::unique_ptr<struct netif> netif_;
  bool netif_added_ = false;
  bool closed_ = false;
  uv_timer_t* task_timer_ = nullptr;  // freed in its close callback
  std::vector<std::function<void()>> tasks_;
  std::vector<DialTimer*> dial_timers_;
  uint16_t next_pipe_port_ = 49152;
  std::vector<std::shared_ptr<TcpConn>> conns_;  // lwIP-backed and pipe conns still open
  std::vector<std::weak_ptr<TcpListener>> listeners_;
  std::vector<std::weak_ptr<UdpSocket>> udp_sockets_;
  std::vector<uint8_t> in_buf_;
  std::vector<struct tcp_pcb*> tw_scratch_;  // dropTimeWait
  NetstackCounters counters_;
};

class TcpListener : public std::enable_shared_from_this<TcpListener> {
 public:
  ~TcpListener();
  uint16_t port() const { return port_; }
  // Stops accepting. Idempotent. Connections already accepted are unaffected.
  void close();
  bool closed() const { return pcbs_.empty(); }
  int accept(struct tcp_pcb* newpcb);  // internal: lwIP accept callback; returns an err_t

 private:
  friend class Netstack;
  Netstack* stack_ = nullptr;
  uint16_t port_ = 0;
  AcceptFn on_accept_;
  std::vector<struct tcp_pcb*> pcbs_;  // one listen pcb per node address
};

// A UDP port on every node address. Datagrams to the node's own address are delivered directly.
class UdpSocket : public std::enable_shared_from_this<UdpSocket> {
 public:
  using MessageFn = std::function<void(const Endpoint& from, std::span<const uint8_t> data)>;
  ~UdpSocket();
  void setOnMessage(MessageFn fn) { on_message_ = std::move(fn); }
  // Best effort, like UDP. Errors: EBADF after close, EAFNOSUPPORT, EMSGSIZE, ENOBUFS.
  Status sendTo(const Endpoint& to, std::span<const uint8_t> data);
  uint16_t port() const { return port_; }
  void close();
  bool closed() const { return pcbs_.empty(); }
  void deliver(const Endpoint& from, std::span<const uint8_t> data);  // internal

 private:
  friend class Netstack;
  Netstack* stack_ = nullptr;
  uint16_t port_ = 0;
  MessageFn on_message_;
  std::vector<struct udp_pcb*> pcbs_;
};

}  // namespace gatehouse::wg
