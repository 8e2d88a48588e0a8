// JoinedNode: a node that joins the mesh through the control plane: the body of `gatehouse up`
// (netstack or TUN mode) and of `gatehouse gateway`, and the way an embedding program joins.
// The control side lives here; the data plane that carries the packets is a DataPlane
// (control/data_plane.h): a wg::Node (netstack, the default) or, with JoinOptions::tun_ifname,
// a kernel TUN interface (root only).
//
//   JoinOptions o;  o.state_dir = "/var/lib/app";  o.control = server;  o.control_key = pinned;
//   o.auth_key = "ghk_…";  o.hostname = "ci-runner-7";
//   JoinedNode n(o);  if (Status st = n.start(); !st) die(st.message());
//   n.node()->listenFd(80) …;  n.node()->dialFd("ai:80") …;  n.node()->whoIs(addr) …
//
// What it does, on the node's loop (one control::Client next to the wg::Node):
//   - keys and the last map persist in the state directory (control/state_dir.h), files 0600;
//   - start() returns once the data plane runs: at once from the persisted map when there is one
//     (the control server may be down), else after registration and the first full map; an auth
//     failure (reused, expired or revoked key; unknown node without a key) is returned with the
//     server's message;
//   - each map is applied with minimal churn (control/map_apply.h): peers, the receive filter,
//     whoIs enrichment, and dial-by-name (peer hostname or DNS name → its tunnel address); in TUN
//     mode also the interface's addresses and mesh routes (control/tun_plane.h);
//   - the client reconnects with backoff and jitter; when the server expires the node key, the
//     client rotates it, re-registers with the auth key, and the device switches to the new key.
//
// Threads: start/close/info from any thread but the loop's; node() and dataPlane() are valid
// between start and close (their own thread rules apply). Ownership: owns the data plane, the
// Client and, unless JoinOptions::loop_thread is given, the loop thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/client.h"
#include "control/data_plane.h"
#include "control/state_dir.h"
#include "wg/node.h"

namespace gatehouse::control {

struct JoinOptions {
  std::string state_dir;  // required
  wg::Endpoint control;   // the control server
  Key32 control_key{};    // its static public key, pinned (printed by `gatehouse control`)
  std::string auth_key;   // first registration, and re-registration after node key expiry
  std::string hostname;
  std::vector<std::string> tags;  // requested tags ("tag:ci"); the key may pre-assign others
  bool ephemeral = false;
  // WireGuard UDP port; 0 = the persisted one, else a free one (then persisted).
  uint16_t listen_port = 0;
  // Hosts to advertise as this node's endpoints (with the UDP port); empty = every non-loopback
  // interface address, or 127.0.0.1 when there is none.
  std::vector<std::string> advertise;
  uint16_t persistent_keepalive = 0;
  int64_t join_timeout_ms = 30000;  // start() without a persisted map
  wg::LogFn log;
  wg::LoopThread* loop_thread = nullptr;
  // TUN mode: the kernel interface to create (root only); empty = netstack mode.
  std::string tun_ifname;
  int tun_mtu = wg::TunDevice::kDefaultMtu;
  // TUN mode: called once, on the loop thread, when the interface goes away by itself (`ip link
  // del`, UAPI socket removed); the node no longer carries traffic and should be closed.
  std::function<void(const std::string& reason)> on_interface_gone;
};

// What the control side knows, for `gatehouse status`.
struct ControlInfo {
  std::string state;  // "connected", "connecting", "failed"
  std::string server;
  uint64_t node_id = 0;
  std::string name;
  std::vector<std::string> addresses;
  std::vector<std::string> endpoints;
  uint64_t map_seq = 0;
  std::string last_error;
  std::shared_ptr<const NetworkMap> map;
};

class JoinedNode {
 public:
  explicit JoinedNode(JoinOptions options);
  ~JoinedNode();  // close()
  JoinedNode(const JoinedNode&) = delete;
  JoinedNode& operator=(const JoinedNode&) = delete;

  Status start();
  void close();

  // The netstack node; nullptr in TUN mode or before start.
  wg::Node* node() { return plane_ ? plane_->node() : nullptr; }
  // The data plane (either mode): status, whoIs and ping for the local API. Null before start.
  DataPlane* dataPlane() { return plane_started_ ? plane_.get() : nullptr; }
  ControlInfo info() const;
  // A peer (or this node) by hostname, DNS name or address text → its first tunnel address (IPv4
  // preferred). Thread-safe.
  std::optional<wg::IpAddr> resolve(const std::string& host) const;

 private:
  void onEvent(const ClientCore::Event& e);
  void applyMap();
  Status startPlane(const NetworkMap& map);
  void finishStart(Status st);
  void log(wg::LogLevel level, const std::string& msg) const;

  JoinOptions options_;
  StateDir state_;
  std::unique_ptr<wg::LoopThread> own_loop_;
  wg::LoopThread* loop_ = nullptr;
  std::unique_ptr<DataPlane> plane_;
  std::atomic<bool> plane_started_{false};
  bool greeted_ = false;            // loop thread: greetPeers() ran after the first applied map
  std::unique_ptr<Client> client_;  // loop thread only
  wg::SystemRandom random_;
  Key32 node_private_{};
  PersistedControl persisted_;
  std::vector<std::string> endpoints_;

  mutable std::mutex mu_;  // guards the fields below (read by info()/resolve() on other threads)
  std::shared_ptr<const NetworkMap> map_;
  std::string last_error_;
  std::string state_name_ = "connecting";

  std::mutex start_mu_;
  std::condition_variable start_cv_;
  bool start_done_ = false;
  Status start_status_;
  std::atomic<bool> closed_{false};
};

// Endpoint hosts for JoinOptions::advertise when none are given: the machine's non-loopback
// interface addresses (IPv4 first), or 127.0.0.1.
std::vector<std::string> defaultAdvertiseHosts();

}  // namespace gatehouse::control
