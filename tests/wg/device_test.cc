// Two Devices wired in memory with a fake clock: handshakes, data, padding, replay, cookies under
// load, rekey by time and by message count, reject after time, key zeroing, retransmission
// give-up, keepalives, roaming and cryptokey routing (reference §4-§8, testing ladder step 3).
#include <gtest/gtest.h>

#include "tests/wg/device_pair.h"
#include "wg/messages.h"

namespace gatehouse::wg::testing {
namespace {

std::vector<uint8_t> packetAB(DevicePair& p, size_t size = 100, uint8_t fill = 0xab) {
  return ipv4Packet(p.a.ip, p.b.ip, size, fill);
}
std::vector<uint8_t> packetBA(DevicePair& p, size_t size = 100, uint8_t fill = 0xcd) {
  return ipv4Packet(p.b.ip, p.a.ip, size, fill);
}

// Counts datagrams by type as they cross the wire.
struct WireLog {
  int by_type[5] = {};
  std::vector<size_t> sizes;
  std::function<bool(TestNode&, const Datagram&)> filter() {
    return [this](TestNode&, const Datagram& d) {
      uint32_t t = typeOf(d);
      if (t < 5) ++by_type[t];
      sizes.push_back(d.bytes.size());
      return true;
    };
  }
};

TEST(Device, HandshakeThenDataBothWays) {
  DevicePair p;
  auto pkt = packetAB(p);
  p.send(p.a, pkt);
  ASSERT_EQ(p.a.out.net.size(), 1u);
  EXPECT_EQ(typeOf(p.a.out.net[0]), kMsgInitiation);
  EXPECT_EQ(p.a.out.net[0].bytes.size(), kInitiationSize);
  WireLog log;
  p.deliver(log.filter());
  EXPECT_EQ(log.by_type[kMsgInitiation], 1);
  EXPECT_EQ(log.by_type[kMsgResponse], 1);
  ASSERT_EQ(p.b.out.tun.size(), 1u);
  EXPECT_EQ(p.b.out.tun[0], pkt);

  auto back = packetBA(p);
  p.send(p.b, back);
  p.deliver();
  ASSERT_EQ(p.a.out.tun.size(), 1u);
  EXPECT_EQ(p.a.out.tun[0], back);
  EXPECT_EQ(p.a.device.totalDrops(), 0u);
  EXPECT_EQ(p.b.device.totalDrops(), 0u);

  auto info = p.a.device.peerInfo(p.b.pk);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->stats.last_handshake_wall_ns, p.now.wall_ns);
  EXPECT_GT(info->stats.rx_bytes, 0u);
  EXPECT_GT(info->stats.tx_bytes, 0u);
}

TEST(Device, PaddingToSixteenNeverPastMtu) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  WireLog log;
  p.send(p.a, packetAB(p, 84));    // a ping: 84 → 96 bytes → 128-byte message (reference D2)
  p.send(p.a, packetAB(p, 1419));  // 1419 → 1420 (the MTU), not 1424
  p.send(p.a, packetAB(p, 1420));
  p.deliver(log.filter());
  ASSERT_EQ(log.sizes.size(), 3u);
  EXPECT_EQ(log.sizes[0], 128u);
  EXPECT_EQ(log.sizes[1], 16u + 1420 + 16);
  EXPECT_EQ(log.sizes[2], 16u + 1420 + 16);
  ASSERT_EQ(p.b.out.tun.size(), 4u);
  EXPECT_EQ(p.b.out.tun[1].size(), 84u);  // receiver trims to the IP length (D3)
  EXPECT_EQ(p.b.out.tun[2].size(), 1419u);
}

