// Two sans-I/O Devices wired to each other in memory with a fake clock (testing ladder step 3).
// Datagrams sit in per-direction queues until deliver(); a filter can drop or record them.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "wg/crypto/x25519.h"
#include "wg/device.h"
#include "wg/device_impl.h"

namespace gatehouse::wg::testing {

struct Datagram {
  Endpoint to;
  std::vector<uint8_t> bytes;
};

class Recorder : public DeviceOutput {
 public:
  void sendToNetwork(const Endpoint& to, std::span<const uint8_t> d) override {
    net.push_back({to, {d.begin(), d.end()}});
  }
  void writeToTun(std::span<const uint8_t> p) override { tun.emplace_back(p.begin(), p.end()); }
  std::deque<Datagram> net;
  std::vector<std::vector<uint8_t>> tun;
};

struct TestNode {
  TestNode(uint64_t seed, Endpoint ep, std::string tunnel_ip)
      : random(seed), device(random), endpoint(ep), ip(*IpAddr::parse(tunnel_ip)) {
    crypto::Key32 r;
    random.fill(r);
    sk = crypto::privateKeyFromRandom(r);
    pk = crypto::publicKey(sk);
  }
  FakeRandom random;
  Device device;
  Endpoint endpoint;
  IpAddr ip;
  crypto::Key32 sk, pk;
  Recorder out;
};

// An IPv4 UDP-like packet of `size` bytes from `src` to `dst` (contents: a counter pattern).
inline std::vector<uint8_t> ipv4Packet(const IpAddr& src, const IpAddr& dst, size_t size,
                                       uint8_t fill = 0xab) {
  std::vector<uint8_t> p(size, fill);
  p[0] = 0x45;
  p[1] = 0;
  p[2] = static_cast<uint8_t>(size >> 8);
  p[3] = static_cast<uint8_t>(size);
  p[9] = 17;
  std::copy(src.bytes.begin(), src.bytes.begin() + 4, p.begin() + 12);
  std::copy(dst.bytes.begin(), dst.bytes.begin() + 4, p.begin() + 16);
  return p;
}

class DevicePair {
 public:
  DevicePair()
      : a(1, *Endpoint::parse("127.0.0.1:51001"), "10.9.0.1"),
        b(2, *Endpoint::parse("127.0.0.1:51002"), "10.9.0.2") {
    now.mono_ns = 1000 * kSec;
    now.wall_ns = 1'700'000'000LL * kSec;
    a.device.setPrivateKey(a.sk, now);
    b.device.setPrivateKey(b.sk, now);
    connect(a, b);
    connect(b, a);
  }

  void connect(TestNode& from, TestNode& to) {
    from.device.addPeer(to.pk, now);
    from.device.setEndpoint(to.pk, to.endpoint);
    from.device.addAllowedIp(to.pk, IpPrefix{to.ip, 32});
  }

  TestNode& other(TestNode& n) { return &n == &a ? b : a; }

  // Moves every queued datagram to its destination until both queues are empty (bounded).
  // `filter` returns false to drop a datagram on the wire.
  int deliver(std::function<bool(TestNode& from, const Datagram&)> filter = nullptr) {
    int moved = 0;
    for (int round = 0; round < 100; ++round) {
      bool any = false;
      for (TestNode* n : {&a, &b}) {
        while (!n->out.net.empty()) {
          Datagram d = std::move(n->out.net.front());
          n->out.net.pop_front();
          any = true;
          ++moved;
          if (filter && !filter(*n, d)) continue;
          TestNode& dst = other(*n);
          if (d.to == dst.endpoint)
            dst.device.onNetworkPacket(d.bytes, from_override ? *from_override : n->endpoint, now,
                                       dst.out);
        }
      }
      if (!any) break;
    }
    return moved;
  }

  // Advances the fake clock in steps, firing timers and delivering traffic as it goes.
  void advance(int64_t ns, std::function<bool(TestNode&, const Datagram&)> filter = nullptr) {
    int64_t end = now.mono_ns + ns;
    while (true) {
      int64_t next = std::min(a.device.nextTimerDeadline(), b.device.nextTimerDeadline());
      if (next > end) break;
      if (next > now.mono_ns) step(next - now.mono_ns);
      a.device.onTimer(now, a.out);
      b.device.onTimer(now, b.out);
      deliver(filter);
    }
    step(end - now.mono_ns);
    a.device.onTimer(now, a.out);
    b.device.onTimer(now, b.out);
    deliver(filter);
  }

  void step(int64_t ns) {
    now.mono_ns += ns;
    now.wall_ns += ns;
  }

  void send(TestNode& from, const std::vector<uint8_t>& packet) {
    from.device.onTunPacket(packet, now, from.out);
  }

  Now now;
  TestNode a, b;
  std::optional<Endpoint> from_override;
};

inline Peer* peerOf(TestNode& n, const crypto::Key32& pk) {
  return n.device.internals().findPeer(pk);
}

inline uint32_t typeOf(const Datagram& d) { return d.bytes.empty() ? 0 : d.bytes[0]; }

}  // namespace gatehouse::wg::testing
