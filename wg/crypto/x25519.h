// X25519 (RFC 7748) through libsodium, with WireGuard's rules: clamped private keys, and every
// all-zero shared secret (low-order peer point) rejected (reference C8).
#pragma once

#include "wg/crypto/blake2s.h"

namespace gatehouse::wg::crypto {

// Clamps in place (reference C7).
void clampPrivateKey(Key32& sk);
// A fresh clamped private key from `random` bytes the caller provides (32 bytes of CSPRNG).
Key32 privateKeyFromRandom(const Key32& random);
Key32 publicKey(const Key32& sk);
// out = DH(sk, pk). Returns false (and zeroes out) when the result is all zeros.
[[nodiscard]] bool x25519(Key32& out, const Key32& sk, const Key32& pk);

}  // namespace gatehouse::wg::crypto