TEST(Device, ReplayedTransportIsDropped) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  p.send(p.a, packetAB(p));
  ASSERT_EQ(p.a.out.net.size(), 1u);
  Datagram copy = p.a.out.net[0];
  p.deliver();
  p.b.device.onNetworkPacket(copy.bytes, p.a.endpoint, p.now, p.b.out);
  EXPECT_EQ(p.b.out.tun.size(), 2u);
  EXPECT_EQ(p.b.device.drops(DropReason::kReplayedCounter), 1u);
}

TEST(Device, ReplayedAndFloodedInitiationsAreDropped) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  ASSERT_EQ(p.a.out.net.size(), 1u);
  Datagram init = p.a.out.net[0];
  p.deliver();
  p.step(kSec);
  p.b.device.onNetworkPacket(init.bytes, p.a.endpoint, p.now, p.b.out);
  EXPECT_EQ(p.b.device.drops(DropReason::kReplayedInitiation), 1u);
  EXPECT_TRUE(p.b.out.net.empty());

  // A second device holding A's key makes a fresh initiation 17 ms after a first one: the
  // timestamp is newer, but two initiations within 20 ms are a flood (reference H3).
  TestNode a2(7, p.a.endpoint, "10.9.0.1");
  a2.sk = p.a.sk;
  a2.pk = p.a.pk;
  a2.device.setPrivateKey(a2.sk, p.now);
  p.connect(a2, p.b);
  p.step(kSec);
  a2.device.onTunPacket(packetAB(p), p.now, a2.out);
  p.b.device.onNetworkPacket(a2.out.net.back().bytes, p.a.endpoint, p.now, p.b.out);
  EXPECT_EQ(p.b.out.net.size(), 1u);  // answered
  p.b.out.net.clear();
  TestNode a3(8, p.a.endpoint, "10.9.0.1");
  a3.device.setPrivateKey(p.a.sk, p.now);
  p.connect(a3, p.b);
  p.step(17 * kMs);
  a3.device.onTunPacket(packetAB(p), p.now, a3.out);
  p.b.device.onNetworkPacket(a3.out.net.back().bytes, p.a.endpoint, p.now, p.b.out);
  EXPECT_EQ(p.b.device.drops(DropReason::kInitiationFlood), 1u);
  EXPECT_TRUE(p.b.out.net.empty());
}

TEST(Device, UnknownPeerGetsNoAnswer) {
  DevicePair p;
  p.b.device.removePeer(p.a.pk);
  p.send(p.a, packetAB(p));
  p.deliver();
  EXPECT_TRUE(p.b.out.tun.empty());
  EXPECT_EQ(p.b.device.drops(DropReason::kHandshakeFailed), 1u);
  EXPECT_TRUE(p.b.out.net.empty());
}

TEST(Device, WrongPublicKeyFailsMac1) {
  DevicePair p;
  // A thinks B has another key: mac1 (keyed by the recipient's public key) does not match.
  TestNode stranger(9, p.b.endpoint, "10.9.0.2");
  p.a.device.removePeer(p.b.pk);
  p.a.device.addPeer(stranger.pk, p.now);
  p.a.device.setEndpoint(stranger.pk, p.b.endpoint);
  p.a.device.addAllowedIp(stranger.pk, *IpPrefix::parse("10.9.0.2/32"));
  p.send(p.a, packetAB(p));
  p.deliver();
  EXPECT_TRUE(p.b.out.tun.empty());
  EXPECT_EQ(p.b.device.drops(DropReason::kBadMac1), 1u);
}

TEST(Device, MismatchedPresharedKeyNeverCompletes) {
  DevicePair p;
  crypto::Key32 psk1{}, psk2{};
  psk1[0] = 1;
  psk2[0] = 2;
  p.a.device.setPresharedKey(p.b.pk, psk1);
  p.b.device.setPresharedKey(p.a.pk, psk2);
  p.send(p.a, packetAB(p));
  p.deliver();
  EXPECT_TRUE(p.b.out.tun.empty());
  EXPECT_EQ(p.a.device.drops(DropReason::kHandshakeFailed), 1u);  // the response fails at A
  EXPECT_EQ(p.a.device.peerInfo(p.b.pk)->stats.last_handshake_wall_ns, 0);

  p.b.device.setPresharedKey(p.a.pk, psk1);
  p.advance(6 * kSec);  // retransmission after REKEY_TIMEOUT + jitter
  EXPECT_EQ(p.b.out.tun.size(), 1u);
}

