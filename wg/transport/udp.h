// UdpTransport: the WireGuard UDP port, one non-blocking socket per address family, read and
// written in batches (recvmmsg / sendmmsg) with the local address of each datagram
// (IP_PKTINFO / IPV6_PKTINFO) so replies can leave from the address the peer wrote to
// (sticky source, reference E2). This is the fast path of reference V4: libuv's uv_udp_t passes
// no control messages (V1), so the loop watches these fds with uv_poll_t instead.
//
// Layout like wireguard-go's StdNetBind: an IPv4 socket on 0.0.0.0:port and an IPV6_V6ONLY socket
// on [::]:port. Port 0 picks a free port for IPv4 and reuses it for IPv6 (retrying a few ports if
// that one is taken for IPv6). A host without IPv6 runs on IPv4 alone.
//
// Offloads (Options::offload, on by default): runs of consecutive datagrams to the same
// destination from the same source with the same size (the last may be shorter) leave in one
// sendmsg with a UDP_SEGMENT control message (UDP GSO, up to 64 segments / 64 KiB); receive
// sockets enable UDP_GRO and received coalesced buffers are cut back into datagrams by the
// UDP_GRO segment size. A socket whose GSO send fails (EIO: no checksum offload on the route)
// turns GSO off and resends the datagrams one by one.
//
// Thread safety: none; one owner thread (the device loop). The transport owns its sockets and
// closes them on close(), on a successful rebind, and in the destructor. Spans handed out by
// receive() point into the RecvBatch and stay valid until the next receive() into that batch.
//
// Errors are values: open/rebind return 0 or a positive errno (EADDRINUSE when the port is taken).
// Send and receive failures for single datagrams are counted, never fatal.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "wg/net/addr.h"

namespace gatehouse::wg {

// The local side of a datagram: the address it arrived on (or should leave from) and the
// interface. An invalid address means "let routing choose".
struct LocalAddr {
  IpAddr addr;
  uint32_t ifindex = 0;
  bool valid() const { return addr.family != IpAddr::Family::kNone; }
  bool operator==(const LocalAddr&) const = default;
};

struct OutDatagram {
  Endpoint to;
  LocalAddr source;  // sticky source; invalid = none
  std::span<const uint8_t> data;
};

struct InDatagram {
  Endpoint from;
  LocalAddr local;
  std::span<const uint8_t> data;
};

// Where outgoing datagrams go. The UDP transport is the real one; FakePacketSink records.
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // Best effort, like UDP: datagrams that cannot be sent are dropped and counted by the sink.
  virtual void send(std::span<const OutDatagram> batch) = 0;
};

class FakePacketSink final : public PacketSink {
 public:
  struct Sent {
    Endpoint to;
    LocalAddr source;
    std::vector<uint8_t> data;
  };
  void send(std::span<const OutDatagram> batch) override;
  std::vector<Sent> sent;
  size_t calls = 0;
};

// Reusable receive buffers for one recvmmsg call.
class RecvBatch {
 public:
  static constexpr size_t kMaxDatagrams = 64;  // messages per recvmmsg (each may be GRO'd)
  static constexpr size_t kSlotSize = 65536;   // a whole UDP payload; no truncation
  RecvBatch();
  ~RecvBatch();
  RecvBatch(const RecvBatch&) = delete;
  RecvBatch& operator=(const RecvBatch&) = delete;

  // The datagrams of the last receive, GRO buffers already cut into datagrams.
  std::span<const InDatagram> datagrams() const { return in_; }

 private:
  friend class UdpTransport;
  struct Slots;
  std::unique_ptr<Slots> slots_;
  std::vector<InDatagram> in_;
};

struct UdpCounters {
  uint64_t send_errors = 0;       // datagrams the kernel refused (after the no-source retry)
  uint64_t send_no_socket = 0;    // destination family without a socket (e.g. IPv6 unavailable)
  uint64_t source_fallbacks = 0;  // sticky source rejected by the kernel; resent without it
  uint64_t recv_truncated = 0;    // datagrams larger than a slot (dropped)
  uint64_t recv_errors = 0;
  uint64_t gso_sends = 0;      // sendmsg calls that carried several datagrams (UDP_SEGMENT)
  uint64_t gso_fallbacks = 0;  // sockets that turned GSO off after the kernel refused it
  uint64_t gro_receives = 0;   // received buffers that held several datagrams (UDP_GRO)
};

class UdpTransport final : public PacketSink {
 public:
  struct Options {
    int socket_buffer_bytes = 7 << 20;  // like wireguard-go ≥ 0.0.2023: 7 MiB
    uint32_t fwmark = 0;
    bool offload = true;  // UDP GSO on send, UDP GRO on receive, where the kernel has them
  };
  UdpTransport();
  explicit UdpTransport(Options options);
  ~UdpTransport() override;
  UdpTransport(const UdpTransport&) = delete;
  UdpTransport& operator=(const UdpTransport&) = delete;

  // Binds `port` (0 = any). On success any previous sockets are closed and replaced; on failure
  // the previous sockets stay open and in use. Returns 0 or a positive errno.
  int open(uint16_t port);
  void close();
  bool isOpen() const { return fd4_ >= 0 || fd6_ >= 0; }
  uint16_t port() const { return port_; }
  int fd4() const { return fd4_; }  // -1 when absent
  int fd6() const { return fd6_; }  // -1 when absent (IPv6 unavailable)

  // SO_MARK on both sockets (0 clears). Remembered across rebinds. Returns 0 or errno.
  int setFwmark(uint32_t mark);
  uint32_t fwmark() const { return options_.fwmark; }

  // One recvmmsg on `fd` (fd4() or fd6()). Returns the number of messages read (0 when the
  // socket is drained; with GRO a message can hold several datagrams) or -errno on an error.
  int receive(int fd, RecvBatch& batch);

  void send(std::span<const OutDatagram> batch) override;

  const UdpCounters& counters() const { return counters_; }

 private:
  int openPair(uint16_t port, int* fd4, int* fd6, uint16_t* bound);
  int openSocket(int family, uint16_t port, int* fd_out, uint16_t* bound);
  void sendOn(int fd, bool v6, std::span<const OutDatagram> batch);

  struct SendScratch;
  Options options_;
  std::unique_ptr<SendScratch> scratch_;
  int fd4_ = -1;
  int fd6_ = -1;
  bool gso4_ = false, gso6_ = false;
  uint16_t port_ = 0;
  UdpCounters counters_;
};

}  // namespace gatehouse::wg
