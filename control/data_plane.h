// DataPlane: where a JoinedNode's network maps land. The control side (state directory, control
// client, persistence, key rotation, name resolution) is the same for every node; what carries
// the packets differs:
//
//   netstack  a wg::Node: WireGuard + userspace TCP/IP, no TUN, no root (control/netstack_plane.cc)
//   tun       a wg::LoopDevice: a kernel TUN interface with the map's addresses and the mesh
//             routes, `wg show` through its UAPI socket, root only (control/tun_plane.h)
//
// Both enforce the map's packet filter on receive (wg::ReceiveFilter) and apply each map with
// minimal churn (control/map_apply.h): unchanged peers keep their sessions.
//
// Threads: start, apply and setPrivateKey run on the node's loop thread (JoinedNode calls them
// from its control events); close, status, whoIs and ping are called from other threads (the
// local API, shutdown) and never from the loop thread. The JoinedNode owns its DataPlane.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/client_core.h"
#include "wg/device.h"
#include "wg/loop_device.h"
#include "wg/node.h"
#include "wg/status.h"

namespace gatehouse::control {

struct DataPlaneOptions {
  wg::LoopThread* loop = nullptr;  // required: the loop the control client runs on
  uint16_t listen_port = 0;        // WireGuard UDP port (already picked: never 0 in practice)
  std::string hostname;            // used when the map gives none
  uint16_t persistent_keepalive = 0;
  wg::LogFn log;
  // Dial-by-name for the netstack node (peer name → tunnel address). Thread-safe.
  std::function<std::optional<wg::IpAddr>(const std::string&)> resolve;
  // TUN mode only.
  std::string tun_ifname;
  int tun_mtu = wg::TunDevice::kDefaultMtu;
  std::string uapi_dir = "/var/run/wireguard";
  // Fires once (on the loop thread) when the interface goes away on its own: deleted with `ip
  // link del`, or its UAPI socket removed. Not called for close().
  std::function<void(const std::string& reason)> on_stopped;
};

// What `gatehouse status` shows of the data plane.
struct DataPlaneStatus {
  std::string mode;       // "netstack" | "tun"
  std::string interface;  // TUN mode: the interface name
  std::optional<wg::Key32> public_key;
  uint16_t listen_port = 0;
  std::vector<wg::PeerInfo> peers;
  uint64_t filter_denied = 0;  // inbound packets the map's packet filter dropped
  uint64_t device_drops = 0;   // wg::Device drop counters, summed
};

class DataPlane {
 public:
  virtual ~DataPlane() = default;

  // Loop thread. Brings the data plane up on this node's key and the first map's addresses
  // (peers come with apply()). On failure the plane is left for close() to release.
  virtual Status start(const NetworkMap& map, const wg::Key32& node_private) = 0;
  // Loop thread. Peers, receive policy, identities; in TUN mode also re-applies the interface
  // addresses and routes when the map's self addresses changed.
  virtual void apply(std::shared_ptr<const NetworkMap> map) = 0;
  // Loop thread. The node key was rotated: sessions restart under the new key.
  virtual void setPrivateKey(const wg::Key32& node_private) = 0;
  // Loop thread. A keepalive to every peer with an endpoint, so that sessions (re)start now rather
  // than when the peers' stale sessions time out (wg::Device::sendKeepalive). JoinedNode calls it
  // once, after the first map a freshly started node applies.
  virtual void greetPeers() = 0;
  // Other threads. Stops everything and returns once the loop holds nothing of this plane.
  // Idempotent.
  virtual void close() = 0;

  virtual Result<DataPlaneStatus> status() = 0;
  // The device's view of `addr`'s owner, with the map's identity fields (control/map_apply.h).
  virtual Result<wg::Identity> whoIs(const wg::IpAddr& addr) = 0;
  // One ICMP echo through the tunnel; the round-trip time in nanoseconds.
  virtual Result<int64_t> ping(const wg::IpAddr& dst, int64_t timeout_ms) = 0;

  // The netstack node (listen, dial, whoIs for embedders), or nullptr in TUN mode.
  virtual wg::Node* node() { return nullptr; }
};

std::unique_ptr<DataPlane> makeNetstackPlane(DataPlaneOptions options);
std::unique_ptr<DataPlane> makeTunPlane(DataPlaneOptions options);

}  // namespace gatehouse::control
