#include "wg/transport/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace gatehouse::wg {
namespace {

// Room for a packet-info cmsg of either family plus a UDP_SEGMENT / UDP_GRO cmsg.
constexpr size_t kCtrlSize =
    CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo)) + CMSG_SPACE(sizeof(int));
// Messages per sendmmsg, and UDP GSO limits (kernel UDP_MAX_SEGMENTS; an IPv4 datagram's
// payload limit, which is also safe for IPv6).
constexpr size_t kSendMsgs = 64;
constexpr size_t kMaxGsoSegments = 64;
constexpr size_t kMaxGsoBytes = 65535 - 20 - 8;
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

RecvBatch::RecvBatch() : slots_(std::make_unique<Slots>()) { in_.reserve(kMaxDatagrams); }
RecvBatch::~RecvBatch() = default;

UdpTransport::UdpTransport() : UdpTransport(Options{}) {}
struct UdpTransport::SendScratch {
  struct Msg {
    size_t first, count;
    uint16_t segment;  // UDP_SEGMENT size, 0 for a single datagram
    bool with_source;
  };
  std::array<mmsghdr, kSendMsgs> hdrs;
  std::array<Msg, kSendMsgs> meta;
  std::array<sockaddr_storage, kSendMsgs> names;
  alignas(cmsghdr) std::array<std::array<uint8_t, kCtrlSize>, kSendMsgs> ctrl;
  std::array<iovec, kSendMsgs * kMaxGsoSegments> iov;
};

UdpTransport::UdpTransport(Options options)
    : options_(options), scratch_(std::make_unique<SendScratch>()) {}
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
  // Best effort: without UDP_GRO the kernel hands over datagrams one by one, as before.
  if (options_.offload) setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
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
  // GSO is usable where the kernel knows the option (Linux ≥ 4.18).
  auto probe = [this](int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return options_.offload && fd >= 0 && getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
  };
  gso4_ = probe(fd4_);
  gso6_ = probe(fd6_);
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
  batch.in_.clear();
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
    int gro_size = 0;
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
      } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        std::memcpy(&gro_size, CMSG_DATA(c), std::min(sizeof gro_size, c->cmsg_len - CMSG_LEN(0)));
      }
    }
    const uint8_t* base = s.data.data() + i * RecvBatch::kSlotSize;
    size_t len = s.msgs[i].msg_len;
    if (gro_size <= 0 || static_cast<size_t>(gro_size) >= len) {
      batch.in_.push_back({*from, local, {base, len}});
      continue;
    }
    ++counters_.gro_receives;
    for (size_t off = 0; off < len; off += static_cast<size_t>(gro_size)) {
      size_t seg = std::min(static_cast<size_t>(gro_size), len - off);
      batch.in_.push_back({*from, local, {base + off, seg}});
    }
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

namespace {

// Fills the control buffer of one message: the sticky source (if any) and the GSO segment size
// (if any). Returns the control length.
size_t buildControl(uint8_t* ctrl, const OutDatagram& d, bool v6, bool with_source,
                    uint16_t segment) {
  std::memset(ctrl, 0, kCtrlSize);
  size_t used = 0;
  auto add = [&](int level, int type, const void* data, size_t len) {
    auto* c = reinterpret_cast<cmsghdr*>(ctrl + used);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    std::memcpy(CMSG_DATA(c), data, len);
    used += CMSG_SPACE(len);
  };
  if (with_source) {
    if (v6) {
      in6_pktinfo info{};
      std::memcpy(info.ipi6_addr.s6_addr, d.source.addr.bytes.data(), 16);
      info.ipi6_ifindex = d.source.ifindex;
      add(IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof info);
    } else {
      in_pktinfo info{};
      // Source only; the route picks the interface so a moved address still works.
      std::memcpy(&info.ipi_spec_dst, d.source.addr.bytes.data(), 4);
      add(IPPROTO_IP, IP_PKTINFO, &info, sizeof info);
    }
  }
  if (segment != 0) add(SOL_UDP, UDP_SEGMENT, &segment, sizeof segment);
  return used;
}

}  // namespace

void UdpTransport::sendOn(int fd, bool v6, std::span<const OutDatagram> batch) {
  SendScratch& s = *scratch_;
  bool& gso = fd == fd4_ ? gso4_ : gso6_;
  size_t pos = 0;
  while (pos < batch.size()) {
    // Pack up to kSendMsgs messages, each a GSO run when GSO is on.
    size_t nmsg = 0, niov = 0, p = pos;
    while (p < batch.size() && nmsg < kSendMsgs) {
      const OutDatagram& first = batch[p];
      size_t count = 1, bytes = first.data.size();
      if (gso) {
        while (p + count < batch.size() && count < kMaxGsoSegments) {
          const OutDatagram& d = batch[p + count];
          if (d.data.size() > first.data.size() || !(d.to == first.to) ||
              !(d.source == first.source) || bytes + d.data.size() > kMaxGsoBytes) {
            break;
          }
          bytes += d.data.size();
          ++count;
          if (d.data.size() < first.data.size()) break;  // only the last may be shorter
        }
      }
      auto& m = s.meta[nmsg];
      m = {p, count, static_cast<uint16_t>(count > 1 ? first.data.size() : 0),
           first.source.valid() && first.source.addr.isV6() == v6};
      msghdr& h = s.hdrs[nmsg].msg_hdr;
      std::memset(&h, 0, sizeof h);
      h.msg_name = &s.names[nmsg];
      h.msg_namelen = first.to.toSockaddr(&s.names[nmsg]);
      h.msg_iov = &s.iov[niov];
      h.msg_iovlen = count;
      for (size_t k = 0; k < count; ++k) {
        const auto& data = batch[p + k].data;
        s.iov[niov++] = {const_cast<uint8_t*>(data.data()), data.size()};
      }
      h.msg_control = s.ctrl[nmsg].data();
      h.msg_controllen = buildControl(s.ctrl[nmsg].data(), first, v6, m.with_source, m.segment);
      if (h.msg_controllen == 0) h.msg_control = nullptr;
      p += count;
      ++nmsg;
    }
    size_t i = 0;
    size_t next_pos = p;
    while (i < nmsg) {
      int r = sendmmsg(fd, &s.hdrs[i], static_cast<unsigned>(nmsg - i), MSG_DONTWAIT);
      if (r > 0) {
        for (int k = 0; k < r; ++k) counters_.gso_sends += s.meta[i + k].segment != 0;
        i += static_cast<size_t>(r);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        // Socket buffer full: UDP semantics, drop the rest of this round.
        for (; i < nmsg; ++i) counters_.send_errors += s.meta[i].count;
        break;
      }
      auto& m = s.meta[i];
      msghdr& h = s.hdrs[i].msg_hdr;
      if (m.with_source) {
        // The sticky source address is gone (EINVAL / EADDRNOTAVAIL): let routing choose.
        ++counters_.source_fallbacks;
        m.with_source = false;
        h.msg_controllen = buildControl(s.ctrl[i].data(), batch[m.first], v6, false, m.segment);
        if (h.msg_controllen == 0) h.msg_control = nullptr;
        continue;
      }
      if (m.segment != 0) {
        // The route cannot take GSO (EIO without checksum offload): plain sends from here on.
        gso = false;
        ++counters_.gso_fallbacks;
        next_pos = m.first;
        break;
      }
      ++counters_.send_errors;
      ++i;
    }
    pos = next_pos;
  }
}

}  // namespace gatehouse::wg
