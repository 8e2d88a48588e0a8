// Rtnetlink: the few NETLINK_ROUTE requests a TUN interface needs to carry a mesh (link up and
// MTU, addresses, routes), so `gatehouse up --tun` configures its interface without iproute2.
//
//   RouteSocket rt;  if (Status st = rt.open(); !st) ...
//   rt.setLink(ifindex, /*up=*/true, 1420);
//   rt.address(netlink::Op::kAdd, ifindex, *IpPrefix::parse("100.64.0.7/32"));
//   rt.route(netlink::Op::kAdd, ifindex, *IpPrefix::parse("100.64.0.0/10"), src);
//
// The message builders and the acknowledgement parser are pure (bytes in, bytes out) so their
// layout is unit-tested without a socket; RouteSocket sends one request at a time and waits for
// the kernel's ACK (bounded by a timeout). Adds replace what exists (idempotent re-apply);
// deleting something already gone (ENOENT, EADDRNOTAVAIL, ESRCH) counts as success.
//
// Needs CAP_NET_ADMIN in the interface's network namespace. Thread safety: a RouteSocket has one
// owner thread; the builders are plain functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wg/net/addr.h"
#include "wg/status.h"

namespace gatehouse::wg::netlink {

enum class Op : uint8_t { kAdd, kDelete };

// RTM_NEWLINK: IFF_UP set (or cleared) and, when mtu != 0, IFLA_MTU.
std::vector<uint8_t> linkRequest(uint32_t seq, int ifindex, bool up, uint32_t mtu);
// RTM_NEWADDR / RTM_DELADDR for `prefix` (the address and its prefix length). IPv6 addresses
// are added with IFA_F_NODAD: a tunnel address has no link to duplicate it on, and DAD would
// hold it tentative (unusable as a source) for a second or more.
std::vector<uint8_t> addressRequest(uint32_t seq, Op op, int ifindex, const IpPrefix& prefix);
// RTM_NEWROUTE / RTM_DELROUTE in the main table: `dst` through the interface (scope link), with
// `src` as the preferred source when given.
std::vector<uint8_t> routeRequest(uint32_t seq, Op op, int ifindex, const IpPrefix& dst,
                                  const std::optional<IpAddr>& src = std::nullopt);

// The kernel's answer to request `seq` in `reply` (one recv's worth of messages): 0 for an ACK,
// the positive errno of an NLMSG_ERROR, EAGAIN when no message answers `seq` (read again), or
// EPROTO when the bytes are not netlink messages.
int parseAck(std::span<const uint8_t> reply, uint32_t seq);

class RouteSocket {
 public:
  RouteSocket() = default;
  ~RouteSocket();
  RouteSocket(const RouteSocket&) = delete;
  RouteSocket& operator=(const RouteSocket&) = delete;

  Status open();
  // Sends `request` (its sequence number must be nextSeq()) and waits up to timeout_ms for the
  // ACK. `what` names the change in the error ("add address 100.64.0.7/32 to gh0: ...").
  Status request(const std::vector<uint8_t>& request, const std::string& what,
                 int timeout_ms = 2000);
  uint32_t nextSeq() { return ++seq_; }

  Status setLink(int ifindex, bool up, uint32_t mtu);
  Status address(Op op, int ifindex, const IpPrefix& prefix);
  Status route(Op op, int ifindex, const IpPrefix& dst,
               const std::optional<IpAddr>& src = std::nullopt);

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace gatehouse::wg::netlink
