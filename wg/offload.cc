#include "wg/offload.h"

#include <algorithm>
#include <cstring>

namespace gatehouse::wg::offload {
namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr size_t kTcpCsumOffset = 16;
// iovec budget of one TUN writev (UIO_MAXIOV is 1024); real groups hold ~47 packets.
constexpr uint32_t kMaxGroupPackets = 256;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void wr32(uint8_t* p, uint32_t v) {
  wr16(p, static_cast<uint16_t>(v >> 16));
  wr16(p + 2, static_cast<uint16_t>(v));
}

// One's-complement sums are computed on native-order words (byte order only swaps the two
// halves of the result, RFC 1071 §2(B)); a folded native sum stored with memcpy is the
// big-endian field. This keeps the loop to plain 64-bit loads.
uint64_t sumBytes(const uint8_t* p, size_t n, uint64_t acc) {
  // 32 bytes per round on two accumulators (independent add chains); 64-bit sums of 32-bit
  // halves cannot overflow for any packet size.
  constexpr uint64_t kLo = 0xffffffffu;
  uint64_t acc2 = 0;
  while (n >= 32) {
    uint64_t x[4];
    std::memcpy(x, p, 32);
    acc += (x[0] & kLo) + (x[0] >> 32) + (x[1] & kLo) + (x[1] >> 32);
    acc2 += (x[2] & kLo) + (x[2] >> 32) + (x[3] & kLo) + (x[3] >> 32);
    p += 32;
    n -= 32;
  }
  acc += acc2;
  while (n >= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    acc += (x & 0xffffffffu) + (x >> 32);
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    acc += x;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t x;
    std::memcpy(&x, p, 2);
    acc += x;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint8_t tail[2] = {p[0], 0};
    uint16_t x;
    std::memcpy(&x, tail, 2);
    acc += x;
  }
  return acc;
}

uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

// A big-endian 16-bit value as the native word sumBytes would have read from memory.
uint16_t native(uint16_t be_value) {
  uint8_t b[2];
  wr16(b, be_value);
  uint16_t x;
  std::memcpy(&x, b, 2);
  return x;
}

void storeNative(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

bool isV6(std::span<const uint8_t> ip) { return (ip[0] >> 4) == 6; }

uint64_t pseudoSum(std::span<const uint8_t> ip, size_t l4_len) {
  uint64_t acc = isV6(ip) ? sumBytes(ip.data() + 8, 32, 0) : sumBytes(ip.data() + 12, 8, 0);
  return acc + native(kProtoTcp) + native(static_cast<uint16_t>(l4_len));
}

void fillIpv4HeaderChecksum(uint8_t* ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  storeNative(ip + 10, static_cast<uint16_t>(~fold(sumBytes(ip, ihl, 0))));
}

}  // namespace

VnetHdr VnetHdr::decode(const uint8_t* p) {
  auto le16 = [](const uint8_t* q) { return static_cast<uint16_t>(q[0] | q[1] << 8); };
  return {p[0], p[1], le16(p + 2), le16(p + 4), le16(p + 6), le16(p + 8)};
}

void VnetHdr::encode(uint8_t* p) const {
  p[0] = flags;
  p[1] = gso_type;
  uint16_t v[4] = {hdr_len, gso_size, csum_start, csum_offset};
  for (int i = 0; i < 4; ++i) {
    p[2 + 2 * i] = static_cast<uint8_t>(v[i]);
    p[3 + 2 * i] = static_cast<uint8_t>(v[i] >> 8);
  }
}

bool tcpChecksumValid(std::span<const uint8_t> ip_packet, size_t l4_offset) {
  size_t l4_len = ip_packet.size() - l4_offset;
  uint64_t acc = pseudoSum(ip_packet, l4_len);
  return fold(sumBytes(ip_packet.data() + l4_offset, l4_len, acc)) == 0xffff;
}

void fillTcpChecksums(std::span<uint8_t> ip, size_t l4_offset) {
  if (!isV6(ip)) fillIpv4HeaderChecksum(ip.data(), l4_offset);
  size_t l4_len = ip.size() - l4_offset;
  uint8_t* field = ip.data() + l4_offset + kTcpCsumOffset;
  field[0] = field[1] = 0;
  uint64_t acc = pseudoSum(ip, l4_len);
  storeNative(field, static_cast<uint16_t>(~fold(sumBytes(ip.data() + l4_offset, l4_len, acc))));
}

std::span<uint8_t> PacketBatch::append(size_t len) {
  size_t off = used_;
  if (off + len > buf_.size()) buf_.resize(std::max(off + len, 2 * buf_.size()));
  used_ = off + len;
  ranges_.emplace_back(static_cast<uint32_t>(off), static_cast<uint32_t>(len));
  return {buf_.data() + off, len};
}

void PacketBatch::append(std::span<const uint8_t> packet) {
  auto dst = append(packet.size());
  if (!packet.empty()) std::memcpy(dst.data(), packet.data(), packet.size());
}

const char* splitErrorName(SplitError e) {
  switch (e) {
    case SplitError::kNone:
      return "none";
    case SplitError::kTruncated:
      return "truncated";
    case SplitError::kBadHeader:
      return "bad_header";
    case SplitError::kUnsupportedGso:
      return "unsupported_gso";
    case SplitError::kTooManySegments:
      return "too_many_segments";
  }
  return "unknown";
}

SplitError split(std::span<uint8_t> frame, PacketBatch& out) {
  if (frame.size() < kVnetHdrLen) return SplitError::kTruncated;
  VnetHdr h = VnetHdr::decode(frame.data());
  std::span<uint8_t> pkt = frame.subspan(kVnetHdrLen);
  if (h.gso_type == kGsoNone) {
    if (h.flags & kFlagNeedsCsum) {
      // The kernel left the checksum to us: the field holds the pseudo-header sum already.
      size_t start = h.csum_start, field = start + h.csum_offset;
      if (field + 2 > pkt.size()) return SplitError::kBadHeader;
      uint16_t sum = fold(sumBytes(pkt.data() + start, pkt.size() - start, 0));
      storeNative(pkt.data() + field, static_cast<uint16_t>(~sum));
    }
    out.append(pkt);
    return SplitError::kNone;
  }
  if (h.gso_type != kGsoTcpV4 && h.gso_type != kGsoTcpV6) return SplitError::kUnsupportedGso;
  bool v6 = h.gso_type == kGsoTcpV6;
  size_t iph;
  if (!v6) {
    if (pkt.size() < 20) return SplitError::kTruncated;
    if ((pkt[0] >> 4) != 4 || pkt[9] != kProtoTcp) return SplitError::kBadHeader;
    iph = (pkt[0] & 0xf) * 4u;
    if (iph < 20) return SplitError::kBadHeader;
  } else {
    if (pkt.size() < 40) return SplitError::kTruncated;
    // Extension headers never come with TSO from the kernel's TCP; refuse rather than guess.
    if ((pkt[0] >> 4) != 6 || pkt[6] != kProtoTcp) return SplitError::kBadHeader;
    iph = 40;
  }
  if (h.csum_start != iph) return SplitError::kBadHeader;
  if (pkt.size() < iph + 20) return SplitError::kTruncated;
  size_t tcph = (pkt[iph + 12] >> 4) * 4u;
  if (tcph < 20) return SplitError::kBadHeader;
  size_t hl = iph + tcph;  // the virtio hdr_len is only a hint; the headers are authoritative
  if (pkt.size() < hl) return SplitError::kTruncated;
  if (h.gso_size == 0) return SplitError::kBadHeader;
  size_t gs = h.gso_size;
  size_t payload = pkt.size() - hl;
  size_t nseg = payload == 0 ? 1 : (payload + gs - 1) / gs;
  if (nseg > kMaxSegments) return SplitError::kTooManySegments;
  if (hl + std::min(gs, payload) > 65535) return SplitError::kBadHeader;

  uint32_t seq0 = rd32(pkt.data() + iph + 4);
  uint16_t id0 = v6 ? 0 : rd16(pkt.data() + 4);
  uint8_t flags0 = pkt[iph + 13];
  for (size_t i = 0; i < nseg; ++i) {
    size_t off = i * gs;
    size_t len = std::min(gs, payload - off);
    std::span<uint8_t> seg = out.append(hl + len);
    std::memcpy(seg.data(), pkt.data(), hl);
    if (len) std::memcpy(seg.data() + hl, pkt.data() + hl + off, len);
    if (v6) {
      wr16(seg.data() + 4, static_cast<uint16_t>(hl + len - 40));
    } else {
      wr16(seg.data() + 2, static_cast<uint16_t>(hl + len));
      wr16(seg.data() + 4, static_cast<uint16_t>(id0 + i));
    }
    wr32(seg.data() + iph + 4, seq0 + static_cast<uint32_t>(off));
    uint8_t f = flags0;
    if (i + 1 != nseg) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i != 0) f &= static_cast<uint8_t>(~kTcpCwr);
    seg[iph + 13] = f;
    fillTcpChecksums(seg, iph);
  }
  return SplitError::kNone;
}

