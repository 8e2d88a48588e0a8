// Send path (reference §6, D1-D2, D7-D8, D10; wireguard-go device/send.go).
//
//   TUN packet → allowed-IPs lookup on the destination → peer
//     → current keypair usable?  yes: pad to 16 (never past the MTU), encrypt, send
//                                no:  stage (bounded, oldest dropped) and start a handshake
//     → after sending: timers, and a new handshake if the keypair is getting old (T1, T2).
// Handshake initiations are sent at most once per REKEY_TIMEOUT per peer (T5).
#include <cstring>

#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"
#include "wg/device_impl.h"

namespace gatehouse::wg {

void Device::Impl::sendRaw(Peer& p, std::span<const uint8_t> datagram, DeviceOutput& out) {
  if (!p.endpoint) {
    self.countDrop(DropReason::kNoEndpoint);
    return;
  }
  p.stats.tx_bytes += datagram.size();
  out.sendToNetwork(*p.endpoint, datagram);
}

void Device::Impl::sendHandshakeInitiation(Peer& p, bool is_retry, const Now& now,
                                           DeviceOutput& out) {
  if (!is_retry) p.handshake_attempts = 0;
  if (!has_key || !p.handshake.static_static_valid) return;  // reference C9: send nothing
  if (now.mono_ns - p.last_sent_handshake_ns < kRekeyTimeout) return;
  p.last_sent_handshake_ns = now.mono_ns;

  uint8_t msg[kInitiationSize] = {};
  storeLe32(msg, kMsgInitiation);
  Key32 ephemeral;
  random.fill(ephemeral);
  crypto::clampPrivateKey(ephemeral);
  Tai64n ts = tai64nFromUnixNanos(now.wall_ns);
  bool ok = noise::writeMessage1(p.handshake, local, ephemeral, ts, msg + kInitEphemeralOff);
  crypto::wipe(ephemeral);
  if (!ok) return;
  deleteIndex(p.handshake.local_index);
  p.handshake.local_index = newIndex(&p);
  storeLe32(msg + kInitSenderOff, p.handshake.local_index);
  p.cookie.addMacs(msg, now);

  timersAnyAuthenticatedPacketTraversal(p, now);
  timersAnyAuthenticatedPacketSent(p);
  sendRaw(p, msg, out);
  timersHandshakeInitiated(p, now);
}

void Device::Impl::sendHandshakeResponse(Peer& p, const Now& now, DeviceOutput& out) {
  uint8_t msg[kResponseSize] = {};
  storeLe32(msg, kMsgResponse);
  Key32 ephemeral;
  random.fill(ephemeral);
  crypto::clampPrivateKey(ephemeral);
  bool ok = noise::writeMessage2(p.handshake, ephemeral, {}, msg + kRespEphemeralOff);
  crypto::wipe(ephemeral);
  if (!ok) return;
  deleteIndex(p.handshake.local_index);
  p.handshake.local_index = newIndex(&p);
  storeLe32(msg + kRespSenderOff, p.handshake.local_index);
  storeLe32(msg + kRespReceiverOff, p.handshake.remote_index);
  p.cookie.addMacs(msg, now);

  beginSymmetricSession(p, now);
  timersSessionDerived(p, now);
  timersAnyAuthenticatedPacketTraversal(p, now);
  timersAnyAuthenticatedPacketSent(p);
  sendRaw(p, msg, out);
}

// Moves the finished handshake into a keypair and rotates previous/current/next (reference H5-H7;
// wireguard-go BeginSymmetricSession).
void Device::Impl::beginSymmetricSession(Peer& p, const Now& now) {
  auto kp = std::make_unique<Keypair>();
  kp->initiator = p.handshake.state == noise::Handshake::State::kResponseConsumed;
  noise::deriveTransportKeys(p.handshake, kp->send_key, kp->recv_key);
  kp->created_ns = now.mono_ns;
  kp->local_index = p.handshake.local_index;
  kp->remote_index = p.handshake.remote_index;
  p.handshake.local_index = 0;
  indices[kp->local_index] = IndexEntry{&p, kp.get()};

  if (kp->initiator) {
    if (p.next) {
      deleteKeypair(p.previous);
      p.previous = std::move(p.next);
      deleteKeypair(p.current);
    } else {
      deleteKeypair(p.previous);
      p.previous = std::move(p.current);
    }
    p.current = std::move(kp);
  } else {
    deleteKeypair(p.next);
    p.next = std::move(kp);
    deleteKeypair(p.previous);
  }
}

// Responder key confirmation: the first packet under `next` promotes it (reference H6).
bool Device::Impl::receivedWithKeypair(Peer& p, Keypair* kp) {
  if (!p.next || p.next.get() != kp) return false;
  deleteKeypair(p.previous);
  p.previous = std::move(p.current);
  p.current = std::move(p.next);
  return true;
}

void Device::Impl::stagePacket(Peer& p, std::span<const uint8_t> packet) {
  if (p.staged.size() >= kMaxStagedPackets) {
    p.staged.pop_front();
    self.countDrop(DropReason::kStagedOverflow);
  }
  p.staged.emplace_back(packet.begin(), packet.end());
}

static bool keypairUsable(const Keypair* kp, const Now& now) {
  return kp && kp->send_counter < kRejectAfterMessages &&
         now.mono_ns - kp->created_ns < kRejectAfterTime;
}

bool Device::Impl::sendTransport(Peer& p, std::span<const uint8_t> packet, const Now& now,
                                 DeviceOutput& out) {
  Keypair* kp = p.current.get();
  if (!keypairUsable(kp, now)) return false;
  if (!p.endpoint) {
    self.countDrop(DropReason::kNoEndpoint);
    return true;  // consumed: with no endpoint there is nowhere to send it
  }
  // Pad to a multiple of 16 but never past the MTU (reference D2).
  size_t len = packet.size();
  size_t padded = (len + 15) & ~size_t{15};
  if (padded > options.mtu) padded = std::max(len, options.mtu);
  scratch.resize(kTransportHeaderSize + padded + crypto::kAeadTagBytes);
  uint8_t* msg = scratch.data();
  storeLe32(msg, kMsgTransport);
  storeLe32(msg + kTransportReceiverOff, kp->remote_index);
  uint64_t counter = kp->send_counter++;
  storeLe64(msg + kTransportCounterOff, counter);
  uint8_t* body = msg + kTransportHeaderSize;
  if (len != 0) std::memcpy(body, packet.data(), len);  // keepalives have no data pointer
  std::memset(body + len, 0, padded - len);
  crypto::aeadSeal(body, kp->send_key, counter, {body, padded}, {});

  timersAnyAuthenticatedPacketTraversal(p, now);
  timersAnyAuthenticatedPacketSent(p);
  sendRaw(p, scratch, out);
  if (len != 0) timersDataSent(p, now);
  return true;
}

void Device::Impl::sendStaged(Peer& p, const Now& now, DeviceOutput& out) {
  if (p.staged.empty()) return;
  if (!keypairUsable(p.current.get(), now)) {
    sendHandshakeInitiation(p, false, now, out);
    return;
  }
  while (!p.staged.empty()) {
    if (!sendTransport(p, p.staged.front(), now, out)) {
      sendHandshakeInitiation(p, false, now, out);
      return;
    }
    p.staged.pop_front();
  }
  keepKeyFreshSending(p, now, out);
}

void Device::Impl::sendKeepalive(Peer& p, const Now& now, DeviceOutput& out) {
  if (p.staged.empty()) p.staged.emplace_back();
  sendStaged(p, now, out);
}

// Rekey by message count (either side) or by time (initiator only) (reference T1, T2).
void Device::Impl::keepKeyFreshSending(Peer& p, const Now& now, DeviceOutput& out) {
  Keypair* kp = p.current.get();
  if (!kp) return;
  if (kp->send_counter > kRekeyAfterMessages ||
      (kp->initiator && now.mono_ns - kp->created_ns > kRekeyAfterTime)) {
    sendHandshakeInitiation(p, false, now, out);
  }
}

void Device::onTunPacket(std::span<const uint8_t> packet, const Now& now, DeviceOutput& out) {
  Impl& d = *impl_;
  auto dst = IpAddr::packetDestination(packet);
  if (!dst) {
    countDrop(DropReason::kBadInnerPacket);
    return;
  }
  auto* p = static_cast<Peer*>(const_cast<void*>(d.allowed_ips.lookup(*dst)));
  if (!p) {
    countDrop(DropReason::kNoRoute);
    return;
  }
  if (!d.has_key) {
    countDrop(DropReason::kNoPrivateKey);
    return;
  }
  // Fast path: nothing queued ahead of this packet and a usable session.
  if (p->staged.empty() && d.sendTransport(*p, packet, now, out)) {
    d.keepKeyFreshSending(*p, now, out);
    return;
  }
  d.stagePacket(*p, packet);
  d.sendStaged(*p, now, out);
}

}  // namespace gatehouse::wg
