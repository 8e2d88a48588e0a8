// Handshake cost on one core: a responder consuming an initiation and producing its response
// (the work a server does per handshake, including mac1 and two DH), and a full handshake
// (both sides). Reported as handshakes per second.
#include <benchmark/benchmark.h>

#include "tests/wg/device_pair.h"

using namespace gatehouse::wg;
using namespace gatehouse::wg::testing;

static void BM_FullHandshake(benchmark::State& state) {
  DevicePair p;
  Peer* pa = peerOf(p.a, p.b.pk);
  for (auto _ : state) {
    pa->last_sent_handshake_ns = INT64_MIN / 2;
    p.step(25 * kMs);  // past the 20 ms initiation flood guard
    p.a.device.internals().sendHandshakeInitiation(*pa, false, p.now, p.a.out);
    p.deliver();
  }
  state.counters["handshakes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FullHandshake)->Unit(benchmark::kMicrosecond);

static void BM_ResponderConsumeInitiation(benchmark::State& state) {
  DevicePair p;
  Peer* pa = peerOf(p.a, p.b.pk);
  for (auto _ : state) {
    state.PauseTiming();
    pa->last_sent_handshake_ns = INT64_MIN / 2;
    p.step(25 * kMs);
    p.a.device.internals().sendHandshakeInitiation(*pa, false, p.now, p.a.out);
    Datagram init = std::move(p.a.out.net.back());
    p.a.out.net.clear();
    state.ResumeTiming();
    p.b.device.onNetworkPacket(init.bytes, p.a.endpoint, p.now, p.b.out);
    state.PauseTiming();
    p.b.out.net.clear();
    state.ResumeTiming();
  }
  state.counters["handshakes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ResponderConsumeInitiation)->Unit(benchmark::kMicrosecond);

// Steady-state transport: encrypt on A, decrypt on B, 1420-byte packets, no I/O.
static void BM_TransportRoundTrip1420(benchmark::State& state) {
  DevicePair p;
  auto pkt = ipv4Packet(p.a.ip, p.b.ip, 1420);
  p.send(p.a, pkt);
  p.deliver();
  for (auto _ : state) {
    p.a.device.onTunPacket(pkt, p.now, p.a.out);
    Datagram& d = p.a.out.net.back();
    p.b.device.onNetworkPacket(d.bytes, p.a.endpoint, p.now, p.b.out);
    p.a.out.net.clear();
    p.b.out.tun.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 1420);
}
BENCHMARK(BM_TransportRoundTrip1420);

BENCHMARK_MAIN();
