// ServerCore with ClientCores in memory: registration and its errors, maps and deltas, policy
// changes, deletion, expiry, ephemeral nodes, keepalives and bad clients.
#include "control/server_core.h"

#include <gtest/gtest.h>

#include "control/netmap.h"
#include "tests/control/control_harness.h"

namespace gatehouse::control {
namespace {

using testing::Harness;
using testing::TestClient;

ClientOptions opts(const std::string& key, const std::string& host,
                   std::vector<std::string> tags = {}) {
  ClientOptions o;
  o.auth_key = key;
  o.hostname = host;
  o.tags = std::move(tags);
  return o;
}

struct Scenario {
  Harness h;
  TestClient* alice;
  TestClient* bot;
  TestClient* ai;
  TestClient* carol;
  Scenario() {
    alice = &h.addClient(opts(h.createKey("alice@example.com"), "alice-laptop"));
    bot = &h.addClient(opts(h.createKey("alice@example.com"), "bot", {"tag:bot"}));
    ai = &h.addClient(opts(h.createKey("alice@example.com", false, {"tag:ai"}), "ai"));
    carol = &h.addClient(opts(h.createKey("carol@example.com"), "carol-laptop"));
    for (TestClient* c : {alice, bot, ai, carol}) h.connect(*c);
  }
};

TEST(ServerCoreTest, ScenarioMaps) {
  Scenario s;
  for (TestClient* c : {s.alice, s.bot, s.ai, s.carol}) {
    ASSERT_TRUE(c->core->hasMap()) << ::testing::PrintToString(c->errors());
  }
  EXPECT_EQ(s.alice->peerNames(), std::vector<std::string>{"ai"});
  EXPECT_EQ(s.bot->peerNames(), std::vector<std::string>{"ai"});
  EXPECT_EQ(s.ai->peerNames(), (std::vector<std::string>{"alice-laptop", "bot"}));
  EXPECT_TRUE(s.carol->peerNames().empty());

  const NetworkMap& m = s.ai->core->map();
  EXPECT_EQ(m.self.hostname(), "ai");
  EXPECT_EQ(m.self.tags(0), "tag:ai");
  EXPECT_EQ(m.self.machine_key().size(), 32u);
  EXPECT_EQ(m.self.key_expiry_unix(), 0);  // tagged: exempt
  const v1::Node& alice = m.peers.at(s.alice->core->nodeId());
  EXPECT_EQ(alice.user().login(), "alice@example.com");
  EXPECT_EQ(alice.user().display_name(), "Alice");
  EXPECT_EQ(alice.groups_size(), 1);
  EXPECT_EQ(alice.groups(0), "group:eng");
  EXPECT_TRUE(alice.machine_key().empty());  // only self carries it
  EXPECT_EQ(alice.addresses(0), "100.64.0.1/32");
  EXPECT_GT(alice.key_expiry_unix(), 0);
  const v1::Node& bot = m.peers.at(s.bot->core->nodeId());
  EXPECT_FALSE(bot.has_user());
  EXPECT_EQ(bot.tags(0), "tag:bot");

  // ai enforces tcp:443 from alice and bot.
  PacketFilter f = filterFromProto(m.filter);
  auto a4 = *wg::IpAddr::parse("100.64.0.1");
  auto c4 = *wg::IpAddr::parse("100.64.0.4");
  EXPECT_TRUE(f.evaluate(a4, kProtoTcp, 443).allow);
  EXPECT_FALSE(f.evaluate(a4, kProtoTcp, 80).allow);
  EXPECT_FALSE(f.evaluate(c4, kProtoTcp, 443).allow);
  // Alice holds the app capability on ai; the bot none.
  ASSERT_EQ(m.caps.peers_size(), 1);
  EXPECT_EQ(m.caps.peers(0).peer_id(), s.alice->core->nodeId());
  EXPECT_EQ(m.caps.peers(0).caps(0).name(), "example.com/cap/gw");
  EXPECT_EQ(m.caps.peers(0).caps(0).values_json(0), R"({"role":"user"})");
  // Alice's own filter is empty: nothing may reach her.
  EXPECT_EQ(s.alice->core->map().filter.rules_size(), 0);
}

TEST(ServerCoreTest, RegistrationErrorsAreExact) {
  Harness h;
  std::string single = h.createKey("alice@example.com");
  TestClient& first = h.addClient(opts(single, "one"));
  h.connect(first);
  ASSERT_TRUE(first.core->hasMap());

  TestClient& reused = h.addClient(opts(single, "two"));
  h.connect(reused);
  EXPECT_TRUE(reused.core->failed());
  EXPECT_EQ(reused.errors().at(0),
            "auth key 1 was already used (single-use); create a new key, or a reusable one with "
            "--reusable");

  TestClient& unknown = h.addClient(opts("ghauth-0000", "three"));
  h.connect(unknown);
  EXPECT_EQ(unknown.errors().at(0),
            "auth key not found: check the key or create one with `gatehouse admin keys create`");

  std::string expiring = h.createKey("alice@example.com", true, {}, 60);
  h.advance(61);
  TestClient& expired = h.addClient(opts(expiring, "four"));
  h.connect(expired);
  EXPECT_EQ(expired.errors().at(0), "auth key 2 expired; create a new key");

  std::string revoked = h.createKey("alice@example.com", true);
  EXPECT_TRUE(h.admin({{"cmd", "keys.revoke"}, {"id", 3}})["ok"].get<bool>());
  TestClient& rev = h.addClient(opts(revoked, "five"));
  h.connect(rev);
  EXPECT_EQ(rev.errors().at(0), "auth key 3 was revoked; create a new key");

  // carol may not apply tag:bot (tagOwners: group:eng), and her key does not pre-assign it.
  TestClient& tag = h.addClient(opts(h.createKey("carol@example.com"), "six", {"tag:bot"}));
  h.connect(tag);
  EXPECT_EQ(tag.errors().at(0),
            "tag:bot is not permitted: the auth key does not pre-assign it and tagOwners does not "
            "let carol@example.com apply it");

  TestClient& none = h.addClient(opts("", "seven"));
  h.connect(none);
  EXPECT_EQ(none.errors().at(0), "an auth key is required to register this machine");
  EXPECT_EQ(h.server().stats().nodes, 1u);
}

TEST(ServerCoreTest, HostnamesAreUniqueAndSanitized) {
  Harness h;
  std::string key = h.createKey("alice@example.com", true);
  std::vector<std::string> names;
  for (const char* want : {"laptop", "laptop", "Laptop", "My Laptop!", ""}) {
    TestClient& c = h.addClient(opts(key, want));
    h.connect(c);
    names.push_back(c.core->map().self.hostname());
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"laptop", "laptop-2", "laptop-3", "my-laptop", "node"}));
}