// ---- coalescing ----

namespace {

// Fills a coalescing candidate (TCP ACK or ACK|PSH with payload, no IP options or extension
// headers, not a fragment, lengths consistent). Returns false for everything else.
bool parseCandidate(std::span<const uint8_t> p, uint32_t* iph, uint32_t* tcph, uint32_t* payload,
                    bool* v6) {
  if (p.size() < 40) return false;
  uint8_t version = p[0] >> 4;
  if (version == 4) {
    if ((p[0] & 0xf) != 5 || p[9] != kProtoTcp || rd16(p.data() + 2) != p.size()) return false;
    if ((rd16(p.data() + 6) & 0x3fff) != 0) return false;  // MF or a fragment offset
    *iph = 20;
    *v6 = false;
  } else if (version == 6) {
    if (p[6] != kProtoTcp || rd16(p.data() + 4) + 40u != p.size()) return false;
    *iph = 40;
    *v6 = true;
  } else {
    return false;
  }
  if (p.size() < *iph + 20) return false;
  *tcph = (p[*iph + 12] >> 4) * 4u;
  if (*tcph < 20 || p.size() <= *iph + *tcph) return false;  // pure ACKs are not merged
  uint8_t flags = p[*iph + 13];
  if (flags != kTcpAck && flags != (kTcpAck | kTcpPsh)) return false;
  *payload = static_cast<uint32_t>(p.size() - *iph - *tcph);
  return true;
}

// Flow key bytes: addresses, ports and the ack number (packets acking different data are never
// merged, as in Linux and wireguard-go).
uint64_t flowHash(std::span<const uint8_t> p, uint32_t iph, bool v6) {
  const uint8_t* a = p.data() + (v6 ? 8 : 12);
  size_t alen = v6 ? 32 : 8;
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const uint8_t* q, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ q[i]) * 1099511628211ull;
  };
  mix(a, alen);
  mix(p.data() + iph, 4);      // ports
  mix(p.data() + iph + 8, 4);  // ack
  return h;
}

