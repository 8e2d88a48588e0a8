#include "wg/net/addr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace gatehouse::wg {

IpAddr IpAddr::v4(const uint8_t b[4]) {
  IpAddr a;
  a.family = Family::kV4;
  std::memcpy(a.bytes.data(), b, 4);
  return a;
}

IpAddr IpAddr::v6(const uint8_t b[16]) {
  IpAddr a;
  a.family = Family::kV6;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[64];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  uint8_t b[16];
  if (inet_pton(AF_INET, buf, b) == 1) return v4(b);
  if (inet_pton(AF_INET6, buf, b) == 1) return v6(b);
  return std::nullopt;
}

std::optional<IpAddr> IpAddr::packetSource(std::span<const uint8_t> p) {
  if (p.empty()) return std::nullopt;
  if ((p[0] >> 4) == 4 && p.size() >= 20) return v4(p.data() + 12);
  if ((p[0] >> 4) == 6 && p.size() >= 40) return v6(p.data() + 8);
  return std::nullopt;
}

std::optional<IpAddr> IpAddr::packetDestination(std::span<const uint8_t> p) {
  if (p.empty()) return std::nullopt;
  if ((p[0] >> 4) == 4 && p.size() >= 20) return v4(p.data() + 16);
  if ((p[0] >> 4) == 6 && p.size() >= 40) return v6(p.data() + 24);
  return std::nullopt;
}

std::string IpAddr::toString() const {
  char buf[INET6_ADDRSTRLEN];
  if (isV4()) return inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  if (isV6()) return inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return "(none)";
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned bits = addr->maxBits();
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || bits > addr->maxBits()) {
      return std::nullopt;
    }
  }
  return IpPrefix{*addr, static_cast<uint8_t>(bits)}.normalized();
}

IpPrefix IpPrefix::normalized() const {
  IpPrefix p = *this;
  size_t n = addr.size();
  for (size_t i = 0; i < n; ++i) {
    int keep = static_cast<int>(bits) - static_cast<int>(i * 8);
    if (keep >= 8) continue;
    p.addr.bytes[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  return p;
}

bool IpPrefix::contains(const IpAddr& a) const {
  if (a.family != addr.family) return false;
  unsigned full = bits / 8, rest = bits % 8;
  if (std::memcmp(a.bytes.data(), addr.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (addr.bytes[full] & mask);
}

std::string IpPrefix::toString() const { return addr.toString() + "/" + std::to_string(bits); }

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    // Zone ids ("%eth0") are not supported: strip and ignore nothing, reject.
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  auto addr = IpAddr::parse(host);
  if (!addr) return std::nullopt;
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535) {
    return std::nullopt;
  }
  return Endpoint{*addr, static_cast<uint16_t>(p)};
}

std::optional<Endpoint> Endpoint::fromSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return Endpoint{IpAddr::v4(reinterpret_cast<const uint8_t*>(&in->sin_addr)),
                    ntohs(in->sin_port)};
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    const uint8_t* b = in6->sin6_addr.s6_addr;
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; keep them as IPv4.
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0)
      return Endpoint{IpAddr::v4(b + 12), ntohs(in6->sin6_port)};
    return Endpoint{IpAddr::v6(b), ntohs(in6->sin6_port)};
  }
  return std::nullopt;
}

socklen_t Endpoint::toSockaddr(sockaddr_storage* ss) const {
  std::memset(ss, 0, sizeof *ss);
  if (addr.isV4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, addr.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  if (addr.isV6()) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, addr.bytes.data(), 16);
    return sizeof(sockaddr_in6);
  }
  return 0;
}

std::string Endpoint::toString() const {
  if (addr.isV6()) return "[" + addr.toString() + "]:" + std::to_string(port);
  return addr.toString() + ":" + std::to_string(port);
}

}  // namespace gatehouse::wg
