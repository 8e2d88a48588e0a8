// TAI64N timestamps for handshake initiations (reference §9).
#pragma once

#include <array>
#include <cstdint>

namespace gatehouse::wg {

using Tai64n = std::array<uint8_t, 12>;

// Big-endian 0x400000000000000a + unix seconds, then big-endian nanoseconds rounded down to a
// multiple of 2^24 (whitening, N2).
Tai64n tai64nFromUnixNanos(int64_t wall_ns);
// Lexicographic (big-endian) a > b (N3).
bool tai64nAfter(const Tai64n& a, const Tai64n& b);

}  // namespace gatehouse::wg
