// Applying a control NetworkMap to a wg Device (control/map_apply.h, wg/peer_sync.h) and whoIs
// enrichment from the map. In memory: two Devices wired by tests/wg/device_pair.h, fake clock.
#include "control/map_apply.h"

#include <gtest/gtest.h>

#include "tests/wg/device_pair.h"

namespace gatehouse::control {
namespace {

using wg::DropReason;
using wg::Endpoint;
using wg::IpAddr;
using wg::IpPrefix;
using wg::Key32;
using wg::testing::DevicePair;
using wg::testing::ipv4Packet;
using wg::testing::peerOf;
using wg::testing::TestNode;
using wg::testing::typeOf;

v1::Node makeNode(uint64_t id, const Key32& pk, std::vector<std::string> addresses,
                  std::vector<std::string> endpoints, std::string name = "") {
  v1::Node n;
  n.set_id(id);
  n.set_node_key(std::string(pk.begin(), pk.end()));
  n.set_name(name.empty() ? "node" + std::to_string(id) : name);
  n.set_hostname(n.name());
  for (auto& a : addresses) n.add_addresses(a);
  for (auto& e : endpoints) n.add_endpoints(e);
  return n;
}

Key32 keyOf(uint8_t b) {
  Key32 k{};
  k.fill(b);
  return k;
}

// The map node A of a DevicePair receives: B as its only peer (plus `extra`).
NetworkMap mapForA(DevicePair& p, std::vector<v1::Node> extra = {}) {
  NetworkMap m;
  m.self = makeNode(1, p.a.pk, {"10.9.0.1/32"}, {p.a.endpoint.toString()});
  m.peers[2] = makeNode(2, p.b.pk, {"10.9.0.2/32"}, {p.b.endpoint.toString()});
  for (auto& n : extra) m.peers[n.id()] = n;
  return m;
}

std::vector<uint8_t> packetAB(DevicePair& p) { return ipv4Packet(p.a.ip, p.b.ip, 100); }

// Establishes a session A → B and checks data flows.
void establish(DevicePair& p) {
  p.send(p.a, packetAB(p));
  p.deliver();
  ASSERT_EQ(p.b.out.tun.size(), 1u);
  ASSERT_TRUE(peerOf(p.a, p.b.pk)->current);
  p.b.out.tun.clear();
}

TEST(MapApply, AddsPeersWithEndpointAndAllowedIps) {
  DevicePair p;
  p.a.device.removeAllPeers();
  NetworkMap m = mapForA(
      p, {makeNode(3, keyOf(7), {"10.9.0.3/32", "fd7a::3/128"}, {"bogus", "127.0.0.1:51003"})});
  wg::PeerSyncResult r = applyMap(p.a.device, m, p.now, p.a.out);
  EXPECT_EQ(r.added, 2u);
  EXPECT_EQ(r.removed, 0u);
  ASSERT_EQ(p.a.device.peerCount(), 2u);
  auto info = p.a.device.peerInfo(keyOf(7));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->endpoint, Endpoint::parse("127.0.0.1:51003"));
  ASSERT_EQ(info->allowed_ips.size(), 2u);
  // Data from A to B works on the map-configured peer.
  establish(p);
}

TEST(MapApply, UnchangedPeerKeepsSessionAcrossUnrelatedChange) {
  DevicePair p;
  wg::PeerSyncResult r0 = applyMap(p.a.device, mapForA(p), p.now, p.a.out);
  EXPECT_EQ(r0.unchanged, 1u);
  establish(p);
  wg::Peer* before = peerOf(p.a, p.b.pk);
  uint32_t index = before->current->local_index;

  // A new peer appears: B's entry is unchanged.
  wg::PeerSyncResult r = applyMap(
      p.a.device, mapForA(p, {makeNode(3, keyOf(7), {"10.9.0.3/32"}, {})}), p.now, p.a.out);
  EXPECT_EQ(r.added, 1u);
  EXPECT_EQ(r.unchanged, 1u);
  EXPECT_EQ(r.updated, 0u);
  wg::Peer* after = peerOf(p.a, p.b.pk);
  EXPECT_EQ(after, before);
  ASSERT_TRUE(after->current);
  EXPECT_EQ(after->current->local_index, index);

  // The next packet goes out as transport data at once (no new handshake).
  p.send(p.a, packetAB(p));
  ASSERT_EQ(p.a.out.net.size(), 1u);
  EXPECT_EQ(typeOf(p.a.out.net.front()), 4u);
  p.deliver();
  EXPECT_EQ(p.b.out.tun.size(), 1u);
}

TEST(MapApply, ChangedAllowedIpsUpdatedInPlaceKeepsSession) {
  DevicePair p;
  applyMap(p.a.device, mapForA(p), p.now, p.a.out);
  establish(p);
  uint32_t index = peerOf(p.a, p.b.pk)->current->local_index;

  NetworkMap m = mapForA(p);
  m.peers[2].add_addresses("fd7a::2/128");
  wg::PeerSyncResult r = applyMap(p.a.device, m, p.now, p.a.out);
  EXPECT_EQ(r.updated, 1u);
  EXPECT_EQ(r.added + r.removed, 0u);
  EXPECT_EQ(p.a.device.peerInfo(p.b.pk)->allowed_ips.size(), 2u);
  ASSERT_TRUE(peerOf(p.a, p.b.pk)->current);
  EXPECT_EQ(peerOf(p.a, p.b.pk)->current->local_index, index);

  // Applying the same map again changes nothing.
  r = applyMap(p.a.device, m, p.now, p.a.out);
  EXPECT_EQ(r.unchanged, 1u);
  EXPECT_EQ(r.updated, 0u);
}

TEST(MapApply, RoamedEndpointKeptWhenAdvertisedReplacedWhenNot) {
  DevicePair p;
  NetworkMap m = mapForA(p);
  m.peers[2].add_endpoints("127.0.0.1:60000");
  applyMap(p.a.device, m, p.now, p.a.out);
  p.a.device.setEndpoint(p.b.pk, *Endpoint::parse("127.0.0.1:60000"));  // roamed
  EXPECT_EQ(applyMap(p.a.device, m, p.now, p.a.out).unchanged, 1u);
  EXPECT_EQ(p.a.device.peerInfo(p.b.pk)->endpoint, Endpoint::parse("127.0.0.1:60000"));

  m.peers[2].clear_endpoints();
  m.peers[2].add_endpoints("127.0.0.1:51002");
  EXPECT_EQ(applyMap(p.a.device, m, p.now, p.a.out).updated, 1u);
  EXPECT_EQ(p.a.device.peerInfo(p.b.pk)->endpoint, p.b.endpoint);
}

TEST(MapApply, RemovedPeerPacketsAreDropped) {
  DevicePair p;
  establish(p);
  // B's map no longer lists A.
  NetworkMap mb;
  mb.self = makeNode(2, p.b.pk, {"10.9.0.2/32"}, {});
  wg::PeerSyncResult r = applyMap(p.b.device, mb, p.now, p.b.out);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_FALSE(p.b.device.hasPeer(p.a.pk));

  uint64_t drops = p.b.device.drops(DropReason::kUnknownIndex);
  p.send(p.a, packetAB(p));
  ASSERT_EQ(p.a.out.net.size(), 1u);
  EXPECT_EQ(typeOf(p.a.out.net.front()), 4u);
  p.deliver();
  EXPECT_TRUE(p.b.out.tun.empty());
  EXPECT_EQ(p.b.device.drops(DropReason::kUnknownIndex), drops + 1);

  // A new handshake from A is refused too (unknown static key).
  p.advance(20 * wg::kSec);
  EXPECT_TRUE(p.b.out.tun.empty());
  EXPECT_GT(p.b.device.drops(DropReason::kHandshakeFailed), 0u);
}

TEST(MapApply, SkipsMalformedKeysAndSelf) {
  DevicePair p;
  NetworkMap m = mapForA(p);
  v1::Node bad = makeNode(4, keyOf(9), {"10.9.0.4/32"}, {});
  bad.set_node_key("short");
  m.peers[4] = bad;
  m.peers[5] = makeNode(5, p.a.pk, {"10.9.0.5/32"}, {});  // our own key
  wg::PeerSyncResult r = applyMap(p.a.device, m, p.now, p.a.out);
  EXPECT_EQ(r.added, 0u);
  EXPECT_EQ(r.unchanged, 1u);
  EXPECT_EQ(p.a.device.peerCount(), 1u);
}

TEST(MapApply, KeepaliveFromOptions) {
  DevicePair p;
  MapApplyOptions o;
  o.persistent_keepalive = 25;
  EXPECT_EQ(applyMap(p.a.device, mapForA(p), p.now, p.a.out, o).updated, 1u);
  EXPECT_EQ(p.a.device.peerInfo(p.b.pk)->persistent_keepalive, 25);
  EXPECT_EQ(applyMap(p.a.device, mapForA(p), p.now, p.a.out, o).unchanged, 1u);
}

NetworkMap whoisMap() {
  NetworkMap m;
  m.self = makeNode(1, keyOf(1), {"100.64.0.1/32", "fd7a:115c:a1e0::1/128"}, {}, "me.ts");
  m.self.mutable_user()->set_login("alice");
  v1::Node bob = makeNode(2, keyOf(2), {"100.64.0.2/32", "fd7a:115c:a1e0::2/128"}, {}, "bob.ts");
  bob.mutable_user()->set_login("bob@example.com");
  bob.mutable_user()->set_display_name("Bob B");
  bob.add_groups("group:eng");
  bob.add_groups("group:all");
  m.peers[2] = bob;
  v1::Node bot = makeNode(3, keyOf(3), {"100.64.0.3/32"}, {}, "bot.ts");
  bot.add_tags("tag:pr-review-bot");
  m.peers[3] = bot;
  v1::PeerCapabilities* pc = m.caps.add_peers();
  pc->set_peer_id(3);
  v1::Capability* c = pc->add_caps();
  c->set_name("example.com/cap/gateway");
  c->add_values_json(R"({"models":["small"]})");
  c->add_values_json(R"({"budget":5})");
  pc->add_caps()->set_name("example.com/cap/admin");
  return m;
}

TEST(WhoIsFromMap, UserNodeWithGroups) {
  NetworkMap m = whoisMap();
  wg::Identity id;
  ASSERT_TRUE(identityFromMap(m, *IpAddr::parse("fd7a:115c:a1e0::2"), id));
  EXPECT_EQ(id.node_id, "2");
  EXPECT_EQ(id.name, "bob.ts");
  EXPECT_EQ(id.node_public_key, keyOf(2));
  EXPECT_EQ(id.user_login, "bob@example.com");
  EXPECT_EQ(id.user_display_name, "Bob B");
  EXPECT_EQ(id.groups, (std::vector<std::string>{"group:eng", "group:all"}));
  EXPECT_TRUE(id.tags.empty());
  EXPECT_TRUE(id.capabilities.empty());
  EXPECT_FALSE(id.is_self);
  EXPECT_EQ(id.allowed_ips.size(), 2u);
}

TEST(WhoIsFromMap, TaggedNodeWithCapabilities) {
  NetworkMap m = whoisMap();
  wg::Identity id;
  ASSERT_TRUE(identityFromMap(m, *IpAddr::parse("100.64.0.3"), id));
  EXPECT_EQ(id.node_id, "3");
  EXPECT_TRUE(id.user_login.empty());
  EXPECT_EQ(id.tags, (std::vector<std::string>{"tag:pr-review-bot"}));
  ASSERT_EQ(id.capabilities.size(), 2u);
  EXPECT_EQ(id.capabilities["example.com/cap/gateway"],
            (std::vector<std::string>{R"({"models":["small"]})", R"({"budget":5})"}));
  EXPECT_TRUE(id.capabilities["example.com/cap/admin"].empty());
}

TEST(WhoIsFromMap, SelfAndUnknown) {
  NetworkMap m = whoisMap();
  wg::Identity id;
  ASSERT_TRUE(identityFromMap(m, *IpAddr::parse("100.64.0.1"), id));
  EXPECT_TRUE(id.is_self);
  EXPECT_EQ(id.user_login, "alice");
  EXPECT_EQ(id.node_id, "1");

  wg::Identity untouched;
  untouched.name = "static";
  EXPECT_FALSE(identityFromMap(m, *IpAddr::parse("100.64.0.9"), untouched));
  EXPECT_EQ(untouched.name, "static");
  EXPECT_TRUE(untouched.node_id.empty());
}

TEST(InboundPolicyFromMap, EnforcesMapFilter) {
  NetworkMap m;
  v1::FilterRule* r = m.filter.add_rules();
  r->add_src_prefixes("100.64.0.2/32");
  r->add_protos(6);
  v1::PortRange* pr = r->add_ports();
  pr->set_first(80);
  pr->set_last(80);
  auto policy = inboundPolicyFromMap(m);
  EXPECT_TRUE(policy->allow(*IpAddr::parse("100.64.0.2"), 6, 80));
  EXPECT_FALSE(policy->allow(*IpAddr::parse("100.64.0.2"), 6, 22));
  EXPECT_FALSE(policy->allow(*IpAddr::parse("100.64.0.3"), 6, 80));
  // An empty filter denies everything.
  EXPECT_FALSE(inboundPolicyFromMap(NetworkMap{})->allow(*IpAddr::parse("100.64.0.2"), 6, 80));
}

}  // namespace
}  // namespace gatehouse::control
