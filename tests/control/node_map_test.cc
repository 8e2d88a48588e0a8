// applyMapToNode on real Nodes (loopback UDP): B takes a control map listing A; its whoIs
// answers carry the map's user, groups, tags and capabilities, and its receive filter enforces
// the map's packet filter.
#include <gtest/gtest.h>

#include <thread>

#include "control/map_apply.h"
#include "tests/wg/node_pair.h"

namespace gatehouse::control {
namespace {

using wg::testing::ip;
using wg::testing::onLoop;
using wg::testing::readAll;
using wg::testing::writeAll;

class NodeMapTest : public wg::testing::NodePairTest {};

std::shared_ptr<NetworkMap> mapForB(const wg::Key32& pub_a, const wg::Key32& pub_b) {
  auto m = std::make_shared<NetworkMap>();
  m->self.set_id(2);
  m->self.set_node_key(std::string(pub_b.begin(), pub_b.end()));
  m->self.add_addresses("10.7.0.2/32");
  m->self.add_addresses("fd7::2/128");
  m->self.set_name("node-b.mesh");
  v1::Node a;
  a.set_id(1);
  a.set_name("node-a.mesh");
  a.set_node_key(std::string(pub_a.begin(), pub_a.end()));
  a.add_addresses("10.7.0.1/32");
  a.add_addresses("fd7::1/128");
  a.mutable_user()->set_login("alice@example.com");
  a.mutable_user()->set_display_name("Alice");
  a.add_groups("group:eng");
  m->peers[1] = a;
  v1::PeerCapabilities* pc = m->caps.add_peers();
  pc->set_peer_id(1);
  v1::Capability* cap = pc->add_caps();
  cap->set_name("example.com/cap/gateway");
  cap->add_values_json("{\"budget\":5}");
  v1::FilterRule* r = m->filter.add_rules();
  r->add_src_prefixes("10.7.0.1/32");
  r->add_protos(6);
  v1::PortRange* pr = r->add_ports();
  pr->set_first(9020);
  pr->set_last(9020);
  return m;
}

bool echo(wg::Node& client, wg::Node& server_node, uint16_t port, int64_t timeout_ms) {
  auto l = server_node.listenFd(port);
  if (!l.isOk()) return false;
  std::thread server([l] {
    auto c = l.value()->accept(3000);
    if (!c.isOk()) return;
    std::string req;
    readAll(c->fd, &req);
    writeAll(c->fd, req.data(), req.size());
    ::close(c->fd);
  });
  bool ok = false;
  auto c = client.dialFd("10.7.0.2:" + std::to_string(port), timeout_ms);
  if (c.isOk()) {
    writeAll(c->fd, "hi", 2);
    shutdown(c->fd, SHUT_WR);
    std::string reply;
    readAll(c->fd, &reply);
    ::close(c->fd);
    ok = reply == "hi";
  }
  l.value()->close();
  server.join();
  return ok;
}

TEST_F(NodeMapTest, MapDrivesPeersWhoIsAndFilter) {
  auto map = mapForB(pub_a_, pub_b_);
  wg::PeerSyncResult r = onLoop(*b_, [&] { return applyMapToNode(*b_, map); });
  // A was already a (static) peer with the same key and addresses: kept, session intact.
  EXPECT_EQ(r.added + r.removed, 0u);

  auto who = b_->whoIs(ip("fd7::1"));
  ASSERT_TRUE(who.isOk());
  EXPECT_EQ(who->node_id, "1");
  EXPECT_EQ(who->name, "node-a.mesh");
  EXPECT_EQ(who->user_login, "alice@example.com");
  EXPECT_EQ(who->user_display_name, "Alice");
  EXPECT_EQ(who->groups, (std::vector<std::string>{"group:eng"}));
  EXPECT_EQ(who->capabilities["example.com/cap/gateway"],
            (std::vector<std::string>{"{\"budget\":5}"}));
  EXPECT_TRUE(who->endpoint.has_value());  // from the device, kept
  auto self = b_->whoIs(ip("10.7.0.2"));
  ASSERT_TRUE(self.isOk());
  EXPECT_TRUE(self->is_self);
  EXPECT_EQ(self->node_id, "2");

  EXPECT_TRUE(echo(*a_, *b_, 9020, 5000));   // granted
  EXPECT_FALSE(echo(*a_, *b_, 9021, 1500));  // not granted: dropped at B

  // A map without A: B removes the peer; A's traffic no longer reaches B.
  auto empty = std::make_shared<NetworkMap>(*map);
  empty->peers.clear();
  r = onLoop(*b_, [&] { return applyMapToNode(*b_, empty); });
  EXPECT_EQ(r.removed, 1u);
  EXPECT_FALSE(b_->whoIs(ip("10.7.0.1")).isOk());
  EXPECT_FALSE(echo(*a_, *b_, 9020, 1500));
}

}  // namespace
}  // namespace gatehouse::control
