// ICMP / ICMPv6 echo packets, for `ping` through the tunnel from a node that has no kernel
// interface (netstack mode). Pure functions over bytes: build a whole IP packet carrying an echo
// request, and recognise an echo reply. IPv4: ICMP type 8/0 with the RFC 1071 checksum; IPv6:
// ICMPv6 type 128/129 with the checksum over the RFC 8200 §8.1 pseudo-header.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "wg/net/addr.h"

namespace gatehouse::wg::icmp {

// An IP packet (v4 or v6 by the addresses' family; both must match) with an echo request.
std::vector<uint8_t> echoRequest(const IpAddr& src, const IpAddr& dst, uint16_t id, uint16_t seq,
                                 std::span<const uint8_t> payload, uint8_t ttl = 64);

struct EchoReply {
  IpAddr from;
  IpAddr to;
  uint16_t id = 0;
  uint16_t seq = 0;
};
// The echo reply carried by `ip_packet`, or nullopt (another protocol, a request, truncated, a
// fragment, or a bad checksum).
std::optional<EchoReply> parseEchoReply(std::span<const uint8_t> ip_packet);

}  // namespace gatehouse::wg::icmp
