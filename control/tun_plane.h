// The TUN DataPlane (control/data_plane.h) of `gatehouse up --tun IFNAME`: the node's mesh
// traffic goes through a kernel interface, so every program on the machine reaches the mesh by
// address, with no proxying.
//
// On start (loop thread), from the first map:
//   1. a wg::LoopDevice on the JoinedNode's loop: TUN IFNAME, the node key, the persisted UDP
//      port, its UAPI socket (so `wg show IFNAME` works), SIGINT/SIGTERM left to the process;
//   2. the interface configured over rtnetlink (wg/transport/netlink.h): link up with the MTU,
//      the map's addresses as host prefixes (v4 /32, v6 /128) and routes for the mesh prefixes
//      (meshRoutes below) through the interface;
//   3. a wg::ReceiveFilter set on the LoopDevice: the map's packet filter, enforced on each
//      decrypted packet before it reaches the TUN, with replies to this node's own flows let in.
// Each later map: peers with minimal churn (applyMap), the filter's policy, and the interface
// addresses and routes again only if the map's self addresses changed. close() deletes the
// routes and addresses (the interface's removal would take them anyway) and the interface.
//
// `gatehouse ping` from a TUN node is a kernel ICMP echo bound to the interface
// (wg/transport/kernel_ping.h): it crosses the tunnel like any program's traffic.
#pragma once

#include <vector>

#include "control/data_plane.h"
#include "wg/net/addr.h"

namespace gatehouse::control {

// The mesh's IPv4 pool: the control server allocates node addresses from it.
inline constexpr const char* kMeshPrefix4 = "100.64.0.0/10";

// The routes a node with these addresses needs to reach the rest of the mesh: 100.64.0.0/10 for
// an IPv4 address inside it, and for each IPv6 address the ULA /48 it belongs to (the server's
// per-mesh /48). Sorted, without duplicates. Other IPv4 addresses get no route: the server never
// hands them out, and a guess could shadow a route the machine depends on.
std::vector<wg::IpPrefix> meshRoutes(const std::vector<wg::IpAddr>& self_addresses);

// The map's self addresses as host prefixes (v4 /32, v6 /128), sorted; unparseable ones skipped.
std::vector<wg::IpPrefix> hostPrefixes(const NetworkMap& map);

}  // namespace gatehouse::control
