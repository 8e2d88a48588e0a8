// Node: the embedding API, a program's own node of the mesh with no TUN device and no root (the
// tsnet equivalent). A Node is a WireGuard Device + its UDP port + a Netstack (userspace TCP/IP,
// wg/netstack/) on one libuv loop. Five verbs: start, listen, dial, whoIs, close.
//
//   NodeOptions o;  o.state_dir = "/var/lib/app";  o.addresses = {"10.7.0.2"};
//   o.peers = {{.public_key = k, .endpoint = ..., .allowed_ips = {"10.7.0.0/24"}}};
//   Node node(o);  if (Status st = node.start(); !st) die(st.message());
//   auto l = node.listenFd(8080);            // any thread
//   auto c = l.value()->accept();            // blocking; c->fd is a connected socket
//   auto who = node.whoIs(c->remote.addr);   // who is on the other end
//
// Threads. Every Node runs on one libuv loop thread: NodeOptions::loop, or when that is null a
// thread start() spawns (and close() joins). lwIP's state is process-global (netstack.h), so all
// Nodes of one process must share one loop: give every Node the same NodeOptions::loop (e.g. one
// LoopThread). Which thread may call what:
//   - any thread: start, close, post, whoIs, publicKey, listenPort, the fd API (listenFd,
//     FdListener::accept/close, dialFd). From a thread other than the loop's they post to the
//     loop and wait, so the loop must be running (with an external loop: call them from the loop
//     thread or after the loop runs). The blocking fd calls (accept, dialFd) refuse to run on the
//     loop thread (EDEADLK).
//   - loop thread only (inside post() or a callback): the callback API (listenTcp, listenUdp,
//     dialTcp, and every TcpConn / TcpListener / UdpSocket method), netstack(), device().
// Callbacks fire on the loop thread.
//
// The two ways to use a connection:
//   (a) callbacks on the loop (TcpConn, wg/netstack/tcp_conn.h): the in-process fast path;
//   (b) a file descriptor: a connected TCP socket over 127.0.0.1 bridged to the netstack
//       connection (wg/netstack/fd_bridge.h), with FIN ↔ shutdown(SHUT_WR) and RST ↔
//       ECONNRESET as on kernel sockets. The caller owns the fd and closes it.
//
// Errors are Status values (errno codes + message), never aborts: listen on a used port
// (EADDRINUSE), dial an address no peer routes (EHOSTUNREACH), dial timeout (ETIMEDOUT), refused
// (ECONNREFUSED), any call before start or after close (EBADF).
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "wg/device.h"
#include "wg/env.h"
#include "wg/loop_device.h"
#include "wg/net/addr.h"
#include "wg/netstack/netstack.h"
#include "wg/receive_filter.h"
#include "wg/status.h"

