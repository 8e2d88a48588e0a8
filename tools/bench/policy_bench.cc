// Policy compilation for a 1,000-node tailnet (issue 4 target: new maps for 1,000 nodes within
// 2 s of a policy change). Prints parse and compile time; the map delivery itself is measured
// by the control-server benchmark.
//
// Tailnet: 800 user nodes (400 users, 2 nodes each, in 8 groups) and 200 tagged nodes (ai, ci,
// db, runner tags). Policy: 12 grants mixing dense (autogroup:member ↔ autogroup:member ssh,
// "*" → tag:db) and sparse (group → tag:ai with app capabilities) shapes.
#include <benchmark/benchmark.h>

#include <string>

#include "control/compile.h"
#include "control/policy.h"

namespace {

using gatehouse::control::compilePolicy;
using gatehouse::control::Node;
using gatehouse::control::parsePolicy;

std::string policyText() {
  std::string groups;
  for (int g = 0; g < 8; ++g) {
    groups += std::string(g ? "," : "") + "\"group:g" + std::to_string(g) + "\": [";
    for (int u = g; u < 400; u += 8) {
      groups += std::string(u == g ? "" : ",") + "\"u" + std::to_string(u) + "@example.com\"";
    }
    groups += "]";
  }
  return R"({
    "groups": {)" +
         groups + R"(},
    "tagOwners": {"tag:ai": ["autogroup:admin"], "tag:ci": ["group:g0"],
                  "tag:db": ["autogroup:admin"], "tag:runner": ["tag:ci"]},
    "grants": [
      {"src": ["autogroup:member"], "dst": ["autogroup:member"], "ip": ["tcp:22"]},
      {"src": ["*"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
      {"src": ["group:g0", "group:g1", "tag:ci"], "dst": ["tag:ai"], "ip": ["tcp:443", "icmp:*"]},
      {"src": ["group:g0", "group:g1"], "dst": ["tag:ai"],
       "app": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["anthropic/*"]}]}},
      {"src": ["group:g2"], "dst": ["tag:ai"],
       "app": {"gatehouse.dev/cap/gateway": [{"role": "admin"}]}},
      {"src": ["tag:runner"], "dst": ["tag:ai"], "ip": ["tcp:443"],
       "app": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["openai/*"]}]}},
      {"src": ["group:g3", "group:g4"], "dst": ["tag:runner"], "ip": ["tcp:22", "tcp:8000-8999"]},
      {"src": ["group:g5"], "dst": ["tag:ci"], "ip": ["80,443"]},
      {"src": ["tag:ci"], "dst": ["tag:runner"], "ip": ["*"]},
      {"src": ["group:g6"], "dst": ["group:g7"], "ip": ["udp:5000-6000"]},
      {"src": ["10.0.0.0/8"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
      {"src": ["autogroup:tagged"], "dst": ["tag:db"], "ip": ["tcp:9187"]},
    ],
  })";
}

std::vector<Node> tailnet(int n) {
  std::vector<Node> nodes;
  const char* tags[] = {"tag:ai", "tag:ci", "tag:db", "tag:runner"};
  for (int i = 0; i < n; ++i) {
    Node node;
    node.id = uint64_t(i + 1);
    node.name = "n" + std::to_string(i);
    if (i % 5 == 4) {
      node.tags = {tags[(i / 5) % 4]};
    } else {
      node.user = "u" + std::to_string((i / 2) % 400) + "@example.com";
    }
    uint8_t v4[4] = {100, 64, uint8_t(i >> 8), uint8_t(i)};
    uint8_t v6[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
    v6[14] = uint8_t(i >> 8), v6[15] = uint8_t(i);
    node.addrs = {gatehouse::wg::IpAddr::v4(v4), gatehouse::wg::IpAddr::v6(v6)};
    nodes.push_back(std::move(node));
  }
  return nodes;
}

void BM_PolicyParse(benchmark::State& state) {
  std::string text = policyText();
  for (auto _ : state) benchmark::DoNotOptimize(parsePolicy(text));
  state.counters["bytes"] = double(text.size());
}
BENCHMARK(BM_PolicyParse)->Unit(benchmark::kMicrosecond);

void BM_PolicyCompile(benchmark::State& state) {
  auto policy = parsePolicy(policyText());
  if (!policy) {
    state.SkipWithError(policy.errors()[0].message.c_str());
    return;
  }
  auto nodes = tailnet(int(state.range(0)));
  size_t peers = 0, rules = 0;
  for (auto _ : state) {
    auto maps = compilePolicy(policy.value(), nodes);
    peers = rules = 0;
    for (const auto& m : maps) {
      peers += m.peers.size();
      rules += m.filter.rules().size();
    }
    benchmark::DoNotOptimize(maps);
  }
  state.counters["peer_entries"] = double(peers);
  state.counters["filter_rules"] = double(rules);
}
BENCHMARK(BM_PolicyCompile)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_FilterEvaluate(benchmark::State& state) {
  auto policy = parsePolicy(policyText());
  auto nodes = tailnet(1000);
  auto maps = compilePolicy(policy.value(), nodes);
  const auto& db = maps[14];  // n14 is tag:db: the filter with the most sources
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        db.filter.evaluate(nodes[i % nodes.size()].addrs[0], gatehouse::control::kProtoTcp, 5432));
    ++i;
  }
}
BENCHMARK(BM_FilterEvaluate);

}  // namespace

BENCHMARK_MAIN();
