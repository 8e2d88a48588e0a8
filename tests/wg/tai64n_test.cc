// TAI64N stamps (reference N1-N3).
#include "wg/tai64n.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/wg/test_util.h"

namespace gatehouse::wg {
namespace {

using testing::toHex;

constexpr int64_t kSecond = 1'000'000'000;

TEST(Tai64nTest, Epoch) { EXPECT_EQ(toHex(tai64nFromUnixNanos(0)), "400000000000000a00000000"); }

TEST(Tai64nTest, KnownInstantIsBigEndianAndWhitened) {
  // 1700000000.123456789 s; nanoseconds rounded down to a multiple of 2^24 (N2).
  EXPECT_EQ(toHex(tai64nFromUnixNanos(1'700'000'000 * kSecond + 123'456'789)),
            "400000006553f10a07000000");
}

TEST(Tai64nTest, BeforeEpochUsesFloorDivision) {
  EXPECT_EQ(toHex(tai64nFromUnixNanos(-1)), "40000000000000093b000000");
}

TEST(Tai64nTest, WhiteningHidesSubIntervalTiming) {
  const int64_t base = 1'650'000'000 * kSecond;  // nanoseconds field 0: start of a 2^24 bucket
  Tai64n a = tai64nFromUnixNanos(base);
  Tai64n b = tai64nFromUnixNanos(base + (1 << 24) - 1);
  Tai64n c = tai64nFromUnixNanos(base + (1 << 24));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(tai64nAfter(b, a));
  EXPECT_TRUE(tai64nAfter(c, b));
}

TEST(Tai64nTest, AfterIsStrictAndOrdered) {
  Tai64n earlier = tai64nFromUnixNanos(1'000 * kSecond + 900'000'000);
  Tai64n later = tai64nFromUnixNanos(1'001 * kSecond);
  EXPECT_TRUE(tai64nAfter(later, earlier));
  EXPECT_FALSE(tai64nAfter(earlier, later));
  EXPECT_FALSE(tai64nAfter(later, later));  // N3: equal is a replay
  // Seconds dominate nanoseconds.
  EXPECT_TRUE(
      tai64nAfter(tai64nFromUnixNanos(2 * kSecond), tai64nFromUnixNanos(kSecond + 999'999'999)));
}

TEST(Tai64nTest, MonotonicOverAnHour) {
  Tai64n prev = tai64nFromUnixNanos(1'700'000'000 * kSecond);
  for (int64_t t = 1'700'000'000 * kSecond + 20'000'000; t < 1'700'003'600 * kSecond;
       t += 20'000'000) {
    Tai64n cur = tai64nFromUnixNanos(t);
    ASSERT_TRUE(tai64nAfter(cur, prev) || cur == prev);
    prev = cur;
  }
}

}  // namespace
}  // namespace gatehouse::wg
