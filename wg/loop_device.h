// LoopDevice: a WireGuard Device driven by a libuv loop with a real TUN interface, a real UDP
// port and the UAPI configuration socket: the body of `gatehouse wireguard IFNAME`, the
// userspace equivalent of `wireguard-go -f IFNAME` (reference §11.1).
//
// Pipeline, per loop wakeup:
//   TUN readable  → read up to kTunBatch frames → (offload mode) offload::split each TSO
//                   super-packet into segments → Device::onTunPacket each → flush.
//   UDP readable  → recvmmsg (up to kUdpBatches × 64 messages, while the socket has more; a
//                   UDP_GRO message holds several datagrams)
//                   → Device::setHandshakeBacklog(handshake messages in hand)
//                   → Device::onNetworkPacket each; writeToTun collects the decrypted packets
//                   → after each recvmmsg batch: offload::Coalescer → one TUN write per TCP
//                     super-packet (virtio_net_hdr GSO) or passed-through packet → flush.
//   timer         → Device::onTimer; once a second also housekeeping (socket file, TUN link).
//   UAPI client   → UapiConnection::feed → write the reply → flush.
// "Flush" writes collected TUN packets, sends every datagram the Device queued through
// DeviceOutput in one sendmmsg batch (consecutive same-size datagrams to one endpoint become
// UDP GSO sends) and re-arms the timer to Device::nextTimerDeadline() (at most 1 s away).
// Nothing is held across wakeups: latency stays one batch. In plain mode (no IFF_VNET_HDR, see
// LoopDeviceOptions::tun_offload) TUN reads are single packets and TUN writes are immediate.
//
// Sticky source (reference E2): the Device API carries no local address, so the loop remembers,
// per remote endpoint, the local address of the last datagram from it that the Device accepted
// (no drop counted) and sends replies to that endpoint from there, until the Device asks to
// clear it (DeviceOutput::clearSource: handshake retransmit, or silence after data). If the
// kernel rejects the address (it was removed), the datagram goes out with a routing-chosen
// source instead.
//
// Threads and ownership: everything runs on the loop thread that calls start(). LoopDevice owns
// the Device, the TUN, the UDP transport, every libuv handle it opens and the UAPI connections;
// it borrows the loop, the Random and the log function. Handles are freed only in their close
// callbacks: after stop(), run the loop until uv_run returns before destroying the LoopDevice.
// The on_stopped callback fires once, synchronously inside stop().
//
// Receive filter (optional, setReceiveFilter): decrypted packets pass ReceiveFilter::allowInbound
// one by one before they are collected for coalescing (a denied packet never reaches the TUN and
// is counted in LoopCounters::filter_denied); packets read from the TUN are noted as outbound
// flows (once per TSO super-packet: its segments share one flow). Unset costs one pointer check.
//
// Exit conditions (U3): SIGINT/SIGTERM (unless handle_signals is off: an embedding process that
// owns its signals), TUN removal, deletion of the socket file, or stop().
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "wg/device.h"
#include "wg/env.h"
#include "wg/offload.h"
#include "wg/receive_filter.h"
#include "wg/transport/tun.h"
#include "wg/transport/udp.h"
#include "wg/uapi.h"

namespace gatehouse::wg {

enum class LogLevel : uint8_t { kDebug = 0, kInfo = 1, kError = 2, kSilent = 3 };
using LogFn = std::function<void(LogLevel, const std::string&)>;

struct LoopDeviceOptions {
  std::string ifname;
  int mtu = TunDevice::kDefaultMtu;
  std::string socket_dir = "/var/run/wireguard";
  uint16_t listen_port = 0;  // 0 = any, like wireguard-go before `wg set listen-port`
  // Offloads: TSO/GRO on the TUN (IFF_VNET_HDR) and UDP GSO/GRO. Either falls back to the
  // plain path by itself when the kernel refuses; these switches force plain mode (A/B runs).
  bool tun_offload = true;
  bool udp_offload = true;
  bool handle_signals = true;  // SIGINT/SIGTERM stop the device (the standalone daemon)
};

// I/O-level counters, next to the Device's drop counters.
struct LoopCounters {
  uint64_t tun_read_packets = 0;
  uint64_t tun_write_packets = 0;
  uint64_t tun_write_dropped = 0;  // TUN queue full or packet refused
  uint64_t tun_gso_reads = 0;      // TUN reads that carried a TSO super-packet
  uint64_t tun_gro_writes = 0;     // TUN writes that carried several coalesced packets
  uint64_t tun_split_errors = 0;   // TUN frames with a virtio header we could not split
  uint64_t udp_recv_datagrams = 0;
  uint64_t udp_sent_datagrams = 0;
  uint64_t filter_denied = 0;  // decrypted packets the receive filter refused
  uint64_t wakeups = 0;
};

class LoopDevice final : public UapiHost, public DeviceOutput {
 public:
  static constexpr size_t kTunBatch = 64;
  static constexpr size_t kUdpBatches = 4;
  static constexpr size_t kFlushAt = 256;     // queued datagrams that force a send
  static constexpr size_t kTunFlushAt = 512;  // collected TUN packets that force a write

