// TunDevice: a Linux TUN interface (/dev/net/tun, IFF_TUN | IFF_NO_PI): one IP packet per read
// or write on a non-blocking fd. The device loop watches fd() with uv_poll_t.
//
// Removal: when the interface is deleted (`ip link del`) the kernel detaches the fd; reads then
// fail with EBADFD (or EIO) and poll reports an error. read() returns TunStatus::kGone for
// those, and linkGone() checks by interface index for the periodic check.
//
// Offloads: IFF_VNET_HDR (GSO/GRO through virtio_net_hdr) is left for later; open() is the one
// place that would set it, and read/write would then carry the header.
//
// Thread safety: none; one owner thread. The TunDevice owns the fd and closes it in the
// destructor; closing it destroys a non-persistent interface.
#pragma once

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
  static std::unique_ptr<TunDevice> open(const std::string& name, int mtu, int* err);
  ~TunDevice();
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }  // as the kernel named it
  int ifindex() const { return ifindex_; }

  // Reads one packet into `buf`; *len receives its size on kOk.
  TunStatus read(std::span<uint8_t> buf, size_t* len);
  TunStatus write(std::span<const uint8_t> packet);

  int setMtu(int mtu);  // 0 or errno
  int mtu() const;      // the kernel's current value, or -errno
  // Brings the link up (ip link set up); wireguard-go leaves this to the user, and so do we by
  // default, but tests use it.
  int setUp();
  // True if the interface no longer exists (by index, so renames do not count as removal).
  bool linkGone() const;

 private:
  TunDevice(int fd, std::string name, int ifindex);
  int fd_;
  std::string name_;
  int ifindex_;
};

}  // namespace gatehouse::wg
