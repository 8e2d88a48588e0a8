#include "wg/receive_filter.h"

namespace gatehouse::wg {
namespace {

bool hasPorts(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }
bool isIcmp(uint8_t proto, uint8_t version) {
  return (version == 4 && proto == 1) || (version == 6 && proto == 58);
}
constexpr uint16_t kIcmpOther = 0xffff;

}  // namespace

std::optional<PacketFlow> parseFlow(std::span<const uint8_t> p) {
  if (p.empty()) return std::nullopt;
  PacketFlow f;
  size_t l4 = 0;
  bool first_fragment = true;
  uint8_t version = p[0] >> 4;
  if (version == 4) {
    if (p.size() < 20) return std::nullopt;
    size_t ihl = (p[0] & 0x0f) * 4u;
    if (ihl < 20 || p.size() < ihl) return std::nullopt;
    f.proto = p[9];
    f.src = IpAddr::v4(p.data() + 12);
    f.dst = IpAddr::v4(p.data() + 16);
    first_fragment = ((p[6] & 0x1f) | p[7]) == 0;
    l4 = ihl;
  } else if (version == 6) {
    if (p.size() < 40) return std::nullopt;
    f.proto = p[6];
    f.src = IpAddr::v6(p.data() + 8);
    f.dst = IpAddr::v6(p.data() + 24);
    l4 = 40;
  } else {
    return std::nullopt;
  }
  if (hasPorts(f.proto) && first_fragment) {
    if (p.size() < l4 + 4) return std::nullopt;
    f.src_port = static_cast<uint16_t>(p[l4] << 8 | p[l4 + 1]);
    f.dst_port = static_cast<uint16_t>(p[l4 + 2] << 8 | p[l4 + 3]);
  } else if (isIcmp(f.proto, version) && first_fragment) {
    // Echo is the only ICMP exchange tracked: a request is (id → 0), its reply (0 → id), so the
    // reply is the request's reverse. Every other type gets kIcmpOther and is never tracked.
    if (p.size() < l4 + 8) return std::nullopt;
    uint8_t type = p[l4];
    uint16_t id = static_cast<uint16_t>(p[l4 + 4] << 8 | p[l4 + 5]);
    bool request = type == (version == 4 ? 8 : 128);
    bool reply = type == (version == 4 ? 0 : 129);
    f.src_port = request ? id : reply ? 0 : kIcmpOther;
    f.dst_port = request ? 0 : reply ? id : kIcmpOther;
  }
  return f;
}

void ReceiveFilter::noteOutbound(std::span<const uint8_t> packet, const Now& now) {
  if (!policy_) return;  // nothing to enforce, nothing to track
  std::optional<PacketFlow> f = parseFlow(packet);
  if (!f) return;
  // Only echo requests open an ICMP flow: our echo replies and errors must not let the peer in.
  if (isIcmp(f->proto, f->src.isV4() ? 4 : 6) && (f->dst_port != 0 || f->src_port == kIcmpOther)) {
    return;
  }
  auto [it, inserted] = flows_.try_emplace(*f, now.mono_ns);
  it->second = now.mono_ns;
  if (inserted && flows_.size() > options_.max_flows) evictOldest();
}

bool ReceiveFilter::allowInbound(std::span<const uint8_t> packet, const Now& now) {
  if (!policy_) return true;
  std::optional<PacketFlow> f = parseFlow(packet);
  if (!f) {
    ++denied_;
    return false;
  }
  PacketFlow reverse{f->proto, f->dst, f->src, f->dst_port, f->src_port};
  if (auto it = flows_.find(reverse); it != flows_.end()) {
    if (now.mono_ns - it->second <= options_.flow_idle_ns) return true;
    flows_.erase(it);
  }
  if (policy_->allow(f->src, f->proto, f->dst_port)) return true;
  ++denied_;
  return false;
}

void ReceiveFilter::evictOldest() {
  // Drop the least recently used flow. O(n), but only when the table is full.
  auto oldest = flows_.begin();
  for (auto it = flows_.begin(); it != flows_.end(); ++it)
    if (it->second < oldest->second) oldest = it;
  flows_.erase(oldest);
}

}  // namespace gatehouse::wg
