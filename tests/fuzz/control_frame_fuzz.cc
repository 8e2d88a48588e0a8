// Fuzzes what a control server and a node do with bytes from the network: the frame decoder of
// an established channel (lengths, AEAD) and the protobuf decoders behind it, plus the server
// core end to end (handshake state, ClientMessage handling) on the raw input.
//
// Layout of the input: byte 0 picks the target; the rest is the data.
//   0: raw bytes into a ServerCore connection (pre-handshake garbage, partial frames)
//   1: data sealed as frames by a real client channel, then fed to the server core
//   2: data parsed as ServerMessage and applied by a ClientCore's map logic via a real channel
#include <cstddef>
#include <cstdint>

#include "control/client_core.h"
#include "control/server_core.h"
#include "tests/control/control_harness.h"

using namespace gatehouse;
using namespace gatehouse::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0] % 3;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  static wg::FakeRandom random(1);
  static wg::noise::LocalStatic server_key = control::testing::keyPair(random);
  static wg::noise::LocalStatic client_key = control::testing::keyPair(random);
  std::string error;
  static Store store = std::move(*Store::open(":memory:", &error));
  ServerCore core(store, server_key, random, {}, nullptr, wg::Now{});
  core.setPolicy(control::testing::kTestPolicy);
  auto bytes = [](std::string_view s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  if (mode == 0) {
    auto conn = core.accept(wg::Now{});
    core.receive(conn, bytes(body), wg::Now{});
    core.tick(wg::Now{});
    return 0;
  }
  auto split = [&](auto&& sendOne) {
    // Split the body into messages at 0xff bytes so one input drives several messages.
    size_t start = 0;
    for (size_t i = 0; i <= body.size() && i < 4096; ++i) {
      if (i == body.size() || uint8_t(body[i]) == 0xff) {
        sendOne(body.substr(start, i - start));
        start = i + 1;
      }
    }
  };
  if (mode == 1) {
    Channel client = Channel::client(client_key, server_key.pub, random);
    auto conn = core.accept(wg::Now{});
    core.receive(conn, bytes(client.takeOutput()), wg::Now{});
    std::vector<std::string> msgs;
    for (auto& o : core.takeOutputs()) client.receive(bytes(o.bytes), msgs);
    if (!client.open()) return 0;
    split([&](std::string_view m) { client.send(m); });
    core.receive(conn, bytes(client.takeOutput()), wg::Now{});
    core.tick(wg::Now{});
    return 0;
  }
  // mode 2: a server channel feeds arbitrary ServerMessages to a ClientCore.
  ClientOptions o;
  o.server_public = server_key.pub;
  o.auth_key = "k";
  ClientCore client(client_key, client_key.priv, o, random, 1);
  client.dialing(wg::Now{});
  client.connected(wg::Now{});
  Channel server = Channel::server(server_key, random);
  std::vector<std::string> msgs;
  server.receive(client.takeOutput(), msgs);
  client.received(bytes(server.takeOutput()), wg::Now{});
  split([&](std::string_view m) {
    server.send(m);
    client.received(bytes(server.takeOutput()), wg::Now{});
  });
  filterFromProto(client.map().filter);
  return 0;
}
