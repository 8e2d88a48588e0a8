// The node side of a network map: translating the control plane's NetworkMap into what the
// WireGuard layer consumes. Dependencies point down: control/ → wg/ (wg/peer_sync.h owns the
// PeerConfig interface; wg/ never includes control/).
//
//   peerConfigsFromMap  NetworkMap → the desired wg peer set (key, endpoint candidates, allowed
//                       IPs = the peer's addresses). Peers with a malformed node key are skipped;
//                       unparseable addresses/endpoints are skipped (the server validated them).
//   applyMap            peerConfigsFromMap + wg::syncPeers: minimal churn, unchanged peers keep
//                       their sessions (see wg/peer_sync.h for the exact contract).
//   identityFromMap     whoIs enrichment: the map's view of the node owning a tunnel address
//                       (node id, name, user login and display name, groups, tags, and the
//                       capabilities the peer holds on this node from the map's caps).
//   inboundPolicyFromMap  the map's packet filter as the wg::InboundPolicy a ReceiveFilter
//                       (wg/receive_filter.h) enforces on receive; deny by default.
//   applyMapToNode      all of the above on a running wg::Node (loop thread only): peers,
//                       receive policy, and a whoIs enricher holding the map.
//
// Pure and sans-I/O; call on the node loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "control/client_core.h"
#include "wg/device.h"
#include "wg/net/addr.h"
#include "wg/node.h"
#include "wg/peer_sync.h"
#include "wg/receive_filter.h"

namespace gatehouse::control {

struct MapApplyOptions {
  uint16_t persistent_keepalive = 0;  // applied to every peer (NAT traversal); 0 = off
};

std::vector<wg::PeerConfig> peerConfigsFromMap(const NetworkMap& map,
                                               const MapApplyOptions& options = {});

wg::PeerSyncResult applyMap(wg::Device& device, const NetworkMap& map, const wg::Now& now,
                            wg::DeviceOutput& out, const MapApplyOptions& options = {});

// Fills the (control) fields of `identity` (and name/allowed_ips/node key when found) for the
// node whose addresses contain `addr`: a peer, or this node itself (is_self = true, no
// capabilities). Returns false and leaves `identity` untouched when no node of the map owns it.
bool identityFromMap(const NetworkMap& map, const wg::IpAddr& addr, wg::Identity& identity);

std::shared_ptr<const wg::InboundPolicy> inboundPolicyFromMap(const NetworkMap& map);

// Loop thread only. `node` must be started. The enricher keeps `map` alive.
wg::PeerSyncResult applyMapToNode(wg::Node& node, std::shared_ptr<const NetworkMap> map,
                                  const MapApplyOptions& options = {});

}  // namespace gatehouse::control
