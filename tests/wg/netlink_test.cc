// Rtnetlink request layout and acknowledgement parsing (wg/transport/netlink.h), byte by byte
// against the kernel's structs: no socket, no privileges. The requests themselves are exercised
// against a real kernel by tests/interop/test_control_tun.sh.
#include "wg/transport/netlink.h"

#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cstring>
#include <map>

namespace gatehouse::wg::netlink {
namespace {

template <typename T>
T at(const std::vector<uint8_t>& m, size_t off) {
  T v;
  std::memcpy(&v, m.data() + off, sizeof v);
  return v;
}

// type → payload of every attribute after the family header at `hdr_len`.
std::map<uint16_t, std::vector<uint8_t>> attrs(const std::vector<uint8_t>& m, size_t hdr_len) {
  std::map<uint16_t, std::vector<uint8_t>> out;
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(hdr_len);
  while (off + sizeof(rtattr) <= m.size()) {
    auto a = at<rtattr>(m, off);
    EXPECT_GE(a.rta_len, sizeof(rtattr));
    EXPECT_LE(off + a.rta_len, m.size());
    out[a.rta_type].assign(m.begin() + off + RTA_LENGTH(0), m.begin() + off + a.rta_len);
    off += RTA_ALIGN(a.rta_len);
  }
  EXPECT_EQ(off, m.size()) << "attributes must end exactly at nlmsg_len";
  return out;
}

std::vector<uint8_t> bytesOf(const IpAddr& a) {
  return {a.bytes.begin(), a.bytes.begin() + a.size()};
}

std::vector<uint8_t> u32(uint32_t v) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}

constexpr uint16_t kAck = NLM_F_REQUEST | NLM_F_ACK;
constexpr uint16_t kCreate = kAck | NLM_F_CREATE | NLM_F_REPLACE;

void expectHeader(const std::vector<uint8_t>& m, uint16_t type, uint16_t flags, uint32_t seq) {
  auto h = at<nlmsghdr>(m, 0);
  EXPECT_EQ(h.nlmsg_len, m.size());
  EXPECT_EQ(h.nlmsg_type, type);
  EXPECT_EQ(h.nlmsg_flags, flags);
  EXPECT_EQ(h.nlmsg_seq, seq);
}

TEST(Netlink, LinkUpWithMtu) {
  auto m = linkRequest(7, 42, true, 1420);
  expectHeader(m, RTM_NEWLINK, kAck, 7);
  auto ifi = at<ifinfomsg>(m, NLMSG_HDRLEN);
  EXPECT_EQ(ifi.ifi_index, 42);
  EXPECT_EQ(ifi.ifi_flags, unsigned(IFF_UP));
  EXPECT_EQ(ifi.ifi_change, unsigned(IFF_UP));
  auto a = attrs(m, sizeof(ifinfomsg));
  EXPECT_EQ(a[IFLA_MTU], u32(1420));
  EXPECT_EQ(attrs(linkRequest(8, 42, false, 0), sizeof(ifinfomsg)).count(IFLA_MTU), 0u);
}

TEST(Netlink, AddIpv4HostAddress) {
  auto p = *IpPrefix::parse("100.64.0.7/32");
  auto m = addressRequest(3, Op::kAdd, 9, p);
  expectHeader(m, RTM_NEWADDR, kCreate, 3);
  auto ifa = at<ifaddrmsg>(m, NLMSG_HDRLEN);
  EXPECT_EQ(ifa.ifa_family, AF_INET);
  EXPECT_EQ(ifa.ifa_prefixlen, 32);
  EXPECT_EQ(ifa.ifa_index, 9u);
  EXPECT_EQ(ifa.ifa_flags, 0);
  auto a = attrs(m, sizeof(ifaddrmsg));
  EXPECT_EQ(a[IFA_LOCAL], bytesOf(p.addr));
  EXPECT_EQ(a[IFA_ADDRESS], bytesOf(p.addr));
  EXPECT_EQ(a.count(IFA_FLAGS), 0u);
}

TEST(Netlink, Ipv6AddressSkipsDad) {
  auto p = *IpPrefix::parse("fd7a:115c:a1e0::7/128");
  auto m = addressRequest(4, Op::kAdd, 9, p);
  auto ifa = at<ifaddrmsg>(m, NLMSG_HDRLEN);
  EXPECT_EQ(ifa.ifa_family, AF_INET6);
  EXPECT_EQ(ifa.ifa_prefixlen, 128);
  EXPECT_EQ(ifa.ifa_flags, IFA_F_NODAD);
  auto a = attrs(m, sizeof(ifaddrmsg));
  EXPECT_EQ(a[IFA_LOCAL], bytesOf(p.addr));
  EXPECT_EQ(a[IFA_FLAGS], u32(IFA_F_NODAD));
}

TEST(Netlink, DeleteAddressHasNoCreateFlags) {
  auto m = addressRequest(5, Op::kDelete, 9, *IpPrefix::parse("100.64.0.7/32"));
  expectHeader(m, RTM_DELADDR, kAck, 5);
}

TEST(Netlink, RouteThroughInterface) {
  auto src = *IpAddr::parse("100.64.0.7");
  // A prefix with host bits set is normalized: the kernel refuses RTA_DST with bits past dst_len.
  auto m = routeRequest(6, Op::kAdd, 11, *IpPrefix::parse("100.127.1.2/10"), src);
  expectHeader(m, RTM_NEWROUTE, kCreate, 6);
  auto rt = at<rtmsg>(m, NLMSG_HDRLEN);
  EXPECT_EQ(rt.rtm_family, AF_INET);
  EXPECT_EQ(rt.rtm_dst_len, 10);
  EXPECT_EQ(rt.rtm_table, RT_TABLE_MAIN);
  EXPECT_EQ(rt.rtm_scope, RT_SCOPE_LINK);
  EXPECT_EQ(rt.rtm_type, RTN_UNICAST);
  auto a = attrs(m, sizeof(rtmsg));
  EXPECT_EQ(a[RTA_DST], bytesOf(*IpAddr::parse("100.64.0.0")));
  EXPECT_EQ(a[RTA_OIF], u32(11));
  EXPECT_EQ(a[RTA_PREFSRC], bytesOf(src));
}

TEST(Netlink, Ipv6RouteIgnoresAnIpv4Source) {
  auto m = routeRequest(7, Op::kDelete, 11, *IpPrefix::parse("fd7a:115c:a1e0::/48"),
                        IpAddr::parse("100.64.0.7"));
  expectHeader(m, RTM_DELROUTE, kAck, 7);
  auto rt = at<rtmsg>(m, NLMSG_HDRLEN);
  EXPECT_EQ(rt.rtm_family, AF_INET6);
  EXPECT_EQ(rt.rtm_dst_len, 48);
  EXPECT_EQ(rt.rtm_scope, RT_SCOPE_NOWHERE);
  auto a = attrs(m, sizeof(rtmsg));
  EXPECT_EQ(a.count(RTA_PREFSRC), 0u);
  EXPECT_EQ(a[RTA_DST], bytesOf(*IpAddr::parse("fd7a:115c:a1e0::")));
}

std::vector<uint8_t> errorMessage(uint32_t seq, int error) {
  std::vector<uint8_t> m(NLMSG_LENGTH(sizeof(nlmsgerr)), 0);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(m.size());
  h.nlmsg_type = NLMSG_ERROR;
  h.nlmsg_seq = seq;
  std::memcpy(m.data(), &h, sizeof h);
  nlmsgerr e{};
  e.error = error;
  std::memcpy(m.data() + NLMSG_HDRLEN, &e, sizeof e);
  return m;
}

TEST(Netlink, ParseAck) {
  EXPECT_EQ(parseAck(errorMessage(5, 0), 5), 0);
  EXPECT_EQ(parseAck(errorMessage(5, -EEXIST), 5), EEXIST);
  EXPECT_EQ(parseAck(errorMessage(4, -EPERM), 5), EAGAIN) << "another request's answer";
  auto two = errorMessage(4, -EPERM);
  auto ack = errorMessage(5, -ENODEV);
  two.insert(two.end(), ack.begin(), ack.end());
  EXPECT_EQ(parseAck(two, 5), ENODEV);
  EXPECT_EQ(parseAck({}, 5), EAGAIN);
}

TEST(Netlink, ParseAckRejectsMalformed) {
  auto m = errorMessage(5, 0);
  auto bad_len = m;
  uint32_t huge = 4096;
  std::memcpy(bad_len.data(), &huge, 4);
  EXPECT_EQ(parseAck(bad_len, 5), EPROTO);
  std::vector<uint8_t> tiny(m.begin(), m.begin() + 8);
  EXPECT_EQ(parseAck(tiny, 5), EPROTO);
  auto short_err = m;
  uint32_t len = NLMSG_HDRLEN;
  std::memcpy(short_err.data(), &len, 4);
  short_err.resize(NLMSG_HDRLEN);
  EXPECT_EQ(parseAck(short_err, 5), EPROTO);
}

}  // namespace
}  // namespace gatehouse::wg::netlink
