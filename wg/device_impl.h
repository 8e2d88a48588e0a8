// Internal to wg/: the state behind Device (wg/device.h), split over files by protocol concern
// the way wireguard-go is: device.cc (configuration, index table), send.cc, receive.cc,
// timers.cc. Not a public header.
#pragma once

#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "wg/cookie.h"
#include "wg/device.h"
#include "wg/messages.h"
#include "wg/noise.h"
#include "wg/ratelimiter.h"
#include "wg/replay.h"

namespace gatehouse::wg {

inline constexpr int64_t kNever = INT64_MAX;

struct Keypair {
  Key32 send_key{};
  Key32 recv_key{};
  uint64_t send_counter = 0;
  ReplayFilter replay;
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  int64_t created_ns = 0;
  bool initiator = false;
  ~Keypair();
};

struct KeyHash {
  size_t operator()(const Key32& k) const {
    size_t h;
    std::memcpy(&h, k.data(), sizeof h);
    return h;
  }
};

struct Peer {
  Key32 public_key{};
  noise::Handshake handshake;
  CookieGenerator cookie;
  Tai64n last_timestamp{};
  int64_t last_initiation_consumed_ns = INT64_MIN / 2;
  int64_t last_sent_handshake_ns = INT64_MIN / 2;

  std::unique_ptr<Keypair> previous, current, next;

  std::optional<Endpoint> endpoint;
  uint16_t persistent_keepalive = 0;
  PeerStats stats;
  std::deque<std::vector<uint8_t>> staged;

  // Timers (reference §8.2) as deadlines on the monotonic clock; kNever = not pending.
  int64_t t_retransmit_handshake = kNever;
  int64_t t_send_keepalive = kNever;
  int64_t t_new_handshake = kNever;
  int64_t t_zero_key_material = kNever;
  int64_t t_persistent_keepalive = kNever;
  int handshake_attempts = 0;
  bool need_another_keepalive = false;
  bool sent_last_minute_handshake = false;

  uint64_t order = 0;  // insertion order, for UAPI listings
};

struct IndexEntry {
  Peer* peer = nullptr;
  Keypair* keypair = nullptr;  // nullptr: the index belongs to the peer's pending handshake
};

struct Device::Impl {
  Impl(Device& d, Random& r, DeviceOptions o) : self(d), random(r), options(o) {}

  Device& self;
  Random& random;
  DeviceOptions options;

  bool has_key = false;
  noise::LocalStatic local;
  CookieChecker cookie_checker;
  RateLimiter rate_limiter;
  int64_t under_load_until_ns = INT64_MIN / 2;

  std::unordered_map<Key32, std::unique_ptr<Peer>, KeyHash> peers;
  uint64_t next_order = 0;
  AllowedIps allowed_ips;
  std::unordered_map<uint32_t, IndexEntry> indices;
  // Earliest armed timer across peers; a lower bound (stopping a timer does not raise it).
  int64_t next_deadline = kNever;

  std::vector<uint8_t> scratch;     // one transport message being built
  std::vector<uint8_t> rx_scratch;  // one transport message being decrypted

  Peer* findPeer(const Key32& pk) const;
  void deletePeer(Peer* peer);

  // Index table (reference E4).
  uint32_t newIndex(Peer* peer);
  void deleteIndex(uint32_t index);
  void deleteKeypair(std::unique_ptr<Keypair>& kp);

  // send.cc
  void sendHandshakeInitiation(Peer& p, bool is_retry, const Now& now, DeviceOutput& out);
  void sendHandshakeResponse(Peer& p, const Now& now, DeviceOutput& out);
  void sendKeepalive(Peer& p, const Now& now, DeviceOutput& out);
  void sendStaged(Peer& p, const Now& now, DeviceOutput& out);
  void stagePacket(Peer& p, std::span<const uint8_t> packet);
  // Encrypts and sends one packet with the current keypair. False if the keypair is unusable.
  bool sendTransport(Peer& p, std::span<const uint8_t> packet, const Now& now, DeviceOutput& out);
  void sendRaw(Peer& p, std::span<const uint8_t> datagram, DeviceOutput& out);
  void keepKeyFreshSending(Peer& p, const Now& now, DeviceOutput& out);
  void beginSymmetricSession(Peer& p, const Now& now);
  bool receivedWithKeypair(Peer& p, Keypair* kp);
  void zeroAndFlushAll(Peer& p);

  // receive.cc
  void receiveInitiation(std::span<const uint8_t> msg, const Endpoint& from, const Now& now,
                         DeviceOutput& out);
  void receiveResponse(std::span<const uint8_t> msg, const Endpoint& from, const Now& now,
                       DeviceOutput& out);
  void receiveCookieReply(std::span<const uint8_t> msg, const Now& now);
  void receiveTransport(std::span<const uint8_t> msg, const Endpoint& from, const Now& now,
                        DeviceOutput& out);
  bool checkHandshakeMacs(std::span<const uint8_t> msg, uint32_t sender, const Endpoint& from,
                          const Now& now, DeviceOutput& out);

  // timers.cc
  int64_t jitter();
  void arm(int64_t& timer, int64_t deadline);
  void timersDataSent(Peer& p, const Now& now);
  void timersDataReceived(Peer& p, const Now& now);
  void timersAnyAuthenticatedPacketSent(Peer& p);
  void timersAnyAuthenticatedPacketReceived(Peer& p);
  void timersAnyAuthenticatedPacketTraversal(Peer& p, const Now& now);
  void timersHandshakeInitiated(Peer& p, const Now& now);
  void timersHandshakeComplete(Peer& p, const Now& now);
  void timersSessionDerived(Peer& p, const Now& now);
  void runTimers(Peer& p, const Now& now, DeviceOutput& out);
};

}  // namespace gatehouse::wg
