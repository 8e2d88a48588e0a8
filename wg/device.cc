// Device configuration, the index table and the public entry points. The data path lives in
// send.cc and receive.cc, the timers in timers.cc.
#include "wg/device.h"

#include <algorithm>
#include <cstring>

#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"
#include "wg/device_impl.h"

namespace gatehouse::wg {
namespace {

bool isZero(const Key32& k) {
  uint8_t acc = 0;
  for (uint8_t b : k) acc |= b;
  return acc == 0;
}

}  // namespace

const char* dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kUnknownType:
      return "unknown_type";
    case DropReason::kBadMac1:
      return "bad_mac1";
    case DropReason::kCookieSent:
      return "cookie_sent";
    case DropReason::kRateLimited:
      return "rate_limited";
    case DropReason::kHandshakeFailed:
      return "handshake_failed";
    case DropReason::kReplayedInitiation:
      return "replayed_initiation";
    case DropReason::kInitiationFlood:
      return "initiation_flood";
    case DropReason::kBadCookieReply:
      return "bad_cookie_reply";
    case DropReason::kUnknownIndex:
      return "unknown_index";
    case DropReason::kDecryptFailed:
      return "decrypt_failed";
    case DropReason::kReplayedCounter:
      return "replayed_counter";
    case DropReason::kExpiredKeypair:
      return "expired_keypair";
    case DropReason::kBadInnerPacket:
      return "bad_inner_packet";
    case DropReason::kDisallowedSource:
      return "disallowed_source";
    case DropReason::kNoRoute:
      return "no_route";
    case DropReason::kNoEndpoint:
      return "no_endpoint";
    case DropReason::kNoPrivateKey:
      return "no_private_key";
    case DropReason::kStagedOverflow:
      return "staged_overflow";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

Keypair::~Keypair() {
  crypto::wipe(send_key);
  crypto::wipe(recv_key);
}

Peer* Device::Impl::findPeer(const Key32& pk) const {
  auto it = peers.find(pk);
  return it == peers.end() ? nullptr : it->second.get();
}

uint32_t Device::Impl::newIndex(Peer* peer) {
  for (;;) {
    uint32_t index = random.u32();
    if (index != 0 && indices.emplace(index, IndexEntry{peer, nullptr}).second) return index;
  }
}

void Device::Impl::deleteIndex(uint32_t index) {
  if (index != 0) indices.erase(index);
}

void Device::Impl::deleteKeypair(std::unique_ptr<Keypair>& kp) {
  if (!kp) return;
  deleteIndex(kp->local_index);
  kp.reset();
}

void Device::Impl::zeroAndFlushAll(Peer& p) {
  deleteKeypair(p.previous);
  deleteKeypair(p.current);
  deleteKeypair(p.next);
  deleteIndex(p.handshake.local_index);
  p.handshake.local_index = 0;
  p.handshake.clearState();
  p.staged.clear();
}

void Device::Impl::deletePeer(Peer* peer) {
  zeroAndFlushAll(*peer);
  allowed_ips.removeByValue(peer);
  peers.erase(peer->public_key);
}

Device::Device(Random& random, DeviceOptions options)
    : impl_(std::make_unique<Impl>(*this, random, options)) {}

Device::~Device() {
  if (impl_) crypto::wipe(impl_->local.priv);
}

void Device::setPrivateKey(const Key32& sk_in, const Now& now) {
  Impl& d = *impl_;
  if (isZero(sk_in)) {
    crypto::wipe(d.local.priv);
    d.local.pub = {};
    d.has_key = false;
    for (auto& [pk, peer] : d.peers) {
      d.zeroAndFlushAll(*peer);
      peer->handshake.static_static_valid = false;
    }
    return;
  }
  Key32 sk = sk_in;
  crypto::clampPrivateKey(sk);
  if (d.has_key && crypto::equal(sk, d.local.priv)) return;
  d.local.priv = sk;
  d.local.pub = crypto::publicKey(sk);
  d.has_key = true;
  crypto::wipe(sk);
  d.cookie_checker.init(d.local.pub);
  // A peer with our own public key is removed (wireguard-go); everyone else gets a new
  // precomputed DH and loses sessions keyed to the old identity.
  if (Peer* self_peer = d.findPeer(d.local.pub)) d.deletePeer(self_peer);
  for (auto& [pk, peer] : d.peers) {
    d.zeroAndFlushAll(*peer);
    noise::configure(peer->handshake, d.local, peer->public_key);
  }
}

std::optional<Key32> Device::privateKey() const {
  if (!impl_->has_key) return std::nullopt;
  return impl_->local.priv;
}

std::optional<Key32> Device::publicKey() const {
  if (!impl_->has_key) return std::nullopt;
  return impl_->local.pub;
}

bool Device::addPeer(const Key32& pk, const Now& now) {
  Impl& d = *impl_;
  if (d.has_key && crypto::equal(pk, d.local.pub)) return false;
  if (d.findPeer(pk)) return true;
  auto peer = std::make_unique<Peer>();
  peer->public_key = pk;
  peer->order = d.next_order++;
  peer->cookie.init(pk);
  if (d.has_key) noise::configure(peer->handshake, d.local, pk);
  d.peers.emplace(pk, std::move(peer));
  return true;
}

bool Device::hasPeer(const Key32& pk) const { return impl_->findPeer(pk) != nullptr; }

void Device::removePeer(const Key32& pk) {
  if (Peer* p = impl_->findPeer(pk)) impl_->deletePeer(p);
}

void Device::removeAllPeers() {
  while (!impl_->peers.empty()) impl_->deletePeer(impl_->peers.begin()->second.get());
}

bool Device::setPresharedKey(const Key32& pk, const Key32& psk) {
  Peer* p = impl_->findPeer(pk);
  if (!p) return false;
  p->handshake.preshared_key = psk;
  return true;
}

bool Device::setEndpoint(const Key32& pk, const Endpoint& ep) {
  Peer* p = impl_->findPeer(pk);
  if (!p) return false;
  p->endpoint = ep;
  return true;
}

bool Device::setPersistentKeepalive(const Key32& pk, uint16_t seconds, const Now& now,
                                    DeviceOutput& out) {
  Impl& d = *impl_;
  Peer* p = d.findPeer(pk);
  if (!p) return false;
  uint16_t old = p->persistent_keepalive;
  p->persistent_keepalive = seconds;
  if (seconds == 0) {
    p->t_persistent_keepalive = kNever;
  } else if (old == 0 && d.has_key) {
    // Turning it on sends one keepalive at once (wireguard-go pkaOn, reference T10).
    d.sendKeepalive(*p, now, out);
  }
  return true;
}

bool Device::sendKeepalive(const Key32& pk, const Now& now, DeviceOutput& out) {
  Impl& d = *impl_;
  Peer* p = d.findPeer(pk);
  if (!p || !p->endpoint || !d.has_key) return false;
  d.sendKeepalive(*p, now, out);
  return true;
}

bool Device::addAllowedIp(const Key32& pk, const IpPrefix& prefix) {
  Peer* p = impl_->findPeer(pk);
  if (!p) return false;
  impl_->allowed_ips.insert(prefix, p);
  return true;
}

bool Device::removeAllowedIp(const Key32& pk, const IpPrefix& prefix) {
  Peer* p = impl_->findPeer(pk);
  if (!p) return false;
  impl_->allowed_ips.remove(prefix, p);
  return true;
}

bool Device::clearAllowedIps(const Key32& pk) {
  Peer* p = impl_->findPeer(pk);
  if (!p) return false;
  impl_->allowed_ips.removeByValue(p);
  return true;
}

std::vector<Key32> Device::peerKeys() const {
  std::vector<const Peer*> list;
  list.reserve(impl_->peers.size());
  for (auto& [pk, peer] : impl_->peers) list.push_back(peer.get());
  std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->order < b->order; });
  std::vector<Key32> keys;
  keys.reserve(list.size());
  for (auto* p : list) keys.push_back(p->public_key);
  return keys;
}

