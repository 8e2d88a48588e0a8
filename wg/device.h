// Device: the sans-I/O WireGuard device. Peers, the index table, allowed-IPs routing, cookie
// checking under load, roaming, timers and drop counters, with no sockets, no clock and no
// threads. The I/O layer (wg/loop_device.h) feeds it packets and `now`, and gives it a
// DeviceOutput to write to.
//
// Pipeline (send):   TUN packet → allowed-IPs lookup (destination) → peer → encrypt with the
//                    current keypair, or stage and start a handshake → DeviceOutput::sendToNetwork.
// Pipeline (receive): datagram → type/size check → (types 1/2: mac1, cookie under load,
//                    rate limit, handshake) (type 3: cookie) (type 4: index → keypair → decrypt →
//                    replay → endpoint roaming → allowed-IPs source check) → writeToTun.
//
// Thread safety: none. Every call happens on the owning loop. DeviceOutput callbacks fire
// synchronously inside the call that caused them; the spans they get are valid only during the
// callback.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "wg/allowed_ips.h"
#include "wg/crypto/blake2s.h"
#include "wg/env.h"
#include "wg/net/addr.h"

namespace gatehouse::wg {

using Key32 = crypto::Key32;

class DeviceOutput {
 public:
  virtual ~DeviceOutput() = default;
  virtual void sendToNetwork(const Endpoint& to, std::span<const uint8_t> datagram) = 0;
  virtual void writeToTun(std::span<const uint8_t> ip_packet) = 0;
  // The device wants the next datagrams to `to` sent from a routing-chosen source address
  // again (handshake retransmit, silence after data: reference E2). Sticky source is an I/O
  // concern; the default does nothing.
  virtual void clearSource(const Endpoint& to) {}
};

// Why a packet was dropped. Counted per device; visible through `gatehouse wireguard` logs,
// the UAPI get reply (as unknown keys `wg` ignores) and tests.
enum class DropReason : uint8_t {
  kUnknownType = 0,     // type byte/reserved bytes unknown, or wrong size for the type
  kBadMac1,             // handshake or response with an invalid mac1
  kCookieSent,          // under load without valid mac2: a cookie reply was sent instead
  kRateLimited,         // under load, over the per-source handshake budget
  kHandshakeFailed,     // decryption failed, unknown static key, or unexpected state
  kReplayedInitiation,  // TAI64N not newer than the last accepted one (H2)
  kInitiationFlood,     // initiation < 20 ms after the previous one from the peer (H3)
  kBadCookieReply,      // cookie reply for no handshake, or failing decryption
  kUnknownIndex,        // transport packet for an index we do not have
  kDecryptFailed,       // transport AEAD open failed
  kReplayedCounter,     // transport counter replayed or outside the window
  kExpiredKeypair,      // keypair older than REJECT_AFTER_TIME
  kBadInnerPacket,      // decrypted payload is not a valid IPv4/IPv6 packet
  kDisallowedSource,    // inner source address not in the sender's allowed IPs (D9)
  kNoRoute,             // TUN packet to an address no peer allows (D10)
  kNoEndpoint,          // peer has no endpoint to send to
  kNoPrivateKey,        // device has no private key yet
  kStagedOverflow,      // staged queue full; oldest packet dropped (D8)
  kCount
};
const char* dropReasonName(DropReason r);

struct PeerStats {
  uint64_t rx_bytes = 0;  // UDP payload bytes received and authenticated (handshakes included)
  uint64_t tx_bytes = 0;  // UDP payload bytes sent
  int64_t last_handshake_wall_ns = 0;  // 0 = never
};

// Configuration and state of one peer, as the UAPI reads it.
struct PeerInfo {
  Key32 public_key{};
  std::optional<Key32> preshared_key;
  std::optional<Endpoint> endpoint;
  uint16_t persistent_keepalive = 0;
  std::vector<IpPrefix> allowed_ips;
  PeerStats stats;
};

struct Peer;  // wg/device_impl.h; opaque to device users.

struct DeviceOptions {
  size_t mtu = 1420;  // padding never exceeds it (D2)
  // Handshake messages processed per call before the device considers itself under load
  // (reference K7). The loop reports queue depth; see Device::setHandshakeBacklog.
  size_t under_load_threshold = 128;
};

class Device {
 public:
  Device(Random& random, DeviceOptions options = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // ---- configuration (UAPI `set`) ----
  // All-zero key clears it. Changing the key re-derives every peer's precomputed DH and drops
  // sessions (like wireguard-go). A peer with the device's own public key is removed.
  void setPrivateKey(const Key32& sk, const Now& now);
  std::optional<Key32> privateKey() const;
  std::optional<Key32> publicKey() const;

  // Creates the peer if missing. Returns false if `pk` equals the device's own public key
  // (accepted and ignored per the UAPI contract).
  bool addPeer(const Key32& pk, const Now& now);
  bool hasPeer(const Key32& pk) const;
  void removePeer(const Key32& pk);
  void removeAllPeers();
  // The following return false if the peer does not exist.
  bool setPresharedKey(const Key32& pk, const Key32& psk);  // all-zero = none
  bool setEndpoint(const Key32& pk, const Endpoint& ep);
  // Turning it on (0 → N) sends one keepalive at once (T10); pass the output for that.
  bool setPersistentKeepalive(const Key32& pk, uint16_t seconds, const Now& now, DeviceOutput& out);
  // Sends a keepalive now, which starts a handshake when there is no session. A node restarted
  // with its old key uses it so peers holding a dead session re-handshake at once instead of
  // after their rekey timers (~15 s). False if the peer does not exist or has no endpoint.
  bool sendKeepalive(const Key32& pk, const Now& now, DeviceOutput& out);
  bool addAllowedIp(const Key32& pk, const IpPrefix& prefix);
  bool removeAllowedIp(const Key32& pk, const IpPrefix& prefix);
  bool clearAllowedIps(const Key32& pk);

  // ---- state (UAPI `get`) ----
  std::vector<Key32> peerKeys() const;  // in insertion order
  std::optional<PeerInfo> peerInfo(const Key32& pk) const;
  size_t peerCount() const;

  // ---- data path ----
  void onTunPacket(std::span<const uint8_t> ip_packet, const Now& now, DeviceOutput& out);
  void onNetworkPacket(std::span<const uint8_t> datagram, const Endpoint& from, const Now& now,
                       DeviceOutput& out);
  // Runs every peer timer due at `now`.
  void onTimer(const Now& now, DeviceOutput& out);
  // Monotonic time of the next timer, or INT64_MAX when none is armed.
  int64_t nextTimerDeadline() const;
  // The I/O layer reports how many handshake messages are queued for processing; at or above
  // the threshold the device is under load for the next second (K7).
  void setHandshakeBacklog(size_t queued, const Now& now);
  bool underLoad(const Now& now) const;

  // ---- counters ----
  uint64_t drops(DropReason r) const { return drops_[static_cast<size_t>(r)]; }
  uint64_t totalDrops() const;
  void countDrop(DropReason r) { ++drops_[static_cast<size_t>(r)]; }

  // Internal state, for wg/ itself and its white-box tests (wg/device_impl.h).
  struct Impl;
  Impl& internals() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
  uint64_t drops_[static_cast<size_t>(DropReason::kCount)] = {};
};

}  // namespace gatehouse::wg
