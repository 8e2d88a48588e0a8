// Node::receiveFilter(): a policy on B drops connections it does not allow, while B's own
// outbound connections get their replies (conntrack). Real loopback UDP, two Nodes.
#include <gtest/gtest.h>

#include <thread>

#include "tests/wg/node_pair.h"

namespace gatehouse::wg::testing {
namespace {

// TCP to `port` from 10.7.0.1 only.
class OnlyPort final : public InboundPolicy {
 public:
  explicit OnlyPort(uint16_t port) : port_(port) {}
  bool allow(const IpAddr& src, uint8_t proto, uint16_t dst_port) const override {
    return src == ip("10.7.0.1") && proto == 6 && dst_port == port_;
  }

 private:
  uint16_t port_;
};

void echoOnce(std::shared_ptr<FdListener> l) {
  auto c = l->accept(10000);
  if (!c.isOk()) return;
  std::string req;
  readAll(c->fd, &req);
  writeAll(c->fd, req.data(), req.size());
  ::close(c->fd);
}

std::string roundTrip(int fd, const std::string& msg) {
  writeAll(fd, msg.data(), msg.size());
  shutdown(fd, SHUT_WR);
  std::string reply;
  readAll(fd, &reply);
  ::close(fd);
  return reply;
}

TEST_F(NodePairTest, ReceiveFilterDropsDisallowedAndPassesReplies) {
  onLoop(*b_, [&] { b_->receiveFilter().setPolicy(std::make_shared<OnlyPort>(9010)); });
  auto allowed = b_->listenFd(9010);
  auto denied = b_->listenFd(9011);
  auto on_a = a_->listenFd(9012);
  ASSERT_TRUE(allowed.isOk() && denied.isOk() && on_a.isOk());

  // A → B:9010 is allowed.
  std::thread s1(echoOnce, allowed.value());
  auto c1 = a_->dialFd("10.7.0.2:9010");
  ASSERT_TRUE(c1.isOk()) << c1.status().message();
  EXPECT_EQ(roundTrip(c1->fd, "hello"), "hello");
  s1.join();

  // A → B:9011 is dropped at B: the SYN never reaches B's netstack.
  auto c2 = a_->dialFd("10.7.0.2:9011", 1500);
  EXPECT_FALSE(c2.isOk());
  if (c2.isOk()) ::close(c2->fd);
  denied.value()->close();

  // B → A:9012: not allowed inbound at B by policy, but A's replies belong to B's own flow.
  std::thread s3(echoOnce, on_a.value());
  auto c3 = b_->dialFd("10.7.0.1:9012");
  ASSERT_TRUE(c3.isOk()) << c3.status().message();
  EXPECT_EQ(roundTrip(c3->fd, "reply me"), "reply me");
  s3.join();

  EXPECT_GT(onLoop(*b_, [&] { return b_->receiveFilter().denied(); }), 0u);
  // Removing the policy allows everything again.
  onLoop(*b_, [&] { b_->receiveFilter().setPolicy(nullptr); });
  auto again = b_->listenFd(9013);
  ASSERT_TRUE(again.isOk());
  std::thread s4(echoOnce, again.value());
  auto c4 = a_->dialFd("10.7.0.2:9013");
  ASSERT_TRUE(c4.isOk()) << c4.status().message();
  EXPECT_EQ(roundTrip(c4->fd, "open"), "open");
  s4.join();
}

}  // namespace
}  // namespace gatehouse::wg::testing
