#include "wg/transport/kernel_ping.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "wg/net/icmp_echo.h"

namespace gatehouse::wg::icmp {
namespace {

int64_t monoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Closes the socket on every return path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::vector<uint8_t> echoMessage(bool v6, uint16_t id, uint16_t seq,
                                 std::span<const uint8_t> payload) {
  // echoRequest builds the whole IP packet; the ICMPv4 checksum covers only the ICMP part, so
  // any source address will do, and the ICMPv6 one is the kernel's to fill.
  IpAddr any;
  any.family = v6 ? IpAddr::Family::kV6 : IpAddr::Family::kV4;
  std::vector<uint8_t> pkt = echoRequest(any, any, id, seq, payload);
  std::vector<uint8_t> msg(pkt.begin() + (v6 ? 40 : 20), pkt.end());
  if (v6) msg[2] = msg[3] = 0;
  return msg;
}

std::optional<EchoIds> parseEchoMessage(bool v6, std::span<const uint8_t> m) {
  if (m.size() < 8 || m[0] != (v6 ? 129 : 0) || m[1] != 0) return std::nullopt;
  return EchoIds{static_cast<uint16_t>(m[4] << 8 | m[5]), static_cast<uint16_t>(m[6] << 8 | m[7])};
}

Result<int64_t> kernelPing(const IpAddr& dst, uint16_t seq, int64_t timeout_ms,
                           const std::string& ifname) {
  if (dst.family == IpAddr::Family::kNone) return Status(EINVAL, "ping: no address");
  const bool v6 = dst.isV6();
  const int domain = v6 ? AF_INET6 : AF_INET;
  const int proto = v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP};
  Fd s;
  bool raw = false;
  s.fd = ::socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, proto);
  if (s.fd < 0) {
    s.fd = ::socket(domain, SOCK_RAW | SOCK_CLOEXEC, proto);
    raw = true;
  }
  if (s.fd < 0) {
    int e = errno;
    return Status(e, std::string("ping: cannot open an ICMP socket: ") + std::strerror(e) +
                         " (needs root, or a group in net.ipv4.ping_group_range)");
  }
  if (!ifname.empty() && ::setsockopt(s.fd, SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(),
                                      static_cast<socklen_t>(ifname.size())) != 0) {
    return Status::fromErrno(errno, "ping: bind the ICMP socket to " + ifname);
  }
  // Raw sockets see every echo reply of the host: a per-call id tells ours apart. Datagram
  // sockets get their id from the kernel and only their own replies.
  static std::atomic<uint16_t> next_id{static_cast<uint16_t>(::getpid() * 7919u)};
  const uint16_t id = next_id.fetch_add(1);
  uint8_t payload[16];
  int64_t sent = monoNs();
  std::memcpy(payload, &sent, sizeof sent);
  std::memset(payload + 8, 0x5a, 8);
  std::vector<uint8_t> msg = echoMessage(v6, id, seq, payload);

  Endpoint to{dst, 0};
  sockaddr_storage ss;
  socklen_t len = to.toSockaddr(&ss);
  if (::sendto(s.fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    return Status::fromErrno(errno, "ping " + dst.toString());
  }
  const int64_t deadline = sent + timeout_ms * 1'000'000;
  uint8_t buf[2048];
  for (;;) {
    int64_t left_ms = (deadline - monoNs()) / 1'000'000;
    if (left_ms <= 0) break;
    pollfd p{s.fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left_ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    sockaddr_storage from;
    socklen_t flen = sizeof from;
    ssize_t n = ::recvfrom(s.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::fromErrno(errno, "ping " + dst.toString());  // e.g. host unreachable
    }
    auto src = Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&from), flen);
    if (!src || src->addr != dst) continue;
    std::span<const uint8_t> m(buf, static_cast<size_t>(n));
    if (raw && !v6) {
      // Raw IPv4 sockets deliver the IP header too.
      if (m.empty()) continue;
      size_t ihl = (m[0] & 0x0f) * 4u;
      if (m.size() < ihl) continue;
      m = m.subspan(ihl);
    }
    auto ids = parseEchoMessage(v6, m);
    if (!ids || ids->seq != seq || (raw && ids->id != id)) continue;
    return monoNs() - sent;
  }
  return Status(ETIMEDOUT, "ping " + dst.toString() + ": no reply within " +
                               std::to_string(timeout_ms) + " ms");
}

}  // namespace gatehouse::wg::icmp
