// ReceiveFilter (wg/receive_filter.h): policy on receive, replies to our own flows pass.
#include "wg/receive_filter.h"

#include <gtest/gtest.h>

#include <vector>

namespace gatehouse::wg {
namespace {

// An IPv4 packet with a 4-byte port header for TCP/UDP (enough for the filter).
std::vector<uint8_t> v4(const char* src, const char* dst, uint8_t proto, uint16_t sport,
                        uint16_t dport) {
  std::vector<uint8_t> p(40, 0);
  p[0] = 0x45;
  p[3] = 40;
  p[9] = proto;
  auto s = *IpAddr::parse(src), d = *IpAddr::parse(dst);
  std::copy(s.bytes.begin(), s.bytes.begin() + 4, p.begin() + 12);
  std::copy(d.bytes.begin(), d.bytes.begin() + 4, p.begin() + 16);
  p[20] = sport >> 8;
  p[21] = sport & 0xff;
  p[22] = dport >> 8;
  p[23] = dport & 0xff;
  return p;
}

std::vector<uint8_t> v6(const char* src, const char* dst, uint8_t proto, uint16_t sport,
                        uint16_t dport) {
  std::vector<uint8_t> p(60, 0);
  p[0] = 0x60;
  p[6] = proto;
  auto s = *IpAddr::parse(src), d = *IpAddr::parse(dst);
  std::copy(s.bytes.begin(), s.bytes.end(), p.begin() + 8);
  std::copy(d.bytes.begin(), d.bytes.end(), p.begin() + 24);
  p[40] = sport >> 8;
  p[41] = sport & 0xff;
  p[42] = dport >> 8;
  p[43] = dport & 0xff;
  return p;
}

// Allows TCP to port 80 from 100.64.0.2 only.
class Web final : public InboundPolicy {
 public:
  bool allow(const IpAddr& src, uint8_t proto, uint16_t port) const override {
    return src == *IpAddr::parse("100.64.0.2") && proto == 6 && port == 80;
  }
};

Now at(int64_t s) { return Now{s * kSec, s * kSec}; }

TEST(ReceiveFilter, NoPolicyAllowsAll) {
  ReceiveFilter f;
  EXPECT_TRUE(f.allowInbound(v4("1.2.3.4", "100.64.0.1", 6, 1, 22), at(1)));
  EXPECT_TRUE(f.allowInbound(std::vector<uint8_t>{0x00}, at(1)));
}

TEST(ReceiveFilter, PolicyAllowsAndDenies) {
  ReceiveFilter f;
  f.setPolicy(std::make_shared<Web>());
  EXPECT_TRUE(f.allowInbound(v4("100.64.0.2", "100.64.0.1", 6, 40000, 80), at(1)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.2", "100.64.0.1", 6, 40000, 22), at(1)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 6, 40000, 80), at(1)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.2", "100.64.0.1", 17, 40000, 80), at(1)));
  EXPECT_FALSE(f.allowInbound(std::vector<uint8_t>{0x45, 0}, at(1)));  // truncated
  EXPECT_EQ(f.denied(), 4u);
}

TEST(ReceiveFilter, RepliesToOwnOutboundFlowsPass) {
  ReceiveFilter f;
  f.setPolicy(std::make_shared<Web>());
  // We (100.64.0.1:50000) connect to 100.64.0.3:22, which the policy would not let in.
  f.noteOutbound(v4("100.64.0.1", "100.64.0.3", 6, 50000, 22), at(1));
  EXPECT_TRUE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 6, 22, 50000), at(2)));
  // Same peer, other port / other protocol / other peer: not a reply.
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 6, 22, 50001), at(2)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 17, 22, 50000), at(2)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.4", "100.64.0.1", 6, 22, 50000), at(2)));
  // The peer cannot open a new connection to us.
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 6, 50000, 22), at(2)));
}

