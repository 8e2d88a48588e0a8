// The pure parts of TUN mode (control/tun_plane.h): which routes a node's addresses call for,
// and the map's self addresses as interface host prefixes. The interface itself is tested end to
// end by tests/interop/test_control_tun.sh.
#include "control/tun_plane.h"

#include <gtest/gtest.h>

namespace gatehouse::control {
namespace {

using wg::IpAddr;
using wg::IpPrefix;

std::vector<std::string> texts(const std::vector<IpPrefix>& v) {
  std::vector<std::string> out;
  for (const IpPrefix& p : v) out.push_back(p.toString());
  return out;
}

std::vector<IpAddr> addrs(std::initializer_list<const char*> list) {
  std::vector<IpAddr> out;
  for (const char* a : list) out.push_back(*IpAddr::parse(a));
  return out;
}

TEST(MeshRoutes, CgnatAndTheUla48OfTheV6Address) {
  EXPECT_EQ(texts(meshRoutes(addrs({"100.64.0.7", "fd7a:115c:a1e0:ab12:4843:cd96:6258:b240"}))),
            (std::vector<std::string>{"100.64.0.0/10", "fd7a:115c:a1e0::/48"}));
}

TEST(MeshRoutes, The48KeepsOnlyItsFirst48Bits) {
  EXPECT_EQ(texts(meshRoutes(addrs({"fdff:ffff:ffff:ffff::1"}))),
            (std::vector<std::string>{"fdff:ffff:ffff::/48"}));
  EXPECT_EQ(texts(meshRoutes(addrs({"fc00::1"}))), (std::vector<std::string>{"fc00::/48"}));
}

TEST(MeshRoutes, DeduplicatedAndSorted) {
  EXPECT_EQ(texts(meshRoutes(addrs(
                {"fd00:1:2::9", "100.127.255.254", "100.64.0.1", "fd00:1:2::1", "fd00:1:3::1"}))),
            (std::vector<std::string>{"100.64.0.0/10", "fd00:1:2::/48", "fd00:1:3::/48"}));
}

TEST(MeshRoutes, NoRouteOutsideThePools) {
  // A guess such as 10.0.0.0/8 or a global /48 could shadow a route the machine depends on.
  EXPECT_TRUE(meshRoutes(addrs({"10.1.2.3", "100.128.0.1", "2001:db8::1", "fe80::1"})).empty());
  EXPECT_TRUE(meshRoutes({}).empty());
}

TEST(HostPrefixes, FromTheMapsSelfAddresses) {
  NetworkMap map;
  map.self.add_addresses("fd7a:115c:a1e0::7/128");
  map.self.add_addresses("100.64.0.7/32");
  map.self.add_addresses("100.64.0.7/10");  // a prefix length is not ours to take: host only
  map.self.add_addresses("100.64.0.8");
  map.self.add_addresses("not an address");
  EXPECT_EQ(texts(hostPrefixes(map)),
            (std::vector<std::string>{"100.64.0.7/32", "100.64.0.8/32", "fd7a:115c:a1e0::7/128"}));
}

}  // namespace
}  // namespace gatehouse::control
