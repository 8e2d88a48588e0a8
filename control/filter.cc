// Grant `ip` syntax and the receive-side packet filter. See filter.h.
#include "control/filter.h"

#include <algorithm>
#include <charconv>
#include <functional>

namespace gatehouse::control {
namespace {

std::optional<unsigned> parseUint(std::string_view s, unsigned max) {
  unsigned v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

std::optional<std::vector<uint8_t>> parseProto(std::string_view name) {
  if (name == "tcp") return std::vector<uint8_t>{kProtoTcp};
  if (name == "udp") return std::vector<uint8_t>{kProtoUdp};
  if (name == "sctp") return std::vector<uint8_t>{kProtoSctp};
  if (name == "icmp") return std::vector<uint8_t>{kProtoIcmp, kProtoIcmpV6};
  if (name == "ipv6-icmp") return std::vector<uint8_t>{kProtoIcmpV6};
  if (auto n = parseUint(name, 255); n && *n > 0) return std::vector<uint8_t>{uint8_t(*n)};
  return std::nullopt;
}

bool parsePorts(std::string_view text, std::vector<PortRange>* out, std::string* error) {
  if (text == "*") {
    out->push_back({0, 65535});
    return true;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t dash = item.find('-');
    auto first = parseUint(item.substr(0, dash), 65535);
    auto last = dash == std::string_view::npos ? first : parseUint(item.substr(dash + 1), 65535);
    if (!first || !last) {
      *error = "malformed port \"" + std::string(item) +
               "\": ports are numbers 0-65535, ranges like 1000-2000, lists like 80,443, or *";
      return false;
    }
    if (*first > *last) {
      *error = "port range \"" + std::string(item) + "\" is backwards: write " +
               std::to_string(*last) + "-" + std::to_string(*first);
      return false;
    }
    out->push_back({uint16_t(*first), uint16_t(*last)});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

}  // namespace

bool protoHasPorts(uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp;
}

std::string protoName(uint8_t proto) {
  switch (proto) {
    case kProtoTcp:
      return "tcp";
    case kProtoUdp:
      return "udp";
    case kProtoSctp:
      return "sctp";
    case kProtoIcmp:
      return "icmp";
    case kProtoIcmpV6:
      return "ipv6-icmp";
    default:
      return std::to_string(proto);
  }
}

std::optional<IpSpec> parseIpSpec(std::string_view text, std::string* error) {
  IpSpec spec;
  if (text == "*") {
    spec.ports.push_back({0, 65535});
    return spec;
  }
  size_t colon = text.find(':');
  std::string_view ports = text;
  if (colon != std::string_view::npos) {
    std::string_view name = text.substr(0, colon);
    auto protos = parseProto(name);
    if (!protos) {
      *error = "unknown protocol \"" + std::string(name) +
               "\": use tcp, udp, sctp, icmp or an IP protocol number 1-255";
      return std::nullopt;
    }
    spec.protos = *protos;
    ports = text.substr(colon + 1);
    if (!protoHasPorts(spec.protos[0]) && ports != "*") {
      *error = std::string(name) + " has no ports: write \"" + std::string(name) + ":*\"";
      return std::nullopt;
    }
  } else if (parseProto(text) && !parseUint(text, 65535)) {
    *error = "missing ports after protocol: write \"" + std::string(text) + ":*\" or \"" +
             std::string(text) + ":443\"";
    return std::nullopt;
  } else {
    spec.protos = {kProtoTcp, kProtoUdp, kProtoSctp};
  }
  if (!parsePorts(ports, &spec.ports, error)) return std::nullopt;
  return spec;
}

bool FilterRule::matchesProtoPort(uint8_t proto, uint16_t port) const {
  if (!protos.empty() && std::find(protos.begin(), protos.end(), proto) == protos.end()) {
    return false;
  }
  if (!protoHasPorts(proto)) return true;
  for (const PortRange& r : ports) {
    if (r.contains(port)) return true;
  }
  return false;
}

size_t PrefixSet::AddrHash::operator()(const wg::IpAddr& a) const {
  uint64_t h = 1469598103934665603ull ^ static_cast<uint8_t>(a.family);
  for (uint8_t b : a.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

PrefixSet::PrefixSet(std::vector<wg::IpPrefix> prefixes) : prefixes_(std::move(prefixes)) {
  hosts_.reserve(prefixes_.size());
  for (const wg::IpPrefix& p : prefixes_) {
    wg::IpPrefix n = p.normalized();
    if (n.bits == n.addr.maxBits()) {
      hosts_.insert(n.addr);
    } else {
      wide_.push_back(n);
    }
  }
}

bool PrefixSet::contains(const wg::IpAddr& addr) const {
  if (hosts_.count(addr)) return true;
  for (const wg::IpPrefix& p : wide_) {
    if (p.contains(addr)) return true;
  }
  return false;
}

PacketFilter::PacketFilter(std::vector<FilterRule> rules) : rules_(std::move(rules)) {}

FilterVerdict PacketFilter::evaluate(const wg::IpAddr& src, uint8_t proto,
                                     uint16_t dst_port) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const FilterRule& r = rules_[i];
    if (r.srcs && r.matchesProtoPort(proto, dst_port) && r.srcs->contains(src)) {
      return {true, static_cast<int>(i)};
    }
  }
  return {};
}

}  // namespace gatehouse::control
