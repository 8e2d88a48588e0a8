// AEAD seam: RFC 8439 and XChaCha20-Poly1305 known answers, tampering, in-place use (reference
// §12).
#include "wg/crypto/aead.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/wg/test_util.h"

namespace gatehouse::wg::crypto {
namespace {

using testing::fromHex;
using testing::toHex;

Key32 rfcKey() {  // 80..9f, shared by RFC 8439 §2.8.2 and the XChaCha draft
  Key32 k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(0x80 + i);
  return k;
}

const std::string_view kPlaintext =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    "sunscreen would be it.";
const auto kAad = fromHex("50515253c0c1c2c3c4c5c6c7");

Bytes plaintext() {
  return {reinterpret_cast<const uint8_t*>(kPlaintext.data()), kPlaintext.size()};
}

// The RFC's nonce starts 07000000, which WireGuard's 4-zero-byte nonce cannot express, so the RFC
// vector checks the libsodium primitive behind the seam directly.
TEST(AeadTest, Rfc8439Section282OnTheUnderlyingPrimitive) {
  auto nonce = fromHex("070000004041424344454647");
  Key32 key = rfcKey();
  std::vector<uint8_t> out(kPlaintext.size() + kAeadTagBytes);
  unsigned long long len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &len, plaintext().data(), kPlaintext.size(),
                                            kAad.data(), kAad.size(), nullptr, nonce.data(),
                                            key.data());
  ASSERT_EQ(len, out.size());
  EXPECT_EQ(
      toHex(out),
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69"
      "da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675"
      "945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691");
}

// Same key, plaintext and AAD through the seam with counter 0x4746454443424140, i.e. nonce
// 00000000 4041424344454647 (reference §1: counter little-endian after 4 zero bytes). Expected
// value from Python `cryptography` ChaCha20Poly1305.
constexpr uint64_t kSeamCounter = 0x4746454443424140ULL;
constexpr std::string_view kSeamSealed =
    "a479cb54628946d6f4042a8e384ef4bd2fbc7330b8be55eb2d8dc18aaa51d66a8ec1f8d3619a258db0ac56956015b7"
    "b4937e9b8e6aa957b3dc0214d803d77660aabc913092971da8f207171ce7843608162e2e759d8efc25d8d0936990af"
    "63c820ba87e8a955b5c8274ef7d10f6fafd046472dbf189b668bd430aef9147e99cb6c89";

TEST(AeadTest, SealUsesWireguardNonceLayout) {
  std::vector<uint8_t> out(kPlaintext.size() + kAeadTagBytes);
  aeadSeal(out.data(), rfcKey(), kSeamCounter, plaintext(), kAad);
  EXPECT_EQ(toHex(out), kSeamSealed);

  std::vector<uint8_t> back(kPlaintext.size());
  ASSERT_TRUE(aeadOpen(back.data(), rfcKey(), kSeamCounter, out, kAad));
  EXPECT_EQ(std::string(back.begin(), back.end()), kPlaintext);
}

TEST(AeadTest, KeepaliveIsTagOnly) {
  uint8_t out[kAeadTagBytes];
  aeadSeal(out, rfcKey(), 1, {}, {});
  EXPECT_EQ(toHex(out), "2c8bcc023498fb4795f009bc2b0bd49a");  // Python `cryptography`
  EXPECT_TRUE(aeadOpen(nullptr, rfcKey(), 1, Bytes(out, sizeof out), {}));
  EXPECT_FALSE(aeadOpen(nullptr, rfcKey(), 2, Bytes(out, sizeof out), {}));
}

TEST(AeadTest, TamperingFailsOpen) {
  auto sealed = fromHex(kSeamSealed);
  std::vector<uint8_t> out(sealed.size());
  for (size_t i : {size_t{0}, sealed.size() / 2, sealed.size() - 1}) {
    auto bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(aeadOpen(out.data(), rfcKey(), kSeamCounter, bad, kAad)) << "byte " << i;
  }
  auto bad_aad = kAad;
  bad_aad[0] ^= 0x80;
  EXPECT_FALSE(aeadOpen(out.data(), rfcKey(), kSeamCounter, sealed, bad_aad));
  EXPECT_FALSE(aeadOpen(out.data(), rfcKey(), kSeamCounter + 1, sealed, kAad));
  Key32 other = rfcKey();
  other[31] ^= 1;
  EXPECT_FALSE(aeadOpen(out.data(), other, kSeamCounter, sealed, kAad));
  EXPECT_TRUE(aeadOpen(out.data(), rfcKey(), kSeamCounter, sealed, kAad));
}

TEST(AeadTest, ShortCiphertextFails) {
  uint8_t buf[kAeadTagBytes] = {};
  EXPECT_FALSE(aeadOpen(buf, rfcKey(), 0, Bytes(buf, kAeadTagBytes - 1), {}));
  EXPECT_FALSE(aeadOpen(buf, rfcKey(), 0, {}, {}));
  uint8_t nonce[kXNonceBytes] = {};
  EXPECT_FALSE(xaeadOpen(buf, rfcKey(), nonce, Bytes(buf, 3), {}));
}

TEST(AeadTest, InPlaceSealAndOpen) {
  std::vector<uint8_t> buf(plaintext().begin(), plaintext().end());
  buf.resize(kPlaintext.size() + kAeadTagBytes);
  aeadSeal(buf.data(), rfcKey(), kSeamCounter, Bytes(buf.data(), kPlaintext.size()), kAad);
  EXPECT_EQ(toHex(buf), kSeamSealed);
  ASSERT_TRUE(aeadOpen(buf.data(), rfcKey(), kSeamCounter, buf, kAad));
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + kPlaintext.size()), kPlaintext);
}

