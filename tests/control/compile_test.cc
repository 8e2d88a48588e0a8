// Per-node compilation: the issue's 3-node scenario (who sees whom, filters, caps exactly),
// selector edge cases, and a differential check of visibility against a naive pairwise model.
#include "control/compile.h"

#include <gtest/gtest.h>

#include <random>

namespace gatehouse::control {
namespace {

wg::IpAddr ip(const char* s) { return *wg::IpAddr::parse(s); }

Policy mustParse(const char* text) {
  auto p = parsePolicy(text);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.errors()[0].format("policy"));
  return p.ok() ? p.value() : Policy{};
}

const char* kScenario = R"({
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:pr-review-bot": ["group:eng"], "tag:ai": ["autogroup:admin"]},
  "grants": [
    // eng and the review bot reach the gateway over HTTPS.
    {"src": ["group:eng", "tag:pr-review-bot"], "dst": ["tag:ai"], "ip": ["tcp:443"]},
    {"src": ["group:eng"], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["anthropic/*"]}]}},
    {"src": ["tag:pr-review-bot"], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["openai/*"]}]}},
    // eng may ssh into the bot.
    {"src": ["group:eng"], "dst": ["tag:pr-review-bot"], "ip": ["tcp:22"]},
  ],
})";

// 1 alice (group:eng), 2 bot (tag:pr-review-bot), 3 carol (no grants), 4 ai (tag:ai).
std::vector<Node> scenarioNodes() {
  return {
      {1, "alice-laptop", "alice@example.com", {}, {ip("100.64.0.1"), ip("fd7a:115c:a1e0::1")}},
      {2, "bot", "alice@example.com", {"tag:pr-review-bot"}, {ip("100.64.0.2")}},
      {3, "carol-laptop", "carol@example.com", {}, {ip("100.64.0.3")}},
      {4, "ai", "", {"tag:ai"}, {ip("100.64.0.4"), ip("fd7a:115c:a1e0::4")}},
  };
}

