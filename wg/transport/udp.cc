#include "wg/transport/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace gatehouse::wg {
namespace {

constexpr size_t kCtrlSize = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));
// Attempts to find a port free for both families when the caller asked for any port.
constexpr int kAnyPortAttempts = 100;

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void setBuffers(int fd, int bytes) {
  // SO_*BUFFORCE (root) ignores net.core.[rw]mem_max; fall back to the capped variant.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
}

}  // namespace

void FakePacketSink::send(std::span<const OutDatagram> batch) {
  ++calls;
  for (const auto& d : batch) sent.push_back({d.to, d.source, {d.data.begin(), d.data.end()}});
}

struct RecvBatch::Slots {
  std::array<mmsghdr, kMaxDatagrams> msgs{};
  std::array<iovec, kMaxDatagrams> iov{};
  std::array<sockaddr_storage, kMaxDatagrams> names{};
  alignas(cmsghdr) std::array<std::array<uint8_t, kCtrlSize>, kMaxDatagrams> ctrl{};
  std::vector<uint8_t> data = std::vector<uint8_t>(kMaxDatagrams * kSlotSize);
};

RecvBatch::RecvBatch() : slots_(std::make_unique<Slots>()) {}
RecvBatch::~RecvBatch() = default;

UdpTransport::UdpTransport() : UdpTransport(Options{}) {}
UdpTransport::UdpTransport(Options options) : options_(options) {}
UdpTransport::~UdpTransport() { close(); }

void UdpTransport::close() {
  closeFd(fd4_);
  closeFd(fd6_);
  port_ = 0;
}

int UdpTransport::openSocket(int family, uint16_t port, int* fd_out, uint16_t* bound) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return errno;
  int one = 1;
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = in6addr_any;
    len = sizeof *in6;
  } else {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof *in;
  }
  setBuffers(fd, options_.socket_buffer_bytes);
  if (options_.fwmark != 0) {
    setsockopt(fd, SOL_SOCKET, SO_MARK, &options_.fwmark, sizeof options_.fwmark);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return err;
  }
  len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    int err = errno;
    ::close(fd);
    return err;
  }
  auto ep = Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  *bound = ep ? ep->port : port;
  *fd_out = fd;
  return 0;
}

int UdpTransport::openPair(uint16_t port, int* fd4, int* fd6, uint16_t* bound) {
  for (int attempt = 0; attempt < (port == 0 ? kAnyPortAttempts : 1); ++attempt) {
    *fd4 = *fd6 = -1;
    uint16_t p = port;
    int err4 = openSocket(AF_INET, port, fd4, &p);
    if (err4 != 0 && err4 != EAFNOSUPPORT) return err4;
    int err6 = openSocket(AF_INET6, err4 == 0 ? p : port, fd6, &p);
    if (err6 == 0 || (err4 == 0 && (err6 == EAFNOSUPPORT || err6 == EADDRNOTAVAIL))) {
      *bound = p;
      return 0;
    }
    closeFd(*fd4);
    // The IPv4 port chosen by the kernel is taken for IPv6: try another one.
    if (err4 == 0 && port == 0 && err6 == EADDRINUSE) continue;
    return err4 != 0 ? err4 : err6;
  }
  return EADDRINUSE;
}

int UdpTransport::open(uint16_t port) {
  if (isOpen() && port != 0 && port == port_) return 0;
  int fd4 = -1, fd6 = -1;
  uint16_t bound = 0;
  int err = openPair(port, &fd4, &fd6, &bound);
  if (err != 0) return err;
  close();
  fd4_ = fd4;
  fd6_ = fd6;
  port_ = bound;
  return 0;
}

int UdpTransport::setFwmark(uint32_t mark) {
  options_.fwmark = mark;
  for (int fd : {fd4_, fd6_}) {
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) return errno;
  }
  return 0;
}