TEST(Device, CookieReplyUnderLoadThenMac2Succeeds) {
  DevicePair p;
  p.b.device.setHandshakeBacklog(1000, p.now);
  ASSERT_TRUE(p.b.device.underLoad(p.now));
  WireLog log;
  p.send(p.a, packetAB(p));
  p.deliver(log.filter());
  EXPECT_EQ(log.by_type[kMsgCookieReply], 1);
  EXPECT_EQ(log.sizes[1], kCookieReplySize);
  EXPECT_EQ(p.b.device.drops(DropReason::kCookieSent), 1u);
  EXPECT_TRUE(peerOf(p.a, p.b.pk)->cookie.hasCookie(p.now));
  EXPECT_TRUE(p.b.out.tun.empty());
  // No immediate resend (K6): the retransmission carries mac2 and is accepted under load.
  p.step(kSec / 2);
  p.b.device.setHandshakeBacklog(1000, p.now);
  p.advance(5 * kSec, log.filter());
  EXPECT_EQ(log.by_type[kMsgInitiation], 2);
  EXPECT_EQ(log.by_type[kMsgResponse], 1);
  EXPECT_EQ(p.b.out.tun.size(), 1u);
}

TEST(Device, UnderLoadRateLimitsPerSource) {
  DevicePair p;
  // Valid mac1 + mac2 initiations beyond the burst are rate limited (reference K8).
  p.send(p.a, packetAB(p));
  Datagram first = p.a.out.net.front();
  p.a.out.net.clear();
  // Give A a cookie by running one cookie round.
  p.b.device.setHandshakeBacklog(1000, p.now);
  p.b.device.onNetworkPacket(first.bytes, p.a.endpoint, p.now, p.b.out);
  p.deliver();
  ASSERT_TRUE(peerOf(p.a, p.b.pk)->cookie.hasCookie(p.now));
  for (int i = 0; i < 20; ++i) {
    Peer* pa = peerOf(p.a, p.b.pk);
    pa->last_sent_handshake_ns = INT64_MIN / 2;
    p.step(21 * kMs);
    p.b.device.setHandshakeBacklog(1000, p.now);
    p.a.device.internals().sendHandshakeInitiation(*pa, false, p.now, p.a.out);
    Datagram d = p.a.out.net.back();
    p.a.out.net.clear();
    p.b.device.onNetworkPacket(d.bytes, p.a.endpoint, p.now, p.b.out);
  }
  EXPECT_GT(p.b.device.drops(DropReason::kRateLimited), 0u);
}

TEST(Device, ResponderConfirmsOnFirstDataAndRotatesKeypairs) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  Peer* pb = peerOf(p.b, p.a.pk);
  // A's staged packet arrived under `next`, which promoted it (reference H6).
  ASSERT_TRUE(pb->current);
  EXPECT_FALSE(pb->next);
  // A second handshake initiated by B: A's side rotates current → previous.
  p.step(kSec);
  pb->last_sent_handshake_ns = INT64_MIN / 2;
  p.b.device.internals().sendHandshakeInitiation(*pb, false, p.now, p.b.out);
  Peer* pa = peerOf(p.a, p.b.pk);
  uint32_t old_index = pa->current->local_index;
  // Hold B's keepalive: until A hears from the new session, its keypair waits in `next`.
  std::vector<Datagram> held;
  p.deliver([&](TestNode& n, const Datagram& d) {
    if (&n == &p.b && typeOf(d) == kMsgTransport) {
      held.push_back(d);
      return false;
    }
    return true;
  });
  ASSERT_TRUE(pa->next);
  EXPECT_EQ(pa->current->local_index, old_index);
  ASSERT_EQ(held.size(), 1u);
  p.a.device.onNetworkPacket(held[0].bytes, p.b.endpoint, p.now, p.a.out);
  EXPECT_FALSE(pa->next);
  ASSERT_TRUE(pa->previous);
  EXPECT_EQ(pa->previous->local_index, old_index);
  EXPECT_NE(pa->current->local_index, old_index);
  p.send(p.b, packetBA(p));
  p.deliver();
  EXPECT_EQ(p.a.out.tun.size(), 1u);
}

