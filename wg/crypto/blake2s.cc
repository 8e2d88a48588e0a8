// BLAKE2s per RFC 7693 §3, written for clarity over speed: it runs on handshakes and MACs, never
// per transport byte.
#include "wg/crypto/blake2s.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace gatehouse::wg::crypto {
namespace {

constexpr uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                             0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

constexpr uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

inline void mix(uint32_t* v, int a, int b, int c, int d, uint32_t x, uint32_t y) {
  v[a] = v[a] + v[b] + x;
  v[d] = rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 12);
  v[a] = v[a] + v[b] + y;
  v[d] = rotr(v[d] ^ v[a], 8);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 7);
}

constexpr size_t kHmacBlock = kBlake2sBlockBytes;

// HMAC-BLAKE2s over in0 ‖ in1 (RFC 2104); two inputs so KDF can append its counter byte without
// copying secrets into a scratch buffer.
void hmac2(uint8_t out[kBlake2sOutBytes], Bytes key, Bytes in0, Bytes in1) {
  uint8_t k[kHmacBlock] = {};
  if (key.size() > kHmacBlock) {
    blake2s(k, kBlake2sOutBytes, key);
  } else if (!key.empty()) {
    std::memcpy(k, key.data(), key.size());
  }
  uint8_t pad[kHmacBlock];
  for (size_t i = 0; i < kHmacBlock; ++i) pad[i] = k[i] ^ 0x36;
  uint8_t inner[kBlake2sOutBytes];
  {
    Blake2s h;
    h.update(Bytes(pad, kHmacBlock));
    h.update(in0);
    h.update(in1);
    h.final(inner);
  }
  for (size_t i = 0; i < kHmacBlock; ++i) pad[i] = k[i] ^ 0x5c;
  {
    Blake2s h;
    h.update(Bytes(pad, kHmacBlock));
    h.update(Bytes(inner, sizeof inner));
    h.final(out);
  }
  sodium_memzero(k, sizeof k);
  sodium_memzero(pad, sizeof pad);
  sodium_memzero(inner, sizeof inner);
}

}  // namespace

Blake2s::Blake2s(size_t outlen, Bytes key) : outlen_(outlen) {
  // Out-of-range parameters are programming errors; clamp rather than read out of bounds.
  outlen_ = std::clamp<size_t>(outlen_, 1, kBlake2sOutBytes);
  size_t keylen = std::min(key.size(), kBlake2sKeyBytes);
  std::memcpy(h_, kIv, sizeof h_);
  h_[0] ^= 0x01010000u ^ static_cast<uint32_t>(keylen << 8) ^ static_cast<uint32_t>(outlen_);
  std::memset(buf_, 0, sizeof buf_);
  if (keylen > 0) {
    // RFC 7693 §3.3: the key, zero-padded, is the first block.
    std::memcpy(buf_, key.data(), keylen);
    buflen_ = kBlake2sBlockBytes;
  }
}

Blake2s::~Blake2s() {
  sodium_memzero(h_, sizeof h_);
  sodium_memzero(buf_, sizeof buf_);
}

void Blake2s::compress(bool last) {
  uint32_t v[16], m[16];
  for (int i = 0; i < 8; ++i) {
    v[i] = h_[i];
    v[i + 8] = kIv[i];
  }
  v[12] ^= t_[0];
  v[13] ^= t_[1];
  if (last) v[14] = ~v[14];
  for (int i = 0; i < 16; ++i) m[i] = load32(buf_ + 4 * i);
  for (const auto& s : kSigma) {
    mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (int i = 0; i < 8; ++i) h_[i] ^= v[i] ^ v[i + 8];
  sodium_memzero(v, sizeof v);
  sodium_memzero(m, sizeof m);
}

void Blake2s::update(Bytes in) {
  const uint8_t* p = in.data();
  size_t n = in.size();
  while (n > 0) {
    // A full buffer is compressed only once more input arrives: the last block needs the final
    // flag.
    if (buflen_ == kBlake2sBlockBytes) {
      t_[0] += kBlake2sBlockBytes;
      if (t_[0] < kBlake2sBlockBytes) ++t_[1];
      compress(false);
      buflen_ = 0;
    }
    size_t take = std::min(n, kBlake2sBlockBytes - buflen_);
    std::memcpy(buf_ + buflen_, p, take);
    buflen_ += take;
    p += take;
    n -= take;
  }
}

void Blake2s::final(uint8_t* out) {
  t_[0] += static_cast<uint32_t>(buflen_);
  if (t_[0] < buflen_) ++t_[1];
  std::memset(buf_ + buflen_, 0, kBlake2sBlockBytes - buflen_);
  compress(true);
  uint8_t full[kBlake2sOutBytes];
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) full[4 * i + j] = static_cast<uint8_t>(h_[i] >> (8 * j));
  }
  std::memcpy(out, full, outlen_);
  sodium_memzero(full, sizeof full);
}

void blake2s(uint8_t* out, size_t outlen, Bytes in, Bytes key) {
  Blake2s h(outlen, key);
  h.update(in);
  h.final(out);
}

Key32 hash(Bytes in) {
  Key32 out;
  blake2s(out.data(), out.size(), in);
  return out;
}

Key32 hash2(Bytes a, Bytes b) {
  Key32 out;
  Blake2s h;
  h.update(a);
  h.update(b);
  h.final(out.data());
  return out;
}

std::array<uint8_t, 16> mac(Bytes key, Bytes in) {
  std::array<uint8_t, 16> out;
  blake2s(out.data(), out.size(), in, key);
  return out;
}

Key32 hmac(Bytes key, Bytes in) {
  Key32 out;
  hmac2(out.data(), key, in, {});
  return out;
}

// Outputs are written only after the PRK is derived, so t1 may alias c or input (the handshake
// does C = KDF1(C, x)).
void kdf1(Key32& t1, const Key32& c, Bytes input) {
  uint8_t prk[kBlake2sOutBytes];
  const uint8_t one = 1;
  hmac2(prk, c, input, {});
  hmac2(t1.data(), Bytes(prk, sizeof prk), Bytes(&one, 1), {});
  sodium_memzero(prk, sizeof prk);
}

void kdf2(Key32& t1, Key32& t2, const Key32& c, Bytes input) {
  uint8_t prk[kBlake2sOutBytes];
  const uint8_t one = 1, two = 2;
  hmac2(prk, c, input, {});
  hmac2(t1.data(), Bytes(prk, sizeof prk), Bytes(&one, 1), {});
  hmac2(t2.data(), Bytes(prk, sizeof prk), t1, Bytes(&two, 1));
  sodium_memzero(prk, sizeof prk);
}

void kdf3(Key32& t1, Key32& t2, Key32& t3, const Key32& c, Bytes input) {
  uint8_t prk[kBlake2sOutBytes];
  const uint8_t one = 1, two = 2, three = 3;
  hmac2(prk, c, input, {});
  hmac2(t1.data(), Bytes(prk, sizeof prk), Bytes(&one, 1), {});
  hmac2(t2.data(), Bytes(prk, sizeof prk), t1, Bytes(&two, 1));
  hmac2(t3.data(), Bytes(prk, sizeof prk), t2, Bytes(&three, 1));
  sodium_memzero(prk, sizeof prk);
}

}  // namespace gatehouse::wg::crypto
