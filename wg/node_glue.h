// Node::Glue: the loop wiring of a Node (internal to wg/node.cc). It is the Device's
// DeviceOutput, owns the WireGuard UDP port (UdpTransport, watched with uv_poll) and the
// device timer, and moves packets between the Device and the Netstack:
//
//   UDP readable → recvmmsg → Device::onNetworkPacket → writeToTun (queued) → Netstack::input
//   Netstack output (lwIP) → Device::onTunPacket → sendToNetwork (queued) → sendmmsg batch
//   timer → Device::onTimer, re-armed to Device::nextTimerDeadline (≤ 1 s)
//
// Re-entrancy: the Device is never re-entered. Packets it emits while busy (decrypted inbound
// packets, and anything lwIP sends while processing them) are queued and drained once the
// Device call returns. Datagrams are flushed in one batch (sendmmsg, UDP GSO) at the end of each
// UDP read event, and otherwise (lwIP output from timers, application writes, posted tasks) by
// a prepare and a check handle, i.e. once per loop phase: never one send per packet.
//
// No sticky source address (reference E2) yet: replies leave from a routing-chosen address.
//
// Threads: loop thread only. Ownership: created and stopped by Node; after stop() it deletes
// itself once its libuv handles have closed.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "wg/device.h"
#include "wg/node.h"
#include "wg/transport/udp.h"

namespace gatehouse::wg {

class Node::Glue final : public DeviceOutput {
 public:
  Glue(Node& node, uv_loop_t* loop);
  ~Glue() override;

  Status start(uint16_t port);
  void stop();
  uint16_t port() const { return udp_.port(); }

  // Runs `fn` (which calls into the Device) with the queues drained and datagrams flushed after.
  void run(const std::function<void()>& fn);
  // lwIP produced an IP packet for the tunnel.
  void fromNetstack(std::span<const uint8_t> packet);

  void sendToNetwork(const Endpoint& to, std::span<const uint8_t> datagram) override;
  void writeToTun(std::span<const uint8_t> ip_packet) override;

 private:
  struct Poll {
    uv_poll_t handle;
    Glue* glue;
    int fd;
  };
  void onReadable(Poll* p, int status);
  void drain();
  void flush();
  void armTimer();
  void handleClosed();
  static void flushPending(uv_handle_t* h);

  Node& node_;
  uv_loop_t* loop_;
  UdpTransport udp_;
  std::vector<Poll*> polls_;
  uv_timer_t timer_;
  uv_prepare_t prepare_;  // flushes before the loop blocks (timer-phase output)
  uv_check_t check_;      // flushes after I/O callbacks (writes from posted tasks)
  int open_handles_ = 0;
  bool stopped_ = false;
  bool busy_ = false;
  bool dirty_ = false;  // the Device ran outside run(): flush and re-arm at the phase's end

  std::unique_ptr<RecvBatch> batch_;
  std::deque<std::vector<uint8_t>> to_netstack_;
  std::deque<std::vector<uint8_t>> to_device_;
  std::vector<uint8_t> out_bytes_;
  std::vector<std::pair<Endpoint, std::pair<size_t, size_t>>> out_index_;
  std::vector<OutDatagram> out_;
};

}  // namespace gatehouse::wg
