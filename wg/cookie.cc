#include "wg/cookie.h"

#include <cstring>

#include "wg/crypto/aead.h"
#include "wg/messages.h"

namespace gatehouse::wg {
namespace {

constexpr uint8_t kLabelMac1[8] = {'m', 'a', 'c', '1', '-', '-', '-', '-'};
constexpr uint8_t kLabelCookie[8] = {'c', 'o', 'o', 'k', 'i', 'e', '-', '-'};

// mac1 sits 32 bytes before the end, mac2 16 bytes before the end, for both message types.
size_t mac1Offset(std::span<const uint8_t> msg) { return msg.size() - 2 * kMacSize; }
size_t mac2Offset(std::span<const uint8_t> msg) { return msg.size() - kMacSize; }

// The cookie is keyed by source address and port (reference K4; the encoding is local).
size_t encodeSource(const Endpoint& source, uint8_t out[18]) {
  size_t n = source.addr.size();
  std::memcpy(out, source.addr.bytes.data(), n);
  out[n] = static_cast<uint8_t>(source.port >> 8);
  out[n + 1] = static_cast<uint8_t>(source.port);
  return n + 2;
}

}  // namespace

void CookieChecker::init(const Key32& local_public) {
  mac1_key_ = crypto::hash2(kLabelMac1, local_public);
  cookie_key_ = crypto::hash2(kLabelCookie, local_public);
  secret_valid_ = false;
}

bool CookieChecker::checkMac1(std::span<const uint8_t> msg) const {
  size_t off = mac1Offset(msg);
  auto mac = crypto::mac(mac1_key_, msg.first(off));
  return crypto::equal(mac, msg.subspan(off, kMacSize));
}

void CookieChecker::cookieFor(const Endpoint& source, const Now& now, Random& random,
                              uint8_t out[16]) {
  if (!secret_valid_ || now.mono_ns - secret_set_ns_ > kCookieRefreshTime) {
    random.fill(secret_);
    secret_set_ns_ = now.mono_ns;
    secret_valid_ = true;
  }
  uint8_t src[18];
  size_t n = encodeSource(source, src);
  auto cookie = crypto::mac(secret_, {src, n});
  std::memcpy(out, cookie.data(), 16);
}

bool CookieChecker::checkMac2(std::span<const uint8_t> msg, const Endpoint& source, const Now& now,
                              Random& random) {
  uint8_t cookie[16];
  cookieFor(source, now, random, cookie);
  size_t off = mac2Offset(msg);
  auto mac = crypto::mac({cookie, 16}, msg.first(off));
  return crypto::equal(mac, msg.subspan(off, kMacSize));
}

void CookieChecker::createReply(std::span<const uint8_t> msg, uint32_t receiver,
                                const Endpoint& source, const Now& now, Random& random,
                                uint8_t out[64]) {
  uint8_t cookie[16];
  cookieFor(source, now, random, cookie);
  storeLe32(out, kMsgCookieReply);
  storeLe32(out + kCookieReceiverOff, receiver);
  random.fill({out + kCookieNonceOff, crypto::kXNonceBytes});
  crypto::xaeadSeal(out + kCookieEncOff, cookie_key_, out + kCookieNonceOff, {cookie, 16},
                    msg.subspan(mac1Offset(msg), kMacSize));
  crypto::wipe(cookie);
}

void CookieGenerator::init(const Key32& peer_public) {
  mac1_key_ = crypto::hash2(kLabelMac1, peer_public);
  cookie_key_ = crypto::hash2(kLabelCookie, peer_public);
  has_last_mac1_ = false;
  cookie_valid_ = false;
}

void CookieGenerator::addMacs(std::span<uint8_t> msg, const Now& now) {
  size_t off1 = mac1Offset(msg), off2 = mac2Offset(msg);
  auto mac1 = crypto::mac(mac1_key_, msg.first(off1));
  std::memcpy(msg.data() + off1, mac1.data(), kMacSize);
  std::memcpy(last_mac1_, mac1.data(), kMacSize);
  has_last_mac1_ = true;
  if (hasCookie(now)) {
    auto mac2 = crypto::mac({cookie_, 16}, msg.first(off2));
    std::memcpy(msg.data() + off2, mac2.data(), kMacSize);
  } else {
    std::memset(msg.data() + off2, 0, kMacSize);
  }
}

bool CookieGenerator::hasCookie(const Now& now) const {
  return cookie_valid_ && now.mono_ns - cookie_set_ns_ < kCookieRefreshTime;
}

bool CookieGenerator::consumeReply(std::span<const uint8_t> msg, const Now& now) {
  if (!has_last_mac1_ || msg.size() != kCookieReplySize) return false;
  uint8_t cookie[16];
  if (!crypto::xaeadOpen(cookie, cookie_key_, msg.data() + kCookieNonceOff,
                         msg.subspan(kCookieEncOff, 32), {last_mac1_, kMacSize})) {
    return false;
  }
  // One reply per mac1 sent (kernel behaviour, reference K3).
  has_last_mac1_ = false;
  std::memcpy(cookie_, cookie, 16);
  crypto::wipe(cookie);
  cookie_set_ns_ = now.mono_ns;
  cookie_valid_ = true;
  return true;
}

}  // namespace gatehouse::wg
