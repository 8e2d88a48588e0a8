#include "wg/env.h"

#include <sodium.h>
#include <time.h>

namespace gatehouse::wg {

void SystemRandom::fill(std::span<uint8_t> out) { randombytes_buf(out.data(), out.size()); }

void FakeRandom::fill(std::span<uint8_t> out) {
  // splitmix64: different seeds give unrelated streams (xorshift seeds 1 and 2 do not).
  for (auto& b : out) {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    b = static_cast<uint8_t>(z ^ (z >> 31));
  }
}

Now systemNow() {
  timespec m, w;
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &w);
  return Now{m.tv_sec * kSec + m.tv_nsec, w.tv_sec * kSec + w.tv_nsec};
}

}  // namespace gatehouse::wg
