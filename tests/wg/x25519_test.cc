// X25519 known answers (RFC 7748) and WireGuard's key rules: clamping (C7), low-order peer keys
// rejected on every DH (C8).
#include "wg/crypto/x25519.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <string>
#include <string_view>

#include "tests/wg/test_util.h"

namespace gatehouse::wg::crypto {
namespace {

Key32 key(std::string_view hex) {
  Key32 k{};
  for (size_t i = 0; i < 32; ++i) {
    k[i] = static_cast<uint8_t>(std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  }
  return k;
}

using testing::toHex;

TEST(X25519Test, Rfc7748Section52Vector1) {
  Key32 out;
  ASSERT_TRUE(x25519(out, key("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                     key("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")));
  EXPECT_EQ(toHex(out), "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
}

TEST(X25519Test, Rfc7748Section52Iterated) {
  Key32 k{}, u{};
  k[0] = u[0] = 9;
  for (int i = 1; i <= 1000; ++i) {
    Key32 next;
    ASSERT_TRUE(x25519(next, k, u));
    u = k;
    k = next;
    if (i == 1) {
      EXPECT_EQ(toHex(k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    }
  }
  EXPECT_EQ(toHex(k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
}

TEST(X25519Test, Rfc7748Section61DiffieHellman) {
  Key32 alice_sk = key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  Key32 bob_sk = key("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  Key32 alice_pk = publicKey(alice_sk);
  Key32 bob_pk = publicKey(bob_sk);
  EXPECT_EQ(toHex(alice_pk), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(toHex(bob_pk), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  Key32 ab, ba;
  ASSERT_TRUE(x25519(ab, alice_sk, bob_pk));
  ASSERT_TRUE(x25519(ba, bob_sk, alice_pk));
  EXPECT_EQ(toHex(ab), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(ab, ba);
}

// Linux tools/testing/selftests/wireguard/netns.sh, the `low_order_point` loop.
TEST(X25519Test, LowOrderPublicKeysAreRejected) {
  const char* kLowOrder[] = {
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
      "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
      "7P///////////////////////////////////////38=",
      "7f///////////////////////////////////////38=",
      "7v///////////////////////////////////////38=",
  };
  Key32 sk =
      privateKeyFromRandom(key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  for (const char* b64 : kLowOrder) {
    SCOPED_TRACE(b64);
    Key32 pk;
    size_t len = 0;
    ASSERT_EQ(sodium_base642bin(pk.data(), pk.size(), b64, std::strlen(b64), nullptr, &len, nullptr,
                                sodium_base64_VARIANT_ORIGINAL),
              0);
    ASSERT_EQ(len, 32u);
    Key32 out;
    out.fill(0xaa);
    EXPECT_FALSE(x25519(out, sk, pk));
    EXPECT_EQ(out, Key32{}) << "output must be zeroed on failure";
  }
}

TEST(X25519Test, Clamping) {
  Key32 ones;
  ones.fill(0xff);
  clampPrivateKey(ones);
  EXPECT_EQ(ones[0], 0xf8);
  EXPECT_EQ(ones[31], 0x7f);
  for (int i = 1; i < 31; ++i) EXPECT_EQ(ones[i], 0xff);

  Key32 zeros{};
  Key32 sk = privateKeyFromRandom(zeros);
  EXPECT_EQ(sk[0], 0x00);
  EXPECT_EQ(sk[31], 0x40);

  Key32 random = key("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
  Key32 clamped = privateKeyFromRandom(random);
  EXPECT_EQ(clamped[0] & 7, 0);
  EXPECT_EQ(clamped[31] & 0x80, 0);
  EXPECT_EQ(clamped[31] & 0x40, 0x40);
  // X25519 clamps internally, so a key and its clamped form are the same key.
  EXPECT_EQ(publicKey(random), publicKey(clamped));
}

TEST(X25519Test, FreshKeysAgree) {
  Key32 r1, r2;
  randombytes_buf(r1.data(), r1.size());
  randombytes_buf(r2.data(), r2.size());
  Key32 a = privateKeyFromRandom(r1), b = privateKeyFromRandom(r2);
  Key32 ab, ba;
  ASSERT_TRUE(x25519(ab, a, publicKey(b)));
  ASSERT_TRUE(x25519(ba, b, publicKey(a)));
  EXPECT_EQ(ab, ba);
}

}  // namespace
}  // namespace gatehouse::wg::crypto
