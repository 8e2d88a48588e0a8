// Conversions between Gatehouse address values and lwIP's ip_addr_t. Included only by
// wg/netstack/*.cc: lwIP headers stay out of every public header (they depend on Debian's
// lwipopts.h, reference §14.1).
#pragma once

extern "C" {
#include "lwip/ip_addr.h"
}

#include <cstring>

#include "wg/net/addr.h"

namespace gatehouse::wg {

inline ip_addr_t toLwip(const IpAddr& a) {
  ip_addr_t out;
  std::memset(&out, 0, sizeof out);
  if (a.isV4()) {
    IP_SET_TYPE_VAL(out, IPADDR_TYPE_V4);
    std::memcpy(&ip_2_ip4(&out)->addr, a.bytes.data(), 4);
  } else {
    IP_SET_TYPE_VAL(out, IPADDR_TYPE_V6);
    std::memcpy(ip_2_ip6(&out)->addr, a.bytes.data(), 16);
    ip6_addr_clear_zone(ip_2_ip6(&out));
  }
  return out;
}

inline Endpoint fromLwip(const ip_addr_t* a, uint16_t port) {
  Endpoint e;
  e.port = port;
  if (IP_IS_V4(a)) {
    e.addr = IpAddr::v4(reinterpret_cast<const uint8_t*>(&ip_2_ip4(a)->addr));
  } else {
    e.addr = IpAddr::v6(reinterpret_cast<const uint8_t*>(ip_2_ip6(a)->addr));
  }
  return e;
}

}  // namespace gatehouse::wg
