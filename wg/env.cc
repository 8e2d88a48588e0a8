#include "wg/env.h"

#include <sodium.h>
#include <time.h>

namespace gatehouse::wg {

void SystemRandom::fill(std::span<uint8_t> out) { randombytes_buf(out.data(), out.size()); }

void FakeRandom::fill(std::span<uint8_t> out) {
  for (auto& b : out) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    b = static_cast<uint8_t>(state_ >> 24);
  }
}

Now systemNow() {
  timespec m, w;
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &w);
  return Now{m.tv_sec * kSec + m.tv_nsec, w.tv_sec * kSec + w.tv_nsec};
}

}  // namespace gatehouse::wg
