// The control channel: handshake and frames round trip, tampering and wrong server keys fail,
// oversized frames are refused, and input cut at every offset still decodes the same messages.
#include "control/channel.h"

#include <gtest/gtest.h>

#include "tests/control/control_harness.h"

namespace gatehouse::control {
namespace {

using testing::keyPair;

struct Pair {
  wg::FakeRandom random{7};
  wg::noise::LocalStatic server_key = keyPair(random);
  wg::noise::LocalStatic client_key = keyPair(random);
  Channel server = Channel::server(server_key, random);
  Channel client = Channel::client(client_key, server_key.pub, random);

  // Runs the handshake; true when both ends are open.
  bool handshake() {
    std::vector<std::string> none;
    if (!server.receive(client.takeOutput(), none)) return false;
    if (!client.receive(server.takeOutput(), none)) return false;
    return client.open() && server.open() && none.empty();
  }
};

TEST(ChannelTest, HandshakeAndRoundTrip) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.server.remoteStatic(), p.client_key.pub);
  EXPECT_EQ(p.client.remoteStatic(), p.server_key.pub);
  EXPECT_EQ(p.server.peerVersion(), kCapabilityVersion);
  EXPECT_EQ(p.client.peerVersion(), kCapabilityVersion);

  ASSERT_TRUE(p.client.send("hello"));
  ASSERT_TRUE(p.client.send(""));
  ASSERT_TRUE(p.client.send(std::string(70000, 'x')));
  std::vector<std::string> got;
  ASSERT_TRUE(p.server.receive(p.client.takeOutput(), got));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "hello");
  EXPECT_EQ(got[1], "");
  EXPECT_EQ(got[2], std::string(70000, 'x'));

  ASSERT_TRUE(p.server.send("back"));
  got.clear();
  ASSERT_TRUE(p.client.receive(p.server.takeOutput(), got));
  ASSERT_EQ(got, std::vector<std::string>{"back"});
}

TEST(ChannelTest, SendBeforeOpenFails) {
  Pair p;
  EXPECT_FALSE(p.client.send("early"));
  EXPECT_FALSE(p.server.send("early"));
}

TEST(ChannelTest, UnknownServerKeyFails) {
  wg::FakeRandom random{9};
  auto server_key = keyPair(random);
  auto other = keyPair(random);
  auto client_key = keyPair(random);
  Channel server = Channel::server(server_key, random);
  Channel client = Channel::client(client_key, other.pub, random);  // pinned the wrong key
  std::vector<std::string> got;
  EXPECT_FALSE(server.receive(client.takeOutput(), got));
  EXPECT_EQ(server.state(), Channel::State::kFailed);
  EXPECT_NE(server.error().find("cannot decrypt message 1"), std::string::npos);
  EXPECT_TRUE(server.takeOutput().empty());  // nothing goes back
}

TEST(ChannelTest, ImpostorServerFailsAtClient) {
  // An impostor that answers with its own key cannot produce a message 2 the client accepts.
  wg::FakeRandom random{11};
  auto real = keyPair(random);
  auto impostor = keyPair(random);
  auto client_key = keyPair(random);
  Channel client = Channel::client(client_key, real.pub, random);
  Channel fake = Channel::client(client_key, impostor.pub, random);  // a valid-looking msg2 source
  Channel imp_server = Channel::server(impostor, random);
  std::vector<std::string> got;
  ASSERT_TRUE(imp_server.receive(fake.takeOutput(), got));
  EXPECT_FALSE(client.receive(imp_server.takeOutput(), got));
  EXPECT_EQ(client.state(), Channel::State::kFailed);
}

