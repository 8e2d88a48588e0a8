// libFuzzer target: arbitrary bytes as a TUN read with a virtio_net_hdr (wg/offload.h split),
// then the resulting packets through the coalescer and each coalesced frame back through split.
// Malformed frames must be rejected with an error, never crash, read out of bounds or grow
// memory without bound; a frame the coalescer built must always split again.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wg/offload.h"

using namespace gatehouse::wg::offload;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> frame(data, data + size);
  PacketBatch out;
  SplitError e = split(frame, out);
  if (e != SplitError::kNone && !out.empty()) abort();
  if (out.size() > kMaxSegments) abort();

  std::vector<std::span<uint8_t>> spans;
  for (size_t i = 0; i < out.size(); ++i) spans.push_back(out[i]);
  Coalescer c;
  c.coalesce(spans);
  size_t packets = 0;
  for (size_t g = 0; g < c.groups().size(); ++g) {
    packets += c.groups()[g].count;
    std::vector<uint8_t> f = c.frame(spans, g);
    if (c.groups()[g].count < 2) continue;
    if (f.size() - kVnetHdrLen > kMaxCoalescedLen) abort();
    PacketBatch again;
    if (split(f, again) != SplitError::kNone || again.size() != c.groups()[g].count) abort();
  }
  if (packets != spans.size()) abort();
  return 0;
}