TEST(Device, RekeyAfterTimeUnderContinuousTrafficLosesNothing) {
  DevicePair p;
  WireLog log;
  int sent = 0;
  // 200 s of traffic both ways every 500 ms: crosses REKEY_AFTER_TIME (120 s) once. B sends
  // 250 ms after A; sending at the very same instant on both sides would make every initiation
  // cross the other side's in flight, which no real pair of clocks does for long.
  for (int i = 0; i < 400; ++i) {
    p.send(p.a, packetAB(p, 100, static_cast<uint8_t>(i)));
    p.advance(250 * kMs, log.filter());
    p.send(p.b, packetBA(p, 100, static_cast<uint8_t>(i)));
    ++sent;
    p.advance(250 * kMs, log.filter());
  }
  EXPECT_EQ(static_cast<int>(p.b.out.tun.size()), sent);
  EXPECT_EQ(static_cast<int>(p.a.out.tun.size()), sent);
  EXPECT_EQ(log.by_type[kMsgInitiation], 2);  // the first, and one rekey at ~120 s
  EXPECT_EQ(log.by_type[kMsgResponse], 2);
  EXPECT_EQ(p.a.device.totalDrops() + p.b.device.totalDrops(), 0u);
}

TEST(Device, RekeyAfterMessages) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  Peer* pa = peerOf(p.a, p.b.pk);
  uint32_t old_index = pa->current->local_index;
  pa->current->send_counter = kRekeyAfterMessages + 1;
  WireLog log;
  // Past REKEY_TIMEOUT since the last initiation, so the rekey is not rate limited (T5).
  p.step(6 * kSec);
  p.send(p.a, packetAB(p));
  p.deliver(log.filter());
  EXPECT_EQ(log.by_type[kMsgInitiation], 1);
  EXPECT_NE(pa->current->local_index, old_index);
  EXPECT_EQ(p.b.out.tun.size(), 2u);
}

TEST(Device, RejectAfterTimeStopsUsingTheKeypair) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  p.send(p.a, packetAB(p));
  Datagram old = p.a.out.net.back();
  p.a.out.net.clear();
  // 181 s later, with no traffic: the keypair may not be used to send or receive (T4, D6, D7).
  p.advance(181 * kSec, [](TestNode&, const Datagram&) { return false; });
  p.b.device.onNetworkPacket(old.bytes, p.a.endpoint, p.now, p.b.out);
  EXPECT_EQ(p.b.device.drops(DropReason::kExpiredKeypair), 1u);
  WireLog log;
  p.send(p.a, packetAB(p));
  EXPECT_EQ(typeOf(p.a.out.net.back()), kMsgInitiation);  // staged behind a new handshake
  p.deliver(log.filter());
  EXPECT_EQ(p.b.out.tun.size(), 2u);
}

TEST(Device, KeysZeroedAfterThreeTimesRejectAfterTime) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  Peer* pa = peerOf(p.a, p.b.pk);
  ASSERT_TRUE(pa->current);
  p.advance(539 * kSec);
  EXPECT_TRUE(pa->current);
  p.advance(2 * kSec);
  EXPECT_FALSE(pa->current);
  EXPECT_FALSE(pa->previous);
  EXPECT_FALSE(pa->next);
  EXPECT_EQ(pa->handshake.state, noise::Handshake::State::kZeroed);
  EXPECT_FALSE(peerOf(p.b, p.a.pk)->current);
  EXPECT_TRUE(p.a.device.internals().indices.empty());
}

