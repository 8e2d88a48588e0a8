// IP addresses, prefixes and UDP endpoints as plain values.
//
// Thread safety: values; no shared state. Parsing never throws: it returns std::nullopt.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace gatehouse::wg {

// An IPv4 or IPv6 address. IPv4 uses bytes[0..3]; the rest is zero.
struct IpAddr {
  enum class Family : uint8_t { kNone = 0, kV4 = 4, kV6 = 6 };
  Family family = Family::kNone;
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(const uint8_t b[4]);
  static IpAddr v6(const uint8_t b[16]);
  static std::optional<IpAddr> parse(std::string_view text);
  // Source or destination address of a raw IP packet (by version nibble). nullopt if truncated.
  static std::optional<IpAddr> packetSource(std::span<const uint8_t> packet);
  static std::optional<IpAddr> packetDestination(std::span<const uint8_t> packet);

  bool isV4() const { return family == Family::kV4; }
  bool isV6() const { return family == Family::kV6; }
  size_t size() const { return isV4() ? 4 : isV6() ? 16 : 0; }
  unsigned maxBits() const { return isV4() ? 32 : isV6() ? 128 : 0; }
  std::string toString() const;
  bool operator==(const IpAddr&) const = default;
  auto operator<=>(const IpAddr&) const = default;
};

// A CIDR prefix; bits beyond `bits` are zero after normalize().
struct IpPrefix {
  IpAddr addr;
  uint8_t bits = 0;

  static std::optional<IpPrefix> parse(std::string_view text);  // "10.0.0.0/8", "fd00::1/128"
  IpPrefix normalized() const;
  bool contains(const IpAddr& a) const;
  std::string toString() const;
  bool operator==(const IpPrefix&) const = default;
  auto operator<=>(const IpPrefix&) const = default;
};

// A UDP endpoint (address + port). Converts to and from sockaddr.
struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;

  // "1.2.3.4:51820" or "[fd00::1]:51820". Host names are not resolved here.
  static std::optional<Endpoint> parse(std::string_view text);
  static std::optional<Endpoint> fromSockaddr(const sockaddr* sa, socklen_t len);
  // Writes a sockaddr_in or sockaddr_in6; returns its length (0 if family is kNone).
  socklen_t toSockaddr(sockaddr_storage* ss) const;
  bool valid() const { return addr.family != IpAddr::Family::kNone; }
  std::string toString() const;
  bool operator==(const Endpoint&) const = default;
};

}  // namespace gatehouse::wg
