// TUN offload: TSO splitting and TCP coalescing (wg/offload.h). Checksums are checked with a
// naive byte-by-byte RFC 1071 implementation written here, independent of the module's.
#include "wg/offload.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace gatehouse::wg::offload {
namespace {

using Bytes = std::vector<uint8_t>;

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }
void put16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

// Naive one's-complement sum of big-endian words.
uint32_t naiveSum(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i < n; i += 2) {
    acc += uint32_t(p[i]) << 8 | (i + 1 < n ? p[i + 1] : 0);
    acc = (acc & 0xffff) + (acc >> 16);
  }
  return acc;
}

size_t ipHeaderLen(const Bytes& p) { return (p[0] >> 4) == 6 ? 40 : (p[0] & 0xf) * 4u; }

uint32_t naivePseudo(const Bytes& p) {
  bool v6 = (p[0] >> 4) == 6;
  size_t l4 = p.size() - ipHeaderLen(p);
  uint32_t acc = v6 ? naiveSum(p.data() + 8, 32) : naiveSum(p.data() + 12, 8);
  acc = naiveSum(nullptr, 0, acc + 6 + uint32_t(l4));
  return (acc & 0xffff) + (acc >> 16);
}

bool naiveTcpValid(const Bytes& p) {
  size_t ih = ipHeaderLen(p);
  return naiveSum(p.data() + ih, p.size() - ih, naivePseudo(p)) == 0xffff;
}
bool naiveIpv4Valid(const Bytes& p) { return naiveSum(p.data(), ipHeaderLen(p)) == 0xffff; }

void naiveFill(Bytes& p) {
  size_t ih = ipHeaderLen(p);
  if ((p[0] >> 4) == 4) {
    put16(&p[10], 0);
    put16(&p[10], ~naiveSum(p.data(), ih) & 0xffff);
  }
  put16(&p[ih + 16], 0);
  put16(&p[ih + 16], ~naiveSum(p.data() + ih, p.size() - ih, naivePseudo(p)) & 0xffff);
}

struct Tcp {
  bool v6 = false;
  uint32_t seq = 1000, ack = 5000;
  uint8_t flags = 0x10;
  uint16_t window = 500, id = 77, sport = 40000, dport = 5201;
  uint8_t ttl = 64;
  size_t ip_options = 0, tcp_options = 12;
  uint8_t src_last = 1;
};

Bytes makeTcp(const Tcp& t, const Bytes& payload) {
  size_t ih = t.v6 ? 40 : 20 + t.ip_options, th = 20 + t.tcp_options;
  Bytes p(ih + th + payload.size(), 0);
  if (t.v6) {
    p[0] = 0x60;
    put16(&p[4], th + payload.size());
    p[6] = 6;
    p[7] = t.ttl;
    p[8] = 0xfd;
    p[23] = t.src_last;
    p[24] = 0xfd;
    p[39] = 2;
  } else {
    p[0] = uint8_t(0x40 | (ih / 4));
    put16(&p[2], p.size());
    put16(&p[4], t.id);
    p[6] = 0x40;  // DF
    p[8] = t.ttl;
    p[9] = 6;
    p[12] = 10, p[15] = t.src_last;
    p[16] = 10, p[19] = 2;
    for (size_t i = 20; i < ih; ++i) p[i] = 1;  // NOP options
  }
  put16(&p[ih], t.sport);
  put16(&p[ih + 2], t.dport);
  put32(&p[ih + 4], t.seq);
  put32(&p[ih + 8], t.ack);
  p[ih + 12] = uint8_t((th / 4) << 4);
  p[ih + 13] = t.flags;
  put16(&p[ih + 14], t.window);
  for (size_t i = 20; i < th; ++i) p[ih + i] = i == 20 ? 1 : uint8_t(i);
  if (!payload.empty()) std::memcpy(&p[ih + th], payload.data(), payload.size());
  naiveFill(p);
  return p;
}

Bytes pattern(size_t n, uint8_t seed = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(i * 7 + seed);
  return b;
}

// A TSO frame as the kernel would hand it over: one super-packet and a GSO header.
Bytes tsoFrame(const Tcp& t, const Bytes& payload, uint16_t gso_size) {
  Bytes pkt = makeTcp(t, payload);
  size_t ih = ipHeaderLen(pkt);
  VnetHdr h{kFlagNeedsCsum,
            uint8_t(t.v6 ? kGsoTcpV6 : kGsoTcpV4),
            uint16_t(ih + 20 + t.tcp_options),
            gso_size,
            uint16_t(ih),
            16};
  Bytes f(kVnetHdrLen);
  h.encode(f.data());
  f.insert(f.end(), pkt.begin(), pkt.end());
  return f;
}

