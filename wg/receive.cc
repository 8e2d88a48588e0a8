// Receive path (reference §3 M5, §5, §6, E1; wireguard-go device/receive.go).
//
//   datagram → type and exact size (else drop: unknown_type)
//     type 1/2 → mac1 (bad_mac1) → under load: mac2 or a cookie reply (cookie_sent), then the
//                per-source rate limit (rate_limited) → noise → replay/flood checks → session
//     type 3   → the peer by index → decrypt the cookie with the last mac1 we sent
//     type 4   → keypair by index (unknown_index) → age (expired_keypair) → AEAD open
//                (decrypt_failed) → replay window (replayed_counter) → confirm `next`, roam the
//                endpoint, timers → keepalive? done : inner packet length and allowed-IPs
//                source check (bad_inner_packet, disallowed_source) → TUN
// Nothing from the network is trusted before it authenticates: drops are counted, never
// asserted, and nothing allocates per bad packet.
#include <cstring>

#include "wg/crypto/aead.h"
#include "wg/device_impl.h"

namespace gatehouse::wg {

bool Device::Impl::checkHandshakeMacs(std::span<const uint8_t> msg, uint32_t sender,
                                      const Endpoint& from, const Now& now, DeviceOutput& out) {
  if (!cookie_checker.checkMac1(msg)) {
    self.countDrop(DropReason::kBadMac1);
    return false;
  }
  if (!self.underLoad(now)) return true;
  if (!cookie_checker.checkMac2(msg, from, now, random)) {
    uint8_t reply[kCookieReplySize];
    cookie_checker.createReply(msg, sender, from, now, random, reply);
    out.sendToNetwork(from, reply);
    self.countDrop(DropReason::kCookieSent);
    return false;
  }
  if (!rate_limiter.allow(from.addr, now.mono_ns)) {
    self.countDrop(DropReason::kRateLimited);
    return false;
  }
  return true;
}

void Device::Impl::receiveInitiation(std::span<const uint8_t> msg, const Endpoint& from,
                                     const Now& now, DeviceOutput& out) {
  uint32_t sender = loadLe32(msg.data() + kInitSenderOff);
  if (!checkHandshakeMacs(msg, sender, from, now, out)) return;

  noise::Message1Read m;
  const uint8_t* body = msg.data() + kInitEphemeralOff;
  Peer* p = nullptr;
  if (noise::readMessage1Static(local, body, m)) p = findPeer(m.remote_static);
  Tai64n ts;
  if (!p || !p->handshake.static_static_valid ||
      !noise::readMessage1Payload(m, p->handshake.precomputed_static_static, body, ts.size(),
                                  ts.data())) {
    self.countDrop(DropReason::kHandshakeFailed);
    return;
  }
  if (!tai64nAfter(ts, p->last_timestamp)) {
    self.countDrop(DropReason::kReplayedInitiation);
    return;
  }
  if (now.mono_ns - p->last_initiation_consumed_ns <= kHandshakeInitiationRate) {
    self.countDrop(DropReason::kInitiationFlood);
    return;
  }
  p->last_timestamp = ts;
  p->last_initiation_consumed_ns = now.mono_ns;
  noise::acceptMessage1(p->handshake, m);
  p->handshake.remote_index = sender;

  p->endpoint = from;
  p->stats.rx_bytes += msg.size();
  timersAnyAuthenticatedPacketTraversal(*p, now);
  timersAnyAuthenticatedPacketReceived(*p);
  sendHandshakeResponse(*p, now, out);
}

void Device::Impl::receiveResponse(std::span<const uint8_t> msg, const Endpoint& from,
                                   const Now& now, DeviceOutput& out) {
  uint32_t sender = loadLe32(msg.data() + kRespSenderOff);
  if (!checkHandshakeMacs(msg, sender, from, now, out)) return;

  uint32_t receiver = loadLe32(msg.data() + kRespReceiverOff);
  auto it = indices.find(receiver);
  if (it == indices.end() || it->second.keypair != nullptr) {
    self.countDrop(DropReason::kHandshakeFailed);
    return;
  }
  Peer& p = *it->second.peer;
  if (!noise::readMessage2(p.handshake, local, msg.data() + kRespEphemeralOff, 0, nullptr)) {
    self.countDrop(DropReason::kHandshakeFailed);
    return;
  }
  p.handshake.remote_index = sender;

  p.endpoint = from;
  p.stats.rx_bytes += msg.size();
  timersAnyAuthenticatedPacketTraversal(p, now);
  timersAnyAuthenticatedPacketReceived(p);
  beginSymmetricSession(p, now);
  timersSessionDerived(p, now);
  timersHandshakeComplete(p, now);
  sendKeepalive(p, now, out);
}

void Device::Impl::receiveCookieReply(std::span<const uint8_t> msg, const Now& now) {
  auto it = indices.find(loadLe32(msg.data() + kCookieReceiverOff));
  if (it == indices.end() || !it->second.peer->cookie.consumeReply(msg, now)) {
    self.countDrop(DropReason::kBadCookieReply);
  }
}

void Device::Impl::receiveTransport(std::span<const uint8_t> msg, const Endpoint& from,
                                    const Now& now, DeviceOutput& out) {
  auto it = indices.find(loadLe32(msg.data() + kTransportReceiverOff));
  if (it == indices.end() || it->second.keypair == nullptr) {
    self.countDrop(DropReason::kUnknownIndex);
    return;
  }
  Peer& p = *it->second.peer;
  Keypair* kp = it->second.keypair;
  if (now.mono_ns - kp->created_ns >= kRejectAfterTime) {
    self.countDrop(DropReason::kExpiredKeypair);
    return;
  }
  uint64_t counter = loadLe64(msg.data() + kTransportCounterOff);
  auto ciphertext = msg.subspan(kTransportHeaderSize);
  rx_scratch.resize(ciphertext.size());
  if (!crypto::aeadOpen(rx_scratch.data(), kp->recv_key, counter, ciphertext, {})) {
    self.countDrop(DropReason::kDecryptFailed);
    return;
  }
  if (!kp->replay.validate(counter)) {
    self.countDrop(DropReason::kReplayedCounter);
    return;
  }
  if (receivedWithKeypair(p, kp)) {
    timersHandshakeComplete(p, now);
    sendStaged(p, now, out);
  }
  // Last-minute rekey on receive, initiator only (reference T3).
  if (!p.sent_last_minute_handshake && p.current && p.current->initiator &&
      now.mono_ns - p.current->created_ns > kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout) {
    p.sent_last_minute_handshake = true;
    sendHandshakeInitiation(p, false, now, out);
  }
  p.endpoint = from;
  p.stats.rx_bytes += msg.size();
  timersAnyAuthenticatedPacketTraversal(p, now);
  timersAnyAuthenticatedPacketReceived(p);

  size_t plain_len = ciphertext.size() - crypto::kAeadTagBytes;
  if (plain_len == 0) return;  // keepalive
  timersDataReceived(p, now);

  // Trim to the inner IP length (reference D3).
  const uint8_t* ip = rx_scratch.data();
  size_t ip_len = 0;
  if ((ip[0] >> 4) == 4 && plain_len >= 20) {
    ip_len = size_t(ip[2]) << 8 | ip[3];
    if (ip_len < 20) ip_len = SIZE_MAX;
  } else if ((ip[0] >> 4) == 6 && plain_len >= 40) {
    ip_len = (size_t(ip[4]) << 8 | ip[5]) + 40;
  } else {
    ip_len = SIZE_MAX;
  }
  if (ip_len > plain_len) {
    self.countDrop(DropReason::kBadInnerPacket);
    return;
  }
  std::span<const uint8_t> packet{ip, ip_len};
  auto src = IpAddr::packetSource(packet);
  if (!src || allowed_ips.lookup(*src) != &p) {
    self.countDrop(DropReason::kDisallowedSource);
    return;
  }
  out.writeToTun(packet);
}

void Device::onNetworkPacket(std::span<const uint8_t> datagram, const Endpoint& from,
                             const Now& now, DeviceOutput& out) {
  Impl& d = *impl_;
  if (datagram.size() < 4) {
    countDrop(DropReason::kUnknownType);
    return;
  }
  uint32_t type = loadLe32(datagram.data());  // reserved bytes must be zero (reference M5)
  size_t n = datagram.size();
  if (!d.has_key && type != kMsgTransport) {
    countDrop(DropReason::kNoPrivateKey);
    return;
  }
  switch (type) {
    case kMsgInitiation:
      if (n == kInitiationSize) return d.receiveInitiation(datagram, from, now, out);
      break;
    case kMsgResponse:
      if (n == kResponseSize) return d.receiveResponse(datagram, from, now, out);
      break;
    case kMsgCookieReply:
      if (n == kCookieReplySize) return d.receiveCookieReply(datagram, now);
      break;
    case kMsgTransport:
      if (n >= kTransportMinSize) return d.receiveTransport(datagram, from, now, out);
      break;
    default:
      break;
  }
  countDrop(DropReason::kUnknownType);
}

}  // namespace gatehouse::wg
