// Sliding-window replay filter for transport counters (reference §7, RFC 6479 style).
//
// 128 blocks of 64 bits, window (128 - 1) * 64 = 8128 counters, like wireguard-go's
// replay/replay.go and the kernel's counter.c. Not thread-safe; one per receiving keypair.
#pragma once

#include <cstdint>

namespace gatehouse::wg {

// wireguard-go: 2^64 - 2^13 - 1 (reference R2).
inline constexpr uint64_t kRejectAfterMessages = ~uint64_t{0} - (uint64_t{1} << 13);

class ReplayFilter {
 public:
  static constexpr unsigned kBlocks = 128;
  static constexpr unsigned kWindowSize = (kBlocks - 1) * 64;

  void reset();
  // True if `counter` is fresh (and records it). False for replays, counters too old for the
  // window, and counters >= limit. Call only after the packet authenticated (reference D5).
  bool validate(uint64_t counter, uint64_t limit = kRejectAfterMessages);

 private:
  uint64_t last_ = 0;
  uint64_t blocks_[kBlocks] = {};
};

}  // namespace gatehouse::wg
