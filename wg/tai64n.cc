#include "wg/tai64n.h"

#include <cstring>

namespace gatehouse::wg {
namespace {
constexpr uint64_t kTai64Base = 0x400000000000000aULL;  // N1; not boringtun's 2^62 + 37 (N4)
constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr uint32_t kWhitenerMask = 0xffffff;  // N2: hide sub-16.8 ms timing
}  // namespace

Tai64n tai64nFromUnixNanos(int64_t wall_ns) {
  // Floor division so instants before 1970 still yield nanoseconds in [0, 1e9).
  int64_t secs = wall_ns / kNanosPerSecond;
  int64_t nanos = wall_ns % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    --secs;
  }
  uint64_t s = kTai64Base + static_cast<uint64_t>(secs);
  uint32_t n = static_cast<uint32_t>(nanos) & ~kWhitenerMask;
  Tai64n out;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(s >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  return out;
}

bool tai64nAfter(const Tai64n& a, const Tai64n& b) {
  return std::memcmp(a.data(), b.data(), a.size()) > 0;
}

}  // namespace gatehouse::wg