namespace gatehouse::wg {

class FdBridge;
class UdpTransport;

// A static peer, until the control plane distributes them.
struct NodePeer {
  Key32 public_key{};
  std::optional<Endpoint> endpoint = std::nullopt;
  std::vector<IpPrefix> allowed_ips = {};
  std::optional<Key32> preshared_key = std::nullopt;
  uint16_t persistent_keepalive = 0;  // seconds, 0 = off
  std::string name = {};              // reported by whoIs
};

struct NodeOptions {
  // The node key: `private_key`, or else `state_dir`/node.key (base64, created 0600 with a fresh
  // key when missing; refused when group/other may read it).
  std::optional<Key32> private_key;
  std::string state_dir;
  uint16_t listen_port = 0;       // WireGuard UDP port; 0 = any
  std::vector<IpAddr> addresses;  // tunnel addresses (IPv4 and/or IPv6)
  std::vector<NodePeer> peers;
  std::string hostname;
  uint16_t mtu = 1420;
  LogFn log;  // optional
  // Where the node runs. Both null: start() spawns the node's own loop thread. `loop_thread`:
  // a loop thread shared with other Nodes of the process. `loop`: the caller's own libuv loop,
  // which the caller runs; then call start() on that loop's thread.
  class LoopThread* loop_thread = nullptr;
  uv_loop_t* loop = nullptr;
};

// What the node knows about the other end of a connection. Identity is a lookup in the current
// network map, never taken from the traffic. The control plane fills the fields marked (control);
// until then they are empty.
struct Identity {
  Key32 node_public_key{};
  std::vector<IpPrefix> allowed_ips;  // the addresses this node may use as source
  std::string name;                   // peer name (static config) or hostname (control)
  std::optional<Endpoint> endpoint;   // last known underlay endpoint
  bool is_self = false;               // the address is this node's own
  // (control)
  std::string node_id;
  std::string user_login;
  std::string user_display_name;
  std::vector<std::string> groups;
  std::vector<std::string> tags;
  // capability name → JSON-encoded arguments, granted by policy to this peer on this node.
  std::map<std::string, std::vector<std::string>> capabilities;
};

// A connection handed out as a file descriptor. The caller owns `fd`.
struct FdConn {
  int fd = -1;
  Endpoint local;
  Endpoint remote;
};

// Connections accepted on a netstack port, handed out as file descriptors. Thread-safe.
class FdListener {
 public:
  ~FdListener();
  // Waits up to timeout_ms (-1 = forever) for a connection. ETIMEDOUT, EBADF after close, EDEADLK
  // on the loop thread.
  Result<FdConn> accept(int64_t timeout_ms = -1);
  // Readable (an eventfd) while connections are waiting: for poll/epoll users.
  int readyFd() const { return event_fd_; }
  uint16_t port() const { return port_; }
  // Stops listening; wakes waiting accept() calls; closes connections not yet accepted.
  void close();

 private:
  friend class Node;
  FdListener() = default;
  class Node* node_ = nullptr;
  std::shared_ptr<TcpListener> listener_;  // loop thread only
  uint16_t port_ = 0;
  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FdConn> ready_;
  bool closed_ = false;
};

// A libuv loop on its own thread, to share between several Nodes of one process. Close the
// Nodes before destroying it.
class LoopThread {
 public:
  LoopThread();
  ~LoopThread();  // stops the loop once every other handle on it is closed, and joins
  uv_loop_t* loop() { return &loop_; }
  // Runs `fn` on the loop thread (thread-safe).
  void post(std::function<void()> fn);
  bool onLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  uv_loop_t loop_;
  uv_async_t async_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

class Node {
 public:
  static constexpr int64_t kDefaultDialTimeoutMs = 10000;
  static constexpr size_t kFdBacklog = 128;

  explicit Node(NodeOptions options);
  ~Node();  // close()
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  Status start();
  // Aborts every connection and frees the loop handles. Idempotent. With its own loop thread it
  // also joins it; with an external loop the handles finish closing once that loop runs on.
  void close();

  // Runs `fn` on the loop thread (thread-safe). Dropped after close.
  void post(std::function<void()> fn);
  bool onLoopThread() const;

  Result<Identity> whoIs(const IpAddr& addr);
  Result<Key32> publicKey();
  uint16_t listenPort() const { return udp_port_.load(); }

  // ---- callback API: loop thread only ----
  Result<std::shared_ptr<TcpListener>> listenTcp(uint16_t port, AcceptFn on_accept);
  Result<std::shared_ptr<UdpSocket>> listenUdp(uint16_t port);
  // `address` is "ip:port" or "[ip6]:port". on_connected fires once on the loop.
  Result<std::shared_ptr<TcpConn>> dialTcp(const std::string& address, int64_t timeout_ms,
                                           std::function<void(const Status&)> on_connected);
  Netstack* netstack() { return netstack_.get(); }
  Device* device() { return device_.get(); }
  // Receive-side enforcement on decrypted packets before they reach the netstack, with replies
  // to this node's own flows let through (wg/receive_filter.h). No policy (the default) = allow
  // all; the control client sets one from each map.
  ReceiveFilter& receiveFilter() { return receive_filter_; }
  // Adds what a peer's map entry knows (the (control) fields of Identity) to a whoIs answer the
  // device found; the control client sets it from each map. Null = static config only.
  using IdentityEnricher = std::function<void(const IpAddr&, Identity&)>;
  void setIdentityEnricher(IdentityEnricher fn) { identity_enricher_ = std::move(fn); }

