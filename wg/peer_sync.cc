#include "wg/peer_sync.h"

#include <algorithm>
#include <set>

namespace gatehouse::wg {
namespace {

std::vector<IpPrefix> normalizedSet(std::span<const IpPrefix> prefixes) {
  std::vector<IpPrefix> v;
  v.reserve(prefixes.size());
  for (const IpPrefix& p : prefixes) v.push_back(p.normalized());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

PeerSyncResult syncPeers(Device& device, std::span<const PeerConfig> desired, const Now& now,
                         DeviceOutput& out) {
  PeerSyncResult result;
  std::optional<Key32> self = device.publicKey();
  std::set<Key32> wanted;
  for (const PeerConfig& c : desired) {
    if (self && c.public_key == *self) continue;
    wanted.insert(c.public_key);
  }

  for (const Key32& pk : device.peerKeys()) {
    if (!wanted.count(pk)) {
      device.removePeer(pk);
      ++result.removed;
    }
  }

  std::set<Key32> seen;
  for (const PeerConfig& c : desired) {
    if (self && c.public_key == *self) continue;
    if (!seen.insert(c.public_key).second) continue;
    const Key32& pk = c.public_key;
    std::optional<PeerInfo> info = device.peerInfo(pk);
    if (!info) {
      if (!device.addPeer(pk, now)) continue;
      if (!c.endpoints.empty()) device.setEndpoint(pk, c.endpoints.front());
      for (const IpPrefix& p : c.allowed_ips) device.addAllowedIp(pk, p);
      if (c.persistent_keepalive != 0)
        device.setPersistentKeepalive(pk, c.persistent_keepalive, now, out);
      ++result.added;
      continue;
    }
    bool changed = false;
    if (!c.endpoints.empty()) {
      bool keep = info->endpoint && std::find(c.endpoints.begin(), c.endpoints.end(),
                                              *info->endpoint) != c.endpoints.end();
      if (!keep) {
        device.setEndpoint(pk, c.endpoints.front());
        changed = true;
      }
    }
    std::vector<IpPrefix> want_ips = normalizedSet(c.allowed_ips);
    if (normalizedSet(info->allowed_ips) != want_ips) {
      device.clearAllowedIps(pk);
      for (const IpPrefix& p : want_ips) device.addAllowedIp(pk, p);
      changed = true;
    }
    if (info->persistent_keepalive != c.persistent_keepalive) {
      device.setPersistentKeepalive(pk, c.persistent_keepalive, now, out);
      changed = true;
    }
    ++(changed ? result.updated : result.unchanged);
  }
  return result;
}

}  // namespace gatehouse::wg