TEST(ReceiveFilter, TrackedFlowsExpire) {
  ReceiveFilterOptions o;
  o.flow_idle_ns = 10 * kSec;
  ReceiveFilter f(o);
  f.setPolicy(std::make_shared<Web>());
  f.noteOutbound(v4("100.64.0.1", "100.64.0.3", 17, 5353, 53), at(1));
  EXPECT_TRUE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 17, 53, 5353), at(11)));
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 17, 53, 5353), at(12)));
  EXPECT_EQ(f.flowCount(), 0u);
}

TEST(ReceiveFilter, FlowTableBounded) {
  ReceiveFilterOptions o;
  o.max_flows = 3;
  ReceiveFilter f(o);
  f.setPolicy(std::make_shared<Web>());
  for (uint16_t port = 1; port <= 5; ++port)
    f.noteOutbound(v4("100.64.0.1", "100.64.0.3", 17, port, 53), at(port));
  EXPECT_EQ(f.flowCount(), 3u);
  EXPECT_FALSE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 17, 53, 1), at(6)));  // evicted
  EXPECT_TRUE(f.allowInbound(v4("100.64.0.3", "100.64.0.1", 17, 53, 5), at(6)));
}

TEST(ReceiveFilter, Ipv6AndParse) {
  ReceiveFilter f;
  f.setPolicy(std::make_shared<Web>());
  f.noteOutbound(v6("fd7a::1", "fd7a::3", 6, 40000, 443), at(1));
  EXPECT_TRUE(f.allowInbound(v6("fd7a::3", "fd7a::1", 6, 443, 40000), at(2)));
  EXPECT_FALSE(f.allowInbound(v6("fd7a::3", "fd7a::1", 6, 443, 40001), at(2)));
  auto flow = parseFlow(v6("fd7a::3", "fd7a::1", 17, 1, 2));
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->proto, 17);
  EXPECT_EQ(flow->src_port, 1);
  EXPECT_EQ(flow->dst_port, 2);
  // A non-first IPv4 fragment carries no ports.
  auto frag = v4("100.64.0.2", "100.64.0.1", 6, 40000, 80);
  frag[7] = 1;
  EXPECT_EQ(parseFlow(frag)->dst_port, 0);
  EXPECT_FALSE(f.allowInbound(frag, at(2)));
}

}  // namespace
}  // namespace gatehouse::wg

namespace gatehouse::wg {
namespace {

// ICMP echo (type, id) in the packet's port bytes: v4() writes sport at l4+0 and dport at l4+2,
// so build the ICMP header by hand.
std::vector<uint8_t> icmp4(const char* src, const char* dst, uint8_t type, uint16_t id) {
  auto p = v4(src, dst, 1, 0, 0);
  p[20] = type;
  p[24] = id >> 8;
  p[25] = id & 0xff;
  return p;
}

TEST(ReceiveFilter, IcmpEchoReplyPassesOnlyForOurRequest) {
  ReceiveFilter f;
  f.setPolicy(std::make_shared<Web>());
  const char* me = "100.64.0.1";
  const char* peer = "100.64.0.3";
  // Their request is not allowed by the policy.
  EXPECT_FALSE(f.allowInbound(icmp4(peer, me, 8, 7), at(1)));
  // We ping them: the reply with our id passes, another id does not.
  f.noteOutbound(icmp4(me, peer, 8, 42), at(2));
  EXPECT_TRUE(f.allowInbound(icmp4(peer, me, 0, 42), at(2)));
  EXPECT_FALSE(f.allowInbound(icmp4(peer, me, 0, 43), at(2)));
  // …and our request does not open the door for their requests.
  EXPECT_FALSE(f.allowInbound(icmp4(peer, me, 8, 42), at(2)));
  // Our echo replies (to someone else's request) and ICMP errors track nothing.
  f.noteOutbound(icmp4(me, peer, 0, 9), at(3));
  f.noteOutbound(icmp4(me, peer, 3, 0), at(3));
  EXPECT_FALSE(f.allowInbound(icmp4(peer, me, 8, 9), at(3)));
  EXPECT_EQ(f.flowCount(), 1u);
}

}  // namespace
}  // namespace gatehouse::wg