TEST(ServerCoreTest, PolicyChangeSendsDeltasOnlyToAffectedNodes) {
  Scenario s;
  int alice_maps = s.alice->maps, carol_maps = s.carol->maps, ai_maps = s.ai->maps;
  uint64_t ai_seq = s.ai->core->map().seq;
  std::string changed = testing::kTestPolicy;
  changed.replace(changed.find("tcp:443"), 7, "tcp:8443");
  auto r = s.h.admin({{"cmd", "policy.set"}, {"text", changed}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(s.ai->maps, ai_maps + 1);
  EXPECT_EQ(s.ai->core->map().seq, ai_seq + 1);
  PacketFilter f = filterFromProto(s.ai->core->map().filter);
  EXPECT_TRUE(f.evaluate(*wg::IpAddr::parse("100.64.0.1"), kProtoTcp, 8443).allow);
  EXPECT_FALSE(f.evaluate(*wg::IpAddr::parse("100.64.0.1"), kProtoTcp, 443).allow);
  EXPECT_EQ(s.alice->maps, alice_maps);  // her view did not change
  EXPECT_EQ(s.carol->maps, carol_maps);

  // Granting carol access changes carol's and ai's maps (a peer each), not alice's.
  std::string wider = changed;
  wider.replace(wider.find("\"group:eng\", \"tag:bot\""), 22,
                "\"group:eng\", \"tag:bot\", \"carol@example.com\"");
  ASSERT_TRUE(s.h.admin({{"cmd", "policy.set"}, {"text", wider}})["ok"].get<bool>());
  EXPECT_EQ(s.carol->peerNames(), std::vector<std::string>{"ai"});
  EXPECT_EQ(s.ai->peerNames(), (std::vector<std::string>{"alice-laptop", "bot", "carol-laptop"}));
  EXPECT_EQ(s.alice->maps, alice_maps);
}

TEST(ServerCoreTest, BadPolicyIsRejectedAndTheOldOneStays) {
  Scenario s;
  int ai_maps = s.ai->maps;
  auto r = s.h.admin(
      {{"cmd", "policy.set"}, {"text", "{\n  \"grants\": [{\"src\": [\"group:nope\"]}]\n}"}});
  EXPECT_FALSE(r["ok"].get<bool>());
  ASSERT_FALSE(r["diagnostics"].empty());
  EXPECT_EQ(r["diagnostics"][0]["line"], 2);
  EXPECT_EQ(s.h.server().policyText(), testing::kTestPolicy);
  EXPECT_EQ(s.ai->maps, ai_maps);
  // A policy whose tests fail is rejected too.
  std::string failing = R"({"grants": [], "tests": [{"src": "alice@example.com",
                            "accept": ["tag:ai:443"]}], "tagOwners": {"tag:ai": []}})";
  EXPECT_FALSE(s.h.admin({{"cmd", "policy.set"}, {"text", failing}})["ok"].get<bool>());
  EXPECT_EQ(s.h.server().policyText(), testing::kTestPolicy);
}

