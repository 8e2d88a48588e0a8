#include "control/map_apply.h"

#include <algorithm>
#include <string>

namespace gatehouse::control {
namespace {

std::optional<wg::Key32> keyFromBytes(const std::string& bytes) {
  if (bytes.size() != 32) return std::nullopt;
  wg::Key32 k;
  std::copy(bytes.begin(), bytes.end(), k.begin());
  return k;
}

std::vector<wg::IpPrefix> prefixesOf(const v1::Node& node) {
  std::vector<wg::IpPrefix> out;
  for (const std::string& a : node.addresses()) {
    if (auto p = wg::IpPrefix::parse(a)) out.push_back(p->normalized());
  }
  return out;
}

bool owns(const v1::Node& node, const wg::IpAddr& addr) {
  for (const wg::IpPrefix& p : prefixesOf(node))
    if (p.contains(addr)) return true;
  return false;
}

void fillIdentity(const v1::Node& node, wg::Identity& id) {
  if (auto k = keyFromBytes(node.node_key())) id.node_public_key = *k;
  id.allowed_ips = prefixesOf(node);
  id.name = node.name().empty() ? node.hostname() : node.name();
  id.node_id = std::to_string(node.id());
  id.user_login = node.user().login();
  id.user_display_name = node.user().display_name();
  id.groups.assign(node.groups().begin(), node.groups().end());
  id.tags.assign(node.tags().begin(), node.tags().end());
  id.capabilities.clear();
}

class FilterPolicy final : public wg::InboundPolicy {
 public:
  explicit FilterPolicy(PacketFilter filter) : filter_(std::move(filter)) {}
  bool allow(const wg::IpAddr& src, uint8_t proto, uint16_t dst_port) const override {
    return filter_.evaluate(src, proto, dst_port).allow;
  }

 private:
  PacketFilter filter_;
};

}  // namespace

std::vector<wg::PeerConfig> peerConfigsFromMap(const NetworkMap& map,
                                               const MapApplyOptions& options) {
  std::vector<wg::PeerConfig> out;
  out.reserve(map.peers.size());
  for (const auto& [id, node] : map.peers) {
    std::optional<wg::Key32> key = keyFromBytes(node.node_key());
    if (!key) continue;
    wg::PeerConfig c;
    c.public_key = *key;
    for (const std::string& e : node.endpoints()) {
      if (auto ep = wg::Endpoint::parse(e)) c.endpoints.push_back(*ep);
    }
    c.allowed_ips = prefixesOf(node);
    c.persistent_keepalive = options.persistent_keepalive;
    out.push_back(std::move(c));
  }
  return out;
}

wg::PeerSyncResult applyMap(wg::Device& device, const NetworkMap& map, const wg::Now& now,
                            wg::DeviceOutput& out, const MapApplyOptions& options) {
  std::vector<wg::PeerConfig> configs = peerConfigsFromMap(map, options);
  return wg::syncPeers(device, configs, now, out);
}

bool identityFromMap(const NetworkMap& map, const wg::IpAddr& addr, wg::Identity& identity) {
  for (const auto& [id, node] : map.peers) {
    if (!owns(node, addr)) continue;
    fillIdentity(node, identity);
    identity.is_self = false;
    for (const v1::PeerCapabilities& pc : map.caps.peers()) {
      if (pc.peer_id() != node.id()) continue;
      for (const v1::Capability& cap : pc.caps()) {
        auto& values = identity.capabilities[cap.name()];
        values.insert(values.end(), cap.values_json().begin(), cap.values_json().end());
      }
    }
    return true;
  }
  if (owns(map.self, addr)) {
    fillIdentity(map.self, identity);
    identity.is_self = true;
    return true;
  }
  return false;
}

std::shared_ptr<const wg::InboundPolicy> inboundPolicyFromMap(const NetworkMap& map) {
  return std::make_shared<FilterPolicy>(filterFromProto(map.filter));
}

wg::PeerSyncResult applyMapToNode(wg::Node& node, std::shared_ptr<const NetworkMap> map,
                                  const MapApplyOptions& options) {
  wg::PeerSyncResult r;
  if (wg::Device* device = node.device()) {
    // Peer changes emit nothing but the one keepalive when keepalive turns on (T10); that one
    // is skipped here and the device timers send the next.
    struct NoOutput final : wg::DeviceOutput {
      void sendToNetwork(const wg::Endpoint&, std::span<const uint8_t>) override {}
      void writeToTun(std::span<const uint8_t>) override {}
    } none;
    r = applyMap(*device, *map, wg::systemNow(), none, options);
  }
  node.receiveFilter().setPolicy(inboundPolicyFromMap(*map));
  node.setIdentityEnricher([map](const wg::IpAddr& addr, wg::Identity& id) {
    wg::Identity enriched = id;
    if (identityFromMap(*map, addr, enriched)) {
      enriched.endpoint = id.endpoint;
      enriched.is_self = id.is_self;
      id = std::move(enriched);
    }
  });
  return r;
}

}  // namespace gatehouse::control
