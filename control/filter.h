// The packet filter a node enforces on receive, and the grant `ip` syntax that produces it.
//
// A node's filter is a list of rules compiled by the control server for THIS node (the
// destination): a packet is allowed when some rule matches its source address, IP protocol and
// destination port. Deny by default: an empty filter drops everything.
//
// PacketFilter is sans-I/O and immutable after construction; evaluate() may be called from any
// thread concurrently. Rules share their source sets (shared_ptr) because one grant's sources are
// the same for every destination node it compiles into; evaluation is one protocol/port check and
// one hash lookup per rule, in rule order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "wg/net/addr.h"

namespace gatehouse::control {

// IP protocol numbers used by grants.
enum : uint8_t {
  kProtoIcmp = 1,
  kProtoTcp = 6,
  kProtoUdp = 17,
  kProtoIcmpV6 = 58,
  kProtoSctp = 132,
};

// True for protocols that carry ports (TCP, UDP, SCTP); others match regardless of port.
bool protoHasPorts(uint8_t proto);
// "tcp", "udp", "icmp", "6", ... → protocol name for messages ("tcp/443").
std::string protoName(uint8_t proto);

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 65535;
  bool contains(uint16_t port) const { return port >= first && port <= last; }
  bool operator==(const PortRange&) const = default;
};

// One entry of a grant's `ip` list: protocols (empty = every protocol) and destination ports.
struct IpSpec {
  std::vector<uint8_t> protos;
  std::vector<PortRange> ports;
  bool operator==(const IpSpec&) const = default;
};

// Parses "*", "tcp:443", "udp:53", "80,443", "1000-2000", "tcp:*", "icmp:*", "sctp:9", "47:*"
// (protocol by number). A bare port list means TCP, UDP and SCTP. On error returns nullopt and
// sets *error to a message naming the fix.
std::optional<IpSpec> parseIpSpec(std::string_view text, std::string* error);

// An immutable set of source prefixes with a fast membership test: host prefixes (/32, /128)
// are hashed, wider ones scanned. Built once per grant and shared by every node's rule.
class PrefixSet {
 public:
  PrefixSet() = default;
  explicit PrefixSet(std::vector<wg::IpPrefix> prefixes);
  bool contains(const wg::IpAddr& addr) const;
  const std::vector<wg::IpPrefix>& prefixes() const { return prefixes_; }

 private:
  struct AddrHash {
    size_t operator()(const wg::IpAddr& a) const;
  };
  std::vector<wg::IpPrefix> prefixes_;
  std::unordered_set<wg::IpAddr, AddrHash> hosts_;
  std::vector<wg::IpPrefix> wide_;
};

struct FilterRule {
  std::shared_ptr<const PrefixSet> srcs;
  std::vector<uint8_t> protos;  // empty = any protocol
  std::vector<PortRange> ports;
  int grant = -1;  // index of the grant this rule came from (for messages)

  bool matchesProtoPort(uint8_t proto, uint16_t port) const;
};

struct FilterVerdict {
  bool allow = false;
  int rule = -1;  // index of the first matching rule, -1 on deny
};

class PacketFilter {
 public:
  PacketFilter() = default;
  explicit PacketFilter(std::vector<FilterRule> rules);

  // Allow or deny a packet arriving at this node from `src` with `proto` to `dst_port` (ignored
  // for protocols without ports).
  FilterVerdict evaluate(const wg::IpAddr& src, uint8_t proto, uint16_t dst_port) const;
  const std::vector<FilterRule>& rules() const { return rules_; }

 private:
  std::vector<FilterRule> rules_;
};

}  // namespace gatehouse::control
