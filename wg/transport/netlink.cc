#include "wg/transport/netlink.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace gatehouse::wg::netlink {
namespace {

// A netlink message under construction: the header, a family header, then attributes, each
// padded to NLMSG_ALIGNTO. nlmsg_len is fixed up as parts are appended.
class Message {
 public:
  Message(uint16_t type, uint16_t flags, uint32_t seq) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    append(&h, sizeof h);
  }
  void append(const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + len);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()), 0);
    setLength();
  }
  void attr(uint16_t type, const void* data, size_t len) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    const auto* ap = reinterpret_cast<const uint8_t*>(&a);
    bytes_.insert(bytes_.end(), ap, ap + sizeof a);
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + len);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()), 0);
    setLength();
  }
  void attrU32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  void attrAddr(uint16_t type, const IpAddr& a) { attr(type, a.bytes.data(), a.size()); }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void setLength() {
    auto len = static_cast<uint32_t>(bytes_.size());
    std::memcpy(bytes_.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
  }
  std::vector<uint8_t> bytes_;
};

uint8_t familyOf(const IpAddr& a) { return a.isV4() ? AF_INET : AF_INET6; }

std::string opName(Op op) { return op == Op::kAdd ? "add" : "delete"; }

// An add creates or replaces (so re-applying is idempotent); a delete names what to remove.
Message change(Op op, uint16_t add_type, uint16_t delete_type, uint32_t seq) {
  if (op == Op::kAdd) {
    return Message(add_type, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq);
  }
  return Message(delete_type, NLM_F_REQUEST | NLM_F_ACK, seq);
}

}  // namespace

std::vector<uint8_t> linkRequest(uint32_t seq, int ifindex, bool up, uint32_t mtu) {
  Message m(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = up ? IFF_UP : 0;
  ifi.ifi_change = IFF_UP;
  m.append(&ifi, sizeof ifi);
  if (mtu != 0) m.attrU32(IFLA_MTU, mtu);
  return m.take();
}

std::vector<uint8_t> addressRequest(uint32_t seq, Op op, int ifindex, const IpPrefix& prefix) {
  Message m = change(op, RTM_NEWADDR, RTM_DELADDR, seq);
  ifaddrmsg ifa{};
  ifa.ifa_family = familyOf(prefix.addr);
  ifa.ifa_prefixlen = prefix.bits;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  if (prefix.addr.isV6()) ifa.ifa_flags = IFA_F_NODAD;
  m.append(&ifa, sizeof ifa);
  m.attrAddr(IFA_LOCAL, prefix.addr);
  m.attrAddr(IFA_ADDRESS, prefix.addr);
  // ifa_flags is 8 bits; IFA_FLAGS carries the same flags for kernels that read only it.
  if (prefix.addr.isV6()) m.attrU32(IFA_FLAGS, IFA_F_NODAD);
  return m.take();
}

std::vector<uint8_t> routeRequest(uint32_t seq, Op op, int ifindex, const IpPrefix& dst,
                                  const std::optional<IpAddr>& src) {
  Message m = change(op, RTM_NEWROUTE, RTM_DELROUTE, seq);
  rtmsg rt{};
  rt.rtm_family = familyOf(dst.addr);
  rt.rtm_dst_len = dst.bits;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  // As iproute2 does: a route through a device with no gateway is link scope; a delete matches
  // any scope.
  rt.rtm_scope = op == Op::kAdd ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE;
  rt.rtm_type = RTN_UNICAST;
  m.append(&rt, sizeof rt);
  IpPrefix n = dst.normalized();
  m.attrAddr(RTA_DST, n.addr);
  m.attrU32(RTA_OIF, static_cast<uint32_t>(ifindex));
  if (src && src->family == dst.addr.family) m.attrAddr(RTA_PREFSRC, *src);
  return m.take();
}

int parseAck(std::span<const uint8_t> reply, uint32_t seq) {
  size_t off = 0;
  bool any = false;
  while (off + sizeof(nlmsghdr) <= reply.size()) {
    nlmsghdr h;
    std::memcpy(&h, reply.data() + off, sizeof h);
    if (h.nlmsg_len < sizeof h || off + h.nlmsg_len > reply.size()) return EPROTO;
    any = true;
    if (h.nlmsg_seq == seq && h.nlmsg_type == NLMSG_ERROR) {
      if (h.nlmsg_len < NLMSG_LENGTH(sizeof(int))) return EPROTO;
      int err;
      std::memcpy(&err, reply.data() + off + NLMSG_HDRLEN, sizeof err);
      return err < 0 ? -err : err;  // error 0 is the ACK
    }
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  if (!any && !reply.empty()) return EPROTO;
  return EAGAIN;
}

RouteSocket::~RouteSocket() {
  if (fd_ >= 0) ::close(fd_);
}

Status RouteSocket::open() {
  if (fd_ >= 0) return Status::ok();
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) return Status::fromErrno(errno, "rtnetlink socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    Status st = Status::fromErrno(errno, "bind rtnetlink socket");
    ::close(fd_);
    fd_ = -1;
    return st;
  }
  return Status::ok();
}

Status RouteSocket::request(const std::vector<uint8_t>& req, const std::string& what,
                            int timeout_ms) {
  if (Status st = open(); !st) return st;
  nlmsghdr h;
  std::memcpy(&h, req.data(), sizeof h);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return Status::fromErrno(errno, what);
  }
  uint8_t buf[8192];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status(ETIMEDOUT, what + ": no answer from the kernel");
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::fromErrno(errno, what);
    int err = parseAck({buf, static_cast<size_t>(n)}, h.nlmsg_seq);
    if (err == EAGAIN) continue;  // an answer to an earlier request that timed out
    if (err == 0) return Status::ok();
    return Status::fromErrno(err, what);
  }
}

Status RouteSocket::setLink(int ifindex, bool up, uint32_t mtu) {
  return request(linkRequest(nextSeq(), ifindex, up, mtu),
                 std::string("set link ") + (up ? "up" : "down") +
                     (mtu ? ", mtu " + std::to_string(mtu) : "") + " on interface #" +
                     std::to_string(ifindex));
}

Status RouteSocket::address(Op op, int ifindex, const IpPrefix& prefix) {
  Status st = request(
      addressRequest(nextSeq(), op, ifindex, prefix),
      opName(op) + " address " + prefix.toString() + " on interface #" + std::to_string(ifindex));
  if (op == Op::kDelete && (st.code() == EADDRNOTAVAIL || st.code() == ENODEV)) {
    return Status::ok();
  }
  return st;
}

Status RouteSocket::route(Op op, int ifindex, const IpPrefix& dst,
                          const std::optional<IpAddr>& src) {
  Status st = request(routeRequest(nextSeq(), op, ifindex, dst, src),
                      opName(op) + " route " + dst.normalized().toString() + " via interface #" +
                          std::to_string(ifindex));
  if (op == Op::kDelete && (st.code() == ESRCH || st.code() == ENOENT || st.code() == ENODEV)) {
    return Status::ok();
  }
  return st;
}

}  // namespace gatehouse::wg::netlink
