// Known-answer tests for BLAKE2s, HMAC-BLAKE2s and the WireGuard KDF (reference §12, C3, C4).
#include "wg/crypto/blake2s.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/wg/test_util.h"

namespace gatehouse::wg::crypto {
namespace {

using testing::fromHex;
using testing::toHex;

Bytes str(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::vector<uint8_t> iota(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i);
  return v;
}

TEST(Blake2sTest, Rfc7693AppendixB) {
  EXPECT_EQ(toHex(hash(str("abc"))),
            "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  EXPECT_EQ(toHex(hash(str(""))),
            "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");
}

// RFC 7693 Appendix E: deterministic inputs, keyed and unkeyed, several lengths, all hashed into
// one grand digest.
void selftestSeq(uint8_t* out, size_t len, uint32_t seed) {
  uint32_t a = 0xDEAD4BAD * seed, b = 1;
  for (size_t i = 0; i < len; ++i) {
    uint32_t t = a + b;
    a = b;
    b = t;
    out[i] = static_cast<uint8_t>(t >> 24);
  }
}

TEST(Blake2sTest, Rfc7693AppendixESelfTest) {
  const size_t md_len[] = {16, 20, 28, 32};
  const size_t in_len[] = {0, 3, 64, 65, 255, 1024};
  uint8_t in[1024], md[32], key[32];
  Blake2s grand(32);
  for (size_t outlen : md_len) {
    for (size_t inlen : in_len) {
      selftestSeq(in, inlen, static_cast<uint32_t>(inlen));
      blake2s(md, outlen, Bytes(in, inlen));
      grand.update(Bytes(md, outlen));
      selftestSeq(key, outlen, static_cast<uint32_t>(outlen));
      blake2s(md, outlen, Bytes(in, inlen), Bytes(key, outlen));
      grand.update(Bytes(md, outlen));
    }
  }
  grand.final(md);
  EXPECT_EQ(toHex(Bytes(md, 32)),
            "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
}

// BLAKE2 reference KAT (key 00..1f, input 00..n-1), cross-checked with Python hashlib.
TEST(Blake2sTest, KeyedKnownAnswers) {
  auto key = iota(32);
  uint8_t out[32];
  blake2s(out, 32, iota(64), key);
  EXPECT_EQ(toHex(out), "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4");
  blake2s(out, 32, iota(255), key);
  EXPECT_EQ(toHex(out), "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd");
  blake2s(out, 32, iota(256), key);
  EXPECT_EQ(toHex(out), "5211d1aefc0025be7f85c06b3e14e0fc645ae12bd41746485ea6d8a364a2eaee");
}

TEST(Blake2sTest, MacIsKeyedBlake2s128) {
  std::vector<uint8_t> key(32, 'k');
  EXPECT_EQ(toHex(mac(key, str("hello wireguard"))), "8d31947a081d63e345ab4babacf06d7d");
}

TEST(Blake2sTest, IncrementalEqualsOneShotAtEverySplit) {
  auto data = iota(300);
  auto key = iota(32);
  for (size_t outlen : {16u, 32u}) {
    for (bool keyed : {false, true}) {
      Bytes k = keyed ? Bytes(key) : Bytes();
      uint8_t want[32];
      blake2s(want, outlen, data, k);
      for (size_t split = 0; split <= data.size(); ++split) {
        Blake2s h(outlen, k);
        h.update(Bytes(data).first(split));
        h.update(Bytes(data).subspan(split));
        uint8_t got[32];
        h.final(got);
        ASSERT_EQ(toHex(Bytes(got, outlen)), toHex(Bytes(want, outlen)))
            << "split " << split << " outlen " << outlen << " keyed " << keyed;
      }
    }
  }
  // Byte-at-a-time too, which crosses every block boundary with an exactly full buffer.
  Blake2s h;
  for (uint8_t b : data) h.update(Bytes(&b, 1));
  uint8_t got[32];
  h.final(got);
  EXPECT_EQ(toHex(got), toHex(hash(data)));
}

TEST(Blake2sTest, Hash2IsHashOfConcatenation) {
  auto a = iota(70);
  auto b = iota(33);
  std::vector<uint8_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(hash2(a, b), hash(ab));
}

// Python: hmac.new(key, msg, hashlib.blake2s).
TEST(Blake2sTest, HmacKnownAnswers) {
  EXPECT_EQ(toHex(hmac(str("key"), str("The quick brown fox jumps over the lazy dog"))),
            "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0");
  // Keys longer than the 64-byte block are hashed first (RFC 2104).
  EXPECT_EQ(toHex(hmac(iota(100), str("msg"))),
            "d262c404e86fa6bc5be7b1aabcdc6737627e135c5b98de4a3b85ebc08ac01d54");
}

// wireguard-go device/kdf_test.go. HMAC zero-pads keys to the block size, so the short keys of
// those vectors are the same keys as 32-byte chaining keys padded with zeros.
struct KdfVector {
  const char* key;
  const char* input;
  const char* t0;
  const char* t1;
  const char* t2;
};

constexpr KdfVector kKdfVectors[] = {
    {"746573742d6b6579", "746573742d696e707574",
     "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
     "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
     "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24"},
    {"776972656775617264", "776972656775617264",
     "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
     "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
     "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160"},
    {"", "", "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
     "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
     "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e"},
};

Key32 paddedKey(const char* hex) {
  Key32 k{};
  auto b = fromHex(hex);
  std::copy(b.begin(), b.end(), k.begin());
  return k;
}

TEST(Blake2sTest, WireguardGoKdfVectors) {
  for (const auto& v : kKdfVectors) {
    SCOPED_TRACE(v.key);
    Key32 c = paddedKey(v.key);
    auto input = fromHex(v.input);
    Key32 t0, t1, t2;
    kdf3(t0, t1, t2, c, input);
    EXPECT_EQ(toHex(t0), v.t0);
    EXPECT_EQ(toHex(t1), v.t1);
    EXPECT_EQ(toHex(t2), v.t2);
    t0 = t1 = Key32{};
    kdf2(t0, t1, c, input);
    EXPECT_EQ(toHex(t0), v.t0);
    EXPECT_EQ(toHex(t1), v.t1);
    t0 = Key32{};
    kdf1(t0, c, input);
    EXPECT_EQ(toHex(t0), v.t0);
  }
}

// The handshake writes the chaining key over itself: C = KDF1(C, x), (C, k) = KDF2(C, x).
TEST(Blake2sTest, KdfOutputMayAliasChainingKey) {
  const auto& v = kKdfVectors[0];
  auto input = fromHex(v.input);
  Key32 c = paddedKey(v.key);
  kdf1(c, c, input);
  EXPECT_EQ(toHex(c), v.t0);
  c = paddedKey(v.key);
  Key32 k;
  kdf2(c, k, c, input);
  EXPECT_EQ(toHex(c), v.t0);
  EXPECT_EQ(toHex(k), v.t1);
  c = paddedKey(v.key);
  Key32 tau;
  kdf3(c, tau, k, c, input);
  EXPECT_EQ(toHex(c), v.t0);
  EXPECT_EQ(toHex(tau), v.t1);
  EXPECT_EQ(toHex(k), v.t2);
}

TEST(Blake2sTest, NoiseConstructionConstants) {
  Key32 c0 = hash(str("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"));
  EXPECT_EQ(toHex(c0), "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");  // C3
  Key32 h0 = hash2(c0, str("WireGuard v1 zx2c4 Jason@zx2c4.com"));
  EXPECT_EQ(toHex(h0), "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");  // C4
}

}  // namespace
}  // namespace gatehouse::wg::crypto