std::vector<Bytes> splitAll(Bytes frame, SplitError* err = nullptr) {
  PacketBatch out;
  SplitError e = split(frame, out);
  if (err) *err = e;
  std::vector<Bytes> r;
  for (size_t i = 0; i < out.size(); ++i) r.emplace_back(out[i].begin(), out[i].end());
  return r;
}

void checkSplit(bool v6) {
  Tcp t;
  t.v6 = v6;
  t.flags = 0x10 | 0x08 | 0x01 | 0x80;  // ACK PSH FIN CWR
  Bytes payload = pattern(10500);
  auto segs = splitAll(tsoFrame(t, payload, 1000));
  ASSERT_EQ(segs.size(), 11u);
  Bytes joined;
  size_t ih = v6 ? 40 : 20, th = 32;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Bytes& s = segs[i];
    size_t len = i == 10 ? 500 : 1000;
    ASSERT_EQ(s.size(), ih + th + len);
    EXPECT_TRUE(naiveTcpValid(s)) << i;
    if (v6) {
      EXPECT_EQ(get16(&s[4]), th + len);
    } else {
      EXPECT_TRUE(naiveIpv4Valid(s)) << i;
      EXPECT_EQ(get16(&s[2]), s.size());
      EXPECT_EQ(get16(&s[4]), 77 + i);
    }
    EXPECT_EQ(get32(&s[ih + 4]), 1000 + 1000 * i);
    uint8_t f = s[ih + 13];
    EXPECT_EQ((f & 0x80) != 0, i == 0) << i;
    EXPECT_EQ((f & 0x09) != 0, i == 10) << i;
    EXPECT_TRUE(f & 0x10);
    joined.insert(joined.end(), s.begin() + ih + th, s.end());
  }
  EXPECT_EQ(joined, payload);
}

TEST(OffloadChecksum, AgreesWithNaiveForEveryLengthAndOffset) {
  for (bool v6 : {false, true}) {
    for (size_t len = 0; len < 300; ++len) {
      Tcp t;
      t.v6 = v6;
      t.tcp_options = (len % 3) * 4;
      Bytes p = makeTcp(t, pattern(len, uint8_t(len)));
      size_t ih = ipHeaderLen(p);
      ASSERT_TRUE(tcpChecksumValid(p, ih)) << len;
      p[ih + 16] ^= 0x5a;
      ASSERT_FALSE(tcpChecksumValid(p, ih)) << len;
      if (!v6) p[10] ^= 0x11;
      fillTcpChecksums(p, ih);
      EXPECT_TRUE(naiveTcpValid(p)) << len;
      if (!v6) {
        EXPECT_TRUE(naiveIpv4Valid(p)) << len;
      }
    }
  }
}

TEST(OffloadSplit, Ipv4TsoSegmentsWithShortLast) { checkSplit(false); }
TEST(OffloadSplit, Ipv6TsoSegmentsWithShortLast) { checkSplit(true); }

TEST(OffloadSplit, NonGsoPassesThroughAndCompletesChecksum) {
  Tcp t;
  Bytes pkt = makeTcp(t, pattern(300));
  // What the kernel hands over with NEEDS_CSUM: the pseudo-header sum in the field.
  put16(&pkt[36], naivePseudo(pkt));
  Bytes f(kVnetHdrLen);
  VnetHdr{kFlagNeedsCsum, kGsoNone, 0, 0, 20, 16}.encode(f.data());
  f.insert(f.end(), pkt.begin(), pkt.end());
  auto segs = splitAll(f);
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_TRUE(naiveTcpValid(segs[0]));

  Bytes plain(kVnetHdrLen, 0);
  Bytes other = makeTcp(t, pattern(10));
  plain.insert(plain.end(), other.begin(), other.end());
  EXPECT_EQ(splitAll(plain), std::vector<Bytes>{other});
}