  // Resolves the host part of a dial address that is not an IP literal ("ai" in "ai:80") to a
  // tunnel address; the control client sets it from each map. Null = IP literals only. Loop
  // thread only.
  using NameResolver = std::function<std::optional<IpAddr>(const std::string& host)>;
  void setNameResolver(NameResolver fn) { name_resolver_ = std::move(fn); }

  // ICMP echo through the tunnel (netstack mode has no kernel interface to ping from). `done`
  // fires once on the loop with the round-trip time in nanoseconds, or ETIMEDOUT, EHOSTUNREACH
  // (no peer routes `dst`), EAFNOSUPPORT (no node address of that family). Loop thread only.
  using PingFn = std::function<void(const Result<int64_t>&)>;
  void ping(const IpAddr& dst, int64_t timeout_ms, PingFn done);
  // Blocking form for other threads (EDEADLK on the loop thread).
  Result<int64_t> pingWait(const IpAddr& dst, int64_t timeout_ms);

  // Sends a keepalive to every peer with an endpoint (Device::sendKeepalive): after a restart,
  // sessions come back at once. Loop thread only.
  void greetPeers();

  // A snapshot of the device's peers (keys, endpoints, allowed IPs, handshake, bytes). Any thread.
  Result<std::vector<PeerInfo>> peers();

  // ---- fd API: any thread ----
  Result<std::shared_ptr<FdListener>> listenFd(uint16_t port);
  Result<FdConn> dialFd(const std::string& address, int64_t timeout_ms = kDefaultDialTimeoutMs);
  // Bridges a connected TcpConn to a stream socket the caller gives up (loop thread only).
  void bridge(std::shared_ptr<TcpConn> conn, int fd);

 private:
  friend class FdListener;
  class Glue;
  Status loadKey(Key32* key);
  Status startOnLoop(const Key32& key);
  void closeOnLoop();
  Status runOnLoop(const std::function<Status()>& fn);
  Identity identityFor(const IpAddr& addr, bool* found);
  void acceptFd(const std::shared_ptr<FdListener>& l, std::shared_ptr<TcpConn> conn);
  void log(LogLevel level, const std::string& msg) const;

  NodeOptions options_;
  uv_loop_t* loop_ = nullptr;
  std::unique_ptr<LoopThread> own_thread_;
  LoopThread* loop_thread_ = nullptr;  // own_thread_ or options_.loop_thread
  std::atomic<std::thread::id> loop_thread_id_{};
  uv_async_t* async_ = nullptr;  // freed in its close callback
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_{false};
  std::atomic<uint16_t> udp_port_{0};

  // loop thread state
  SystemRandom random_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Netstack> netstack_;
  std::unique_ptr<Glue> glue_;
  ReceiveFilter receive_filter_;
  IdentityEnricher identity_enricher_;
  NameResolver name_resolver_;
  struct PendingPing {
    IpAddr dst;
    int64_t sent_mono_ns = 0;
    PingFn done;
    uv_timer_t* timer = nullptr;  // freed in its close callback
  };
  std::map<uint16_t, std::unique_ptr<PendingPing>> pings_;  // by sequence number
  uint16_t ping_id_ = 0;
  uint16_t ping_seq_ = 0;
  bool consumePingReply(std::span<const uint8_t> ip_packet);
  void failPings();
  std::optional<Endpoint> resolveDial(const std::string& address) const;
  std::vector<FdBridge*> bridges_;
  std::vector<std::weak_ptr<FdListener>> fd_listeners_;
};

}  // namespace gatehouse::wg
