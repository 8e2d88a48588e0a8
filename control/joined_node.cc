#include "control/joined_node.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "control/map_apply.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::control {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A free UDP port on the wildcard address (the node binds it right after; persisted so restarts
// keep the endpoint other nodes know).
uint16_t pickFreeUdpPort() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    port = ntohs(sa.sin_port);
  }
  ::close(fd);
  return port;
}

std::optional<wg::IpAddr> firstAddress(const v1::Node& n) {
  std::optional<wg::IpAddr> v6;
  for (const std::string& a : n.addresses()) {
    auto p = wg::IpPrefix::parse(a);
    if (!p) continue;
    if (p->addr.isV4()) return p->addr;
    if (!v6) v6 = p->addr;
  }
  return v6;
}

bool nameMatches(const v1::Node& n, const std::string& host) {
  std::string h = lower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();
  return lower(n.hostname()) == h || lower(n.name()) == h;
}

}  // namespace

std::vector<std::string> defaultAdvertiseHosts() {
  std::vector<std::string> v4, v6;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP)) {
        continue;
      }
      char buf[INET6_ADDRSTRLEN];
      if (i->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
        v4.push_back(buf);
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;  // needs a scope: skip
        inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
        v6.push_back(std::string("[") + buf + "]");
      }
    }
    freeifaddrs(list);
  }
  v4.insert(v4.end(), v6.begin(), v6.end());
  if (v4.empty()) v4.push_back("127.0.0.1");
  return v4;
}

JoinedNode::JoinedNode(JoinOptions options)
    : options_(std::move(options)), state_(options_.state_dir) {}

JoinedNode::~JoinedNode() {
  close();
  sodium_memzero(node_private_.data(), node_private_.size());
}

void JoinedNode::log(wg::LogLevel level, const std::string& msg) const {
  if (options_.log) options_.log(level, msg);
}

Status JoinedNode::start() {
  if (Status st = state_.ensure(); !st) return st;
  auto machine = state_.loadOrCreateKey("machine.key");
  if (!machine) return machine.status();
  auto node_key = state_.loadOrCreateKey("node.key");
  if (!node_key) return node_key.status();
  node_private_ = node_key.value();
  persisted_ = state_.loadControl();
  uint16_t port = options_.listen_port != 0 ? options_.listen_port : persisted_.listen_port;
  if (port == 0) port = pickFreeUdpPort();
  if (port == 0) return Status(EADDRNOTAVAIL, "no free UDP port for WireGuard");
  if (persisted_.listen_port != port) {
    persisted_.listen_port = port;
    if (Status st = state_.saveControl(persisted_); !st) return st;
  }
  std::vector<std::string> hosts =
      options_.advertise.empty() ? defaultAdvertiseHosts() : options_.advertise;
  for (const std::string& h : hosts) endpoints_.push_back(h + ":" + std::to_string(port));
  options_.listen_port = port;

  if (options_.loop_thread != nullptr) {
    loop_ = options_.loop_thread;
  } else {
    own_loop_ = std::make_unique<wg::LoopThread>();
    loop_ = own_loop_.get();
  }
  DataPlaneOptions po;
  po.loop = loop_;
  po.listen_port = port;
  po.hostname = options_.hostname;
  po.persistent_keepalive = options_.persistent_keepalive;
  po.log = options_.log;
  po.resolve = [this](const std::string& host) { return resolve(host); };
  po.tun_ifname = options_.tun_ifname;
  po.tun_mtu = options_.tun_mtu;
  po.on_stopped = options_.on_interface_gone;
  plane_ =
      options_.tun_ifname.empty() ? makeNetstackPlane(std::move(po)) : makeTunPlane(std::move(po));
  std::optional<NetworkMap> last = state_.loadMap();
  wg::noise::LocalStatic ls{machine.value(), wg::crypto::publicKey(machine.value())};
  ClientOptions co;
  co.server_public = options_.control_key;
  co.auth_key = options_.auth_key;
  co.hostname = options_.hostname;
  co.tags = options_.tags;
  co.ephemeral = options_.ephemeral;
  co.endpoints = endpoints_;
  uint64_t node_id = last ? persisted_.node_id : 0;

  loop_->post([this, ls, co, node_id, last] {
    if (last) {
      // The data plane runs on the last map at once; the control server may be down.
      std::lock_guard<std::mutex> lock(mu_);
      map_ = std::make_shared<const NetworkMap>(*last);
    }
    if (last) {
      if (Status st = startPlane(*last); !st) return finishStart(st);
      applyMap();
      finishStart(Status::ok());
    }
    auto core = std::make_unique<ClientCore>(ls, node_private_, co, random_, node_id);
    client_ = std::make_unique<Client>(loop_->loop(), options_.control, std::move(core),
                                       [this](Client&, const ClientCore::Event& e) { onEvent(e); });
    client_->start();
  });
  sodium_memzero(ls.priv.data(), ls.priv.size());
  std::unique_lock<std::mutex> lock(start_mu_);
  if (!start_cv_.wait_for(lock, std::chrono::milliseconds(options_.join_timeout_ms),
                          [&] { return start_done_; })) {
    lock.unlock();
    std::string why;
    {
      std::lock_guard<std::mutex> l(mu_);
      why = last_error_;
    }
    close();
    return Status(ETIMEDOUT, "joining via control server " + options_.control.toString() +
                                 ": no network map after " +
                                 std::to_string(options_.join_timeout_ms / 1000) + " s" +
                                 (why.empty() ? "" : " (" + why + ")"));
  }
  Status st = start_status_;
  lock.unlock();
  if (!st) close();
  return st;
}