int UdpTransport::receive(int fd, RecvBatch& batch) {
  auto& s = *batch.slots_;
  batch.count_ = 0;
  for (size_t i = 0; i < RecvBatch::kMaxDatagrams; ++i) {
    s.iov[i] = {s.data.data() + i * RecvBatch::kSlotSize, RecvBatch::kSlotSize};
    msghdr& h = s.msgs[i].msg_hdr;
    h.msg_name = &s.names[i];
    h.msg_namelen = sizeof s.names[i];
    h.msg_iov = &s.iov[i];
    h.msg_iovlen = 1;
    h.msg_control = s.ctrl[i].data();
    h.msg_controllen = kCtrlSize;
    h.msg_flags = 0;
    s.msgs[i].msg_len = 0;
  }
  int n;
  do {
    n = recvmmsg(fd, s.msgs.data(), RecvBatch::kMaxDatagrams, MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    ++counters_.recv_errors;
    return -errno;
  }
  for (int i = 0; i < n; ++i) {
    msghdr& h = s.msgs[i].msg_hdr;
    if (h.msg_flags & MSG_TRUNC) {
      ++counters_.recv_truncated;
      continue;
    }
    auto from = Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(h.msg_name), h.msg_namelen);
    if (!from) continue;
    LocalAddr local;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        local.addr = IpAddr::v4(reinterpret_cast<const uint8_t*>(&info.ipi_spec_dst));
        local.ifindex = static_cast<uint32_t>(info.ipi_ifindex);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        local.addr = IpAddr::v6(info.ipi6_addr.s6_addr);
        local.ifindex = info.ipi6_ifindex;
      }
    }
    batch.in_[batch.count_++] = {
        *from, local, {s.data.data() + i * RecvBatch::kSlotSize, s.msgs[i].msg_len}};
  }
  // A batch of only truncated datagrams still made progress; report it as non-empty.
  return n;
}

void UdpTransport::send(std::span<const OutDatagram> batch) {
  // Split by family, keeping order within each family.
  size_t start = 0;
  while (start < batch.size()) {
    bool v6 = batch[start].to.addr.isV6();
    size_t end = start + 1;
    while (end < batch.size() && batch[end].to.addr.isV6() == v6) ++end;
    int fd = v6 ? fd6_ : fd4_;
    if (fd < 0) {
      counters_.send_no_socket += end - start;
    } else {
      sendOn(fd, v6, batch.subspan(start, end - start));
    }
    start = end;
  }
}

void UdpTransport::sendOn(int fd, bool v6, std::span<const OutDatagram> batch) {
  constexpr size_t kChunk = 64;
  std::array<mmsghdr, kChunk> msgs;
  std::array<iovec, kChunk> iov;
  std::array<sockaddr_storage, kChunk> names;
  alignas(cmsghdr) std::array<std::array<uint8_t, kCtrlSize>, kChunk> ctrl;
  for (size_t base = 0; base < batch.size(); base += kChunk) {
    size_t n = std::min(kChunk, batch.size() - base);
    for (size_t i = 0; i < n; ++i) {
      const OutDatagram& d = batch[base + i];
      msghdr& h = msgs[i].msg_hdr;
      std::memset(&h, 0, sizeof h);
      iov[i] = {const_cast<uint8_t*>(d.data.data()), d.data.size()};
      h.msg_name = &names[i];
      h.msg_namelen = d.to.toSockaddr(&names[i]);
      h.msg_iov = &iov[i];
      h.msg_iovlen = 1;
      if (d.source.valid() && d.source.addr.isV6() == v6) {
        std::memset(ctrl[i].data(), 0, kCtrlSize);
        h.msg_control = ctrl[i].data();
        cmsghdr* c;
        if (v6) {
          h.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
          c = CMSG_FIRSTHDR(&h);
          c->cmsg_level = IPPROTO_IPV6;
          c->cmsg_type = IPV6_PKTINFO;
          c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
          in6_pktinfo info{};
          std::memcpy(info.ipi6_addr.s6_addr, d.source.addr.bytes.data(), 16);
          info.ipi6_ifindex = d.source.ifindex;
          std::memcpy(CMSG_DATA(c), &info, sizeof info);
        } else {
          h.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
          c = CMSG_FIRSTHDR(&h);
          c->cmsg_level = IPPROTO_IP;
          c->cmsg_type = IP_PKTINFO;
          c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
          in_pktinfo info{};
          // Source only; the route picks the interface so a moved address still works.
          std::memcpy(&info.ipi_spec_dst, d.source.addr.bytes.data(), 4);
          std::memcpy(CMSG_DATA(c), &info, sizeof info);
        }
      }
    }
    size_t i = 0;
    while (i < n) {
      int r = sendmmsg(fd, &msgs[i], static_cast<unsigned>(n - i), MSG_DONTWAIT);
      if (r > 0) {
        i += static_cast<size_t>(r);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        counters_.send_errors += n - i;  // socket buffer full: UDP semantics, drop the rest
        break;
      }
      if (msgs[i].msg_hdr.msg_control != nullptr) {
        // The sticky source address is gone (EINVAL / EADDRNOTAVAIL): let routing choose.
        ++counters_.source_fallbacks;
        msgs[i].msg_hdr.msg_control = nullptr;
        msgs[i].msg_hdr.msg_controllen = 0;
        continue;
      }
      ++counters_.send_errors;
      ++i;
    }
  }
}

}  // namespace gatehouse::wg