TEST(Compile, ThreeNodeScenario) {
  Policy p = mustParse(kScenario);
  auto nodes = scenarioNodes();
  auto maps = compilePolicy(p, nodes, {"gh.internal"});
  ASSERT_EQ(maps.size(), 4u);

  // Who sees whom.
  EXPECT_EQ(maps[0].peers, (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(maps[1].peers, (std::vector<uint64_t>{1, 4}));
  EXPECT_TRUE(maps[2].peers.empty());
  EXPECT_EQ(maps[3].peers, (std::vector<uint64_t>{1, 2}));
  ASSERT_EQ(maps[3].dns.size(), 2u);
  EXPECT_EQ(maps[3].dns[0].fqdn, "alice-laptop.gh.internal");
  EXPECT_EQ(maps[3].dns[1].fqdn, "bot.gh.internal");
  EXPECT_EQ(maps[3].dns[1].addrs, std::vector<wg::IpAddr>{ip("100.64.0.2")});

  // Filters at the destination.
  const PacketFilter& ai = maps[3].filter;
  ASSERT_EQ(ai.rules().size(), 1u);
  std::vector<std::string> srcs;
  for (const auto& prefix : ai.rules()[0].srcs->prefixes()) srcs.push_back(prefix.toString());
  EXPECT_EQ(srcs,
            (std::vector<std::string>{"100.64.0.1/32", "100.64.0.2/32", "fd7a:115c:a1e0::1/128"}));
  EXPECT_EQ(ai.rules()[0].protos, std::vector<uint8_t>{kProtoTcp});
  EXPECT_EQ(ai.rules()[0].ports, (std::vector<PortRange>{{443, 443}}));
  EXPECT_TRUE(ai.evaluate(ip("100.64.0.1"), kProtoTcp, 443).allow);
  EXPECT_TRUE(ai.evaluate(ip("fd7a:115c:a1e0::1"), kProtoTcp, 443).allow);
  EXPECT_TRUE(ai.evaluate(ip("100.64.0.2"), kProtoTcp, 443).allow);
  EXPECT_FALSE(ai.evaluate(ip("100.64.0.3"), kProtoTcp, 443).allow);
  EXPECT_FALSE(ai.evaluate(ip("100.64.0.1"), kProtoTcp, 22).allow);
  const PacketFilter& bot = maps[1].filter;
  EXPECT_TRUE(bot.evaluate(ip("100.64.0.1"), kProtoTcp, 22).allow);
  EXPECT_FALSE(bot.evaluate(ip("100.64.0.4"), kProtoTcp, 22).allow);
  EXPECT_TRUE(maps[0].filter.rules().empty());  // nothing may connect to alice
  EXPECT_TRUE(maps[2].filter.rules().empty());

  // Capabilities exactly.
  using nlohmann::json;
  ASSERT_EQ(maps[3].caps.size(), 2u);
  EXPECT_EQ(maps[3].caps.at(1), (CapMap{{"gatehouse.dev/cap/gateway",
                                         {json{{"role", "user"}, {"models", {"anthropic/*"}}}}}}));
  EXPECT_EQ(
      maps[3].caps.at(2),
      (CapMap{{"gatehouse.dev/cap/gateway", {json{{"role", "user"}, {"models", {"openai/*"}}}}}}));
  EXPECT_TRUE(maps[0].caps.empty());
  EXPECT_TRUE(maps[1].caps.empty());
}

TEST(Compile, CapsUnionAcrossGrantsWithoutDuplicates) {
  Policy p = mustParse(R"({
    "groups": {"group:a": ["u@x"], "group:b": ["u@x"]},
    "grants": [
      {"src": ["group:a"], "dst": ["*"], "app": {"x.dev/cap/c": [{"v": 1}, {"v": 2}]}},
      {"src": ["group:b"], "dst": ["*"], "app": {"x.dev/cap/c": [{"v": 2}, {"v": 3}],
                                                  "x.dev/cap/d": [true]}},
    ]})");
  std::vector<Node> nodes = {{1, "u", "u@x", {}, {ip("100.64.0.1")}},
                             {2, "v", "v@x", {}, {ip("100.64.0.2")}}};
  auto maps = compilePolicy(p, nodes);
  using nlohmann::json;
  EXPECT_EQ(maps[1].caps.at(1),
            (CapMap{{"x.dev/cap/c", {json{{"v", 1}}, json{{"v", 2}}, json{{"v", 3}}}},
                    {"x.dev/cap/d", {json(true)}}}));
  EXPECT_TRUE(maps[0].caps.empty());                   // a node holds no caps on itself
  EXPECT_TRUE(maps[0].filter.rules().empty());         // app-only grants add no packet rules
  EXPECT_EQ(maps[0].peers, std::vector<uint64_t>{2});  // but do make peers visible
}

TEST(Compile, SelectorEdgeCases) {
  Policy p = mustParse(R"({
    "tagOwners": {"tag:a": [], "tag:b": []},
    "hosts": {"lab": "100.64.1.0/24"},
    "grants": [
      {"src": ["autogroup:member"], "dst": ["tag:a"], "ip": ["tcp:1"]},
      {"src": ["autogroup:tagged"], "dst": ["u@x"], "ip": ["tcp:2"]},
      {"src": ["lab"], "dst": ["100.64.0.1"], "ip": ["tcp:3"]},
      {"src": ["*"], "dst": ["tag:b"], "ip": ["udp:4"]},
      {"src": ["10.9.0.0/16"], "dst": ["tag:b"], "ip": ["tcp:5"]},
    ]})");
  std::vector<Node> nodes = {
      {1, "u", "u@x", {}, {ip("100.64.0.1")}},
      {2, "tagged-by-u", "u@x", {"tag:a"}, {ip("100.64.0.2")}},  // tags win over the user
      {3, "both", "", {"tag:a", "tag:b"}, {ip("100.64.0.3")}},
      {4, "lab-box", "w@x", {}, {ip("100.64.1.7")}},
      {5, "orphan", "", {}, {ip("100.64.0.5")}},  // neither user nor tags
  };
  auto maps = compilePolicy(p, nodes);
  // autogroup:member → tag:a: users u and w reach nodes 2 and 3; tagged nodes do not.
  EXPECT_TRUE(maps[1].filter.evaluate(ip("100.64.0.1"), kProtoTcp, 1).allow);
  EXPECT_TRUE(maps[2].filter.evaluate(ip("100.64.1.7"), kProtoTcp, 1).allow);
  EXPECT_FALSE(maps[1].filter.evaluate(ip("100.64.0.3"), kProtoTcp, 1).allow);
  EXPECT_FALSE(maps[1].filter.evaluate(ip("100.64.0.5"), kProtoTcp, 1).allow);
  // autogroup:tagged → u@x: nodes 2 and 3 reach node 1, but node 2 is not "u@x" as a dst.
  EXPECT_TRUE(maps[0].filter.evaluate(ip("100.64.0.2"), kProtoTcp, 2).allow);
  EXPECT_TRUE(maps[0].filter.evaluate(ip("100.64.0.3"), kProtoTcp, 2).allow);
  EXPECT_FALSE(maps[1].filter.evaluate(ip("100.64.0.3"), kProtoTcp, 2).allow);
  // Host alias (CIDR) as src keeps the prefix; an IP dst selects the node owning it.
  ASSERT_EQ(maps[0].filter.rules().size(), 2u);
  EXPECT_TRUE(maps[0].filter.evaluate(ip("100.64.1.200"), kProtoTcp, 3).allow);
  EXPECT_EQ(maps[0].peers, (std::vector<uint64_t>{2, 3, 4}));
  // "*" as src is every address, not just nodes; a CIDR src outside the tailnet stays a prefix.
  EXPECT_TRUE(maps[2].filter.evaluate(ip("8.8.8.8"), kProtoUdp, 4).allow);
  EXPECT_TRUE(maps[2].filter.evaluate(ip("2001:db8::1"), kProtoUdp, 4).allow);
  EXPECT_TRUE(maps[2].filter.evaluate(ip("10.9.3.3"), kProtoTcp, 5).allow);
  EXPECT_FALSE(maps[2].filter.evaluate(ip("10.9.3.3"), kProtoTcp, 4).allow);
  // "*" → tag:b makes every node a peer of node 3 and node 3 a peer of every node.
  EXPECT_EQ(maps[2].peers, (std::vector<uint64_t>{1, 2, 4, 5}));
  EXPECT_EQ(maps[4].peers, std::vector<uint64_t>{3});
  // selectorMatches agrees with compilation.
  EXPECT_FALSE(selectorMatches(p, p.grants[1].dst[0], nodes[1]));
  EXPECT_TRUE(selectorMatches(p, p.grants[0].dst[0], nodes[2]));
  EXPECT_TRUE(selectorMatches(p, p.grants[2].src[0], nodes[3]));
  EXPECT_FALSE(selectorMatches(p, p.grants[0].src[0], nodes[4]));
}

