#include "wg/node_glue.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace gatehouse::wg {
namespace {
constexpr int64_t kMaxTimerMs = 1000;
constexpr size_t kBatchFlush = 64;
constexpr int kMaxReadsPerWakeup = 8;  // recvmmsg calls per readable event, so timers still run
}  // namespace

Node::Glue::Glue(Node& node, uv_loop_t* loop)
    : node_(node), loop_(loop), batch_(std::make_unique<RecvBatch>()) {}

Node::Glue::~Glue() = default;

Status Node::Glue::start(uint16_t port) {
  if (int err = udp_.open(port); err != 0) {
    return Status::fromErrno(err, "node: bind WireGuard UDP port " + std::to_string(port));
  }
  for (int fd : {udp_.fd4(), udp_.fd6()}) {
    if (fd < 0) continue;
    auto* p = new Poll{{}, this, fd};
    uv_poll_init(loop_, &p->handle, fd);
    p->handle.data = p;
    ++open_handles_;
    polls_.push_back(p);
    uv_poll_start(&p->handle, UV_READABLE, [](uv_poll_t* h, int status, int) {
      auto* p = static_cast<Poll*>(h->data);
      p->glue->onReadable(p, status);
    });
  }
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  ++open_handles_;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  ++open_handles_;
  uv_prepare_start(&prepare_,
                   [](uv_prepare_t* h) { flushPending(reinterpret_cast<uv_handle_t*>(h)); });
  uv_check_init(loop_, &check_);
  check_.data = this;
  ++open_handles_;
  uv_check_start(&check_, [](uv_check_t* h) { flushPending(reinterpret_cast<uv_handle_t*>(h)); });
  armTimer();
  return Status::ok();
}

void Node::Glue::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (Poll* p : polls_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) {
      auto* p = static_cast<Poll*>(h->data);
      Glue* g = p->glue;
      delete p;
      g->handleClosed();
    });
  }
  polls_.clear();
  udp_.close();
  if (open_handles_ > 0) {
    for (uv_handle_t* h :
         {reinterpret_cast<uv_handle_t*>(&timer_), reinterpret_cast<uv_handle_t*>(&prepare_),
          reinterpret_cast<uv_handle_t*>(&check_)}) {
      uv_close(h, [](uv_handle_t* h) { static_cast<Glue*>(h->data)->handleClosed(); });
    }
  }
  to_netstack_.clear();
  to_device_.clear();
  if (open_handles_ == 0) delete this;  // start() failed before opening any handle
}

void Node::Glue::flushPending(uv_handle_t* h) {
  auto* g = static_cast<Glue*>(h->data);
  if (g->busy_ || g->stopped_ || !g->dirty_) return;
  g->dirty_ = false;
  g->flush();  // also re-arms the device timer
}

void Node::Glue::handleClosed() {
  if (--open_handles_ == 0) delete this;
}

void Node::Glue::onReadable(Poll* p, int status) {
  if (stopped_) return;
  if (status < 0) {
    // libuv stops the poll on POLLERR (a queued ICMP error): clear it and keep listening.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    uv_poll_start(&p->handle, UV_READABLE, [](uv_poll_t* h, int st, int) {
      auto* p = static_cast<Poll*>(h->data);
      p->glue->onReadable(p, st);
    });
    return;
  }
  run([&] {
    Now now = systemNow();
    for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
      int n = udp_.receive(p->fd, *batch_);
      if (n <= 0) break;
      for (const InDatagram& d : batch_->datagrams()) {
        node_.device_->onNetworkPacket(d.data, d.from, now, *this);
        busy_ = false;
        drain();  // decrypted packets into lwIP before the batch buffer is reused
        busy_ = true;
      }
      if (static_cast<size_t>(n) < RecvBatch::kMaxDatagrams) break;
    }
  });
}

void Node::Glue::run(const std::function<void()>& fn) {
  if (busy_) {
    fn();
    return;
  }
  busy_ = true;
  fn();
  busy_ = false;
  drain();
  flush();
}

void Node::Glue::drain() {
  while (!busy_ && (!to_netstack_.empty() || !to_device_.empty())) {
    if (!to_netstack_.empty()) {
      std::vector<uint8_t> p = std::move(to_netstack_.front());
      to_netstack_.pop_front();
      node_.netstack_->input(p);  // lwIP may send: fromNetstack → Device right away
      continue;
    }
    std::vector<uint8_t> p = std::move(to_device_.front());
    to_device_.pop_front();
    busy_ = true;
    node_.device_->onTunPacket(p, systemNow(), *this);
    busy_ = false;
  }
}

void Node::Glue::fromNetstack(std::span<const uint8_t> packet) {
  if (stopped_) return;
  if (node_.receive_filter_.hasPolicy()) node_.receive_filter_.noteOutbound(packet, systemNow());
  if (busy_) {
    to_device_.emplace_back(packet.begin(), packet.end());
    return;
  }
  // Encrypt now, send later: the datagram joins the batch flushed at the end of this loop phase
  // (flushPending), so a burst of segments from one write leaves in one sendmmsg.
  busy_ = true;
  node_.device_->onTunPacket(packet, systemNow(), *this);
  busy_ = false;
  dirty_ = true;
  drain();
}

void Node::Glue::writeToTun(std::span<const uint8_t> ip_packet) {
  if (stopped_) return;
  if (node_.consumePingReply(ip_packet)) return;
  if (node_.receive_filter_.hasPolicy() &&
      !node_.receive_filter_.allowInbound(ip_packet, systemNow()))
    return;  // denied by policy (counted in ReceiveFilter::denied())
  to_netstack_.emplace_back(ip_packet.begin(), ip_packet.end());
}

void Node::Glue::sendToNetwork(const Endpoint& to, std::span<const uint8_t> datagram) {
  if (stopped_) return;
  out_index_.push_back({to, {out_bytes_.size(), datagram.size()}});
  out_bytes_.insert(out_bytes_.end(), datagram.begin(), datagram.end());
  if (out_index_.size() >= kBatchFlush) flush();
}

void Node::Glue::flush() {
  if (stopped_) return;
  if (!out_index_.empty()) {
    out_.clear();
    for (const auto& [to, range] : out_index_) {
      out_.push_back({to, LocalAddr{}, {out_bytes_.data() + range.first, range.second}});
    }
    udp_.send(out_);
    out_index_.clear();
    out_bytes_.clear();
  }
  armTimer();
}

void Node::Glue::armTimer() {
  int64_t deadline = node_.device_->nextTimerDeadline();
  int64_t delay = kMaxTimerMs;
  if (deadline != INT64_MAX) {
    delay = std::clamp<int64_t>((deadline - systemNow().mono_ns + kMs - 1) / kMs, 0, kMaxTimerMs);
  }
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* g = static_cast<Glue*>(t->data);
        g->run([g] { g->node_.device_->onTimer(systemNow(), *g); });
      },
      static_cast<uint64_t>(delay), 0);
}

}  // namespace gatehouse::wg