  LoopDevice(uv_loop_t* loop, Random& random, LogFn log, LoopDeviceOptions options);
  ~LoopDevice() override;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  // Creates the TUN interface, binds UDP, opens the UAPI socket, installs signal handlers and
  // starts polling. Returns 0, or a positive errno with *what naming the step that failed; on
  // failure call stop() and run the loop to release what was started.
  int start(std::string* what);
  // Idempotent. Closes every handle and the UAPI socket file; the loop then runs dry.
  void stop(const std::string& reason);
  bool stopping() const { return stopping_; }
  // True once stop() has run and its member handles have finished closing: the LoopDevice may be
  // destroyed now (UDP polls and UAPI clients close in the same loop iteration and never touch
  // the LoopDevice from their close callbacks).
  bool closed() const { return stopping_ && open_handles_ == 0; }
  const std::string& stopReason() const { return stop_reason_; }
  void setOnStopped(std::function<void()> cb) { on_stopped_ = std::move(cb); }

  Device& device() { return *device_; }
  const Device& device() const { return *device_; }
  const LoopCounters& counters() const { return counters_; }
  const UdpCounters& udpCounters() const { return udp_.counters(); }
  const std::string& socketPath() const { return socket_path_; }
  const std::string& ifname() const { return options_.ifname; }
  int ifindex() const { return tun_ ? tun_->ifindex() : 0; }

  // Borrowed; nullptr (the default) turns filtering off. Loop thread only.
  void setReceiveFilter(ReceiveFilter* filter) { filter_ = filter; }

  // UapiHost.
  uint16_t listenPort() const override { return udp_.port(); }
  int setListenPort(uint16_t port) override;
  uint32_t fwmark() const override { return udp_.fwmark(); }
  int setFwmark(uint32_t mark) override;

  // DeviceOutput: datagrams are queued until the end of the batch; TUN writes too in offload
  // mode (to coalesce them), else they go out at once.
  void sendToNetwork(const Endpoint& to, std::span<const uint8_t> datagram) override;
  void writeToTun(std::span<const uint8_t> ip_packet) override;
  void clearSource(const Endpoint& to) override;
  bool tunOffload() const { return tun_ && tun_->vnetHdr(); }

 private:
  struct UdpPoll;
  struct Client;
  struct Queued {
    Endpoint to;
    LocalAddr source;
    size_t offset, length;
  };
  struct EndpointHash {
    size_t operator()(const Endpoint& e) const;
  };

  void log(LogLevel level, const std::string& msg) const;
  int startUapi(std::string* what);
  void startUdpPolls();
  void startUdpPoll(UdpPoll* p);
  void stopUdpPolls();
  void closeHandle(uv_handle_t* h);
  static void onHandleClosed(uv_handle_t* h);

  void onTunReadable();
  void onUdpReadable(int fd);
  void onTimer();
  void housekeeping();
  void flush();
  void flushTun();
  void rememberSource(const InDatagram& d);
  void armTimer(const Now& now);

  void onUapiConnection();
  void onClientRead(Client* c, ssize_t nread, const uv_buf_t* buf);
  void clientWrite(Client* c, std::string data);
  void closeClient(Client* c, bool graceful);

  uv_loop_t* loop_;
  Random& random_;
  LogFn log_;
  LoopDeviceOptions options_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<TunDevice> tun_;
  UdpTransport udp_;

  uv_poll_t tun_poll_;
  uv_timer_t timer_;
  uv_signal_t sigint_, sigterm_;
  uv_pipe_t uapi_server_;
  std::vector<UdpPoll*> udp_polls_;
  std::unordered_set<Client*> clients_;
  int open_handles_ = 0;  // member handles still open or closing

  std::vector<uint8_t> tun_buf_;
  offload::PacketBatch tun_segments_;  // split TUN reads
  offload::PacketBatch tun_pending_;   // decrypted packets awaiting coalescing
  std::vector<std::span<uint8_t>> tun_spans_;
  std::vector<iovec> tun_iov_;
  offload::Coalescer coalescer_;
  std::vector<std::unique_ptr<RecvBatch>> recv_batches_;
  std::vector<uint8_t> arena_;
  std::vector<Queued> queue_;
  std::vector<OutDatagram> out_;
  std::unordered_map<Endpoint, LocalAddr, EndpointHash> sticky_;
  // The last (from, local) pair stored in sticky_: most datagrams repeat it, so the map and the
  // drop-counter check are skipped for them. Reset whenever sticky_ changes otherwise.
  std::optional<std::pair<Endpoint, LocalAddr>> sticky_last_;
  std::optional<std::pair<Endpoint, LocalAddr>> send_last_;  // sticky_ lookup cache for sends
  const InDatagram* cur_in_ = nullptr;                       // the datagram being processed, if any
  ReceiveFilter* filter_ = nullptr;
  Now rx_now_{};  // the time of the UDP batch being decrypted (for the filter)

  std::string socket_path_;
  ino_t socket_ino_ = 0;
  int64_t next_housekeeping_ns_ = 0;
  bool stopping_ = false;
  std::string stop_reason_;
  std::function<void()> on_stopped_;
  LoopCounters counters_;
};

}  // namespace gatehouse::wg
