// Per-node compilation of a policy: for each node, the peers it may see, the packet filter it
// enforces on receive, the capabilities each peer holds on it, and the DNS names of its peers.
//
// Sans-I/O and pure: a validated Policy plus the node list in, one NodeMap per node out (same
// order as the input). Deny by default: a node no grant mentions sees no peers and drops
// everything. Grants are additive; there is no deny rule.
//
// Semantics (POLICY.md "Compilation"):
//   - peer visibility is symmetric: a grant whose src matches A and dst matches B makes A and B
//     visible to each other (one-way packets still need replies to flow, via conntrack on the
//     receiving side in the node).
//   - a grant's `ip` entries become rules in the filter of every dst node, with the grant's
//     sources as prefixes: node addresses (/32, /128), literal IPs/CIDRs and host aliases, and
//     0.0.0.0/0 + ::/0 for "*".
//   - a grant's `app` map becomes capabilities of every src node on every dst node; values of
//     the same capability from several grants are unioned (duplicates dropped, first seen first).
//   - tagged nodes are identified by their tags only; a user login selects the user's untagged
//     nodes; IP/CIDR selectors select the nodes owning a matching address.
//
// Cost: selector → node bitsets are computed once per distinct selector; each node then ORs the
// bitsets of the grants that mention it, so compile time is O(nodes × grants × nodes/64) plus the
// size of the output.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "control/filter.h"
#include "control/policy.h"
#include "wg/net/addr.h"

namespace gatehouse::control {

struct Node {
  uint64_t id = 0;
  std::string name;               // hostname, unique in the tailnet
  std::string user;               // owner login; ignored for selectors when tags is non-empty
  std::vector<std::string> tags;  // "tag:ai"
  std::vector<wg::IpAddr> addrs;  // tunnel addresses (IPv4 and/or IPv6)
};

using CapMap = std::map<std::string, std::vector<nlohmann::json>>;

struct PeerName {
  uint64_t id = 0;
  std::string fqdn;  // "name" or "name.<dns_suffix>"
  std::vector<wg::IpAddr> addrs;
};

struct NodeMap {
  uint64_t self = 0;
  std::vector<uint64_t> peers;      // ids, ascending
  PacketFilter filter;              // enforced by this node on receive
  std::map<uint64_t, CapMap> caps;  // peer id → capabilities that peer holds on this node
  std::vector<PeerName> dns;        // one per peer, same order as peers
};

struct CompileOptions {
  std::string dns_suffix;  // e.g. "gatehouse.internal"; empty → bare host names
};

std::vector<NodeMap> compilePolicy(const Policy& policy, std::span<const Node> nodes,
                                   const CompileOptions& options = {});

}  // namespace gatehouse::control

namespace gatehouse::control {

// Whether `selector` selects `node` (the same rules compilePolicy applies, one node at a time).
bool selectorMatches(const Policy& policy, const Selector& selector, const Node& node);

}  // namespace gatehouse::control