TEST(Device, RetransmitsThenGivesUpAfterRekeyAttemptTime) {
  DevicePair p;
  WireLog log;
  auto drop_all = [&](TestNode& n, const Datagram& d) {
    log.filter()(n, d);
    return false;
  };
  p.send(p.a, packetAB(p));
  p.deliver(drop_all);
  p.advance(200 * kSec, drop_all);
  // The first initiation plus retries while attempts <= 18, each >= 5 s apart; then nothing
  // (reference T6; wireguard-go and the kernel both send 20 in all).
  EXPECT_EQ(log.by_type[kMsgInitiation], 2 + kMaxTimerHandshakes);
  EXPECT_TRUE(peerOf(p.a, p.b.pk)->staged.empty());
}

TEST(Device, PassiveKeepaliveAfterReceivingData) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  WireLog log;
  p.send(p.a, packetAB(p));
  p.deliver(log.filter());
  p.advance(9 * kSec, log.filter());
  EXPECT_EQ(log.sizes.size(), 1u);
  p.advance(2 * kSec, log.filter());
  ASSERT_EQ(log.sizes.size(), 2u);
  EXPECT_EQ(log.sizes[1], kTransportMinSize);  // B's keepalive (reference D4, T7)
}

TEST(Device, NewHandshakeWhenDataGetsNoAnswer) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  WireLog log;
  auto drop_b = [&](TestNode& n, const Datagram& d) {
    log.filter()(n, d);
    return &n != &p.b;
  };
  p.send(p.a, packetAB(p));
  p.advance(16 * kSec, drop_b);
  // 15 s + jitter after sending data with nothing back, A initiates (reference T8).
  EXPECT_GE(log.by_type[kMsgInitiation], 1);
}

TEST(Device, PersistentKeepalive) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  WireLog log;
  p.a.device.setPersistentKeepalive(p.b.pk, 25, p.now, p.a.out);
  p.deliver(log.filter());
  EXPECT_EQ(log.sizes.size(), 1u);  // one at once (T10)
  p.advance(76 * kSec, log.filter());
  int keepalives_from_a = 0;
  for (size_t s : log.sizes) keepalives_from_a += s == kTransportMinSize;
  EXPECT_GE(keepalives_from_a, 4);  // t=0, 25, 50, 75
}

TEST(Device, EndpointRoamsToLastAuthenticatedSource) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  Endpoint moved = *Endpoint::parse("127.0.0.1:51099");
  p.from_override = moved;
  p.send(p.a, packetAB(p));
  p.deliver();
  EXPECT_EQ(*p.b.device.peerInfo(p.a.pk)->endpoint, moved);
  // A forged packet from elsewhere does not move it (reference E1).
  std::vector<uint8_t> junk(64, 0);
  junk[0] = 4;
  p.b.device.onNetworkPacket(junk, *Endpoint::parse("127.0.0.1:1"), p.now, p.b.out);
  EXPECT_EQ(*p.b.device.peerInfo(p.a.pk)->endpoint, moved);
}

TEST(Device, InnerSourceMustBelongToTheSender) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  p.send(p.a, ipv4Packet(*IpAddr::parse("10.9.0.77"), p.b.ip, 100));
  p.deliver();
  EXPECT_EQ(p.b.out.tun.size(), 1u);
  EXPECT_EQ(p.b.device.drops(DropReason::kDisallowedSource), 1u);
  // Giving the prefix to A makes it acceptable; moving it away drops it again (D11).
  p.b.device.addAllowedIp(p.a.pk, *IpPrefix::parse("10.9.0.0/24"));
  p.send(p.a, ipv4Packet(*IpAddr::parse("10.9.0.77"), p.b.ip, 100));
  p.deliver();
  EXPECT_EQ(p.b.out.tun.size(), 2u);
}

