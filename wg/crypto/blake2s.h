// BLAKE2s (RFC 7693), HMAC-BLAKE2s (RFC 2104) and the WireGuard KDF.
//
// Implemented in-tree: neither libsodium nor BoringSSL ships BLAKE2s. Pure functions; the
// incremental hasher is a value owned by its caller. No allocation, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace gatehouse::wg::crypto {

using Bytes = std::span<const uint8_t>;
using Key32 = std::array<uint8_t, 32>;

inline constexpr size_t kBlake2sBlockBytes = 64;
inline constexpr size_t kBlake2sOutBytes = 32;
inline constexpr size_t kBlake2sKeyBytes = 32;

// Incremental BLAKE2s. `outlen` in 1..32, `key` 0..32 bytes (keyed mode, RFC 7693 §3.3).
class Blake2s {
 public:
  explicit Blake2s(size_t outlen = kBlake2sOutBytes, Bytes key = {});
  ~Blake2s();  // wipes state
  void update(Bytes in);
  // Writes outlen bytes. The hasher must not be used afterwards.
  void final(uint8_t* out);

 private:
  void compress(bool last);
  uint32_t h_[8];
  uint32_t t_[2] = {0, 0};
  uint8_t buf_[kBlake2sBlockBytes];
  size_t buflen_ = 0;
  size_t outlen_;
};

// One-shot BLAKE2s; keyed when key is non-empty.
void blake2s(uint8_t* out, size_t outlen, Bytes in, Bytes key = {});
// HASH(x) in the WireGuard paper: unkeyed BLAKE2s-256.
Key32 hash(Bytes in);
// HASH(a ‖ b).
Key32 hash2(Bytes a, Bytes b);
// MAC(k, x): keyed BLAKE2s with 16-byte output.
std::array<uint8_t, 16> mac(Bytes key, Bytes in);
// HMAC-BLAKE2s-256.
Key32 hmac(Bytes key, Bytes in);

// WireGuard KDFn (HKDF with chaining key `c` as salt). Outputs are wiped intermediates-safe.
void kdf1(Key32& t1, const Key32& c, Bytes input);
void kdf2(Key32& t1, Key32& t2, const Key32& c, Bytes input);
void kdf3(Key32& t1, Key32& t2, Key32& t3, const Key32& c, Bytes input);

}  // namespace gatehouse::wg::crypto
