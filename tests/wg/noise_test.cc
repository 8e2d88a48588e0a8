// The noise core against the public Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s test vector
// (cacophony, prologue "John Galt"), and WireGuard's message sizes (reference C3, C4, M1, M2).
#include "wg/noise.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/wg/test_util.h"
#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::wg::noise {
namespace {

using testing::fromHex;
using testing::key32;
using testing::toHex;

struct Vector {
  Key32 init_static = key32("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1");
  Key32 init_ephemeral = key32("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a");
  Key32 resp_static = key32("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893");
  Key32 resp_ephemeral = key32("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b");
  Key32 psk = key32("54686973206973206d7920417573747269616e20706572737065637469766521");
  std::vector<uint8_t> prologue = fromHex("4a6f686e2047616c74");
  std::vector<uint8_t> payload1 =
      fromHex("4c756477696720766f6e204d69736573");                            // "Ludwig von Mises"
  std::vector<uint8_t> payload2 = fromHex("4d757272617920526f746862617264");  // "Murray Rothbard"
};

TEST(Noise, ConstructionConstants) {
  EXPECT_EQ(toHex(initialChainKey()),
            "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
  EXPECT_EQ(toHex(initialHash()),
            "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
}

TEST(Noise, CacophonyIKpsk2Vector) {
  Vector v;
  LocalStatic init{v.init_static, crypto::publicKey(v.init_static)};
  LocalStatic resp{v.resp_static, crypto::publicKey(v.resp_static)};
  Key32 h0 = initialHashFor(v.prologue);

  Handshake ih;
  ASSERT_TRUE(configure(ih, init, resp.pub));
  ih.preshared_key = v.psk;
  std::vector<uint8_t> msg1(kMsg1BodyBase + v.payload1.size() + 16);
  ASSERT_TRUE(writeMessage1(ih, init, v.init_ephemeral, v.payload1, msg1.data(), h0));
  EXPECT_EQ(msg1.size(), 112u);

  Message1Read m;
  ASSERT_TRUE(readMessage1Static(resp, msg1.data(), m, h0));
  EXPECT_EQ(m.remote_static, init.pub);
  Handshake rh;
  ASSERT_TRUE(configure(rh, resp, m.remote_static));
  rh.preshared_key = v.psk;
  std::vector<uint8_t> got1(v.payload1.size());
  ASSERT_TRUE(
      readMessage1Payload(m, rh.precomputed_static_static, msg1.data(), got1.size(), got1.data()));
  EXPECT_EQ(got1, v.payload1);
  acceptMessage1(rh, m);

  std::vector<uint8_t> msg2(kMsg2BodyBase + v.payload2.size() + 16);
  ASSERT_TRUE(writeMessage2(rh, v.resp_ephemeral, v.payload2, msg2.data()));
  EXPECT_EQ(msg2.size(), 63u);
  std::vector<uint8_t> got2(v.payload2.size());
  ASSERT_TRUE(readMessage2(ih, init, msg2.data(), got2.size(), got2.data()));
  EXPECT_EQ(got2, v.payload2);

  // The published handshake hash binds every byte of both messages.
  EXPECT_EQ(toHex(ih.hash), "f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5");
  EXPECT_EQ(ih.hash, rh.hash);

  Key32 is, ir, rs, rr;
  deriveTransportKeys(ih, is, ir);
  deriveTransportKeys(rh, rs, rr);
  EXPECT_EQ(is, rr);
  EXPECT_EQ(ir, rs);
  EXPECT_EQ(ih.state, Handshake::State::kZeroed);
  EXPECT_EQ(ih.chain_key, Key32{});
}

TEST(Noise, TamperedMessagesFail) {
  Vector v;
  LocalStatic init{v.init_static, crypto::publicKey(v.init_static)};
  LocalStatic resp{v.resp_static, crypto::publicKey(v.resp_static)};
  Handshake ih;
  ASSERT_TRUE(configure(ih, init, resp.pub));
  uint8_t msg1[kMsg1BodyBase + 12 + 16];
  Tai64n ts{};
  ASSERT_TRUE(writeMessage1(ih, init, v.init_ephemeral, ts, msg1));
  for (size_t i = 0; i < sizeof msg1; i += 7) {
    uint8_t copy[sizeof msg1];
    std::memcpy(copy, msg1, sizeof msg1);
    copy[i] ^= 1;
    Message1Read m;
    Handshake rh;
    configure(rh, resp, init.pub);
    Tai64n out;
    bool ok = readMessage1Static(resp, copy, m, initialHash()) &&
              readMessage1Payload(m, rh.precomputed_static_static, copy, 12, out.data());
    EXPECT_FALSE(ok) << "byte " << i;
  }
}

TEST(Noise, ForgedResponseLeavesHandshakePending) {
  Vector v;
  LocalStatic init{v.init_static, crypto::publicKey(v.init_static)};
  LocalStatic resp{v.resp_static, crypto::publicKey(v.resp_static)};
  Handshake ih;
  ASSERT_TRUE(configure(ih, init, resp.pub));
  uint8_t msg1[kMsg1BodyBase + 12 + 16];
  Tai64n ts{};
  ASSERT_TRUE(writeMessage1(ih, init, v.init_ephemeral, ts, msg1));
  uint8_t forged[kMsg2BodyBase + 16] = {9};
  EXPECT_FALSE(readMessage2(ih, init, forged, 0, nullptr));
  EXPECT_EQ(ih.state, Handshake::State::kInitiationCreated);
}

TEST(Noise, LowOrderPeerKeyIsRejected) {
  Vector v;
  LocalStatic init{v.init_static, crypto::publicKey(v.init_static)};
  Handshake hs;
  Key32 zero{};
  EXPECT_FALSE(configure(hs, init, zero));
  uint8_t msg1[kMsg1BodyBase + 12 + 16];
  Tai64n ts{};
  EXPECT_FALSE(writeMessage1(hs, init, v.init_ephemeral, ts, msg1));
}

}  // namespace
}  // namespace gatehouse::wg::noise
