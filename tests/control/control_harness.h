// An in-memory control plane for tests: one ServerCore over an in-memory Store and any number of
// ClientCores, wired byte for byte with a fake clock. No sockets, no sleeps.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "control/client_core.h"
#include "control/server_core.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::control::testing {

inline wg::noise::LocalStatic keyPair(wg::Random& r) {
  wg::noise::LocalStatic k;
  Key32 seed;
  r.fill(seed);
  k.priv = wg::crypto::privateKeyFromRandom(seed);
  k.pub = wg::crypto::publicKey(k.priv);
  return k;
}

inline Store memoryStore() {
  std::string error;
  auto s = Store::open(":memory:", &error);
  EXPECT_TRUE(s.has_value()) << error;
  return std::move(*s);
}

inline const char* kTestPolicy = R"({
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:bot": ["group:eng"], "tag:ai": ["autogroup:admin"]},
  "grants": [
    {"src": ["group:eng", "tag:bot"], "dst": ["tag:ai"], "ip": ["tcp:443"]},
    {"src": ["group:eng"], "dst": ["tag:ai"], "app": {"example.com/cap/gw": [{"role": "user"}]}},
  ],
})";

struct TestClient {
  std::unique_ptr<ClientCore> core;
  ServerCore::ConnId conn = 0;
  bool connected = false;
  std::vector<ClientCore::Event> events;
  int maps = 0;

  std::vector<std::string> errors() const {
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.kind == ClientCore::Event::Kind::kError) out.push_back(e.message);
    }
    return out;
  }
  std::vector<std::string> peerNames() const {
    std::vector<std::string> out;
    for (const auto& [id, p] : core->map().peers) out.push_back(p.hostname());
    return out;
  }
};

class Harness {
 public:
  explicit Harness(ServerOptions options = {}, const char* policy = kTestPolicy)
      : server_key_(keyPair(random_)) {
    server_ = std::make_unique<ServerCore>(
        store_, server_key_, random_, options, [this](const std::string& l) { logs_.push_back(l); },
        now_);
    auto errors = server_->setPolicy(policy);
    EXPECT_TRUE(errors.empty()) << (errors.empty() ? "" : errors[0].format("policy"));
    admin({{"cmd", "users.create"}, {"login", "alice@example.com"}, {"display_name", "Alice"}});
    admin({{"cmd", "users.create"}, {"login", "carol@example.com"}});
  }

  nlohmann::json admin(const nlohmann::json& req) {
    auto r = server_->admin(req, now_);
    pump();
    return r;
  }

  std::string createKey(const std::string& user, bool reusable = false,
                        std::vector<std::string> tags = {}, int64_t expiry_sec = 3600,
                        bool ephemeral = false) {
    auto r = admin({{"cmd", "keys.create"},
                    {"user", user},
                    {"reusable", reusable},
                    {"tags", tags},
                    {"expiry_sec", expiry_sec},
                    {"ephemeral", ephemeral}});
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    return r.value("secret", "");
  }

  TestClient& addClient(ClientOptions o, uint64_t node_id = 0) {
    o.server_public = server_key_.pub;
    auto machine = keyPair(random_);
    Key32 node_priv = keyPair(random_).priv;
    clients_.push_back(std::make_unique<TestClient>());
    clients_.back()->core = std::make_unique<ClientCore>(machine, node_priv, o, random_, node_id);
    return *clients_.back();
  }

  void connect(TestClient& c) {
    c.core->dialing(now_);
    c.conn = server_->accept(now_, "test");
    c.connected = true;
    c.core->connected(now_);
    pump();
  }

  void disconnect(TestClient& c) {
    if (!c.connected) return;
    c.connected = false;
    server_->disconnected(c.conn, now_);
    c.core->disconnected(now_);
  }

  // Moves bytes both ways until quiet, running a server tick so maps go out.
  void pump() {
    for (int round = 0; round < 100; ++round) {
      bool moved = false;
      server_->tick(now_);
      for (auto& cp : clients_) {
        TestClient& c = *cp;
        if (!c.connected) continue;
        std::string out = c.core->takeOutput();
        if (!out.empty()) {
          moved = true;
          server_->receive(c.conn, {reinterpret_cast<const uint8_t*>(out.data()), out.size()},
                           now_);
        }
      }
      for (auto& o : server_->takeOutputs()) {
        TestClient* c = byConn(o.conn);
        if (!c || !c->connected) continue;
        moved = true;
        if (!o.bytes.empty()) {
          c->core->received({reinterpret_cast<const uint8_t*>(o.bytes.data()), o.bytes.size()},
                            now_);
        }
        if (o.close) disconnect(*c);
      }
      for (auto& cp : clients_) {
        TestClient& c = *cp;
        for (auto& e : c.core->takeEvents()) {
          if (e.kind == ClientCore::Event::Kind::kMap) ++c.maps;
          c.events.push_back(std::move(e));
        }
        if (c.connected && c.core->wantClose()) {
          moved = true;
          disconnect(c);
        }
      }
      if (!moved) return;
    }
    ADD_FAILURE() << "pump did not settle";
  }

  // Moves the clock in steps of at most 5 s, ticking everyone at each step (so keepalives flow
  // as they would in real time).
  void advance(int64_t seconds) {
    while (seconds > 0) {
      int64_t step = std::min<int64_t>(seconds, 5);
      seconds -= step;
      now_.mono_ns += step * wg::kSec;
      now_.wall_ns += step * wg::kSec;
      for (auto& c : clients_) c->core->tick(now_);
      pump();
    }
  }

  ServerCore& server() { return *server_; }
  Store& store() { return store_; }
  wg::Now now() const { return now_; }
  const std::vector<std::string>& logs() const { return logs_; }
  const Key32& serverPublic() const { return server_key_.pub; }

 private:
  TestClient* byConn(ServerCore::ConnId id) {
    for (auto& c : clients_) {
      if (c->connected && c->conn == id) return c.get();
    }
    return nullptr;
  }

  wg::FakeRandom random_{42};
  wg::Now now_{10 * wg::kSec, int64_t{1700000000} * wg::kSec};
  Store store_ = memoryStore();
  wg::noise::LocalStatic server_key_;
  std::unique_ptr<ServerCore> server_;
  std::vector<std::unique_ptr<TestClient>> clients_;
  std::vector<std::string> logs_;
};

}  // namespace gatehouse::control::testing