TEST(Device, NoRouteAndNoKeyAreCounted) {
  DevicePair p;
  p.send(p.a, ipv4Packet(p.a.ip, *IpAddr::parse("10.99.0.1"), 60));
  EXPECT_EQ(p.a.device.drops(DropReason::kNoRoute), 1u);
  crypto::Key32 zero{};
  p.a.device.setPrivateKey(zero, p.now);
  p.send(p.a, packetAB(p));
  EXPECT_EQ(p.a.device.drops(DropReason::kNoPrivateKey), 1u);
  EXPECT_TRUE(p.a.out.net.empty());
}

TEST(Device, LowOrderPeerKeySendsNothing) {
  DevicePair p;
  // Kernel netns.sh: a peer with a low-order key and keepalive 1 must produce no packet (C9).
  crypto::Key32 low{};  // the all-zero point is one of the low-order points
  p.a.device.addPeer(low, p.now);
  p.a.device.setEndpoint(low, *Endpoint::parse("127.0.0.1:1111"));
  p.a.device.addAllowedIp(low, *IpPrefix::parse("10.77.0.0/16"));
  p.a.device.setPersistentKeepalive(low, 1, p.now, p.a.out);
  p.send(p.a, ipv4Packet(p.a.ip, *IpAddr::parse("10.77.0.1"), 60));
  p.advance(3 * kSec);
  for (auto& d : p.a.out.net) EXPECT_NE(d.to.port, 1111);
}

TEST(Device, MalformedDatagramsAreDroppedAndCounted) {
  DevicePair p;
  p.send(p.a, packetAB(p));
  p.deliver();
  FakeRandom r(42);
  uint64_t before = p.b.device.totalDrops();
  int n = 0;
  for (int i = 0; i < 5000; ++i) {
    size_t len = r.u32() % 200;
    std::vector<uint8_t> d(len);
    r.fill(d);
    if (len >= 4 && i % 2) {
      d[0] = static_cast<uint8_t>(1 + i % 4);
      d[1] = d[2] = d[3] = 0;
    }
    if (i % 5 == 0 && len > 0) d.resize(std::vector<size_t>{148, 92, 64, 32}[i % 4], 0);
    p.b.device.onNetworkPacket(d, p.a.endpoint, p.now, p.b.out);
    ++n;
  }
  EXPECT_EQ(p.b.device.totalDrops() - before, static_cast<uint64_t>(n));
  EXPECT_EQ(p.b.out.tun.size(), 1u);
  // The real session still works afterwards.
  p.b.out.net.clear();
  p.send(p.a, packetAB(p));
  p.deliver();
  EXPECT_EQ(p.b.out.tun.size(), 2u);
}

TEST(Device, StagedQueueIsBounded) {
  DevicePair p;
  for (int i = 0; i < 200; ++i) p.send(p.a, packetAB(p));
  EXPECT_EQ(peerOf(p.a, p.b.pk)->staged.size(), kMaxStagedPackets);
  EXPECT_EQ(p.a.device.drops(DropReason::kStagedOverflow), 200 - kMaxStagedPackets);
  p.deliver();
  EXPECT_EQ(p.b.out.tun.size(), kMaxStagedPackets);
}

TEST(Device, OwnPublicKeyAsPeerIsIgnored) {
  DevicePair p;
  EXPECT_FALSE(p.a.device.addPeer(p.a.pk, p.now));
  EXPECT_FALSE(p.a.device.hasPeer(p.a.pk));
  // Setting the private key of an existing peer removes that peer.
  p.a.device.setPrivateKey(p.b.sk, p.now);
  EXPECT_FALSE(p.a.device.hasPeer(p.b.pk));
}

}  // namespace
}  // namespace gatehouse::wg::testing