bool sameFlow(std::span<const uint8_t> a, std::span<const uint8_t> b, uint32_t iph, bool v6) {
  size_t off = v6 ? 8 : 12, alen = v6 ? 32 : 8;
  return std::memcmp(a.data() + off, b.data() + off, alen) == 0 &&
         std::memcmp(a.data() + iph, b.data() + iph, 4) == 0 &&
         std::memcmp(a.data() + iph + 8, b.data() + iph + 8, 4) == 0;
}

}  // namespace

Coalescer::Append Coalescer::tryAppend(Item& item, const Candidate& c,
                                       std::span<const std::span<uint8_t>> packets) {
  std::span<const uint8_t> head = packets[item.head];
  std::span<const uint8_t> p = packets[c.index];
  if (item.v6 != c.v6 || item.iph != c.iph || item.tcph != c.tcph) return Append::kNo;
  if (item.psh || item.short_tail || c.seq != item.next_seq || c.payload > item.gso_size) {
    return Append::kNo;
  }
  if (item.total_len + c.payload > kMaxCoalescedLen || item.count >= kMaxGroupPackets)
    return Append::kNo;
  uint32_t iph = c.iph;
  if (c.v6) {
    // Traffic class and hop limit.
    if (p[0] != head[0] || (p[1] >> 4) != (head[1] >> 4) || p[7] != head[7]) return Append::kNo;
  } else {
    // TOS, DF/reserved bits and TTL.
    if (p[1] != head[1] || (p[6] >> 5) != (head[6] >> 5) || p[8] != head[8]) return Append::kNo;
  }
  // Window and options must match (Linux tcp_gro_receive flushes otherwise).
  if (std::memcmp(p.data() + iph + 14, head.data() + iph + 14, 2) != 0) return Append::kNo;
  if (std::memcmp(p.data() + iph + 20, head.data() + iph + 20, c.tcph - 20) != 0)
    return Append::kNo;
  // A merged packet goes to the kernel as NEEDS_CSUM, which it trusts: a corrupt segment would
  // be accepted. Verify each one (the head once) before merging.
  if (!item.head_checked) {
    item.head_checked = true;
    item.head_bad = !tcpChecksumValid(head, iph);
    if (item.head_bad) ++stats_.bad_checksum;
  }
  if (item.head_bad) return Append::kNo;
  if (!tcpChecksumValid(p, iph)) {
    ++stats_.bad_checksum;
    return Append::kBadPacket;
  }
  next_[item.tail] = c.index;
  item.tail = c.index;
  ++item.count;
  item.next_seq += c.payload;
  item.total_len += c.payload;
  item.psh = c.psh;
  item.short_tail = c.payload < item.gso_size;
  ++stats_.merged;
  return Append::kDone;
}

