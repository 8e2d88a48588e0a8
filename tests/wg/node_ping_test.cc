// Node::ping through a real tunnel (lwIP answers the echo), name resolution for dials, peers().
#include <gtest/gtest.h>

#include "tests/wg/node_pair.h"
#include "wg/net/icmp_echo.h"

namespace gatehouse::wg::testing {
namespace {

TEST(IcmpEcho, RequestRoundTripsAsReplyV4AndV6) {
  const uint8_t payload[] = {1, 2, 3, 4, 5};
  for (auto [s, d] : {std::pair{"10.0.0.1", "10.0.0.2"}, std::pair{"fd7::1", "fd7::2"}}) {
    auto pkt = icmp::echoRequest(ip(s), ip(d), 0x1234, 7, payload);
    EXPECT_FALSE(icmp::parseEchoReply(pkt)) << "a request is not a reply";
    // Turn it into the reply a peer would send: swap addresses, set the type, fix the checksum.
    auto reply = icmp::echoRequest(ip(d), ip(s), 0x1234, 7, payload);
    bool v4 = ip(s).isV4();
    size_t off = v4 ? 20 : 40;
    // type 8 → 0 lowers the checksum's sum by 0x0800 (v4); 128 → 129 raises it by 0x0100 (v6).
    uint32_t c = (reply[off + 2] << 8) | reply[off + 3];
    if (v4) {
      reply[off] = 0;
      c += 0x0800;
    } else {
      reply[off] = 129;
      c += 0xffff - 0x0100;
    }
    while (c >> 16) c = (c & 0xffff) + (c >> 16);
    reply[off + 2] = static_cast<uint8_t>(c >> 8);
    reply[off + 3] = static_cast<uint8_t>(c);
    auto r = icmp::parseEchoReply(reply);
    ASSERT_TRUE(r) << s;
    EXPECT_EQ(r->from, ip(d));
    EXPECT_EQ(r->to, ip(s));
    EXPECT_EQ(r->id, 0x1234);
    EXPECT_EQ(r->seq, 7);
    reply.back() ^= 1;  // corrupt: checksum fails
    EXPECT_FALSE(icmp::parseEchoReply(reply));
  }
  EXPECT_FALSE(icmp::parseEchoReply({}));
}

TEST_F(NodePairTest, PingThroughTheTunnelV4AndV6) {
  for (const char* dst : {"10.7.0.2", "fd7::2"}) {
    auto rtt = a_->pingWait(ip(dst), 5000);
    ASSERT_TRUE(rtt.isOk()) << dst << ": " << rtt.status().message();
    EXPECT_GT(*rtt, 0);
    EXPECT_LT(*rtt, 5'000'000'000);
  }
  // Nobody answers in 10.7.1.0/24: a timeout, not a hang.
  auto lost = a_->pingWait(ip("10.7.1.9"), 200);
  ASSERT_FALSE(lost.isOk());
  EXPECT_EQ(lost.status().code(), ETIMEDOUT);
  auto unrouted = a_->pingWait(ip("10.9.9.9"), 200);
  EXPECT_EQ(unrouted.status().code(), EHOSTUNREACH);
}

TEST_F(NodePairTest, DialByNameThroughTheResolver) {
  onLoop(*a_, [&] {
    a_->setNameResolver([](const std::string& host) -> std::optional<IpAddr> {
      if (host == "node-b") return ip("10.7.0.2");
      return std::nullopt;
    });
  });
  auto l = b_->listenFd(8080);
  ASSERT_TRUE(l.isOk());
  auto c = a_->dialFd("node-b:8080", 5000);
  ASSERT_TRUE(c.isOk()) << c.status().message();
  auto s = l.value()->accept(5000);
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(s->remote.addr, ip("10.7.0.1"));
  ::close(c->fd);
  ::close(s->fd);
  auto bad = a_->dialFd("nobody:80", 1000);
  EXPECT_EQ(bad.status().code(), EINVAL);
}

TEST_F(NodePairTest, PeersSnapshot) {
  auto peers = a_->peers();
  ASSERT_TRUE(peers.isOk());
  ASSERT_EQ(peers->size(), 1u);
  EXPECT_EQ((*peers)[0].public_key, pub_b_);
  EXPECT_TRUE((*peers)[0].endpoint.has_value());
}

}  // namespace
}  // namespace gatehouse::wg::testing