std::optional<PeerInfo> Device::peerInfo(const Key32& pk) const {
  const Peer* p = impl_->findPeer(pk);
  if (!p) return std::nullopt;
  PeerInfo info;
  info.public_key = p->public_key;
  if (!isZero(p->handshake.preshared_key)) info.preshared_key = p->handshake.preshared_key;
  info.endpoint = p->endpoint;
  info.persistent_keepalive = p->persistent_keepalive;
  info.allowed_ips = impl_->allowed_ips.entriesFor(p);
  info.stats = p->stats;
  return info;
}

size_t Device::peerCount() const { return impl_->peers.size(); }

void Device::setHandshakeBacklog(size_t queued, const Now& now) {
  if (queued >= impl_->options.under_load_threshold) {
    impl_->under_load_until_ns = now.mono_ns + kUnderLoadAfterTime;
  }
}

bool Device::underLoad(const Now& now) const { return now.mono_ns < impl_->under_load_until_ns; }

uint64_t Device::totalDrops() const {
  uint64_t n = 0;
  for (uint64_t v : drops_) n += v;
  return n;
}

int64_t Device::nextTimerDeadline() const { return impl_->next_deadline; }

void Device::onTimer(const Now& now, DeviceOutput& out) {
  Impl& d = *impl_;
  if (now.mono_ns < d.next_deadline) return;
  d.next_deadline = kNever;
  // Collect first: a timer may delete keypairs but never peers, so pointers stay valid.
  std::vector<Peer*> list;
  list.reserve(d.peers.size());
  for (auto& [pk, peer] : d.peers) list.push_back(peer.get());
  for (Peer* p : list) d.runTimers(*p, now, out);
}

}  // namespace gatehouse::wg
