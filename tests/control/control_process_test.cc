// Real processes on loopback: `gatehouse control` with three lightweight nodes (ClientCore over
// libuv TCP). They join and see what the policy grants; the server restarts on the same state
// and port; the nodes reconnect on their own (backoff) and keep their ids and addresses.
#include "tests/control/control_process.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <filesystem>

#include "control/client.h"
#include "tests/control/control_harness.h"

namespace gatehouse::control {
namespace {

using Clock = std::chrono::steady_clock;

struct Fleet {
  uv_loop_t loop;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<int> maps;
  Fleet() { uv_loop_init(&loop); }
  ~Fleet() {
    for (auto& c : clients) c->stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  template <typename F>
  bool runUntil(F done, double seconds) {
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    // A timer keeps uv_run from blocking past the deadline.
    uv_timer_t wake;
    uv_timer_init(&loop, &wake);
    uv_timer_start(
        &wake, [](uv_timer_t*) {}, 50, 50);
    while (!done() && Clock::now() < end) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return done();
  }
};

TEST(ControlProcessTest, NodesJoinAndReconnectAfterServerRestart) {
  char tmpl[] = "/tmp/control-proc-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ASSERT_TRUE(testing::writeText(dir + "/policy.hujson", testing::kTestPolicy));
  testing::ControlProcess server;
  ASSERT_TRUE(server.start(GATEHOUSE_BIN, dir, "127.0.0.1:0"));
  uint16_t port = server.port;
  ASSERT_TRUE((*server.admin({{"cmd", "users.create"}, {"login", "alice@example.com"}}))["ok"]);
  auto keyFor = [&](std::vector<std::string> tags) {
    return (*server.admin(
        {{"cmd", "keys.create"}, {"user", "alice@example.com"}, {"tags", tags}}))["secret"]
        .get<std::string>();
  };

  Fleet fleet;
  wg::FakeRandom random(77);
  wg::Endpoint ep{*wg::IpAddr::parse("127.0.0.1"), port};
  std::vector<std::pair<std::string, std::vector<std::string>>> who = {
      {"alice-laptop", {}}, {"bot", {"tag:bot"}}, {"ai", {"tag:ai"}}};
  fleet.maps.resize(who.size());
  for (size_t i = 0; i < who.size(); ++i) {
    ClientOptions o;
    o.server_public = server.key;
    o.auth_key = keyFor(who[i].second);
    o.hostname = who[i].first;
    o.backoff_base_ms = 100;
    o.backoff_max_ms = 400;
    auto core = std::make_unique<ClientCore>(testing::keyPair(random),
                                             testing::keyPair(random).priv, o, random);
    int* maps = &fleet.maps[i];
    fleet.clients.push_back(std::make_unique<Client>(
        &fleet.loop, ep, std::move(core),
        [maps](Client&, const ClientCore::Event& e) {
          if (e.kind == ClientCore::Event::Kind::kMap) ++*maps;
        },
        50));
    fleet.clients.back()->start();
  }
  auto peers = [&](size_t i) { return fleet.clients[i]->core().map().peers.size(); };
  ASSERT_TRUE(fleet.runUntil([&] { return peers(2) == 2 && peers(0) == 1 && peers(1) == 1; }, 10));
  std::string ai_addr = fleet.clients[2]->core().map().self.addresses(0);
  uint64_t ai_id = fleet.clients[2]->core().nodeId();

  // Restart on the same state and port.
  server.stop();
  ASSERT_TRUE(fleet.runUntil([&] { return fleet.clients[0]->core().attempt() > 0; }, 5));
  std::vector<int> before = fleet.maps;
  ASSERT_TRUE(server.start(GATEHOUSE_BIN, dir, "127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(fleet.runUntil(
      [&] {
        for (size_t i = 0; i < who.size(); ++i) {
          if (fleet.maps[i] == before[i]) return false;
        }
        return true;
      },
      10));
  EXPECT_EQ(fleet.clients[2]->core().nodeId(), ai_id);
  EXPECT_EQ(fleet.clients[2]->core().map().self.addresses(0), ai_addr);
  EXPECT_EQ(peers(2), 2u);
  auto nodes = *server.admin({{"cmd", "nodes.list"}});
  EXPECT_EQ(nodes["nodes"].size(), 3u);
  for (const auto& n : nodes["nodes"]) EXPECT_TRUE(n["online"].get<bool>()) << n.dump();
  server.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gatehouse::control
