// The netstack DataPlane (control/data_plane.h): a wg::Node on the JoinedNode's loop, started
// from the first map's addresses, with each map applied through applyMapToNode (peers, receive
// policy, whoIs enrichment) and dial-by-name through the JoinedNode's resolver.
#include <chrono>
#include <future>

#include "control/data_plane.h"
#include "control/map_apply.h"

namespace gatehouse::control {
namespace {

class NetstackPlane final : public DataPlane {
 public:
  explicit NetstackPlane(DataPlaneOptions o) : options_(std::move(o)) {}
  ~NetstackPlane() override { close(); }

  Status start(const NetworkMap& map, const wg::Key32& node_private) override {
    wg::NodeOptions o;
    o.private_key = node_private;
    o.listen_port = options_.listen_port;
    o.hostname = map.self.hostname().empty() ? options_.hostname : map.self.hostname();
    o.log = options_.log;
    o.loop_thread = options_.loop;
    for (const std::string& a : map.self.addresses()) {
      if (auto p = wg::IpPrefix::parse(a)) o.addresses.push_back(p->addr);
    }
    if (o.addresses.empty()) return Status(EINVAL, "the network map gives this node no address");
    auto node = std::make_unique<wg::Node>(o);
    if (Status st = node->start(); !st) return st;
    if (options_.resolve) node->setNameResolver(options_.resolve);
    node_ = std::move(node);
    return Status::ok();
  }

  void apply(std::shared_ptr<const NetworkMap> map) override {
    if (!node_) return;
    applyMapToNode(*node_, std::move(map), {.persistent_keepalive = options_.persistent_keepalive});
  }

  void setPrivateKey(const wg::Key32& node_private) override {
    if (node_ && node_->device()) node_->device()->setPrivateKey(node_private, wg::systemNow());
  }

  void greetPeers() override {
    if (node_) node_->greetPeers();
  }

  void close() override {
    if (node_) node_->close();
  }

  Result<DataPlaneStatus> status() override {
    if (!node_) return Status(EBADF, "the node is not running");
    DataPlaneStatus s;
    s.mode = "netstack";
    s.listen_port = node_->listenPort();
    if (auto pk = node_->publicKey()) s.public_key = pk.value();
    auto peers = node_->peers();
    if (!peers) return peers.status();
    s.peers = std::move(peers.value());
    // The counters live on the loop; a closed node drops the task, so the wait is bounded.
    auto counters = std::make_shared<std::promise<std::pair<uint64_t, uint64_t>>>();
    auto fut = counters->get_future();
    wg::Node* node = node_.get();
    node_->post([counters, node] {
      counters->set_value(
          {node->receiveFilter().denied(), node->device() ? node->device()->totalDrops() : 0});
    });
    if (fut.wait_for(std::chrono::seconds(2)) == std::future_status::ready) {
      std::tie(s.filter_denied, s.device_drops) = fut.get();
    }
    return s;
  }

  Result<wg::Identity> whoIs(const wg::IpAddr& addr) override {
    if (!node_) return Status(EBADF, "the node is not running");
    return node_->whoIs(addr);
  }

  Result<int64_t> ping(const wg::IpAddr& dst, int64_t timeout_ms) override {
    if (!node_) return Status(EBADF, "the node is not running");
    return node_->pingWait(dst, timeout_ms);
  }

  wg::Node* node() override { return node_.get(); }

 private:
  DataPlaneOptions options_;
  std::unique_ptr<wg::Node> node_;
};

}  // namespace

std::unique_ptr<DataPlane> makeNetstackPlane(DataPlaneOptions options) {
  return std::make_unique<NetstackPlane>(std::move(options));
}

}  // namespace gatehouse::control
