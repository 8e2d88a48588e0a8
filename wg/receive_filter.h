// ReceiveFilter: receive-side policy enforcement with connection tracking, for the node glue
// (or any I/O shell) to run on decrypted inbound packets before they reach the netstack/TUN.
//
// The policy itself is an interface wg/ owns (InboundPolicy); the control plane implements it
// from its compiled packet filter (control/map_apply.h), so wg/ never depends on control/.
//
//   outbound packet (TUN/netstack → device):  noteOutbound(packet, now)
//   inbound packet  (device → TUN/netstack):  allowInbound(packet, now) → deliver or drop
//
// An inbound packet passes when it is a reply to a flow this node opened (same protocol, the
// addresses and ports swapped, seen outbound within the idle timeout), or when the policy allows
// its (source, protocol, destination port). ICMP is tracked for echo only: an echo request this
// node sent lets in the echo reply with the same identifier, nothing else. No policy set = allow
// everything (static-peer nodes); a policy that allows nothing = deny everything except replies.
// Packets that cannot be parsed are denied while a policy is set. Non-first IPv4 fragments and IPv6
// extension headers are evaluated with port 0. The flow table is bounded (oldest flows evicted
// first).
//
// Sans-I/O, single thread (the node loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "wg/env.h"
#include "wg/net/addr.h"

namespace gatehouse::wg {

class InboundPolicy {
 public:
  virtual ~InboundPolicy() = default;
  virtual bool allow(const IpAddr& src, uint8_t proto, uint16_t dst_port) const = 0;
};

// Protocol, addresses and ports of an IP packet (ports 0 for protocols without ports).
struct PacketFlow {
  uint8_t proto = 0;
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  bool operator==(const PacketFlow&) const = default;
  auto operator<=>(const PacketFlow&) const = default;
};
std::optional<PacketFlow> parseFlow(std::span<const uint8_t> packet);

struct ReceiveFilterOptions {
  int64_t flow_idle_ns = 300 * kSec;  // a tracked flow expires after this long with no outbound
  size_t max_flows = 65536;
};

class ReceiveFilter {
 public:
  explicit ReceiveFilter(ReceiveFilterOptions options = {}) : options_(options) {}

  // Replaces the policy (nullptr: allow all). Tracked flows are kept.
  void setPolicy(std::shared_ptr<const InboundPolicy> policy) { policy_ = std::move(policy); }
  bool hasPolicy() const { return policy_ != nullptr; }

  void noteOutbound(std::span<const uint8_t> packet, const Now& now);
  bool allowInbound(std::span<const uint8_t> packet, const Now& now);

  size_t flowCount() const { return flows_.size(); }
  uint64_t denied() const { return denied_; }

 private:
  void evictOldest();

  ReceiveFilterOptions options_;
  std::shared_ptr<const InboundPolicy> policy_;
  std::map<PacketFlow, int64_t> flows_;  // outbound flow → last seen (mono ns)
  uint64_t denied_ = 0;
};

}  // namespace gatehouse::wg
