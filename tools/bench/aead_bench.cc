// Transport crypto throughput at WireGuard's usual packet size (1420-byte tunnel MTU). The seam is
// measured beside a direct libsodium call in the same run, so any seam overhead shows up.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <vector>

#include "wg/crypto/aead.h"
#include "wg/crypto/blake2s.h"

namespace gw = gatehouse::wg::crypto;

namespace {

constexpr size_t kPacket = 1420;

gw::Key32 benchKey() {
  gw::Key32 k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i);
  return k;
}

void BM_AeadSeal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  gw::Key32 key = benchKey();
  std::vector<uint8_t> buf(n + gw::kAeadTagBytes, 0x42);
  uint64_t counter = 0;
  for (auto _ : state) {
    gw::aeadSeal(buf.data(), key, counter++, gw::Bytes(buf.data(), n), {});
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_AeadSeal)->Arg(kPacket)->Arg(64);

void BM_AeadSealOpen(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  gw::Key32 key = benchKey();
  std::vector<uint8_t> buf(n + gw::kAeadTagBytes, 0x42);
  uint64_t counter = 0;
  for (auto _ : state) {
    gw::aeadSeal(buf.data(), key, counter, gw::Bytes(buf.data(), n), {});
    bool ok = gw::aeadOpen(buf.data(), key, counter, buf, {});
    benchmark::DoNotOptimize(ok);
    ++counter;
  }
  // Bytes of payload that went through both directions.
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_AeadSealOpen)->Arg(kPacket);

void BM_LibsodiumDirectSeal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  gw::Key32 key = benchKey();
  std::vector<uint8_t> buf(n + gw::kAeadTagBytes, 0x42);
  uint8_t nonce[12] = {};
  for (auto _ : state) {
    crypto_aead_chacha20poly1305_ietf_encrypt(buf.data(), nullptr, buf.data(), n, nullptr, 0,
                                              nullptr, nonce, key.data());
    ++nonce[4];
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_LibsodiumDirectSeal)->Arg(kPacket);

void BM_Blake2s(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> in(n, 0x42);
  for (auto _ : state) {
    gw::Key32 h = gw::hash(in);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Blake2s)->Arg(kPacket)->Arg(148);

void BM_Kdf2(benchmark::State& state) {
  gw::Key32 c = benchKey(), t1, t2;
  uint8_t dh[32] = {1};
  for (auto _ : state) {
    gw::kdf2(t1, t2, c, gw::Bytes(dh, sizeof dh));
    benchmark::DoNotOptimize(t2);
  }
}
BENCHMARK(BM_Kdf2);

}  // namespace

BENCHMARK_MAIN();
