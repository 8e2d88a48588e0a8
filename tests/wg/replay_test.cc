// Port of the kernel selftest drivers/net/wireguard/selftest/counter.c (reference R3): the 34
// fixed cases, then the bulk sweeps around the window edge.
#include "wg/replay.h"

#include <gtest/gtest.h>

namespace gatehouse::wg {
namespace {

constexpr uint64_t kWindow = ReplayFilter::kWindowSize;
constexpr uint64_t kTLim = kWindow + 1;

static_assert(kWindow == 8128, "R1");
static_assert(kRejectAfterMessages == ~uint64_t{0} - 8192, "R2: 2^64 - 2^13 - 1");

class ReplayTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  void T(uint64_t n, bool expected) {
    ++number_;
    ASSERT_EQ(filter_.validate(n, GetParam()), expected) << "case " << number_ << " counter " << n;
  }
  void restart() {
    filter_.reset();
    number_ = 0;
  }
  ReplayFilter filter_;
  int number_ = 0;
};

TEST_P(ReplayTest, KernelFixedCases) {
  const uint64_t reject = GetParam();
  restart();
  T(0, true);                        /*  1 */
  T(1, true);                        /*  2 */
  T(1, false);                       /*  3 */
  T(9, true);                        /*  4 */
  T(8, true);                        /*  5 */
  T(7, true);                        /*  6 */
  T(7, false);                       /*  7 */
  T(kTLim, true);                    /*  8 */
  T(kTLim - 1, true);                /*  9 */
  T(kTLim - 1, false);               /* 10 */
  T(kTLim - 2, true);                /* 11 */
  T(2, true);                        /* 12 */
  T(2, false);                       /* 13 */
  T(kTLim + 16, true);               /* 14 */
  T(3, false);                       /* 15 */
  T(kTLim + 16, false);              /* 16 */
  T(kTLim * 4, true);                /* 17 */
  T(kTLim * 4 - (kTLim - 1), true);  /* 18 */
  T(10, false);                      /* 19 */
  T(kTLim * 4 - kTLim, false);       /* 20 */
  T(kTLim * 4 - (kTLim + 1), false); /* 21 */
  T(kTLim * 4 - (kTLim - 2), true);  /* 22 */
  T(kTLim * 4 + 1 - kTLim, false);   /* 23 */
  T(0, false);                       /* 24 */
  T(reject, false);                  /* 25 */
  T(reject - 1, true);               /* 26 */
  T(reject, false);                  /* 27 */
  T(reject - 1, false);              /* 28 */
  T(reject - 2, true);               /* 29 */
  T(reject + 1, false);              /* 30 */
  T(reject + 2, false);              /* 31 */
  T(reject - 2, false);              /* 32 */
  T(reject - 3, true);               /* 33 */
  T(0, false);                       /* 34 */
  EXPECT_EQ(number_, 34);
}

TEST_P(ReplayTest, BulkAscendingThenZero) {
  restart();
  for (uint64_t i = 1; i <= kWindow; ++i) T(i, true);
  T(0, true);
  T(0, false);
}

TEST_P(ReplayTest, BulkAscendingFromTwoThenOneFitsZeroFallsOut) {
  restart();
  for (uint64_t i = 2; i <= kWindow + 1; ++i) T(i, true);
  T(1, true);
  T(0, false);
}

TEST_P(ReplayTest, BulkDescendingWholeWindow) {
  restart();
  for (uint64_t i = kWindow + 1; i > 0; --i) T(i, true);
}

TEST_P(ReplayTest, BulkDescendingPastWindow) {
  restart();
  for (uint64_t i = kWindow + 2; i > 1; --i) T(i, true);
  T(0, false);
}

TEST_P(ReplayTest, BulkDescendingThenAdvance) {
  restart();
  for (uint64_t i = kWindow; i > 0; --i) T(i, true);
  T(kWindow + 1, true);
  T(0, false);
}

TEST_P(ReplayTest, BulkDescendingThenZeroThenAdvance) {
  restart();
  for (uint64_t i = kWindow; i > 0; --i) T(i, true);
  T(0, true);
  T(kWindow + 1, true);
}

// The library default, and the limit wireguard-go's port of the test passes (2^64 - 2^4 - 1).
INSTANTIATE_TEST_SUITE_P(Limits, ReplayTest,
                         ::testing::Values(kRejectAfterMessages,
                                           ~uint64_t{0} - (uint64_t{1} << 4)));

TEST(ReplayFilterTest, DefaultConstructedAcceptsZeroOnce) {
  ReplayFilter f;
  EXPECT_TRUE(f.validate(0));
  EXPECT_FALSE(f.validate(0));
}

TEST(ReplayFilterTest, ResetForgetsHistory) {
  ReplayFilter f;
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(f.validate(i * 37));
  f.reset();
  for (uint64_t i = 0; i < 100; ++i) EXPECT_TRUE(f.validate(i * 37));
}

TEST(ReplayFilterTest, DefaultLimitIsRejectAfterMessages) {
  ReplayFilter f;
  EXPECT_FALSE(f.validate(kRejectAfterMessages));
  EXPECT_TRUE(f.validate(kRejectAfterMessages - 1));
}

// A large jump clears the whole ring: nothing from before survives as a false "seen".
TEST(ReplayFilterTest, JumpClearsStaleBits) {
  ReplayFilter f;
  for (uint64_t i = 0; i < 2 * kWindow; ++i) ASSERT_TRUE(f.validate(i));
  uint64_t far = 100 * kWindow;
  ASSERT_TRUE(f.validate(far));
  for (uint64_t i = far - kWindow; i < far; ++i) ASSERT_TRUE(f.validate(i)) << i;
  EXPECT_FALSE(f.validate(far - kWindow - 1));
}

}  // namespace
}  // namespace gatehouse::wg
