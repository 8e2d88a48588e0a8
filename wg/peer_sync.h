// syncPeers: reconcile a Device's peers with a desired peer set, with minimal churn. This is the
// interface the device layer owns for whoever decides the peer set (the control client
// translates its network map into PeerConfig values: control/map_apply.h); wg/ knows nothing of
// the control plane.
//
// Contract:
//   - a desired key the device lacks is added (endpoint, allowed IPs, keepalive set);
//   - a device peer whose key is not desired is removed (its sessions and indices go with it, so
//     its later packets are dropped as kUnknownIndex);
//   - a peer present in both is updated in place and never removed/re-added, so its handshake
//     state and keypairs survive: allowed IPs are replaced only when the set differs; the
//     endpoint is set only when the peer has none or its current endpoint (possibly roamed) is
//     not one of the desired candidates; keepalive only when it differs;
//   - the desired set owns every peer of the device (peers configured by other means are
//     removed). Duplicate keys: the first entry wins. The device's own key is skipped.
// Sans-I/O; the output is used only when keepalive goes 0 → N (one keepalive is sent, T10).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "wg/device.h"

namespace gatehouse::wg {

struct PeerConfig {
  Key32 public_key{};
  std::vector<Endpoint> endpoints;  // candidates, preferred first; may be empty
  std::vector<IpPrefix> allowed_ips;
  uint16_t persistent_keepalive = 0;
};

struct PeerSyncResult {
  size_t added = 0;
  size_t removed = 0;
  size_t updated = 0;    // existing peers with at least one changed setting
  size_t unchanged = 0;  // existing peers left exactly as they were
};

PeerSyncResult syncPeers(Device& device, std::span<const PeerConfig> desired, const Now& now,
                         DeviceOutput& out);

}  // namespace gatehouse::wg
