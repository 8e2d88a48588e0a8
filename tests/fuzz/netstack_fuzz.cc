// Fuzz target: arbitrary IP packets into the netstack's netif input path (what a peer's decrypted
// packets reach), with a TCP listener that echoes, closes or aborts, and a UDP echo socket.
//
// Input: one mode byte, then the packet. Mode bits make the packet pass the cheap checks so the
// fuzzer spends its time inside lwIP: 1 = rewrite source/destination to a peer and the node,
// 2 = fix the IPv4 header checksum, 4 = fix the TCP/UDP/ICMPv6 checksum. The node is
// 10.0.0.1 / fd00::1 and listens on TCP 80 and UDP 53.
#include <uv.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "wg/netstack/netstack.h"

using namespace gatehouse::wg;

namespace {

struct World {
  uv_loop_t loop;
  std::unique_ptr<Netstack> ns;
  std::shared_ptr<TcpListener> tcp;
  std::shared_ptr<UdpSocket> udp;
  std::vector<std::shared_ptr<TcpConn>> conns;
  size_t out_bytes = 0;
};

World* world() {
  static World* w = [] {
    auto* w = new World;
    uv_loop_init(&w->loop);
    NetstackOptions o;
    o.addresses = {*IpAddr::parse("10.0.0.1"), *IpAddr::parse("fd00::1")};
    auto r = Netstack::create(&w->loop, o,
                              [w](std::span<const uint8_t> p) { w->out_bytes += p.size(); });
    if (!r) abort();
    w->ns = std::move(r.value());
    w->tcp =
        w->ns
            ->listenTcp(80,
                        [w](std::shared_ptr<TcpConn> c) {
                          TcpConn* raw = c.get();
                          c->setHandlers({.on_data = [raw](std::span<const uint8_t> d) -> size_t {
                                            if (d[0] == 'A') raw->abort();
                                            if (d[0] == 'C') raw->close();
                                            if (d[0] == 'S') raw->shutdownWrite();
                                            if (d[0] == 'P') return 0;  // stall: window closes
                                            if (raw->open()) (void)raw->write(d);
                                            return d.size();
                                          },
                                          .on_eof = [raw] { raw->close(); }});
                          if (w->conns.size() > 64) w->conns.erase(w->conns.begin());
                          w->conns.push_back(std::move(c));
                        })
            .value();
    w->udp = w->ns->listenUdp(53).value();
    UdpSocket* u = w->udp.get();
    u->setOnMessage([u](const Endpoint& from, std::span<const uint8_t> d) { u->sendTo(from, d); });
    return w;
  }();
  return w;
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += (p[i] << 8) | p[i + 1];
  if (n & 1) acc += p[n - 1] << 8;
  return acc;
}

uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}

void fixTransportChecksum(std::vector<uint8_t>& p, size_t off, uint8_t proto, const uint8_t* src,
                          const uint8_t* dst, size_t alen) {
  if (off > p.size()) return;
  size_t len = p.size() - off;
  size_t at = proto == 6 ? 16 : proto == 17 ? 6 : proto == 58 ? 2 : proto == 1 ? 2 : SIZE_MAX;
  if (at == SIZE_MAX || len < at + 2) return;
  p[off + at] = p[off + at + 1] = 0;
  uint32_t acc = 0;
  if (proto != 1) {  // ICMPv4 has no pseudo-header
    acc = sum16(src, alen, acc);
    acc = sum16(dst, alen, acc);
    acc += proto + static_cast<uint32_t>(len);
  }
  acc = sum16(p.data() + off, len, acc);
  uint16_t c = fold(acc);
  p[off + at] = static_cast<uint8_t>(c >> 8);
  p[off + at + 1] = static_cast<uint8_t>(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World* w = world();
  if (size < 2) return 0;
  uint8_t mode = data[0];
  std::vector<uint8_t> p(data + 1, data + size);
  bool v4 = (p[0] >> 4) == 4, v6 = (p[0] >> 4) == 6;
  static const uint8_t kSrc4[4] = {10, 0, 0, 2}, kDst4[4] = {10, 0, 0, 1};
  static const uint8_t kSrc6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  static const uint8_t kDst6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (v4 && p.size() >= 20) {
    size_t ihl = std::max<size_t>((p[0] & 15) * 4, 20);
    if (mode & 1) {
      std::memcpy(&p[12], kSrc4, 4);
      std::memcpy(&p[16], kDst4, 4);
    }
    if ((mode & 4) && ihl <= p.size()) {
      fixTransportChecksum(p, ihl, p[9], &p[12], &p[16], 4);
    }
    if ((mode & 2) && ihl <= p.size()) {
      p[10] = p[11] = 0;
      uint16_t c = fold(sum16(p.data(), ihl));
      p[10] = static_cast<uint8_t>(c >> 8);
      p[11] = static_cast<uint8_t>(c);
    }
  } else if (v6 && p.size() >= 40) {
    if (mode & 1) {
      std::memcpy(&p[8], kSrc6, 16);
      std::memcpy(&p[24], kDst6, 16);
    }
    if (mode & 4) fixTransportChecksum(p, 40, p[6], &p[8], &p[24], 16);
  }
  w->ns->input(p);
  uv_run(&w->loop, UV_RUN_NOWAIT);  // deferred tasks and lwIP timeouts
  return 0;
}
