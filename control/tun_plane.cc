#include "control/tun_plane.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <set>

#include "control/map_apply.h"
#include "wg/transport/kernel_ping.h"
#include "wg/transport/netlink.h"

namespace gatehouse::control {
namespace {

using wg::netlink::Op;

bool contains(const std::vector<wg::IpPrefix>& v, const wg::IpPrefix& p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

std::string joinPrefixes(const std::vector<wg::IpPrefix>& v) {
  std::string out;
  for (const wg::IpPrefix& p : v) out += (out.empty() ? "" : " ") + p.toString();
  return out.empty() ? "none" : out;
}

class TunPlane final : public DataPlane {
 public:
  explicit TunPlane(DataPlaneOptions o) : options_(std::move(o)) {}
  ~TunPlane() override { close(); }

  Status start(const NetworkMap& map, const wg::Key32& node_private) override;
  void apply(std::shared_ptr<const NetworkMap> map) override;
  void setPrivateKey(const wg::Key32& node_private) override;
  void greetPeers() override;
  void close() override;
  Result<DataPlaneStatus> status() override;
  Result<wg::Identity> whoIs(const wg::IpAddr& addr) override;
  Result<int64_t> ping(const wg::IpAddr& dst, int64_t timeout_ms) override;

 private:
  void log(wg::LogLevel level, const std::string& msg) const {
    if (options_.log) options_.log(level, msg);
  }
  Status failStart(Status st);
  Status configureInterface(const NetworkMap& map);
  void unconfigureInterface();
  Status runOnLoop(const std::function<Status()>& fn);
  void destroyWhenClosed(std::shared_ptr<std::promise<void>> done);

  DataPlaneOptions options_;
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_{false};
  std::atomic<uint16_t> ping_seq_{0};

  // Loop thread state.
  wg::SystemRandom random_;
  std::unique_ptr<wg::LoopDevice> device_;
  wg::ReceiveFilter filter_;
  std::shared_ptr<const NetworkMap> map_;
  wg::netlink::RouteSocket rtnl_;
  int ifindex_ = 0;
  bool link_up_ = false;
  bool closing_ = false;
  std::vector<wg::IpPrefix> addresses_;  // configured on the interface
  std::vector<wg::IpPrefix> routes_;
};

Status TunPlane::start(const NetworkMap& map, const wg::Key32& node_private) {
  if (options_.tun_ifname.empty()) return Status(EINVAL, "TUN mode needs an interface name");
  // One attempt: a failed device is still closing its handles (close() releases it).
  if (device_) return Status(EALREADY, "the TUN interface was already started");
  wg::LoopDeviceOptions lo;
  lo.ifname = options_.tun_ifname;
  lo.mtu = options_.tun_mtu;
  lo.socket_dir = options_.uapi_dir;
  lo.listen_port = options_.listen_port;
  lo.handle_signals = false;  // `gatehouse up` waits for its signals itself
  device_ = std::make_unique<wg::LoopDevice>(options_.loop->loop(), random_, options_.log, lo);
  device_->setOnStopped([this] {
    if (!closing_ && options_.on_stopped) options_.on_stopped(device_->stopReason());
  });
  std::string what;
  if (int err = device_->start(&what); err != 0) {
    return failStart(Status::fromErrno(err, what));
  }
  device_->device().setPrivateKey(node_private, wg::systemNow());
  // Deny by default from the first packet; apply() refreshes the policy with every map.
  filter_.setPolicy(inboundPolicyFromMap(map));
  device_->setReceiveFilter(&filter_);
  ifindex_ = device_->ifindex();
  if (Status st = configureInterface(map); !st) return failStart(st);
  started_ = true;
  return Status::ok();
}

Status TunPlane::failStart(Status st) {
  closing_ = true;
  unconfigureInterface();
  device_->stop("start failed");  // handles close on the loop; close() destroys the device
  return st;
}

void TunPlane::apply(std::shared_ptr<const NetworkMap> map) {
  if (!device_ || device_->stopping() || !map) return;
  map_ = map;
  // The LoopDevice is the output: a keepalive that turning keepalive on emits goes out with its
  // next flush (at most a second away).
  applyMap(device_->device(), *map, wg::systemNow(), *device_,
           {.persistent_keepalive = options_.persistent_keepalive});
  filter_.setPolicy(inboundPolicyFromMap(*map));
  if (Status st = configureInterface(*map); !st) log(wg::LogLevel::kError, st.message());
}

void TunPlane::greetPeers() {
  if (!device_ || device_->stopping()) return;
  wg::Now now = wg::systemNow();
  for (const wg::Key32& pk : device_->device().peerKeys()) {
    device_->device().sendKeepalive(pk, now, *device_);
  }
}

void TunPlane::setPrivateKey(const wg::Key32& node_private) {
  if (device_ && !device_->stopping()) {
    device_->device().setPrivateKey(node_private, wg::systemNow());
  }
}

// Addresses first, then routes: IPv4 routes name their preferred source, which must exist, and
// deleting an address takes the routes using it as source along (re-added right after).
Status TunPlane::configureInterface(const NetworkMap& map) {
  const std::string where = "configure interface " + options_.tun_ifname + ": ";
  std::vector<wg::IpPrefix> want = hostPrefixes(map);
  if (want.empty()) return Status(EINVAL, where + "the network map gives this node no address");
  if (link_up_ && want == addresses_) return Status::ok();
  if (!link_up_) {
    Status st = rtnl_.setLink(ifindex_, true, static_cast<uint32_t>(options_.tun_mtu));
    if (!st) return Status(st.code(), where + st.message());
    link_up_ = true;
  }
  // IPv6 problems (IPv6 disabled on the host) are logged, not fatal: the v4 mesh still works.
  auto failed = [&](const wg::IpPrefix& p, const Status& st) -> Status {
    if (p.addr.isV6()) {
      log(wg::LogLevel::kError, where + st.message() + " (IPv6 disabled here?)");
      return Status::ok();
    }
    return Status(st.code(), where + st.message());
  };
  for (const wg::IpPrefix& p : want) {
    if (contains(addresses_, p)) continue;
    if (Status st = rtnl_.address(Op::kAdd, ifindex_, p); !st) {
      if (Status f = failed(p, st); !f) return f;
    }
  }
  for (const wg::IpPrefix& p : addresses_) {
    if (!contains(want, p)) rtnl_.address(Op::kDelete, ifindex_, p);
  }
  addresses_ = want;
  std::vector<wg::IpAddr> addrs;
  std::optional<wg::IpAddr> src4;
  for (const wg::IpPrefix& p : want) {
    addrs.push_back(p.addr);
    if (p.addr.isV4() && !src4) src4 = p.addr;
  }
  std::vector<wg::IpPrefix> routes = meshRoutes(addrs);
  for (const wg::IpPrefix& r : routes) {
    if (Status st = rtnl_.route(Op::kAdd, ifindex_, r, r.addr.isV4() ? src4 : std::nullopt); !st) {
      if (Status f = failed(r, st); !f) return f;
    }
  }
  for (const wg::IpPrefix& r : routes_) {
    if (!contains(routes, r)) rtnl_.route(Op::kDelete, ifindex_, r);
  }
  routes_ = routes;
  log(wg::LogLevel::kInfo, "interface " + options_.tun_ifname + ": addresses " +
                               joinPrefixes(addresses_) + ", routes " + joinPrefixes(routes_));
  return Status::ok();
}

void TunPlane::unconfigureInterface() {
  if (ifindex_ == 0) return;
  for (const wg::IpPrefix& r : routes_) rtnl_.route(Op::kDelete, ifindex_, r);
  for (const wg::IpPrefix& p : addresses_) rtnl_.address(Op::kDelete, ifindex_, p);
  routes_.clear();
  addresses_.clear();
}

void TunPlane::close() {
  if (closed_.exchange(true) || options_.loop == nullptr) return;
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  options_.loop->post([this, done] {
    closing_ = true;
    if (device_ && !device_->stopping()) {
      unconfigureInterface();
      device_->stop("closing");
    }
    destroyWhenClosed(done);
  });
  fut.wait();
}

// The LoopDevice's handles finish closing in the loop iteration that closed them; the device is
// destroyed on a later one.
void TunPlane::destroyWhenClosed(std::shared_ptr<std::promise<void>> done) {
  if (device_ && !device_->closed()) {
    options_.loop->post([this, done] { destroyWhenClosed(done); });
    return;
  }
  device_.reset();
  done->set_value();
}

Status TunPlane::runOnLoop(const std::function<Status()>& fn) {
  if (!started_ || closed_) return Status(EBADF, "the TUN interface is not running");
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  options_.loop->post([this, done, &fn] {
    done->set_value(device_ && !device_->stopping()
                        ? fn()
                        : Status(EBADF, "the TUN interface " + options_.tun_ifname + " is gone"));
  });
  // `fn` is borrowed by the task: wait for it whatever it takes (the loop never blocks for long).
  return fut.get();
}

Result<DataPlaneStatus> TunPlane::status() {
  DataPlaneStatus s;
  Status st = runOnLoop([&] {
    const wg::Device& d = device_->device();
    s.mode = "tun";
    s.interface = options_.tun_ifname;
    s.public_key = d.publicKey();
    s.listen_port = device_->listenPort();
    for (const wg::Key32& pk : d.peerKeys()) {
      if (auto info = d.peerInfo(pk)) s.peers.push_back(*info);
    }
    s.filter_denied = device_->counters().filter_denied;
    s.device_drops = d.totalDrops();
    return Status::ok();
  });
  if (!st) return st;
  return s;
}

Result<wg::Identity> TunPlane::whoIs(const wg::IpAddr& addr) {
  wg::Identity id;
  Status st = runOnLoop([&] {
    if (!map_ || !identityFromMap(*map_, addr, id)) {
      return Status(ENOENT, "whoIs " + addr.toString() + ": no peer owns this address");
    }
    const wg::Device& d = device_->device();
    if (id.is_self) {
      if (auto pk = d.publicKey()) id.node_public_key = *pk;
    } else if (auto info = d.peerInfo(id.node_public_key)) {
      id.endpoint = info->endpoint;
    }
    return Status::ok();
  });
  if (!st) return st;
  return id;
}

Result<int64_t> TunPlane::ping(const wg::IpAddr& dst, int64_t timeout_ms) {
  if (!started_ || closed_) return Status(EBADF, "the TUN interface is not running");
  return wg::icmp::kernelPing(dst, ping_seq_.fetch_add(1) + 1, timeout_ms, options_.tun_ifname);
}

}  // namespace

std::vector<wg::IpPrefix> meshRoutes(const std::vector<wg::IpAddr>& self_addresses) {
  const wg::IpPrefix cgnat = *wg::IpPrefix::parse(kMeshPrefix4);
  const wg::IpPrefix ula = *wg::IpPrefix::parse("fc00::/7");
  std::set<wg::IpPrefix> out;
  for (const wg::IpAddr& a : self_addresses) {
    if (a.isV4() && cgnat.contains(a)) out.insert(cgnat);
    if (a.isV6() && ula.contains(a)) out.insert(wg::IpPrefix{a, 48}.normalized());
  }
  return {out.begin(), out.end()};
}

std::vector<wg::IpPrefix> hostPrefixes(const NetworkMap& map) {
  std::set<wg::IpPrefix> out;
  for (const std::string& a : map.self.addresses()) {
    // The address part only: IpPrefix::parse would clear the host bits of "100.64.0.7/10".
    if (auto ip = wg::IpAddr::parse(std::string_view(a).substr(0, a.find('/')))) {
      out.insert({*ip, static_cast<uint8_t>(ip->maxBits())});
    }
  }
  return {out.begin(), out.end()};
}

std::unique_ptr<DataPlane> makeTunPlane(DataPlaneOptions options) {
  return std::make_unique<TunPlane>(std::move(options));
}

}  // namespace gatehouse::control
