// TunDevice: a Linux TUN interface (/dev/net/tun, IFF_TUN | IFF_NO_PI): one IP packet per read
// or write on a non-blocking fd. The device loop watches fd() with uv_poll_t.
//
// Offloads: open(..., offload=true) asks for IFF_VNET_HDR with TSO4/TSO6 and checksum offload
// (wireguard-go does the same since 2023): every read and write then carries a 10-byte
// virtio_net_hdr (wg/offload.h), and reads return TCP super-packets of up to 64 KiB. If the
// kernel refuses any step the device is reopened in plain mode; vnetHdr() tells which.
//
// Removal: when the interface is deleted (`ip link del`) the kernel detaches the fd; reads then
// fail with EBADFD (or EIO) and poll reports an error. read() returns TunStatus::kGone for
// those, and linkGone() checks by interface index for the periodic check.
//
// Thread safety: none; one owner thread. The TunDevice owns the fd and closes it in the
// destructor; closing it destroys a non-persistent interface.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace gatehouse::wg {

enum class TunStatus : uint8_t {
  kOk,     // a packet was read/written
  kAgain,  // nothing to read / kernel queue full (the packet was not written)
  kGone,   // the interface was removed; the daemon should exit
  kError,  // another error for this packet (see errno); not fatal
};

class TunDevice {
 public:
  static constexpr int kDefaultMtu = 1420;

  // Creates (or attaches to) the TUN interface `name` and sets its MTU. Returns nullptr and sets
  // *err to a positive errno on failure.
  static std::unique_ptr<TunDevice> open(const std::string& name, int mtu, int* err,
                                         bool offload = false);
  ~TunDevice();
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }  // as the kernel named it
  int ifindex() const { return ifindex_; }

  // True if reads and writes carry a virtio_net_hdr and the kernel may send super-packets.
  bool vnetHdr() const { return vnet_hdr_; }

  // Reads one frame into `buf` (virtio_net_hdr first when vnetHdr()); *len receives its size.
  TunStatus read(std::span<uint8_t> buf, size_t* len);
  // Writes one plain IP packet (with a zero virtio_net_hdr in front when vnetHdr()).
  TunStatus write(std::span<const uint8_t> packet);
  // Writes one frame gathered from `iov` (the caller supplies the virtio_net_hdr if any).
  TunStatus writev(const iovec* iov, int count);

  int setMtu(int mtu);  // 0 or errno
  int mtu() const;      // the kernel's current value, or -errno
  // Brings the link up (ip link set up); wireguard-go leaves this to the user, and so do we by
  // default, but tests use it.
  int setUp();
  // True if the interface no longer exists (by index, so renames do not count as removal).
  bool linkGone() const;

 private:
  TunDevice(int fd, std::string name, int ifindex, bool vnet_hdr);
  int fd_;
  bool vnet_hdr_;
  std::string name_;
  int ifindex_;
};

}  // namespace gatehouse::wg
