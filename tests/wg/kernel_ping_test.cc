// Kernel ICMP echo (wg/transport/kernel_ping.h): the message builder and reply parser as bytes,
// then one real echo on loopback and one unanswered echo in a namespace of the test's own (skipped
// where this process may open no ICMP socket or create no namespace).
#include "wg/transport/kernel_ping.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

namespace gatehouse::wg::icmp {
namespace {

uint16_t onesComplementSum(const std::vector<uint8_t>& m) {
  uint32_t acc = 0;
  for (size_t i = 0; i + 1 < m.size(); i += 2) acc += static_cast<uint32_t>(m[i] << 8 | m[i + 1]);
  if (m.size() % 2 != 0) acc += static_cast<uint32_t>(m.back() << 8);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

TEST(KernelPing, Ipv4EchoRequestHasAValidChecksum) {
  const uint8_t payload[] = {1, 2, 3, 4, 5};
  auto m = echoMessage(false, 0x1234, 0x0102, payload);
  ASSERT_EQ(m.size(), 8u + sizeof payload);
  EXPECT_EQ(m[0], 8);  // echo request
  EXPECT_EQ(m[1], 0);
  EXPECT_EQ(m[4], 0x12);
  EXPECT_EQ(m[5], 0x34);
  EXPECT_EQ(m[6], 0x01);
  EXPECT_EQ(m[7], 0x02);
  EXPECT_EQ(m[8], 1);
  EXPECT_EQ(onesComplementSum(m), 0xffff) << "a message with its checksum sums to all ones";
}

TEST(KernelPing, Ipv6EchoRequestLeavesTheChecksumToTheKernel) {
  auto m = echoMessage(true, 7, 9, {});
  ASSERT_EQ(m.size(), 8u);
  EXPECT_EQ(m[0], 128);
  EXPECT_EQ(m[2], 0);
  EXPECT_EQ(m[3], 0);
  EXPECT_EQ(m[5], 7);
  EXPECT_EQ(m[7], 9);
}

TEST(KernelPing, ParsesRepliesOnly) {
  std::vector<uint8_t> reply4 = {0, 0, 0xaa, 0xbb, 0x12, 0x34, 0x00, 0x05};
  auto ids = parseEchoMessage(false, reply4);
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->id, 0x1234);
  EXPECT_EQ(ids->seq, 5);
  EXPECT_FALSE(parseEchoMessage(true, reply4)) << "type 0 is not an ICMPv6 echo reply";
  std::vector<uint8_t> reply6 = {129, 0, 0, 0, 0, 1, 0, 2};
  ASSERT_TRUE(parseEchoMessage(true, reply6));
  EXPECT_EQ(parseEchoMessage(true, reply6)->seq, 2);
  std::vector<uint8_t> request = {8, 0, 0, 0, 0, 1, 0, 2};
  EXPECT_FALSE(parseEchoMessage(false, request));
  std::vector<uint8_t> unreachable = {3, 1, 0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(parseEchoMessage(false, unreachable));
  std::vector<uint8_t> bad_code = {0, 1, 0, 0, 0, 1, 0, 2};
  EXPECT_FALSE(parseEchoMessage(false, bad_code));
  EXPECT_FALSE(parseEchoMessage(false, std::vector<uint8_t>(reply4.begin(), reply4.end() - 1)));
}

TEST(KernelPing, LoopbackEcho) {
  auto rtt = kernelPing(*IpAddr::parse("127.0.0.1"), 1, 2000);
  if (!rtt && (rtt.status().code() == EPERM || rtt.status().code() == EACCES)) {
    GTEST_SKIP() << rtt.status().message();
  }
  ASSERT_TRUE(rtt) << rtt.status().message();
  EXPECT_GT(rtt.value(), 0);
  EXPECT_LT(rtt.value(), 2'000'000'000);
}

TEST(KernelPing, NoReplyTimesOut) {
  // In a network namespace of this test's own (unshare is per thread), whose loopback ignores
  // echo requests: the request is sent, no reply comes, and nothing leaves the namespace.
  std::string skip;
  std::optional<Result<int64_t>> rtt;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      skip = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
      return;
    }
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = s >= 0 && ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
              (ifr.ifr_flags |= IFF_UP, ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
    if (s >= 0) ::close(s);
    int fd = ::open("/proc/sys/net/ipv4/icmp_echo_ignore_all", O_WRONLY | O_CLOEXEC);
    bool ignore = fd >= 0 && ::write(fd, "1", 1) == 1;
    if (fd >= 0) ::close(fd);
    if (!up || !ignore) {
      skip = std::string("cannot set up the namespace's loopback: ") + std::strerror(errno);
      return;
    }
    rtt = kernelPing(*IpAddr::parse("127.0.0.1"), 1, 200, "lo");
  });
  t.join();
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(rtt.has_value());
  if (!*rtt && (rtt->status().code() == EPERM || rtt->status().code() == EACCES)) {
    GTEST_SKIP() << rtt->status().message();
  }
  ASSERT_FALSE(*rtt) << "a reply came in " << rtt->value() << " ns";
  EXPECT_EQ(rtt->status().code(), ETIMEDOUT) << rtt->status().message();
}

}  // namespace
}  // namespace gatehouse::wg::icmp
