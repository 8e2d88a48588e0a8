#include "wg/transport/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace gatehouse::wg {
namespace {

// Runs an interface ioctl on a throwaway datagram socket (the TUN fd does not take them).
int ifIoctl(unsigned long request, ifreq* ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  int rc = ioctl(s, request, ifr) == 0 ? 0 : errno;
  ::close(s);
  return rc;
}

void setName(ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
}

}  // namespace

TunDevice::TunDevice(int fd, std::string name, int ifindex, bool vnet_hdr)
    : fd_(fd), vnet_hdr_(vnet_hdr), name_(std::move(name)), ifindex_(ifindex) {}

TunDevice::~TunDevice() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// Opens /dev/net/tun and attaches it to `name`; with `vnet` also turns on the virtio header and
// TSO/checksum offload. Returns the fd or -errno.
int openTun(const std::string& name, bool vnet, std::string* actual) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -errno;
  ifreq ifr;
  setName(&ifr, name);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  int hdr_size = 10;  // sizeof(struct virtio_net_hdr): no mergeable-buffers field
  unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0 || (vnet && (ioctl(fd, TUNSETVNETHDRSZ, &hdr_size) != 0 ||
                                                   ioctl(fd, TUNSETOFFLOAD, offloads) != 0))) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  actual->assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  return fd;
}

}  // namespace

std::unique_ptr<TunDevice> TunDevice::open(const std::string& name, int mtu, int* err,
                                           bool offload) {
  *err = 0;
  if (name.empty() || name.size() >= IFNAMSIZ) {
    *err = EINVAL;
    return nullptr;
  }
  std::string actual;
  int fd = offload ? openTun(name, true, &actual) : -1;
  bool vnet = fd >= 0;
  // A kernel without the offloads, or a persistent interface created without IFF_VNET_HDR:
  // plain mode works everywhere.
  if (fd < 0) fd = openTun(name, false, &actual);
  if (fd < 0) {
    *err = -fd;
    return nullptr;
  }
  int ifindex = static_cast<int>(if_nametoindex(actual.c_str()));
  std::unique_ptr<TunDevice> tun(new TunDevice(fd, actual, ifindex, vnet));
  if (mtu > 0) {
    if (int e = tun->setMtu(mtu); e != 0) {
      *err = e;
      return nullptr;
    }
  }
  return tun;
}

TunStatus TunDevice::read(std::span<uint8_t> buf, size_t* len) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) {
      *len = static_cast<size_t>(n);
      return TunStatus::kOk;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return TunStatus::kAgain;
    if (errno == EBADFD || errno == EIO || errno == ENXIO || errno == ENODEV) {
      return TunStatus::kGone;
    }
    return TunStatus::kError;
  }
}

TunStatus TunDevice::write(std::span<const uint8_t> packet) {
  static const uint8_t kZeroHdr[10] = {};
  iovec iov[2] = {{const_cast<uint8_t*>(kZeroHdr), sizeof kZeroHdr},
                  {const_cast<uint8_t*>(packet.data()), packet.size()}};
  return vnet_hdr_ ? writev(iov, 2) : writev(iov + 1, 1);
}

TunStatus TunDevice::writev(const iovec* iov, int count) {
  for (;;) {
    ssize_t n = ::writev(fd_, iov, count);
    if (n >= 0) return TunStatus::kOk;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return TunStatus::kAgain;
    if (errno == EBADFD || errno == ENXIO || errno == ENODEV) return TunStatus::kGone;
    return TunStatus::kError;  // e.g. EINVAL for a malformed packet, EIO when the link is down
  }
}

int TunDevice::setMtu(int mtu) {
  ifreq ifr;
  setName(&ifr, name_);
  ifr.ifr_mtu = mtu;
  return ifIoctl(SIOCSIFMTU, &ifr);
}

int TunDevice::mtu() const {
  ifreq ifr;
  setName(&ifr, name_);
  if (int e = ifIoctl(SIOCGIFMTU, &ifr); e != 0) return -e;
  return ifr.ifr_mtu;
}

int TunDevice::setUp() {
  ifreq ifr;
  setName(&ifr, name_);
  if (int e = ifIoctl(SIOCGIFFLAGS, &ifr); e != 0) return e;
  ifr.ifr_flags |= IFF_UP;
  return ifIoctl(SIOCSIFFLAGS, &ifr);
}

bool TunDevice::linkGone() const {
  char buf[IF_NAMESIZE];
  return if_indextoname(static_cast<unsigned>(ifindex_), buf) == nullptr && errno == ENXIO;
}

}  // namespace gatehouse::wg