TEST(OffloadSplit, MalformedFramesAreRejected) {
  Tcp t;
  SplitError e;
  EXPECT_TRUE(splitAll(Bytes(5), &e).empty());
  EXPECT_EQ(e, SplitError::kTruncated);
  Bytes f = tsoFrame(t, pattern(5000), 1000);
  f[1] = 5;  // UDP_L4: not offered
  EXPECT_TRUE(splitAll(f, &e).empty());
  EXPECT_EQ(e, SplitError::kUnsupportedGso);
  f = tsoFrame(t, pattern(5000), 1000);
  f[1] |= kGsoEcn;
  EXPECT_TRUE(splitAll(f, &e).empty());
  f = tsoFrame(t, pattern(5000), 1);
  EXPECT_TRUE(splitAll(f, &e).empty());
  EXPECT_EQ(e, SplitError::kTooManySegments);
  f = tsoFrame(t, pattern(5000), 1000);
  f[6] = 24;  // csum_start not at the TCP header
  EXPECT_TRUE(splitAll(f, &e).empty());
  EXPECT_EQ(e, SplitError::kBadHeader);
  f = tsoFrame(t, pattern(5000), 0);
  EXPECT_TRUE(splitAll(f, &e).empty());
  f = tsoFrame(t, pattern(5000), 1000);
  f.resize(kVnetHdrLen + 30);  // TCP header cut
  EXPECT_TRUE(splitAll(f, &e).empty());
  Bytes nc(kVnetHdrLen);
  VnetHdr{kFlagNeedsCsum, kGsoNone, 0, 0, 2000, 16}.encode(nc.data());
  nc.resize(100);
  EXPECT_TRUE(splitAll(nc, &e).empty());
}

// Segments as a sender would emit them: consecutive seq and IP IDs, PSH on the last.
std::vector<Bytes> segments(Tcp t, const std::vector<size_t>& sizes, bool psh_last = true) {
  std::vector<Bytes> r;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Tcp s = t;
    s.flags = uint8_t(0x10 | (psh_last && i + 1 == sizes.size() ? 0x08 : 0));
    r.push_back(makeTcp(s, pattern(sizes[i], uint8_t(i))));
    t.seq += uint32_t(sizes[i]);
    ++t.id;
  }
  return r;
}

struct Coalesced {
  std::vector<Bytes> frames;
  Coalescer::Stats stats;
};

Coalesced coalesceAll(std::vector<Bytes> pkts) {
  std::vector<std::span<uint8_t>> spans;
  for (auto& p : pkts) spans.emplace_back(p);
  Coalescer c;
  c.coalesce(spans);
  Coalesced r;
  for (size_t g = 0; g < c.groups().size(); ++g) r.frames.push_back(c.frame(spans, g));
  r.stats = c.stats();
  return r;
}

void checkRoundTrip(bool v6) {
  Tcp t;
  t.v6 = v6;
  auto pkts = segments(t, std::vector<size_t>(20, 1368));
  auto c = coalesceAll(pkts);
  ASSERT_EQ(c.frames.size(), 1u);
  VnetHdr h = VnetHdr::decode(c.frames[0].data());
  EXPECT_EQ(h.gso_type, v6 ? kGsoTcpV6 : kGsoTcpV4);
  EXPECT_EQ(h.gso_size, 1368);
  EXPECT_EQ(h.flags, kFlagNeedsCsum);
  EXPECT_EQ(h.csum_start, v6 ? 40 : 20);
  EXPECT_EQ(h.csum_offset, 16);
  Bytes super(c.frames[0].begin() + kVnetHdrLen, c.frames[0].end());
  if (!v6) {
    EXPECT_TRUE(naiveIpv4Valid(super));
  }
  EXPECT_EQ(get16(&super[h.csum_start + 16]), naivePseudo(super));  // NEEDS_CSUM contract
  EXPECT_EQ(splitAll(c.frames[0]), pkts);
}

TEST(OffloadCoalesce, Ipv4RoundTrip) { checkRoundTrip(false); }
TEST(OffloadCoalesce, Ipv6RoundTrip) { checkRoundTrip(true); }

TEST(OffloadCoalesce, ShortSegmentEndsGroup) {
  auto pkts = segments(Tcp{}, {1000, 1000, 500, 1000}, false);
  auto c = coalesceAll(pkts);
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(splitAll(c.frames[0]), std::vector<Bytes>(pkts.begin(), pkts.begin() + 3));
  EXPECT_EQ(c.frames[1][1], kGsoNone);
}

TEST(OffloadCoalesce, PshEndsGroup) {
  Tcp t;
  auto a = segments(t, {1000, 1000});  // PSH on the second
  t.seq += 2000;
  t.id += 2;
  auto b = segments(t, {1000, 1000});
  a.insert(a.end(), b.begin(), b.end());
  auto c = coalesceAll(a);
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(splitAll(c.frames[0]), std::vector<Bytes>(a.begin(), a.begin() + 2));
  EXPECT_EQ(splitAll(c.frames[1]), std::vector<Bytes>(a.begin() + 2, a.end()));
}

