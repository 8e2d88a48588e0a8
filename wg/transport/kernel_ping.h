// Kernel ICMP echo: `gatehouse ping` on a TUN-mode node, where the tunnel is a kernel interface
// and an ordinary ICMP socket's echo request is routed through it (so it crosses the tunnel and
// the destination's receive filter like any other packet). Netstack nodes have no kernel
// interface and ping from their netstack instead (wg::Node::ping).
//
// The socket is an unprivileged ICMP datagram socket when net.ipv4.ping_group_range allows it,
// else a raw socket (root / CAP_NET_RAW). With `ifname` set the socket is bound to that
// interface (SO_BINDTODEVICE) so a reply can only count when the request left through the tunnel.
//
// echoMessage / parseEchoMessage are pure (the ICMP message without its IP header, as these
// sockets send and, except raw IPv4, receive it). kernelPing blocks the calling thread for at
// most timeout_ms; it is thread-safe (one socket per call).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wg/net/addr.h"
#include "wg/status.h"

namespace gatehouse::wg::icmp {

// An echo request (type 8, or 128 when v6) with `payload`. The IPv4 checksum is filled in; the
// ICMPv6 one is left zero because the kernel computes it over the pseudo-header for ICMPv6
// sockets (RFC 3542 §3.1).
std::vector<uint8_t> echoMessage(bool v6, uint16_t id, uint16_t seq,
                                 std::span<const uint8_t> payload);

struct EchoIds {
  uint16_t id = 0;
  uint16_t seq = 0;
};
// The id and sequence of an echo reply (type 0, or 129 when v6, code 0); nullopt for anything
// else or a truncated message.
std::optional<EchoIds> parseEchoMessage(bool v6, std::span<const uint8_t> message);

// One echo request to `dst`; the round-trip time in nanoseconds, ETIMEDOUT, or the socket error
// (EPERM with a hint when neither socket kind is allowed).
Result<int64_t> kernelPing(const IpAddr& dst, uint16_t seq, int64_t timeout_ms,
                           const std::string& ifname = {});

}  // namespace gatehouse::wg::icmp
