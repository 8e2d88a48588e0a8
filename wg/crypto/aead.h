// The AEAD seam: ChaCha20-Poly1305 (RFC 8439) for transport and handshake messages, and
// XChaCha20-Poly1305 for cookie replies. Today both are libsodium; the transport AEAD may move to
// another library behind these functions when a benchmark shows crypto is the bottleneck.
//
// `out` may alias the input exactly (in-place). Thread-safe: pure functions.
#pragma once

#include "wg/crypto/blake2s.h"

namespace gatehouse::wg::crypto {

inline constexpr size_t kAeadTagBytes = 16;
inline constexpr size_t kXNonceBytes = 24;

// Initializes libsodium (sodium_init). Idempotent and thread-safe; also run by a static
// initializer in this library, so callers need it only before static initialization ends.
void init();

// Nonce = 4 zero bytes ‖ counter (u64 LE). Writes plaintext.size() + 16 bytes to out.
void aeadSeal(uint8_t* out, const Key32& key, uint64_t counter, Bytes plaintext, Bytes ad);
// Writes ciphertext.size() - 16 bytes to out. False on short input or a bad tag.
[[nodiscard]] bool aeadOpen(uint8_t* out, const Key32& key, uint64_t counter, Bytes ciphertext,
                            Bytes ad);
void xaeadSeal(uint8_t* out, const Key32& key, const uint8_t nonce[kXNonceBytes], Bytes plaintext,
               Bytes ad);
[[nodiscard]] bool xaeadOpen(uint8_t* out, const Key32& key, const uint8_t nonce[kXNonceBytes],
                             Bytes ciphertext, Bytes ad);

// Constant-time equality and wiping (libsodium).
bool equal(Bytes a, Bytes b);
void wipe(void* p, size_t n);
template <typename T>
void wipe(T& v) {
  wipe(&v, sizeof v);
}

}  // namespace gatehouse::wg::crypto