// draft-irtf-cfrg-xchacha-03 Appendix A.3.1.
TEST(AeadTest, XChaChaDraftA31) {
  uint8_t nonce[kXNonceBytes];
  for (int i = 0; i < 24; ++i) nonce[i] = static_cast<uint8_t>(0x40 + i);
  std::vector<uint8_t> out(kPlaintext.size() + kAeadTagBytes);
  xaeadSeal(out.data(), rfcKey(), nonce, plaintext(), kAad);
  EXPECT_EQ(toHex(out),
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a8"
            "2f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369"
            "488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
            "c0875924c1c7987947deafd8780acf49");

  std::vector<uint8_t> back(kPlaintext.size());
  ASSERT_TRUE(xaeadOpen(back.data(), rfcKey(), nonce, out, kAad));
  EXPECT_EQ(std::string(back.begin(), back.end()), kPlaintext);
  out[5] ^= 0x10;
  EXPECT_FALSE(xaeadOpen(back.data(), rfcKey(), nonce, out, kAad));
  out[5] ^= 0x10;
  nonce[23] ^= 1;
  EXPECT_FALSE(xaeadOpen(back.data(), rfcKey(), nonce, out, kAad));
}

TEST(AeadTest, XChaChaInPlace) {
  uint8_t nonce[kXNonceBytes] = {1, 2, 3};
  std::vector<uint8_t> buf(32 + kAeadTagBytes, 0x5a);
  std::vector<uint8_t> original(buf.begin(), buf.begin() + 32);
  xaeadSeal(buf.data(), rfcKey(), nonce, Bytes(buf.data(), 32), {});
  EXPECT_NE(std::vector<uint8_t>(buf.begin(), buf.begin() + 32), original);
  ASSERT_TRUE(xaeadOpen(buf.data(), rfcKey(), nonce, buf, {}));
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 32), original);
}

TEST(AeadTest, EqualAndWipe) {
  const uint8_t a[] = {1, 2, 3, 4}, b[] = {1, 2, 3, 4}, c[] = {1, 2, 3, 5};
  EXPECT_TRUE(equal(a, b));
  EXPECT_FALSE(equal(a, c));
  EXPECT_FALSE(equal(Bytes(a, 3), Bytes(b, 4)));
  EXPECT_TRUE(equal({}, {}));
  Key32 k = rfcKey();
  wipe(k);
  EXPECT_EQ(k, Key32{});
}

TEST(AeadTest, InitIsIdempotent) {
  init();
  init();
  uint8_t out[kAeadTagBytes];
  aeadSeal(out, rfcKey(), 1, {}, {});
  EXPECT_EQ(toHex(out), "2c8bcc023498fb4795f009bc2b0bd49a");
}

}  // namespace
}  // namespace gatehouse::wg::crypto
