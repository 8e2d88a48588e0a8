// libFuzzer target: arbitrary bytes into a UapiConnection on a fresh Device. The first input byte
// picks how the rest is split into feeds (1..256 bytes each), so partial lines and the get
// terminator are exercised across boundaries. Nothing may crash, leak or buffer past the line
// bound; every reply is a whole `...\n\n` block and nothing is written after a close.
#include <cerrno>
#include <cstdlib>
#include <string>

#include "wg/uapi.h"

using namespace gatehouse::wg;

namespace {

class NullOutput final : public DeviceOutput {
 public:
  void sendToNetwork(const Endpoint&, std::span<const uint8_t>) override {}
  void writeToTun(std::span<const uint8_t>) override {}
};

class FuzzHost final : public UapiHost {
 public:
  uint16_t listenPort() const override { return port_; }
  int setListenPort(uint16_t port) override {
    if (port == 1) return EADDRINUSE;  // a reachable failure path
    port_ = port;
    return 0;
  }
  uint32_t fwmark() const override { return mark_; }
  int setFwmark(uint32_t mark) override {
    mark_ = mark;
    return 0;
  }

 private:
  uint16_t port_ = 0;
  uint32_t mark_ = 0;
};

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = size_t{data[0]} + 1;
  data++;
  size--;
  FakeRandom random(1);
  Device device(random);
  FuzzHost host;
  NullOutput output;
  UapiOptions options;
  options.max_peers = 64;
  UapiConnection conn(device, host, output, options);
  Now now{10 * kSec, 1'700'000'000 * kSec};
  std::string reply;
  for (size_t off = 0; off < size; off += step) {
    const bool closed_before = conn.wantsClose();
    const size_t before = reply.size();
    const size_t n = size - off < step ? size - off : step;
    conn.feed(std::span<const uint8_t>(data + off, n), now, reply);
    check(conn.bufferedBytes() <= options.max_line_bytes);
    check(!closed_before || reply.size() == before);
    now.mono_ns += kSec;
    now.wall_ns += kSec;
  }
  check(reply.empty() || (reply.size() >= 2 && reply.compare(reply.size() - 2, 2, "\n\n") == 0));
  check(device.peerCount() <= options.max_peers);
  return 0;
}