TEST(OffloadCoalesce, OutOfOrderIsNotMerged) {
  auto pkts = segments(Tcp{}, {1000, 1000, 1000}, false);
  std::swap(pkts[1], pkts[2]);
  auto c = coalesceAll(pkts);
  EXPECT_EQ(c.frames.size(), 3u);
  for (const auto& f : c.frames) EXPECT_EQ(f[1], kGsoNone);
}

TEST(OffloadCoalesce, OptionsFlagsAndHeaderChangesAreNotMerged) {
  Tcp t;
  t.ip_options = 4;
  EXPECT_EQ(coalesceAll(segments(t, {1000, 1000, 1000}, false)).frames.size(), 3u);
  for (uint8_t flags : {0x11, 0x12, 0x18 | 0x20, 0x14, 0x90, 0x50}) {  // FIN SYN URG RST CWR ECE
    Tcp f;
    auto pkts = segments(f, {1000, 1000}, false);
    f.seq += 2000;
    f.flags = flags;
    pkts.push_back(makeTcp(f, pattern(1000)));
    EXPECT_EQ(coalesceAll(pkts).frames.size(), 2u) << int(flags);
  }
  // Different ack, window or TTL: separate groups.
  for (int which = 0; which < 3; ++which) {
    Tcp a;
    auto pkts = segments(a, {1000}, false);
    Tcp b = a;
    b.seq += 1000;
    if (which == 0) b.ack += 1;
    if (which == 1) b.window += 1;
    if (which == 2) b.ttl -= 1;
    pkts.push_back(makeTcp(b, pattern(1000)));
    EXPECT_EQ(coalesceAll(pkts).frames.size(), 2u) << which;
  }
  // Pure ACKs are never merged.
  auto acks = segments(Tcp{}, {0, 0, 0}, false);
  EXPECT_EQ(coalesceAll(acks).frames.size(), 3u);
}

TEST(OffloadCoalesce, BadChecksumIsNotMerged) {
  auto pkts = segments(Tcp{}, {1000, 1000, 1000}, false);
  pkts[1][100] ^= 0xff;
  auto c = coalesceAll(pkts);
  EXPECT_EQ(c.frames.size(), 3u);
  EXPECT_EQ(c.stats.bad_checksum, 1u);
  pkts = segments(Tcp{}, {1000, 1000, 1000}, false);
  pkts[0][60] ^= 0x01;
  c = coalesceAll(pkts);
  EXPECT_EQ(c.frames[0][1], kGsoNone);  // the head never gets a GSO header
  EXPECT_GE(c.stats.bad_checksum, 1u);
}

TEST(OffloadCoalesce, InterleavedFlowsAndMaxSize) {
  Tcp a, b;
  b.sport = 40001;
  auto fa = segments(a, std::vector<size_t>(60, 1400), false);
  auto fb = segments(b, std::vector<size_t>(10, 1400), false);
  std::vector<Bytes> mixed;
  for (size_t i = 0; i < 60; ++i) {
    mixed.push_back(fa[i]);
    if (i < 10) mixed.push_back(fb[i]);
  }
  auto c = coalesceAll(mixed);
  // Flow a: 65535 bytes hold 46 segments of 1400 + 52 bytes of headers; then a second group.
  ASSERT_EQ(c.frames.size(), 3u);
  size_t total = 0;
  std::vector<Bytes> back_a, back_b;
  for (const auto& f : c.frames) {
    EXPECT_LE(f.size() - kVnetHdrLen, kMaxCoalescedLen);
    auto segs = splitAll(f);
    total += segs.size();
    auto& dst = get16(&segs[0][20]) == 40000 ? back_a : back_b;
    dst.insert(dst.end(), segs.begin(), segs.end());
  }
  EXPECT_EQ(total, 70u);
  EXPECT_EQ(back_a, fa);
  EXPECT_EQ(back_b, fb);
}

TEST(OffloadCoalesce, NonTcpPassesThroughInOrder) {
  Bytes udp(60, 0);
  udp[0] = 0x45;
  put16(&udp[2], 60);
  udp[9] = 17;
  auto pkts = segments(Tcp{}, {1000, 1000}, false);
  pkts.insert(pkts.begin() + 1, udp);
  auto c = coalesceAll(pkts);
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(splitAll(c.frames[1]), std::vector<Bytes>{udp});
  EXPECT_EQ(c.frames[0][1], kGsoTcpV4);
}

}  // namespace
}  // namespace gatehouse::wg::offload
