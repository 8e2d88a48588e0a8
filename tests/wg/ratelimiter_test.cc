// Token bucket timings from wireguard-go ratelimiter/ratelimiter_test.go, with a fake clock instead
// of sleeping, plus GC and the table cap.
#include "wg/ratelimiter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gatehouse::wg {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kPacketCost = kSecond / RateLimiter::kPacketsPerSecond;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

struct Step {
  bool allowed;
  int64_t wait_ns;
  const char* text;
};

TEST(RateLimiterTest, WireguardGoTimings) {
  std::vector<Step> steps;
  for (int i = 0; i < RateLimiter::kBurst; ++i) steps.push_back({true, 0, "initial burst"});
  steps.push_back({false, 0, "after burst"});
  steps.push_back({true, kPacketCost, "filling tokens for single packet"});
  steps.push_back({false, 0, "not having refilled enough"});
  steps.push_back({true, 2 * kPacketCost, "filling tokens for two packet burst"});
  steps.push_back({true, 0, "second packet in 2 packet burst"});
  steps.push_back({false, 0, "packet following 2 packet burst"});

  const char* kIps[] = {
      "127.0.0.1",
      "192.168.1.1",
      "172.167.2.3",
      "97.231.252.215",
      "248.97.91.167",
      "188.208.233.47",
      "104.2.183.179",
      "72.129.46.120",
      "2001:0db8:0a0b:12f0:0000:0000:0000:0001",
      "f5c2:818f:c052:655a:9860:b136:6894:25f0",
      "b2d7:15ab:48a7:b07c:a541:f144:a9fe:54fc",
      "a47b:786e:1671:a22b:d6f9:4ab0:abc7:c918",
      "ea1e:d155:7f7a:98fb:2bf5:9483:80f6:5445",
      "3f0e:54a2:f5b4:cd19:a21d:58e1:3746:84c4",
  };

  RateLimiter limiter;
  int64_t now = 1'234 * kSecond;
  for (size_t i = 0; i < steps.size(); ++i) {
    now += steps[i].wait_ns;
    for (const char* s : kIps) {
      EXPECT_EQ(limiter.allow(ip(s), now), steps[i].allowed)
          << s << " step " << i << " (" << steps[i].text << ")";
    }
  }
  EXPECT_EQ(limiter.size(), std::size(kIps));
}

TEST(RateLimiterTest, SustainedRateIsTwentyPerSecond) {
  RateLimiter limiter;
  IpAddr a = ip("10.0.0.1");
  int64_t now = 5 * kSecond;
  int allowed = 0;
  // 10 s of 1000 packets/s: the burst plus 20/s.
  for (int i = 0; i < 10'000; ++i, now += kSecond / 1000) allowed += limiter.allow(a, now);
  EXPECT_GE(allowed, 20 * 10);
  EXPECT_LE(allowed, 20 * 10 + RateLimiter::kBurst + 1);
}

TEST(RateLimiterTest, KeyedByFullAddress) {
  RateLimiter limiter;
  int64_t now = kSecond;
  for (int i = 0; i < RateLimiter::kBurst; ++i) ASSERT_TRUE(limiter.allow(ip("fd00::1"), now));
  EXPECT_FALSE(limiter.allow(ip("fd00::1"), now));
  // Same /64, different host: its own bucket (wireguard-go; the kernel would share a /64).
  EXPECT_TRUE(limiter.allow(ip("fd00::2"), now));
  // An IPv4 address and an IPv6 address with the same leading bytes are different keys.
  for (int i = 0; i < RateLimiter::kBurst; ++i) ASSERT_TRUE(limiter.allow(ip("1.2.3.4"), now));
  EXPECT_FALSE(limiter.allow(ip("1.2.3.4"), now));
  EXPECT_TRUE(limiter.allow(ip("102:304::"), now));
}

TEST(RateLimiterTest, BurstRefillsAndCaps) {
  RateLimiter limiter;
  IpAddr a = ip("10.0.0.2");
  int64_t now = kSecond;
  for (int i = 0; i < RateLimiter::kBurst; ++i) ASSERT_TRUE(limiter.allow(a, now));
  ASSERT_FALSE(limiter.allow(a, now));
  now += 100 * kSecond / 200;  // well over a full bucket, but under the GC age
  for (int i = 0; i < RateLimiter::kBurst; ++i) EXPECT_TRUE(limiter.allow(a, now)) << i;
  EXPECT_FALSE(limiter.allow(a, now));
}

TEST(RateLimiterTest, IdleEntriesAreCollected) {
  RateLimiter limiter;
  int64_t now = 10 * kSecond;
  for (int i = 0; i < 100; ++i) {
    IpAddr a = ip(("10.1.0." + std::to_string(i)).c_str());
    ASSERT_TRUE(limiter.allow(a, now));
  }
  EXPECT_EQ(limiter.size(), 100u);
  now += kSecond / 2;
  limiter.allow(ip("10.2.0.1"), now);
  EXPECT_EQ(limiter.size(), 101u);  // nothing idle > 1 s yet
  now += kSecond + 1;
  limiter.allow(ip("10.2.0.1"), now);
  EXPECT_EQ(limiter.size(), 1u);  // the 100 idle ones are gone; 10.2.0.1 was just used
}

TEST(RateLimiterTest, FullTableRefusesNewSources) {
  RateLimiter limiter;
  int64_t now = 10 * kSecond;
  uint8_t b[4] = {10, 0, 0, 0};
  for (size_t i = 0; i < RateLimiter::kMaxEntries; ++i) {
    b[1] = static_cast<uint8_t>(i >> 16);
    b[2] = static_cast<uint8_t>(i >> 8);
    b[3] = static_cast<uint8_t>(i);
    ASSERT_TRUE(limiter.allow(IpAddr::v4(b), now));
  }
  EXPECT_EQ(limiter.size(), RateLimiter::kMaxEntries);
  EXPECT_FALSE(limiter.allow(ip("192.0.2.1"), now));
  EXPECT_TRUE(limiter.allow(ip("10.0.0.0"), now));  // known sources keep their bucket
  EXPECT_EQ(limiter.size(), RateLimiter::kMaxEntries);
  // Once the old entries age out, new sources get in again.
  now += 2 * kSecond;
  EXPECT_TRUE(limiter.allow(ip("192.0.2.1"), now));
  EXPECT_EQ(limiter.size(), 1u);
}

}  // namespace
}  // namespace gatehouse::wg
