// MAC1, MAC2 and cookie replies (reference §5). Sans-I/O: `now` and the randomness source are
// arguments.
//
// CookieChecker is the responder side (one per device, keyed by the local static public key):
// it checks mac1/mac2 of incoming handshake messages and builds cookie replies under load.
// CookieGenerator is the initiator side (one per peer, keyed by the peer's public key): it adds
// mac1/mac2 to outgoing handshake messages and consumes cookie replies.
#pragma once

#include <cstdint>
#include <span>

#include "wg/crypto/blake2s.h"
#include "wg/env.h"
#include "wg/net/addr.h"

namespace gatehouse::wg {

using crypto::Key32;

class CookieChecker {
 public:
  void init(const Key32& local_public);
  // `msg` is a whole initiation or response (148 / 92 bytes).
  bool checkMac1(std::span<const uint8_t> msg) const;
  bool checkMac2(std::span<const uint8_t> msg, const Endpoint& source, const Now& now,
                 Random& random);
  // Builds the 64-byte type-3 reply to `msg` (whose sender index is `receiver`).
  void createReply(std::span<const uint8_t> msg, uint32_t receiver, const Endpoint& source,
                   const Now& now, Random& random, uint8_t out[64]);

 private:
  void cookieFor(const Endpoint& source, const Now& now, Random& random, uint8_t out[16]);
  Key32 mac1_key_{};
  Key32 cookie_key_{};
  Key32 secret_{};
  int64_t secret_set_ns_ = 0;
  bool secret_valid_ = false;
};

class CookieGenerator {
 public:
  void init(const Key32& peer_public);
  // Writes mac1 and mac2 into a whole initiation or response `msg` (148 / 92 bytes).
  void addMacs(std::span<uint8_t> msg, const Now& now);
  // Consumes a 64-byte type-3 message; false if none is expected or it fails to decrypt.
  bool consumeReply(std::span<const uint8_t> msg, const Now& now);
  bool hasCookie(const Now& now) const;

 private:
  Key32 mac1_key_{};
  Key32 cookie_key_{};
  uint8_t last_mac1_[16] = {};
  bool has_last_mac1_ = false;
  uint8_t cookie_[16] = {};
  int64_t cookie_set_ns_ = 0;
  bool cookie_valid_ = false;
};

}  // namespace gatehouse::wg