void Coalescer::finish(const Item& item, std::span<const std::span<uint8_t>> packets) {
  Group& g = groups_[item.group];
  g.count = item.count;
  if (item.count < 2) return;
  std::span<uint8_t> head = packets[item.head];
  uint32_t iph = item.iph;
  if (item.v6) {
    wr16(head.data() + 4, static_cast<uint16_t>(item.total_len - 40));
  } else {
    wr16(head.data() + 2, static_cast<uint16_t>(item.total_len));
    fillIpv4HeaderChecksum(head.data(), iph);
  }
  if (item.psh) head[iph + 13] |= kTcpPsh;
  // NEEDS_CSUM: the field holds the pseudo-header sum over the merged length, not negated.
  uint8_t* field = head.data() + iph + kTcpCsumOffset;
  storeNative(field, fold(pseudoSum(head, item.total_len - iph)));
  VnetHdr h;
  h.flags = kFlagNeedsCsum;
  h.gso_type = item.v6 ? kGsoTcpV6 : kGsoTcpV4;
  h.hdr_len = static_cast<uint16_t>(iph + item.tcph);
  h.gso_size = item.gso_size;
  h.csum_start = static_cast<uint16_t>(iph);
  h.csum_offset = kTcpCsumOffset;
  h.encode(g.vnet_hdr);
  g.hdr_len = h.hdr_len;
}

void Coalescer::coalesce(std::span<const std::span<uint8_t>> packets) {
  size_t n = packets.size();
  groups_.clear();
  items_.clear();
  next_.assign(n, kEnd);
  size_t cap = 64;
  while (cap < 2 * n) cap *= 2;
  if (slots_.size() < cap) {
    slots_.assign(cap, -1);
  } else {
    for (uint32_t s : used_slots_) slots_[s] = -1;
  }
  used_slots_.clear();
  size_t mask = slots_.size() - 1;

  for (uint32_t i = 0; i < n; ++i) {
    std::span<const uint8_t> p = packets[i];
    Candidate c{};
    c.index = i;
    bool candidate = parseCandidate(p, &c.iph, &c.tcph, &c.payload, &c.v6);
    size_t slot = 0;
    if (candidate) {
      c.seq = rd32(p.data() + c.iph + 4);
      c.psh = (p[c.iph + 13] & kTcpPsh) != 0;
      c.hash = flowHash(p, c.iph, c.v6);
      slot = c.hash & mask;
      while (slots_[slot] >= 0) {
        Item& item = items_[static_cast<size_t>(slots_[slot])];
        if (item.v6 == c.v6 && item.iph == c.iph && sameFlow(packets[item.head], p, c.iph, c.v6)) {
          break;
        }
        slot = (slot + 1) & mask;
      }
      if (slots_[slot] >= 0) {
        Append r = tryAppend(items_[static_cast<size_t>(slots_[slot])], c, packets);
        if (r == Append::kDone) continue;
        // A corrupt packet goes to the kernel alone (it drops it) and starts nothing.
        if (r == Append::kBadPacket) candidate = false;
      }
    }
    Group g{};
    g.head = i;
    g.count = 1;
    groups_.push_back(g);
    if (!candidate) continue;
    Item item{};
    item.group = static_cast<uint32_t>(groups_.size() - 1);
    item.head = item.tail = i;
    item.count = 1;
    item.iph = c.iph;
    item.tcph = c.tcph;
    item.next_seq = c.seq + c.payload;
    item.total_len = static_cast<uint32_t>(p.size());
    item.gso_size = static_cast<uint16_t>(std::min<uint32_t>(c.payload, 65535));
    item.v6 = c.v6;
    item.psh = c.psh;
    if (slots_[slot] < 0) used_slots_.push_back(static_cast<uint32_t>(slot));
    // The newest item of a flow takes over its slot: out-of-order data starts a new group.
    slots_[slot] = static_cast<int32_t>(items_.size());
    items_.push_back(item);
  }
  for (const Item& item : items_) finish(item, packets);
}

std::vector<uint8_t> Coalescer::frame(std::span<const std::span<uint8_t>> packets, size_t g) const {
  const Group& grp = groups_[g];
  std::vector<uint8_t> f(grp.vnet_hdr, grp.vnet_hdr + kVnetHdrLen);
  std::span<const uint8_t> head = packets[grp.head];
  f.insert(f.end(), head.begin(), head.end());
  for (uint32_t i = next_[grp.head]; i != kEnd; i = next_[i]) {
    f.insert(f.end(), packets[i].begin() + grp.hdr_len, packets[i].end());
  }
  return f;
}

}  // namespace gatehouse::wg::offload