TEST(ChannelTest, TamperedFrameFails) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.client.send("payload"));
  std::string wire = p.client.takeOutput();
  for (size_t i = 0; i < wire.size(); ++i) {
    Pair q;  // same seed: same keys and ephemerals
    ASSERT_TRUE(q.handshake());
    ASSERT_TRUE(q.client.send("payload"));
    std::string w = q.client.takeOutput();
    ASSERT_EQ(w, wire);
    w[i] ^= 0x01;
    std::vector<std::string> got;
    bool ok = q.server.receive(w, got);
    // A flipped length byte makes the frame incomplete or oversized; everything else fails auth.
    EXPECT_TRUE(got.empty()) << "offset " << i;
    if (i >= kFrameHeader) {
      EXPECT_FALSE(ok) << "offset " << i;
    }
  }
}

TEST(ChannelTest, ReplayedFrameFails) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.client.send("once"));
  std::string wire = p.client.takeOutput();
  std::vector<std::string> got;
  ASSERT_TRUE(p.server.receive(wire, got));
  EXPECT_FALSE(p.server.receive(wire, got));
  EXPECT_EQ(got.size(), 1u);
}

TEST(ChannelTest, OversizedFramesAreRefused) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  EXPECT_TRUE(p.client.send(std::string(kMaxFramePlaintext, 'a')));
  EXPECT_FALSE(p.client.send(std::string(kMaxFramePlaintext + 1, 'a')));
  std::vector<std::string> got;
  ASSERT_TRUE(p.server.receive(p.client.takeOutput(), got));
  ASSERT_EQ(got.size(), 1u);
  // A header announcing more than the limit fails before any body arrives.
  uint32_t n = kMaxFramePlaintext + 17;
  std::string header = {char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  EXPECT_FALSE(p.server.receive(header, got));
  EXPECT_NE(p.server.error().find("exceeds the limit"), std::string::npos);

  // During the handshake the limit is tighter.
  Pair q;
  uint32_t m = kMaxHandshakeFrame + 1;
  std::string h2 = {char(m >> 24), char(m >> 16), char(m >> 8), char(m)};
  EXPECT_FALSE(q.server.receive(h2, got));
}

TEST(ChannelTest, TruncatedInputAtEveryOffset) {
  Pair ref;
  std::string msg1 = ref.client.takeOutput();
  std::vector<std::string> none;
  ASSERT_TRUE(ref.server.receive(msg1, none));
  std::string msg2 = ref.server.takeOutput();
  ASSERT_TRUE(ref.client.receive(msg2, none));
  ASSERT_TRUE(ref.client.send("first"));
  ASSERT_TRUE(ref.client.send(std::string(300, 'z')));
  std::string frames = ref.client.takeOutput();
  std::string all = msg1 + frames;

  for (size_t cut = 0; cut <= all.size(); ++cut) {
    Pair p;  // same seed → same bytes
    std::vector<std::string> got;
    ASSERT_TRUE(p.server.receive(std::string_view(all).substr(0, cut), got)) << cut;
    if (p.server.open()) {
      std::vector<std::string> ignore;
      ASSERT_TRUE(p.client.receive(p.server.takeOutput(), ignore));
    }
    ASSERT_TRUE(p.server.receive(std::string_view(all).substr(cut), got)) << cut;
    ASSERT_EQ(got.size(), 2u) << cut;
    EXPECT_EQ(got[0], "first");
    EXPECT_EQ(got[1], std::string(300, 'z'));
    if (cut < all.size()) {
      EXPECT_EQ(p.server.bufferedInput(), 0u);
    }
  }
  // Byte at a time.
  Pair p;
  std::vector<std::string> got;
  for (char ch : all) ASSERT_TRUE(p.server.receive(std::string_view(&ch, 1), got));
  EXPECT_EQ(got.size(), 2u);
}

TEST(ChannelTest, GarbageHandshakeFails) {
  wg::FakeRandom random{3};
  auto server_key = keyPair(random);
  for (size_t len : {0u, 1u, 40u, 95u, 96u, 200u}) {
    Channel server = Channel::server(server_key, random);
    std::string frame = {0, 0, char(len >> 8), char(len)};
    frame += std::string(len, '\x5a');
    std::vector<std::string> got;
    EXPECT_FALSE(server.receive(frame, got)) << len;
  }
}

}  // namespace
}  // namespace gatehouse::control
