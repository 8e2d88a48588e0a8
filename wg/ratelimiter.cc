// Token bucket per source address, as wireguard-go ratelimiter/ratelimiter.go and the kernel's
// ratelimiter.c: tokens are nanoseconds of credit, one packet costs 1 s / 20, the bucket holds 5.
// The periodic GC goroutine/work of those implementations becomes a sweep on access, at most once
// per second, because this core has no timers of its own.
#include "wg/ratelimiter.h"

#include <cstring>

namespace gatehouse::wg {
namespace {
constexpr int64_t kPacketCost = 1'000'000'000 / RateLimiter::kPacketsPerSecond;
constexpr int64_t kMaxTokens = kPacketCost * RateLimiter::kBurst;
constexpr int64_t kGcIntervalNs = 1'000'000'000;
}  // namespace

size_t RateLimiter::Hash::operator()(const IpAddr& a) const {
  // Only packets with a valid mac2 (a cookie bound to the source address) reach the limiter, so a
  // sender cannot choose colliding keys freely; a fast mix is enough.
  uint64_t lo, hi;
  std::memcpy(&lo, a.bytes.data(), 8);
  std::memcpy(&hi, a.bytes.data() + 8, 8);
  uint64_t x =
      lo * 0x9e3779b97f4a7c15ULL ^ (hi + static_cast<uint64_t>(a.family)) * 0xc2b2ae3d27d4eb4fULL;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 29;
  return static_cast<size_t>(x);
}

void RateLimiter::gc(int64_t now_ns) {
  for (auto it = table_.begin(); it != table_.end();) {
    if (now_ns - it->second.last_ns > kGcIntervalNs) {
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
  last_gc_ns_ = now_ns;
}

bool RateLimiter::allow(const IpAddr& source, int64_t now_ns) {
  if (now_ns - last_gc_ns_ > kGcIntervalNs) gc(now_ns);
  auto it = table_.find(source);
  if (it == table_.end()) {
    if (table_.size() >= kMaxEntries) return false;
    table_.emplace(source, Entry{now_ns, kMaxTokens - kPacketCost});
    return true;
  }
  Entry& e = it->second;
  // A clock that steps backwards adds no credit.
  if (now_ns > e.last_ns) {
    e.tokens += now_ns - e.last_ns;
    e.last_ns = now_ns;
  }
  if (e.tokens > kMaxTokens) e.tokens = kMaxTokens;
  // >= as in the kernel: wireguard-go's > only passes its own test because real time elapses.
  if (e.tokens >= kPacketCost) {
    e.tokens -= kPacketCost;
    return true;
  }
  return false;
}

}  // namespace gatehouse::wg
