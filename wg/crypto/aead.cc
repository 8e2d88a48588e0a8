// The AEAD seam over libsodium. sodium_init() runs once from a static initializer so the per-packet
// path carries no initialization check.
#include "wg/crypto/aead.h"

#include <sodium.h>

#include <cstdlib>

namespace gatehouse::wg::crypto {
namespace {

[[maybe_unused]] const bool kInitialized = (init(), true);

void counterNonce(uint8_t nonce[12], uint64_t counter) {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

}  // namespace

void init() {
  // sodium_init returns 1 when already initialized and -1 only if it cannot run at all (no
  // entropy source); continuing would mean keys from a broken RNG.
  if (sodium_init() < 0) std::abort();
}

void aeadSeal(uint8_t* out, const Key32& key, uint64_t counter, Bytes plaintext, Bytes ad) {
  uint8_t nonce[12];
  counterNonce(nonce, counter);
  crypto_aead_chacha20poly1305_ietf_encrypt(out, nullptr, plaintext.data(), plaintext.size(),
                                            ad.data(), ad.size(), nullptr, nonce, key.data());
}

bool aeadOpen(uint8_t* out, const Key32& key, uint64_t counter, Bytes ciphertext, Bytes ad) {
  if (ciphertext.size() < kAeadTagBytes) return false;
  uint8_t nonce[12];
  counterNonce(nonce, counter);
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, nullptr, nullptr, ciphertext.data(),
                                                   ciphertext.size(), ad.data(), ad.size(), nonce,
                                                   key.data()) == 0;
}

void xaeadSeal(uint8_t* out, const Key32& key, const uint8_t nonce[kXNonceBytes], Bytes plaintext,
               Bytes ad) {
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, nullptr, plaintext.data(), plaintext.size(),
                                             ad.data(), ad.size(), nullptr, nonce, key.data());
}

bool xaeadOpen(uint8_t* out, const Key32& key, const uint8_t nonce[kXNonceBytes], Bytes ciphertext,
               Bytes ad) {
  if (ciphertext.size() < kAeadTagBytes) return false;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, nullptr, nullptr, ciphertext.data(),
                                                    ciphertext.size(), ad.data(), ad.size(), nonce,
                                                    key.data()) == 0;
}

bool equal(Bytes a, Bytes b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void wipe(void* p, size_t n) { sodium_memzero(p, n); }

}  // namespace gatehouse::wg::crypto
