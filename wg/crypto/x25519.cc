// X25519 through libsodium. libsodium 1.0.18 refuses low-order points itself (returns -1); the
// all-zero check stays as a second guard so a library change cannot silently admit them (C8).
#include "wg/crypto/x25519.h"

#include <sodium.h>

#include "wg/crypto/aead.h"

namespace gatehouse::wg::crypto {
namespace {
// libsodium picks its fastest implementations in sodium_init(); make sure that has happened even
// when only this file is used.
[[maybe_unused]] const bool kInitialized = (init(), true);
}  // namespace

void clampPrivateKey(Key32& sk) {
  sk[0] &= 248;
  sk[31] = (sk[31] & 127) | 64;
}

Key32 privateKeyFromRandom(const Key32& random) {
  Key32 sk = random;
  clampPrivateKey(sk);
  return sk;
}

Key32 publicKey(const Key32& sk) {
  Key32 pk;
  crypto_scalarmult_base(pk.data(), sk.data());
  return pk;
}

bool x25519(Key32& out, const Key32& sk, const Key32& pk) {
  Key32 result;
  bool ok = crypto_scalarmult(result.data(), sk.data(), pk.data()) == 0 &&
            !sodium_is_zero(result.data(), result.size());
  if (ok) {
    out = result;
  } else {
    sodium_memzero(out.data(), out.size());
  }
  sodium_memzero(result.data(), result.size());
  return ok;
}

}  // namespace gatehouse::wg::crypto