TEST(ServerCoreTest, DeletingANodeRemovesItFromPeers) {
  Scenario s;
  uint64_t bot_id = s.bot->core->nodeId();
  ASSERT_TRUE(s.ai->core->map().peers.count(bot_id));
  auto r = s.h.admin({{"cmd", "nodes.delete"}, {"node", "bot"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_FALSE(s.ai->core->map().peers.count(bot_id));
  PacketFilter f = filterFromProto(s.ai->core->map().filter);
  EXPECT_FALSE(f.evaluate(*wg::IpAddr::parse("100.64.0.2"), kProtoTcp, 443).allow);
  EXPECT_NE(s.bot->errors().at(0).find("this node was deleted"), std::string::npos);
  // It reconnects and tries to register again, but its single-use key is spent.
  s.h.connect(*s.bot);
  EXPECT_TRUE(s.bot->core->failed());
  EXPECT_FALSE(s.ai->core->map().peers.count(bot_id));
}

TEST(ServerCoreTest, ExpiredNodeKeyIsRefusedUntilReRegistration) {
  Harness h;
  std::string key = h.createKey("alice@example.com", true);
  TestClient& ai = h.addClient(opts(h.createKey("alice@example.com", false, {"tag:ai"}), "ai"));
  TestClient& alice = h.addClient(opts(key, "alice-laptop"));
  h.connect(ai);
  h.connect(alice);
  uint64_t id = alice.core->nodeId();
  Key32 old_key = alice.core->nodePublic();
  ASSERT_EQ(ai.peerNames(), std::vector<std::string>{"alice-laptop"});

  ASSERT_TRUE(h.admin({{"cmd", "nodes.expire"}, {"node", id}})["ok"].get<bool>());
  h.advance(1);
  // The stream was refused; the client rotated its node key and re-registered with its key.
  EXPECT_NE(::testing::PrintToString(alice.errors()).find("node key expired"), std::string::npos);
  h.connect(alice);
  h.advance(1);
  EXPECT_EQ(alice.core->nodeId(), id);
  EXPECT_NE(alice.core->nodePublic(), old_key);
  EXPECT_TRUE(alice.core->hasMap());
  Key32 fresh = alice.core->nodePublic();
  EXPECT_EQ(ai.core->map().peers.at(id).node_key(), std::string(fresh.begin(), fresh.end()));
  EXPECT_EQ(ai.core->map().peers.at(id).addresses(0), "100.64.0.2/32");
}

TEST(ServerCoreTest, ExpiredNodeDropsOutOfPeerMaps) {
  ServerOptions o;
  o.key_expiry_sec = 100;
  Harness h(o);
  TestClient& ai = h.addClient(opts(h.createKey("alice@example.com", false, {"tag:ai"}), "ai"));
  TestClient& alice = h.addClient(opts(h.createKey("alice@example.com"), "alice-laptop"));
  h.connect(ai);
  h.connect(alice);
  ASSERT_EQ(ai.peerNames().size(), 1u);
  h.advance(101);
  EXPECT_TRUE(ai.peerNames().empty());
  EXPECT_NE(::testing::PrintToString(alice.errors()).find("node key expired"), std::string::npos);
  h.connect(alice);
  EXPECT_TRUE(alice.core->failed());  // single-use key already used: cannot re-register
  EXPECT_TRUE(ai.peerNames().empty());
}

TEST(ServerCoreTest, EphemeralNodeIsDeletedAfterDisconnect) {
  ServerOptions o;
  o.ephemeral_timeout_sec = 5;
  Harness h(o);
  TestClient& ai = h.addClient(opts(h.createKey("alice@example.com", false, {"tag:ai"}), "ai"));
  TestClient& eph =
      h.addClient(opts(h.createKey("alice@example.com", false, {}, 3600, true), "job"));
  h.connect(ai);
  h.connect(eph);
  ASSERT_TRUE(eph.core->map().self.ephemeral());
  ASSERT_EQ(ai.peerNames(), std::vector<std::string>{"job"});
  h.disconnect(eph);
  h.advance(3);
  EXPECT_EQ(ai.peerNames(), std::vector<std::string>{"job"});  // grace period
  h.advance(3);
  EXPECT_TRUE(ai.peerNames().empty());
  EXPECT_EQ(h.server().stats().nodes, 1u);
}

TEST(ServerCoreTest, KeepalivesKeepAnIdleStreamOpen) {
  Scenario s;
  for (int i = 0; i < 10; ++i) s.h.advance(30);
  EXPECT_TRUE(s.alice->connected);
  EXPECT_TRUE(s.alice->errors().empty()) << ::testing::PrintToString(s.alice->errors());
  EXPECT_EQ(s.h.server().stats().cut_off, 0u);
}

TEST(ServerCoreTest, SlowlorisAndGarbageAreCutOffWithoutAffectingOthers) {
  Scenario s;
  wg::Now now = s.h.now();
  // A client that never finishes its handshake.
  auto stuck = s.h.server().accept(now, "slow");
  uint8_t partial[3] = {0, 0, 0};
  s.h.server().receive(stuck, partial, now);
  // A client that sends garbage.
  auto junk = s.h.server().accept(now, "junk");
  std::string garbage = "GET / HTTP/1.1\r\n\r\n";
  s.h.server().receive(junk, {reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size()},
                       now);
  s.h.advance(11);
  EXPECT_EQ(s.h.server().stats().cut_off, 2u);
  bool logged = false;
  for (const auto& l : s.h.logs()) logged |= l.find("cut off conn") != std::string::npos;
  EXPECT_TRUE(logged);
  EXPECT_TRUE(s.alice->connected);
  EXPECT_TRUE(s.ai->core->hasMap());
}

TEST(ServerCoreTest, LargeMapsAreSplitIntoPartialFrames) {
  ServerOptions o;
  o.max_frame = 4096 + 1200;
  Harness h(o, R"({"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]})");
  std::string key = h.createKey("alice@example.com", true);
  std::vector<TestClient*> cs;
  for (int i = 0; i < 30; ++i) {
    cs.push_back(&h.addClient(opts(key, "n" + std::to_string(i))));
    h.connect(*cs.back());
  }
  for (TestClient* c : cs) EXPECT_EQ(c->core->map().peers.size(), 29u);
  // The last one's full map (29 peers, ~4 KB) came in several frames, applied as one map.
  EXPECT_GT(cs[29]->core->map().seq, 3u);
  EXPECT_EQ(cs[29]->maps, 1);
}

TEST(ServerCoreTest, BackoffGrowsWithJitterAndCaps) {
  EXPECT_EQ(backoffDelayMs(0, 0, 500, 60000), 250);
  EXPECT_EQ(backoffDelayMs(0, 250, 500, 60000), 500);
  EXPECT_EQ(backoffDelayMs(3, 0, 500, 60000), 2000);
  EXPECT_EQ(backoffDelayMs(100, 0, 500, 60000), 30000);
  for (uint32_t r = 0; r < 1000; r += 37) {
    int64_t d = backoffDelayMs(5, r * 7919u, 500, 60000);
    EXPECT_GE(d, 8000);
    EXPECT_LE(d, 16000);
  }
}

}  // namespace
}  // namespace gatehouse::control
