#include "control/netmap.h"

#include <algorithm>
#include <functional>

#include "proto/control.pb.h"

namespace gatehouse::control {
namespace {

uint64_t hashOf(std::string_view s) { return std::hash<std::string_view>{}(s) | 1; }

Blob blobOf(std::string bytes) {
  Blob b;
  b.hash = hashOf(bytes);
  b.bytes = std::make_shared<const std::string>(std::move(bytes));
  return b;
}

// Interns identical strings so equal filters/caps share memory.
class Interner {
 public:
  Blob intern(std::string bytes) {
    uint64_t h = hashOf(bytes);
    auto it = seen_.find(h);
    if (it != seen_.end() && *it->second.bytes == bytes) return it->second;
    Blob b = blobOf(std::move(bytes));
    seen_[h] = b;
    return b;
  }

 private:
  std::unordered_map<uint64_t, Blob> seen_;
};

std::string nodeName(const NodeRecord& r, const std::string& suffix) {
  return suffix.empty() ? r.hostname : r.hostname + "." + suffix;
}

v1::Node nodeProto(const MapNodeInput& in, const std::vector<std::string>& groups,
                   const std::string& suffix) {
  const NodeRecord& r = in.record;
  v1::Node n;
  n.set_id(static_cast<uint64_t>(r.id));
  n.set_name(nodeName(r, suffix));
  n.set_hostname(r.hostname);
  n.set_node_key(r.node_key.data(), r.node_key.size());
  n.add_addresses(r.ipv4Addr().toString() + "/32");
  n.add_addresses(r.ipv6.toString() + "/128");
  for (const auto& e : in.endpoints) n.add_endpoints(e);
  if (r.tags.empty()) {
    n.mutable_user()->set_login(r.user_login);
    n.mutable_user()->set_display_name(in.display_name);
    for (const auto& g : groups) n.add_groups(g);
  }
  for (const auto& t : r.tags) n.add_tags(t);
  n.set_key_expiry_unix(r.key_expiry);
  n.set_ephemeral(r.ephemeral);
  return n;
}

std::string filterBytes(const PacketFilter& filter,
                        std::unordered_map<const PrefixSet*, std::string>& src_cache) {
  std::string out;
  for (const FilterRule& rule : filter.rules()) {
    auto [it, inserted] = src_cache.try_emplace(rule.srcs.get());
    if (inserted) {
      v1::FilterRule srcs;
      for (const auto& p : rule.srcs->prefixes()) srcs.add_src_prefixes(p.toString());
      it->second = srcs.SerializeAsString();
    }
    v1::FilterRule rest;
    for (uint8_t p : rule.protos) rest.add_protos(p);
    for (const auto& r : rule.ports) {
      auto* pr = rest.add_ports();
      pr->set_first(r.first);
      pr->set_last(r.last);
    }
    putLenField(out, 1, it->second + rest.SerializeAsString());
  }
  return out;
}

std::string capsBytes(const std::map<uint64_t, CapMap>& caps) {
  v1::CapabilityGrants g;
  for (const auto& [peer, capmap] : caps) {
    auto* pc = g.add_peers();
    pc->set_peer_id(peer);
    for (const auto& [name, values] : capmap) {
      auto* c = pc->add_caps();
      c->set_name(name);
      for (const auto& v : values) c->add_values_json(v.dump());
    }
  }
  return g.SerializeAsString();
}

std::string wrapMap(const v1::MapResponse& head, std::string_view raw_fields) {
  std::string body = head.SerializeAsString();
  body.append(raw_fields);
  std::string out;
  putLenField(out, 2, body);  // ServerMessage.map
  return out;
}

}  // namespace

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putLenField(std::string& out, uint32_t field, std::string_view bytes) {
  putVarint(out, (uint64_t{field} << 3) | 2);
  putVarint(out, bytes.size());
  out.append(bytes);
}

MapSnapshot buildSnapshot(const Policy& policy, std::span<const MapNodeInput> nodes,
                          const std::string& dns_suffix) {
  MapSnapshot snap;
  snap.dns_suffix = dns_suffix;
  std::unordered_map<std::string, std::vector<std::string>> groups_of;
  for (const auto& [group, members] : policy.groups) {
    for (const auto& login : members) groups_of[login].push_back(group);
  }
  static const std::vector<std::string> kNoGroups;
  std::vector<Node> compile_in;
  compile_in.reserve(nodes.size());
  for (const MapNodeInput& in : nodes) {
    const NodeRecord& r = in.record;
    compile_in.push_back(
        {static_cast<uint64_t>(r.id), r.hostname, r.user_login, r.tags, {r.ipv4Addr(), r.ipv6}});
    auto g = groups_of.find(r.user_login);
    v1::Node n = nodeProto(in, g == groups_of.end() ? kNoGroups : g->second, dns_suffix);
    snap.peers.emplace(r.id, blobOf(n.SerializeAsString()));
    n.set_machine_key(r.machine_key.data(), r.machine_key.size());
    snap.nodes[r.id].self = blobOf(n.SerializeAsString());
  }
  std::vector<NodeMap> maps = compilePolicy(policy, compile_in, {dns_suffix});
  Interner interner;
  std::unordered_map<const PrefixSet*, std::string> src_cache;
  for (const NodeMap& m : maps) {
    CompiledNode& c = snap.nodes[m.self];
    c.peers.reserve(m.peers.size());
    for (uint64_t p : m.peers) c.peers.emplace_back(p, snap.peers[p].hash);
    c.filter = interner.intern(filterBytes(m.filter, src_cache));
    c.caps = interner.intern(capsBytes(m.caps));
  }
  return snap;
}

std::vector<std::string> mapFrames(const MapSnapshot& snap, const CompiledNode& node,
                                   SentState& sent, size_t max_frame) {
  v1::MapResponse head;
  std::string fixed;  // filter and caps (raw fields 6, 7)
  std::vector<const std::string*> changed;
  bool full = !sent.sent_full;
  if (full || sent.self_hash != node.self.hash) {
    head.mutable_self()->ParseFromString(*node.self.bytes);
  }
  if (full || sent.filter_hash != node.filter.hash) putLenField(fixed, 6, *node.filter.bytes);
  if (full || sent.caps_hash != node.caps.hash) putLenField(fixed, 7, *node.caps.bytes);
  if (full) {
    head.set_full(true);
    head.set_dns_suffix(snap.dns_suffix);
    for (const auto& [id, h] : node.peers) changed.push_back(snap.peers.at(id).bytes.get());
  } else {
    // Merge the two ascending lists.
    size_t i = 0, j = 0;
    const auto& old = sent.peers;
    const auto& now = node.peers;
    while (i < old.size() || j < now.size()) {
      if (j == now.size() || (i < old.size() && old[i].first < now[j].first)) {
        head.add_peers_removed(old[i++].first);
      } else if (i == old.size() || now[j].first < old[i].first) {
        changed.push_back(snap.peers.at(now[j++].first).bytes.get());
      } else {
        if (old[i].second != now[j].second) {
          changed.push_back(snap.peers.at(now[j].first).bytes.get());
        }
        ++i;
        ++j;
      }
    }
    if (!head.has_self() && fixed.empty() && changed.empty() && head.peers_removed_size() == 0) {
      return {};
    }
  }
  sent.sent_full = true;
  sent.self_hash = node.self.hash;
  sent.filter_hash = node.filter.hash;
  sent.caps_hash = node.caps.hash;
  sent.peers = node.peers;

  // Split the changed peers so that each frame stays under max_frame.
  std::vector<std::string> frames;
  size_t budget = max_frame > 4096 ? max_frame - 4096 : max_frame;
  std::string raw = fixed;
  size_t base = head.ByteSizeLong() + fixed.size();
  for (const std::string* p : changed) {
    if (base + raw.size() - fixed.size() + p->size() + 8 > budget && raw.size() > fixed.size()) {
      head.set_seq(++sent.seq);
      head.set_partial(true);
      frames.push_back(wrapMap(head, raw));
      head.Clear();
      raw.clear();
      fixed.clear();
      base = 16;
    }
    putLenField(raw, 4, *p);
  }
  head.set_seq(++sent.seq);
  head.set_partial(false);
  frames.push_back(wrapMap(head, raw));
  return frames;
}

}  // namespace gatehouse::control
