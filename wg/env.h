// The injected environment of the protocol cores: time and randomness. Cores never read a clock
// or a CSPRNG themselves; the device loop passes `Now` in and owns the `Random`.
#pragma once

#include <cstdint>
#include <span>

namespace gatehouse::wg {

// Monotonic time drives timers; wall time only feeds TAI64N handshake timestamps.
struct Now {
  int64_t mono_ns = 0;
  int64_t wall_ns = 0;
};

inline constexpr int64_t kMs = 1000 * 1000;
inline constexpr int64_t kSec = 1000 * kMs;

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<uint8_t> out) = 0;
  uint32_t u32() {
    uint32_t v;
    fill({reinterpret_cast<uint8_t*>(&v), sizeof v});
    return v;
  }
};

// libsodium's randombytes_buf.
class SystemRandom final : public Random {
 public:
  void fill(std::span<uint8_t> out) override;
};

// Deterministic generator for tests (splitmix64; not cryptographic).
class FakeRandom final : public Random {
 public:
  explicit FakeRandom(uint64_t seed = 1) : state_(seed ? seed : 1) {}
  void fill(std::span<uint8_t> out) override;

 private:
  uint64_t state_;
};

// Reads CLOCK_MONOTONIC and CLOCK_REALTIME.
Now systemNow();

}  // namespace gatehouse::wg
