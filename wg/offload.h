// Offload: TCP segmentation and coalescing for a TUN opened with IFF_VNET_HDR, sans-I/O.
//
// With TUN_F_TSO4/6 the kernel hands the device 64 KiB TCP "super-packets" behind a
// virtio_net_hdr and accepts them back; moving one super-packet costs one syscall and one pass
// of kernel TCP instead of ~45 (the same design as wireguard-go's tun/offload_linux.go).
//
//   split:     TUN read (virtio_net_hdr + packet) → the IP packets WireGuard encrypts one by one:
//              IPv4/IPv6 TCP segments of gso_size bytes with their own IP length, IPv4 ID + i,
//              sequence number, flags (FIN/PSH only on the last, CWR only on the first) and full
//              checksums; a non-GSO packet with NEEDS_CSUM gets its checksum completed.
//   Coalescer: a batch of decrypted IP packets → TCP super-packets per flow (same addresses,
//              ports, ack, window, TOS/TTL/DF, options; contiguous sequence numbers; ACK or
//              ACK|PSH only, PSH ends a group; no IP options or IPv6 extension headers; every
//              merged packet's TCP checksum verified first, because NEEDS_CSUM makes the kernel
//              trust it) with a GSO virtio_net_hdr; everything else passes through alone with a
//              zero header. Rules follow Linux tcp_gro_receive and wireguard-go tcpGRO.
//
// Input is untrusted (a TUN read can carry any header a local process wrote; decrypted packets
// come from peers): malformed frames are rejected with a SplitError, never asserted on.
//
// Thread safety: none; values and per-owner scratch buffers. Spans returned point into the
// caller's buffers or a PacketBatch and stay valid until that buffer is next modified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace gatehouse::wg::offload {

// struct virtio_net_hdr (linux/virtio_net.h), little-endian as TUN uses it on LE hosts.
constexpr size_t kVnetHdrLen = 10;
constexpr uint8_t kFlagNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoTcpV6 = 4;
constexpr uint8_t kGsoEcn = 0x80;
// Largest segment count split() produces; a larger request (tiny gso_size) is dropped rather
// than allowed to grow memory.
constexpr size_t kMaxSegments = 1024;
// Largest coalesced IP packet (the IP length fields are 16 bits).
constexpr size_t kMaxCoalescedLen = 65535;

struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = kGsoNone;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;

  static VnetHdr decode(const uint8_t* p);
  void encode(uint8_t* p) const;
  bool operator==(const VnetHdr&) const = default;
};

// Internet checksum helpers (RFC 1071), exposed for tests.
// True if the TCP checksum of `ip_packet` (IPv4 or IPv6, TCP at `l4_offset`) is correct.
bool tcpChecksumValid(std::span<const uint8_t> ip_packet, size_t l4_offset);
// Recomputes the IPv4 header checksum and the TCP checksum in place.
void fillTcpChecksums(std::span<uint8_t> ip_packet, size_t l4_offset);

// A reusable arena of packets, in order.
class PacketBatch {
 public:
  void clear() {
    used_ = 0;
    ranges_.clear();
  }
  size_t size() const { return ranges_.size(); }
  bool empty() const { return ranges_.empty(); }
  std::span<uint8_t> operator[](size_t i) {
    return {buf_.data() + ranges_[i].first, ranges_[i].second};
  }
  std::span<const uint8_t> operator[](size_t i) const {
    return {buf_.data() + ranges_[i].first, ranges_[i].second};
  }
  // Appends a packet of `len` bytes and returns it (contents unspecified). Earlier spans may be
  // invalidated; take them after the last append.
  std::span<uint8_t> append(size_t len);
  void append(std::span<const uint8_t> packet);
  size_t bytes() const { return used_; }

 private:
  // buf_ only grows; used_ marks the end, so reuse never re-zeroes it (vector::resize would).
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

enum class SplitError : uint8_t {
  kNone = 0,
  kTruncated,        // frame shorter than the virtio header or the headers it describes
  kBadHeader,        // IP/TCP header inconsistent with the virtio header
  kUnsupportedGso,   // GSO type we did not offer (UDP, ECN) or unknown
  kTooManySegments,  // gso_size so small that the packet would exceed kMaxSegments
};
const char* splitErrorName(SplitError e);

// Splits one TUN read `frame` (virtio_net_hdr + packet) into IP packets appended to `out`.
// The packet part of `frame` may be modified in place. On error nothing is appended.
SplitError split(std::span<uint8_t> frame, PacketBatch& out);

// Coalesces a batch of IP packets (the order a peer's packets were decrypted in). Reuse one
// Coalescer per loop: it keeps its tables between calls to avoid allocation.
class Coalescer {
 public:
  static constexpr uint32_t kEnd = UINT32_MAX;
  // One TUN write: `head` carries the (rewritten) headers and its own payload; the payloads of
  // the packets chained after it by next() follow, each without its first `hdr_len` bytes.
  struct Group {
    uint8_t vnet_hdr[kVnetHdrLen];
    uint32_t head;
    uint32_t count;    // packets in the group
    uint16_t hdr_len;  // IP + TCP header bytes of each packet
  };

  // Heads of merged groups are rewritten in place (lengths, checksums, PSH). Results are valid
  // until the next call.
  void coalesce(std::span<const std::span<uint8_t>> packets);
  const std::vector<Group>& groups() const { return groups_; }
  uint32_t next(uint32_t i) const { return next_[i]; }
  // The group as one contiguous TUN frame (virtio header included); for tests and fuzzing.
  std::vector<uint8_t> frame(std::span<const std::span<uint8_t>> packets, size_t g) const;

  struct Stats {
    uint64_t merged = 0;        // packets appended to a group
    uint64_t bad_checksum = 0;  // candidates not merged because a TCP checksum was wrong
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Candidate {
    uint32_t index;
    uint32_t iph, tcph, payload;
    uint32_t seq;
    bool v6, psh;
    uint64_t hash;
  };
  // An open group under construction.
  struct Item {
    uint32_t group;
    uint32_t head, tail;
    uint32_t count;
    uint32_t iph, tcph;
    uint32_t next_seq;
    uint32_t total_len;  // IP length of the merged packet
    uint16_t gso_size;
    bool v6, psh, short_tail, head_checked, head_bad;
  };
  enum class Append : uint8_t { kDone, kNo, kBadPacket };
  Append tryAppend(Item& item, const Candidate& c, std::span<const std::span<uint8_t>> packets);
  void finish(const Item& item, std::span<const std::span<uint8_t>> packets);

  std::vector<Group> groups_;
  std::vector<uint32_t> next_;
  std::vector<Item> items_;
  std::vector<int32_t> slots_;  // open-addressing flow table: index into items_, or -1
  std::vector<uint32_t> used_slots_;
  Stats stats_;
};

}  // namespace gatehouse::wg::offload