void JoinedNode::finishStart(Status st) {
  std::lock_guard<std::mutex> lock(start_mu_);
  if (start_done_) return;
  start_done_ = true;
  start_status_ = std::move(st);
  start_cv_.notify_all();
}

Status JoinedNode::startPlane(const NetworkMap& map) {
  Status st = plane_->start(map, node_private_);
  if (st) plane_started_ = true;
  return st;
}

void JoinedNode::applyMap() {
  std::shared_ptr<const NetworkMap> map;
  {
    std::lock_guard<std::mutex> lock(mu_);
    map = map_;
  }
  if (!plane_started_ || !map) return;
  plane_->apply(map);
  if (!greeted_) {
    // A restarted node: its peers may still hold sessions with the previous process. Greeting
    // them starts fresh handshakes now instead of after their stale sessions time out.
    greeted_ = true;
    plane_->greetPeers();
  }
  log(wg::LogLevel::kDebug, "map " + std::to_string(map->seq) +
                                " applied: " + std::to_string(map->peers.size()) + " peers");
}

void JoinedNode::onEvent(const ClientCore::Event& e) {
  ClientCore& core = client_->core();
  switch (e.kind) {
    case ClientCore::Event::Kind::kRegistered:
      log(wg::LogLevel::kInfo,
          "registered as " + e.message + " (node " + std::to_string(core.nodeId()) + ")");
      persisted_.node_id = core.nodeId();
      if (Status st = state_.saveControl(persisted_); !st) log(wg::LogLevel::kError, st.message());
      return;
    case ClientCore::Event::Kind::kNodeKeyRotated: {
      node_private_ = core.nodePrivate();
      if (Status st = state_.saveKey("node.key", node_private_); !st) {
        log(wg::LogLevel::kError, st.message());
      }
      if (plane_started_) plane_->setPrivateKey(node_private_);
      log(wg::LogLevel::kInfo, "node key expired: rotated to a new key, registering again");
      return;
    }
    case ClientCore::Event::Kind::kMap: {
      auto map = std::make_shared<const NetworkMap>(core.map());
      {
        std::lock_guard<std::mutex> lock(mu_);
        map_ = map;
        state_name_ = "connected";
        last_error_.clear();
      }
      if (Status st = state_.saveMap(*map); !st) log(wg::LogLevel::kError, st.message());
      if (!plane_started_) {
        if (Status st = startPlane(*map); !st) return finishStart(st);
      }
      applyMap();
      finishStart(Status::ok());
      return;
    }
    case ClientCore::Event::Kind::kError: {
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = e.message;
        state_name_ = core.failed() ? "failed" : "connecting";
      }
      log(core.failed() ? wg::LogLevel::kError : wg::LogLevel::kInfo, "control: " + e.message);
      if (core.failed()) {
        finishStart(Status(EACCES, "control server refused this node: " + e.message));
      }
      return;
    }
  }
}

void JoinedNode::close() {
  if (closed_.exchange(true)) return;
  if (loop_ != nullptr) {
    std::promise<void> done;
    loop_->post([&] {
      if (client_) client_->stop();
      done.set_value();
    });
    done.get_future().wait();
  }
  if (plane_) plane_->close();
  // The client's handles finish closing on the loop; destroy it there after they have.
  if (loop_ != nullptr) {
    std::promise<void> done;
    loop_->post([&] {
      loop_->post([&] {
        client_.reset();
        done.set_value();
      });
    });
    done.get_future().wait();
  }
  own_loop_.reset();
}

ControlInfo JoinedNode::info() const {
  ControlInfo i;
  std::lock_guard<std::mutex> lock(mu_);
  i.state = state_name_;
  i.server = options_.control.toString();
  i.last_error = last_error_;
  i.endpoints = endpoints_;
  i.map = map_;
  if (map_) {
    i.node_id = map_->self.id();
    i.name = map_->self.name();
    i.map_seq = map_->seq;
    for (const std::string& a : map_->self.addresses()) i.addresses.push_back(a);
  }
  return i;
}

std::optional<wg::IpAddr> JoinedNode::resolve(const std::string& host) const {
  if (auto a = wg::IpAddr::parse(host)) return a;
  std::shared_ptr<const NetworkMap> map;
  {
    std::lock_guard<std::mutex> lock(mu_);
    map = map_;
  }
  if (!map) return std::nullopt;
  if (nameMatches(map->self, host)) return firstAddress(map->self);
  for (const auto& [id, peer] : map->peers) {
    if (nameMatches(peer, host)) return firstAddress(peer);
  }
  return std::nullopt;
}

}  // namespace gatehouse::control