TEST(Compile, DenyByDefault) {
  Policy p = mustParse("{\"grants\": []}");
  std::vector<Node> nodes = {{1, "a", "a@x", {}, {ip("100.64.0.1")}},
                             {2, "b", "b@x", {}, {ip("100.64.0.2")}}};
  auto maps = compilePolicy(p, nodes);
  for (const NodeMap& m : maps) {
    EXPECT_TRUE(m.peers.empty());
    EXPECT_FALSE(m.filter.evaluate(ip("100.64.0.1"), kProtoTcp, 80).allow);
  }
}

// Differential: random users, tags and grants; visibility, filters and caps against a naive
// pairwise evaluation built on selectorMatches.
TEST(Compile, MatchesNaivePairwiseModel) {
  Policy p = mustParse(R"({
    "groups": {"group:g1": ["u0@x", "u1@x"], "group:g2": ["u2@x"]},
    "tagOwners": {"tag:t0": [], "tag:t1": [], "tag:t2": []},
    "grants": [
      {"src": ["group:g1"], "dst": ["tag:t0"], "ip": ["tcp:80"]},
      {"src": ["tag:t1", "u2@x"], "dst": ["group:g2", "tag:t2"], "ip": ["udp:53"],
       "app": {"x.dev/cap/a": [1]}},
      {"src": ["autogroup:tagged"], "dst": ["autogroup:member"], "ip": ["tcp:22"]},
      {"src": ["u3@x"], "dst": ["tag:t1"], "app": {"x.dev/cap/b": [2]}},
    ]})");
  std::mt19937 rng(7);
  std::vector<Node> nodes;
  for (uint64_t i = 0; i < 60; ++i) {
    Node n;
    n.id = 1000 + i;
    n.name = "n" + std::to_string(i);
    if (rng() % 3 == 0) {
      for (int t = 0; t < 3; ++t) {
        if (rng() % 2) n.tags.push_back("tag:t" + std::to_string(t));
      }
    }
    n.user = "u" + std::to_string(rng() % 5) + "@x";
    uint8_t b[4] = {100, 64, 0, uint8_t(i + 1)};
    n.addrs = {wg::IpAddr::v4(b)};
    nodes.push_back(n);
  }
  auto maps = compilePolicy(p, nodes);
  auto matchesAny = [&](const std::vector<Selector>& sel, const Node& n) {
    for (const Selector& s : sel) {
      if (selectorMatches(p, s, n)) return true;
    }
    return false;
  };
  for (size_t d = 0; d < nodes.size(); ++d) {
    for (size_t s = 0; s < nodes.size(); ++s) {
      if (s == d) continue;
      bool visible = false;
      bool tcp80 = false, udp53 = false, tcp22 = false;
      CapMap caps;
      for (size_t gi = 0; gi < p.grants.size(); ++gi) {
        const Grant& g = p.grants[gi];
        bool fwd = matchesAny(g.src, nodes[s]) && matchesAny(g.dst, nodes[d]);
        bool rev = matchesAny(g.src, nodes[d]) && matchesAny(g.dst, nodes[s]);
        visible = visible || fwd || rev;
        if (!fwd) continue;
        tcp80 = tcp80 || gi == 0;
        udp53 = udp53 || gi == 1;
        tcp22 = tcp22 || gi == 2;
        for (const auto& [cap, values] : g.app) {
          for (const auto& v : values) caps[cap].push_back(v);
        }
      }
      const NodeMap& m = maps[d];
      bool listed = std::binary_search(m.peers.begin(), m.peers.end(), nodes[s].id);
      ASSERT_EQ(listed, visible) << d << " " << s;
      const wg::IpAddr& a = nodes[s].addrs[0];
      ASSERT_EQ(m.filter.evaluate(a, kProtoTcp, 80).allow, tcp80) << d << " " << s;
      ASSERT_EQ(m.filter.evaluate(a, kProtoUdp, 53).allow, udp53) << d << " " << s;
      ASSERT_EQ(m.filter.evaluate(a, kProtoTcp, 22).allow, tcp22) << d << " " << s;
      auto it = m.caps.find(nodes[s].id);
      ASSERT_EQ(it == m.caps.end() ? CapMap{} : it->second, caps) << d << " " << s;
    }
  }
}

}  // namespace
}  // namespace gatehouse::control
