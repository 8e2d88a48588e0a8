// RFC 6479 sliding window, as in wireguard-go replay/replay.go: a ring of 64-bit blocks. Moving
// the window forward clears only the blocks it skips over, so the cost per packet is O(1) except
// after a jump, where it is bounded by kBlocks.
#include "wg/replay.h"

#include <algorithm>

namespace gatehouse::wg {
namespace {
constexpr unsigned kBlockBitsLog = 6;  // 64 bits per block
constexpr uint64_t kBlockBits = uint64_t{1} << kBlockBitsLog;
}  // namespace

void ReplayFilter::reset() {
  last_ = 0;
  std::fill_n(blocks_, kBlocks, uint64_t{0});
}

bool ReplayFilter::validate(uint64_t counter, uint64_t limit) {
  if (counter >= limit) return false;
  uint64_t block = counter >> kBlockBitsLog;
  if (counter > last_) {
    uint64_t current = last_ >> kBlockBitsLog;
    uint64_t diff = std::min<uint64_t>(block - current, kBlocks);
    for (uint64_t i = 1; i <= diff; ++i) blocks_[(current + i) % kBlocks] = 0;
    last_ = counter;
  } else if (last_ - counter > kWindowSize) {
    return false;  // behind the window
  }
  uint64_t& word = blocks_[block % kBlocks];
  uint64_t bit = uint64_t{1} << (counter & (kBlockBits - 1));
  if (word & bit) return false;
  word |= bit;
  return true;
}

}  // namespace gatehouse::wg
