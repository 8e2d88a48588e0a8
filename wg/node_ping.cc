// Node::ping (ICMP echo through the tunnel), the peers() snapshot and name resolution for dials.
#include <sodium.h>

#include <future>

#include "wg/device_impl.h"
#include "wg/net/icmp_echo.h"
#include "wg/node.h"
#include "wg/node_glue.h"

namespace gatehouse::wg {

namespace {

void closeTimer(uv_timer_t* t) {
  uv_close(reinterpret_cast<uv_handle_t*>(t),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

}  // namespace

void Node::ping(const IpAddr& dst, int64_t timeout_ms, PingFn done) {
  if (!netstack_ || closed_) return done(Status(EBADF, "ping: node is not running"));
  auto src = netstack_->addressOf(dst.family);
  if (!src) {
    return done(Status(EAFNOSUPPORT, "ping " + dst.toString() +
                                         ": this node has no address of "
                                         "that family"));
  }
  if (device_->internals().allowed_ips.lookup(dst) == nullptr) {
    return done(
        Status(EHOSTUNREACH, "ping " + dst.toString() + ": no peer's allowed IPs contain it"));
  }
  if (ping_id_ == 0) ping_id_ = static_cast<uint16_t>(randombytes_uniform(0xfffe) + 1);
  uint16_t seq = ++ping_seq_;
  auto pending = std::make_unique<PendingPing>();
  pending->dst = dst;
  pending->done = std::move(done);
  pending->timer = new uv_timer_t;
  uv_timer_init(loop_, pending->timer);
  pending->timer->data = this;
  uv_timer_start(
      pending->timer,
      [](uv_timer_t* t) {
        auto* self = static_cast<Node*>(t->data);
        for (auto it = self->pings_.begin(); it != self->pings_.end(); ++it) {
          if (it->second->timer != t) continue;
          auto p = std::move(it->second);
          self->pings_.erase(it);
          closeTimer(p->timer);
          p->done(Status(ETIMEDOUT, "ping " + p->dst.toString() + ": no reply"));
          return;
        }
      },
      static_cast<uint64_t>(timeout_ms), 0);
  pending->sent_mono_ns = systemNow().mono_ns;
  static constexpr uint8_t kPayload[] = "gatehouse ping";
  std::vector<uint8_t> pkt = icmp::echoRequest(*src, dst, ping_id_, seq, kPayload);
  if (auto old = pings_.find(seq); old != pings_.end()) {  // wrapped after 65,535 pings
    closeTimer(old->second->timer);
    old->second->done(Status(ETIMEDOUT, "ping: no reply"));
  }
  pings_[seq] = std::move(pending);
  glue_->fromNetstack(pkt);
}

bool Node::consumePingReply(std::span<const uint8_t> ip_packet) {
  if (pings_.empty()) return false;
  auto r = icmp::parseEchoReply(ip_packet);
  if (!r || r->id != ping_id_) return false;
  auto it = pings_.find(r->seq);
  if (it == pings_.end() || it->second->dst != r->from) return false;
  auto p = std::move(it->second);
  pings_.erase(it);
  closeTimer(p->timer);
  p->done(systemNow().mono_ns - p->sent_mono_ns);
  return true;
}

void Node::failPings() {
  auto pings = std::move(pings_);
  pings_.clear();
  for (auto& [seq, p] : pings) {
    closeTimer(p->timer);
    p->done(Status(EBADF, "ping: node closed"));
  }
}

Result<int64_t> Node::pingWait(const IpAddr& dst, int64_t timeout_ms) {
  if (onLoopThread()) return Status(EDEADLK, "ping: blocking call on the node's loop thread");
  auto done = std::make_shared<std::promise<Result<int64_t>>>();
  auto fut = done->get_future();
  Status st = runOnLoop([&] {
    ping(dst, timeout_ms, [done](const Result<int64_t>& r) { done->set_value(r); });
    return Status::ok();
  });
  if (!st) return st;
  return fut.get();
}

void Node::greetPeers() {
  if (!device_ || closed_) return;
  glue_->run([&] {
    Now now = systemNow();
    for (const Key32& pk : device_->peerKeys()) device_->sendKeepalive(pk, now, *glue_);
  });
}

Result<std::vector<PeerInfo>> Node::peers() {
  std::vector<PeerInfo> out;
  Status st = runOnLoop([&] {
    for (const Key32& pk : device_->peerKeys()) {
      if (auto info = device_->peerInfo(pk)) out.push_back(*info);
    }
    return Status::ok();
  });
  if (!st) return st;
  return out;
}

std::optional<Endpoint> Node::resolveDial(const std::string& address) const {
  if (auto ep = Endpoint::parse(address)) return ep;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || !name_resolver_) return std::nullopt;
  std::string host = address.substr(0, colon);
  auto port = Endpoint::parse("0.0.0.0" + address.substr(colon));
  if (!port) return std::nullopt;
  auto addr = name_resolver_(host);
  if (!addr) return std::nullopt;
  return Endpoint{*addr, port->port};
}

}  // namespace gatehouse::wg
