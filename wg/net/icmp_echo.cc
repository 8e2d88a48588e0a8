#include "wg/net/icmp_echo.h"

#include <cstring>

namespace gatehouse::wg::icmp {
namespace {

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIcmp6 = 58;

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += static_cast<uint32_t>(p[i]) << 8 | p[i + 1];
  if (n % 2 != 0) acc += static_cast<uint32_t>(p[n - 1]) << 8;
  return acc;
}

uint16_t finish(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}

// The ICMPv6 pseudo-header: source, destination, upper-layer length, next header.
uint32_t pseudo6(const uint8_t* src, const uint8_t* dst, uint32_t len) {
  uint32_t acc = sum16(src, 16, 0);
  acc = sum16(dst, 16, acc);
  acc += len >> 16;
  acc += len & 0xffff;
  acc += kProtoIcmp6;
  return acc;
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

std::vector<uint8_t> echoRequest(const IpAddr& src, const IpAddr& dst, uint16_t id, uint16_t seq,
                                 std::span<const uint8_t> payload, uint8_t ttl) {
  const size_t icmp_len = 8 + payload.size();
  const bool v4 = src.isV4();
  const size_t ip_len = v4 ? 20 : 40;
  std::vector<uint8_t> pkt(ip_len + icmp_len, 0);
  uint8_t* ip = pkt.data();
  uint8_t* icmp = ip + ip_len;
  icmp[0] = v4 ? 8 : 128;  // echo request
  put16(icmp + 4, id);
  put16(icmp + 6, seq);
  if (!payload.empty()) std::memcpy(icmp + 8, payload.data(), payload.size());
  if (v4) {
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(pkt.size()));
    ip[6] = 0x40;  // don't fragment
    ip[8] = ttl;
    ip[9] = kProtoIcmp;
    std::memcpy(ip + 12, src.bytes.data(), 4);
    std::memcpy(ip + 16, dst.bytes.data(), 4);
    put16(ip + 10, finish(sum16(ip, 20, 0)));
    put16(icmp + 2, finish(sum16(icmp, icmp_len, 0)));
  } else {
    ip[0] = 0x60;
    put16(ip + 4, static_cast<uint16_t>(icmp_len));
    ip[6] = kProtoIcmp6;
    ip[7] = ttl;
    std::memcpy(ip + 8, src.bytes.data(), 16);
    std::memcpy(ip + 24, dst.bytes.data(), 16);
    uint32_t acc = pseudo6(ip + 8, ip + 24, static_cast<uint32_t>(icmp_len));
    put16(icmp + 2, finish(sum16(icmp, icmp_len, acc)));
  }
  return pkt;
}

std::optional<EchoReply> parseEchoReply(std::span<const uint8_t> p) {
  if (p.empty()) return std::nullopt;
  EchoReply r;
  const uint8_t* icmp = nullptr;
  size_t icmp_len = 0;
  if ((p[0] >> 4) == 4) {
    size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (ihl < 20 || p.size() < ihl + 8 || p[9] != kProtoIcmp) return std::nullopt;
    size_t total = get16(p.data() + 2);
    if (total < ihl + 8 || total > p.size()) return std::nullopt;
    if ((get16(p.data() + 6) & 0x3fff) != 0) return std::nullopt;  // a fragment
    icmp = p.data() + ihl;
    icmp_len = total - ihl;
    if (icmp[0] != 0 || finish(sum16(icmp, icmp_len, 0)) != 0) return std::nullopt;
    r.from = IpAddr::v4(p.data() + 12);
    r.to = IpAddr::v4(p.data() + 16);
  } else if ((p[0] >> 4) == 6) {
    if (p.size() < 48 || p[6] != kProtoIcmp6) return std::nullopt;
    size_t payload_len = get16(p.data() + 4);
    if (payload_len < 8 || 40 + payload_len > p.size()) return std::nullopt;
    icmp = p.data() + 40;
    icmp_len = payload_len;
    uint32_t acc = pseudo6(p.data() + 8, p.data() + 24, static_cast<uint32_t>(icmp_len));
    if (icmp[0] != 129 || finish(sum16(icmp, icmp_len, acc)) != 0) return std::nullopt;
    r.from = IpAddr::v6(p.data() + 8);
    r.to = IpAddr::v6(p.data() + 24);
  } else {
    return std::nullopt;
  }
  r.id = get16(icmp + 4);
  r.seq = get16(icmp + 6);
  return r;
}

}  // namespace gatehouse::wg::icmp
