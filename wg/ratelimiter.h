// Per-source token bucket for handshake messages under load (reference K8): 20 packets/s with a
// burst of 5, keyed by the full source address (wireguard-go). Entries idle for > 1 s are
// garbage-collected on access so memory stays bounded; the table is capped (kMaxEntries) and a
// full table refuses new sources rather than growing. Sans-I/O: `now` is an argument.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "wg/net/addr.h"

namespace gatehouse::wg {

class RateLimiter {
 public:
  static constexpr int64_t kPacketsPerSecond = 20;
  static constexpr int64_t kBurst = 5;
  static constexpr size_t kMaxEntries = 1 << 16;

  bool allow(const IpAddr& source, int64_t now_ns);
  size_t size() const { return table_.size(); }

 private:
  struct Entry {
    int64_t last_ns;
    int64_t tokens;  // in units of ns-per-packet
  };
  struct Hash {
    size_t operator()(const IpAddr& a) const;
  };
  void gc(int64_t now_ns);
  std::unordered_map<IpAddr, Entry, Hash> table_;
  int64_t last_gc_ns_ = 0;
};

}  // namespace gatehouse::wg
