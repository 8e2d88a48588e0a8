// control_bench: N lightweight nodes (ClientCore + libuv, the real protocol over loopback TCP, all
// in this process) against one `gatehouse control` process. Prints join time and rate, the time
// from a policy change to the last node holding the new map (p50, max), and the server's CPU
// seconds and RSS. Targets (issue 4): every node has the new map within 2 s; RSS <= 300 MB.
//
//   control_bench [--nodes 1000] [--policy all|hub] [--bin path/to/gatehouse]
//
// "all": every node sees every other (999 peers each, the worst case for map size);
// "hub": nodes reach one tagged gateway (the gatehouse shape: agents → ai).
#include <sys/resource.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "control/client.h"
#include "tests/control/control_process.h"
#include "wg/crypto/x25519.h"

using namespace gatehouse;
using Clock = std::chrono::steady_clock;

namespace {

std::string policyText(const std::string& shape, const std::string& ports) {
  if (shape == "hub") {
    return R"({"groups": {"group:eng": ["alice@example.com"]},
               "tagOwners": {"tag:ai": ["alice@example.com"]},
               "grants": [{"src": ["group:eng"], "dst": ["tag:ai"], "ip": [)" +
           ports + "]}]}";
  }
  return R"({"groups": {"group:eng": ["alice@example.com"]},
             "grants": [{"src": ["group:eng"], "dst": ["group:eng"], "ip": [)" +
         ports + "]}]}";
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  int nodes = 1000;
  std::string shape = "all";
  std::string bin = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "gatehouse";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--nodes") nodes = std::max(2, std::min(5000, std::atoi(argv[i + 1])));
    if (a == "--policy") shape = argv[i + 1];
    if (a == "--bin") bin = argv[i + 1];
  }
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  char tmpl[] = "/tmp/control-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  control::testing::writeText(dir + "/policy.hujson", policyText(shape, R"("tcp:80")"));
  control::testing::ControlProcess server;
  if (!server.start(bin, dir, "127.0.0.1:0")) {
    std::fprintf(stderr, "cannot start %s control (see %s/control.log)\n", bin.c_str(),
                 dir.c_str());
    return 1;
  }
  server.admin({{"cmd", "users.create"}, {"login", "alice@example.com"}});
  std::string key = (*server.admin(
      {{"cmd", "keys.create"}, {"user", "alice@example.com"}, {"reusable", true}}))["secret"];
  std::string ai_key = shape != "hub" ? ""
                                      : (*server.admin({{"cmd", "keys.create"},
                                                        {"user", "alice@example.com"},
                                                        {"tags", {"tag:ai"}}}))["secret"];
  double cpu_idle = server.cpuSeconds();

  uv_loop_t loop;
  uv_loop_init(&loop);
  wg::SystemRandom random;
  wg::Endpoint ep{*wg::IpAddr::parse("127.0.0.1"), server.port};
  struct Node {
    std::unique_ptr<control::Client> client;
    int maps = 0;
    Clock::time_point last_map;
  };
  std::vector<Node> fleet(nodes);
  size_t expected_peers = shape == "hub" ? 1 : size_t(nodes - 1);
  auto t_start = Clock::now();
  for (int i = 0; i < nodes; ++i) {
    wg::noise::LocalStatic machine;
    wg::crypto::Key32 seed, node_priv;
    random.fill(seed);
    machine.priv = wg::crypto::privateKeyFromRandom(seed);
    machine.pub = wg::crypto::publicKey(machine.priv);
    random.fill(seed);
    node_priv = wg::crypto::privateKeyFromRandom(seed);
    control::ClientOptions o;
    o.server_public = server.key;
    o.auth_key = (shape == "hub" && i == 0) ? ai_key : key;
    o.hostname = "node" + std::to_string(i);
    o.endpoints = {"127.0.0.1:" + std::to_string(40000 + i)};
    auto core = std::make_unique<control::ClientCore>(machine, node_priv, o, random);
    Node* n = &fleet[i];
    n->client = std::make_unique<control::Client>(
        &loop, ep, std::move(core), [n](control::Client&, const control::ClientCore::Event& e) {
          if (e.kind == control::ClientCore::Event::Kind::kMap) {
            ++n->maps;
            n->last_map = Clock::now();
          } else if (e.kind == control::ClientCore::Event::Kind::kError) {
            std::fprintf(stderr, "node error: %s\n", e.message.c_str());
          }
        });
    n->client->start();
  }
  auto runUntil = [&](auto done, double limit_s) {
    auto end = Clock::now() + std::chrono::duration<double>(limit_s);
    while (!done() && Clock::now() < end) uv_run(&loop, UV_RUN_ONCE);
    return done();
  };
  auto complete = [&] {
    for (const Node& n : fleet) {
      if (!n.client->core().hasMap()) return false;
      size_t want = shape == "hub" && &n != &fleet[0] ? 1 : expected_peers;
      if (n.client->core().map().peers.size() != want) return false;
    }
    return true;
  };
  if (shape == "hub") expected_peers = size_t(nodes - 1);  // the gateway sees everyone
  bool joined = runUntil(complete, 120);
  double join_s = ms(Clock::now() - t_start) / 1000;
  double cpu_join = server.cpuSeconds();
  // Let stragglers' deltas drain before measuring the change.
  runUntil([] { return false; }, 1.0);

  std::vector<int> before(nodes);
  for (int i = 0; i < nodes; ++i) before[i] = fleet[i].maps;
  auto t0 = Clock::now();
  auto reply =
      server.admin({{"cmd", "policy.set"}, {"text", policyText(shape, R"("tcp:80", "tcp:443")")}});
  bool applied = reply && (*reply)["ok"].get<bool>();
  // Under "all", every node's filter changes; under "hub", only the gateway's.
  int affected = shape == "hub" ? 1 : nodes;
  auto delivered = [&] {
    for (int i = 0; i < affected; ++i) {
      if (fleet[i].maps == before[i]) return false;
    }
    return true;
  };
  bool all_delivered = runUntil(delivered, 30);
  std::vector<double> lat;
  for (int i = 0; i < affected; ++i) {
    if (fleet[i].maps > before[i]) lat.push_back(ms(fleet[i].last_map - t0));
  }
  std::sort(lat.begin(), lat.end());
  int unaffected_updates = 0;
  for (int i = affected; i < nodes; ++i) unaffected_updates += fleet[i].maps != before[i];

  double cpu_total = server.cpuSeconds();
  double rss = server.memoryMiB("VmRSS");
  double hwm = server.memoryMiB("VmHWM");
  std::printf("control_bench: %d nodes, policy %s (%zu peers per node at most)\n", nodes,
              shape.c_str(), expected_peers);
  std::printf("  join:          %s in %.2f s (%.0f nodes/s)\n",
              joined ? "all joined" : "INCOMPLETE", join_s, nodes / join_s);
  std::printf(
      "  policy change: %s; %zu/%d affected nodes updated; p50 %.0f ms, max %.0f ms "
      "(target: max <= 2000 ms); unaffected nodes updated: %d\n",
      applied ? "applied" : "REJECTED", lat.size(), affected, lat.empty() ? 0 : lat[lat.size() / 2],
      lat.empty() ? 0 : lat.back(), unaffected_updates);
  std::printf("  server CPU:    %.2f s total (%.2f s join, %.2f s policy change)\n",
              cpu_total - cpu_idle, cpu_join - cpu_idle, cpu_total - cpu_join);
  std::printf("  server RSS:    %.0f MiB now, %.0f MiB peak (target <= 300 MB)\n", rss, hwm);

  for (Node& n : fleet) n.client->stop();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  server.stop();
  std::filesystem::remove_all(dir);
  return joined && all_delivered && applied ? 0 : 1;
}
