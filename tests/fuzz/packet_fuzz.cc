// libFuzzer target: arbitrary datagrams into a Device that has a live session, and arbitrary
// bytes as TUN packets. The first input byte picks the path and a message type to impersonate,
// so the fuzzer reaches the handshake, cookie and transport parsers past the size checks.
// Every input must be dropped and counted or delivered; nothing may crash or leak.
#include <cstring>
#include <memory>

#include "tests/wg/device_pair.h"

using namespace gatehouse::wg;
using namespace gatehouse::wg::testing;

namespace {

struct World {
  World() {
    pair.send(pair.a, ipv4Packet(pair.a.ip, pair.b.ip, 100));
    pair.deliver();
  }
  DevicePair pair;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* world = new World();
  DevicePair& p = world->pair;
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::vector<uint8_t> msg(data + 1, data + size);
  if (mode & 0x80) {
    p.b.device.onTunPacket(msg, p.now, p.b.out);
  } else {
    static const size_t kSizes[] = {0, kInitiationSize, kResponseSize, kCookieReplySize, 0};
    uint32_t type = mode & 7;
    if (type >= 1 && type <= 4 && msg.size() >= 4) {
      if (type != 4) msg.resize(kSizes[type]);
      if (msg.size() < kTransportMinSize) msg.resize(kTransportMinSize);
      storeLe32(msg.data(), type);
      // Aim transport packets at B's live receiving index half of the time.
      Peer* peer = p.b.device.internals().findPeer(p.a.pk);
      if (type == 4 && (mode & 8) && peer && peer->current) {
        storeLe32(msg.data() + kTransportReceiverOff, peer->current->local_index);
      }
    }
    p.b.device.onNetworkPacket(msg, p.a.endpoint, p.now, p.b.out);
  }
  if (mode & 0x40) p.step(3 * kSec);
  p.b.device.onTimer(p.now, p.b.out);
  p.b.out.net.clear();
  p.b.out.tun.clear();
  return 0;
}
