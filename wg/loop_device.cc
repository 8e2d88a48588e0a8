#include "wg/loop_device.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace gatehouse::wg {
namespace {

constexpr int64_t kMaxTimerDelayMs = 1000;
constexpr int64_t kHousekeepingNs = 1 * kSec;
constexpr size_t kMaxSticky = 4096;
// A TSO super-packet of up to 64 KiB behind its virtio_net_hdr.
constexpr size_t kTunBufSize = 65536 + offload::kVnetHdrLen + 64;

bool isHandshake(std::span<const uint8_t> d) {
  return (d.size() == 148 && d[0] == 1) || (d.size() == 92 && d[0] == 2);
}

int mkdirP(const std::string& dir, mode_t mode) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

// True if something accepts connections on the UNIX socket `path` (another daemon).
bool socketAlive(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  bool alive = connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0;
  close(fd);
  return alive;
}

}  // namespace

struct LoopDevice::UdpPoll {
  uv_poll_t handle;
  LoopDevice* self;
  int fd;
};

struct LoopDevice::Client {
  uv_pipe_t pipe;
  LoopDevice* self;
  std::unique_ptr<UapiConnection> conn;
  bool closing = false;
  char buf[4096];
};

namespace {
struct WriteReq {
  uv_write_t req;
  std::string data;
};
}  // namespace

size_t LoopDevice::EndpointHash::operator()(const Endpoint& e) const {
  uint64_t h = 1469598103934665603ull ^ e.port ^ (static_cast<uint64_t>(e.addr.family) << 16);
  for (uint8_t b : e.addr.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

LoopDevice::LoopDevice(uv_loop_t* loop, Random& random, LogFn log, LoopDeviceOptions options)
    : loop_(loop),
      random_(random),
      log_(std::move(log)),
      options_(std::move(options)),
      device_(std::make_unique<Device>(random,
                                       DeviceOptions{.mtu = static_cast<size_t>(options_.mtu)})),
      udp_(UdpTransport::Options{.offload = options_.udp_offload}),
      tun_buf_(kTunBufSize) {
  socket_path_ = options_.socket_dir + "/" + options_.ifname + ".sock";
}

LoopDevice::~LoopDevice() {
  // Handles must have been closed and the loop run dry (see header); if the owner skipped that,
  // the memory the loop still references would dangle, so fail loudly rather than corrupt.
  if (open_handles_ != 0 || !udp_polls_.empty() || !clients_.empty()) {
    log(LogLevel::kError, "LoopDevice destroyed with open libuv handles");
    abort();
  }
}

void LoopDevice::log(LogLevel level, const std::string& msg) const {
  if (log_) log_(level, msg);
}

int LoopDevice::start(std::string* what) {
  int err = 0;
  tun_ = TunDevice::open(options_.ifname, options_.mtu, &err, options_.tun_offload);
  if (!tun_) {
    *what = "create TUN interface " + options_.ifname;
    return err;
  }
  if ((err = udp_.open(options_.listen_port)) != 0) {
    *what = "bind UDP port " + std::to_string(options_.listen_port);
    return err;
  }
  if ((err = startUapi(what)) != 0) return err;

  uv_poll_init(loop_, &tun_poll_, tun_->fd());
  tun_poll_.data = this;
  ++open_handles_;
  uv_poll_start(&tun_poll_, UV_READABLE, [](uv_poll_t* h, int status, int events) {
    auto* self = static_cast<LoopDevice*>(h->data);
    if (status < 0) {
      // POLLERR on a TUN fd: the interface was deleted under us.
      self->stop("TUN interface " + self->options_.ifname + " removed");
      return;
    }
    self->onTunReadable();
  });
  startUdpPolls();

  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  ++open_handles_;
  for (auto [sig, handle] : {std::pair{SIGINT, &sigint_}, std::pair{SIGTERM, &sigterm_}}) {
    uv_signal_init(loop_, handle);
    handle->data = this;
    ++open_handles_;
    if (!options_.handle_signals) continue;  // initialised anyway: stop() closes a fixed list
    uv_signal_start(
        handle,
        [](uv_signal_t* h, int signum) {
          static_cast<LoopDevice*>(h->data)->stop(std::string("received ") + strsignal(signum));
        },
        sig);
  }
  Now now = systemNow();
  next_housekeeping_ns_ = now.mono_ns + kHousekeepingNs;
  armTimer(now);
  log(LogLevel::kInfo, "interface " + tun_->name() + " up, mtu " + std::to_string(options_.mtu) +
                           ", UDP port " + std::to_string(udp_.port()) +
                           (udp_.fd6() < 0 ? " (IPv4 only)" : "") + ", UAPI " + socket_path_ +
                           ", TUN offload " + (tun_->vnetHdr() ? "on" : "off") + ", UDP offload " +
                           (options_.udp_offload ? "on" : "off"));
  return 0;
}

int LoopDevice::startUapi(std::string* what) {
  *what = "UAPI socket " + socket_path_;
  if (socket_path_.size() >= sizeof(sockaddr_un{}.sun_path)) return ENAMETOOLONG;
  if (int err = mkdirP(options_.socket_dir, 0755); err != 0) return err;
  if (socketAlive(socket_path_)) return EADDRINUSE;
  unlink(socket_path_.c_str());  // stale socket of a dead daemon

  uv_pipe_init(loop_, &uapi_server_, 0);
  uapi_server_.data = this;
  ++open_handles_;
  mode_t old_mask = umask(077);
  int rc = uv_pipe_bind(&uapi_server_, socket_path_.c_str());
  umask(old_mask);
  if (rc != 0) return -rc;
  struct stat st;
  if (stat(socket_path_.c_str(), &st) == 0) socket_ino_ = st.st_ino;
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&uapi_server_), 128,
                 [](uv_stream_t* server, int status) {
                   if (status == 0) static_cast<LoopDevice*>(server->data)->onUapiConnection();
                 });
  if (rc != 0) return -rc;
  return 0;
}

void LoopDevice::onHandleClosed(uv_handle_t* h) {
  --static_cast<LoopDevice*>(h->data)->open_handles_;
}

void LoopDevice::closeHandle(uv_handle_t* h) {
  if (!uv_is_closing(h)) uv_close(h, &LoopDevice::onHandleClosed);
}

void LoopDevice::stop(const std::string& reason) {
  if (stopping_) return;
  stopping_ = true;
  stop_reason_ = reason;
  log(LogLevel::kInfo, "shutting down: " + reason);
  // open_handles_ counts exactly the member handles initialised so far, in this order.
  int inited = open_handles_;
  uv_handle_t* members[] = {
      reinterpret_cast<uv_handle_t*>(&uapi_server_), reinterpret_cast<uv_handle_t*>(&tun_poll_),
      reinterpret_cast<uv_handle_t*>(&timer_), reinterpret_cast<uv_handle_t*>(&sigint_),
      reinterpret_cast<uv_handle_t*>(&sigterm_)};
  for (int i = 0; i < inited && i < 5; ++i) closeHandle(members[i]);
  stopUdpPolls();
  for (Client* c : std::vector<Client*>(clients_.begin(), clients_.end())) closeClient(c, false);
  // Remove the socket file only if it is still ours (a new daemon may have replaced it).
  struct stat st;
  if (socket_ino_ != 0 && stat(socket_path_.c_str(), &st) == 0 && st.st_ino == socket_ino_) {
    unlink(socket_path_.c_str());
  }
  // uv_close has taken the fds out of epoll synchronously, so closing them now is safe.
  udp_.close();
  tun_.reset();
  if (on_stopped_) on_stopped_();
}

// ---- UDP ----

void LoopDevice::startUdpPolls() {
  for (int fd : {udp_.fd4(), udp_.fd6()}) {
    if (fd < 0) continue;
    auto* p = new UdpPoll{{}, this, fd};
    uv_poll_init(loop_, &p->handle, fd);
    p->handle.data = p;
    startUdpPoll(p);
    udp_polls_.push_back(p);
  }
}

void LoopDevice::startUdpPoll(UdpPoll* p) {
  uv_poll_start(&p->handle, UV_READABLE, [](uv_poll_t* h, int status, int events) {
    auto* p = static_cast<UdpPoll*>(h->data);
    if (status < 0) {
      // libuv stops the poll on POLLERR. A pending socket error (e.g. an ICMP error queued on
      // the socket) must not silence the port: read and clear it, then keep polling.
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      p->self->log(LogLevel::kDebug, std::string("UDP socket error: ") + strerror(err));
      if (!p->self->stopping_) p->self->startUdpPoll(p);
      return;
    }
    p->self->onUdpReadable(p->fd);
  });
}

void LoopDevice::stopUdpPolls() {
  for (UdpPoll* p : udp_polls_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete static_cast<UdpPoll*>(h->data); });
  }
  udp_polls_.clear();
}

int LoopDevice::setListenPort(uint16_t port) {
  if (stopping_) return EBADF;
  if (port != 0 && port == udp_.port()) return 0;
  stopUdpPolls();
  int err = udp_.open(port);  // on failure the old sockets stay in place
  startUdpPolls();
  if (err == 0) {
    log(LogLevel::kInfo, "UDP port now " + std::to_string(udp_.port()));
    sticky_.clear();
    sticky_last_.reset();
    send_last_.reset();
  } else {
    log(LogLevel::kError, "cannot bind UDP port " + std::to_string(port) + ": " + strerror(err));
  }
  return err;
}

int LoopDevice::setFwmark(uint32_t mark) { return udp_.setFwmark(mark); }

void LoopDevice::onUdpReadable(int fd) {
  ++counters_.wakeups;
  if (recv_batches_.empty()) recv_batches_.push_back(std::make_unique<RecvBatch>());
  size_t used = 0, handshakes = 0;
  // Read while the socket keeps filling whole batches, so a flood of handshakes shows up as a
  // backlog the Device can react to (cookie replies under load, reference K7).
  while (used < kUdpBatches) {
    if (used == recv_batches_.size()) recv_batches_.push_back(std::make_unique<RecvBatch>());
    int n = udp_.receive(fd, *recv_batches_[used]);
    if (n <= 0) break;
    for (const auto& d : recv_batches_[used]->datagrams()) handshakes += isHandshake(d.data);
    ++used;
    if (static_cast<size_t>(n) < RecvBatch::kMaxDatagrams) break;
  }
  if (used == 0) return;
  Now now = systemNow();
  rx_now_ = now;
  const uint64_t tun_writes_before = counters_.tun_write_packets;
  device_->setHandshakeBacklog(handshakes, now);
  for (size_t b = 0; b < used; ++b) {
    for (const auto& d : recv_batches_[b]->datagrams()) {
      ++counters_.udp_recv_datagrams;
      // Sticky-source bookkeeping only when the (from, local) pair differs from the last one
      // stored: the common case of a stream from one peer costs two compares.
      bool fresh = d.local.valid() && !(sticky_last_ && sticky_last_->first == d.from &&
                                        sticky_last_->second == d.local);
      uint64_t drops_before = fresh ? device_->totalDrops() : 0;
      // A handshake response or cookie reply goes out inside this call: answer from the
      // address the datagram came in on (E2).
      cur_in_ = &d;
      device_->onNetworkPacket(d.data, d.from, now, *this);
      cur_in_ = nullptr;
      if (fresh && device_->totalDrops() == drops_before) rememberSource(d);
      if (stopping_) return;
    }
    flushTun();  // coalesce what this recvmmsg batch decrypted
  }
  if (handshakes != 0) device_->setHandshakeBacklog(0, now);
  flush();
  // The kernel answers some packets inside our TUN write (an ICMP echo reply, a TCP ACK): it is
  // already queued when write() returns. Reading now saves a trip through the poller and a
  // wakeup on the latency path; when nothing is there it costs one EAGAIN read.
  if (counters_.tun_write_packets != tun_writes_before && !stopping_) onTunReadable();
}

void LoopDevice::rememberSource(const InDatagram& d) {
  if (sticky_.size() >= kMaxSticky && !sticky_.count(d.from)) sticky_.clear();
  sticky_[d.from] = d.local;
  sticky_last_.emplace(d.from, d.local);
  send_last_.reset();
}

void LoopDevice::clearSource(const Endpoint& to) {
  sticky_.erase(to);
  sticky_last_.reset();
  send_last_.reset();
}

// ---- TUN ----

void LoopDevice::onTunReadable() {
  ++counters_.wakeups;
  Now now = systemNow();
  bool vnet = tun_ && tun_->vnetHdr();
  for (size_t i = 0; i < kTunBatch && tun_; ++i) {
    size_t len = 0;
    TunStatus st = tun_->read(tun_buf_, &len);
    if (st == TunStatus::kAgain) break;
    if (st == TunStatus::kGone) {
      stop("TUN interface " + options_.ifname + " removed");
      return;
    }
    if (st == TunStatus::kError) continue;
    if (!vnet) {
      ++counters_.tun_read_packets;
      if (filter_ != nullptr) filter_->noteOutbound({tun_buf_.data(), len}, now);
      device_->onTunPacket({tun_buf_.data(), len}, now, *this);
      continue;
    }
    tun_segments_.clear();
    if (offload::split({tun_buf_.data(), len}, tun_segments_) != offload::SplitError::kNone) {
      ++counters_.tun_split_errors;
      continue;
    }
    counters_.tun_gso_reads += tun_segments_.size() > 1;
    // The segments of one super-packet share its flow: note it once.
    if (filter_ != nullptr && tun_segments_.size() != 0) {
      filter_->noteOutbound(tun_segments_[0], now);
    }
    for (size_t k = 0; k < tun_segments_.size(); ++k) {
      ++counters_.tun_read_packets;
      device_->onTunPacket(tun_segments_[k], now, *this);
    }
  }
  flush();
}

void LoopDevice::writeToTun(std::span<const uint8_t> ip_packet) {
  if (!tun_) return;
  // Per packet, before coalescing: a denied packet must not ride in a super-packet.
  if (filter_ != nullptr && !filter_->allowInbound(ip_packet, rx_now_)) {
    ++counters_.filter_denied;
    return;
  }
  if (tun_->vnetHdr()) {
    // Collected and coalesced at the end of the batch (flushTun), never held across wakeups.
    tun_pending_.append(ip_packet);
    if (tun_pending_.size() >= kTunFlushAt) flushTun();
    return;
  }
  TunStatus st = tun_->write(ip_packet);
  if (st == TunStatus::kOk) {
    ++counters_.tun_write_packets;
  } else {
    ++counters_.tun_write_dropped;
  }
}

void LoopDevice::flushTun() {
  if (tun_pending_.empty()) return;
  if (!tun_) {
    tun_pending_.clear();
    return;
  }
  tun_spans_.clear();
  for (size_t k = 0; k < tun_pending_.size(); ++k) tun_spans_.push_back(tun_pending_[k]);
  coalescer_.coalesce(tun_spans_);
  for (const auto& g : coalescer_.groups()) {
    // Gathered straight from the decrypted packets: header, head packet, follower payloads.
    tun_iov_.clear();
    tun_iov_.push_back({const_cast<uint8_t*>(g.vnet_hdr), offload::kVnetHdrLen});
    tun_iov_.push_back({tun_spans_[g.head].data(), tun_spans_[g.head].size()});
    for (uint32_t i = coalescer_.next(g.head); i != offload::Coalescer::kEnd;
         i = coalescer_.next(i)) {
      tun_iov_.push_back({tun_spans_[i].data() + g.hdr_len, tun_spans_[i].size() - g.hdr_len});
    }
    TunStatus st = tun_->writev(tun_iov_.data(), static_cast<int>(tun_iov_.size()));
    if (st == TunStatus::kOk) {
      counters_.tun_write_packets += g.count;
      counters_.tun_gro_writes += g.count > 1;
    } else {
      counters_.tun_write_dropped += g.count;
    }
  }
  tun_pending_.clear();
}

void LoopDevice::sendToNetwork(const Endpoint& to, std::span<const uint8_t> datagram) {
  if (stopping_) return;
  LocalAddr source;
  if (cur_in_ != nullptr && cur_in_->from == to) {
    source = cur_in_->local;
  } else if (send_last_ && send_last_->first == to) {
    source = send_last_->second;  // bulk sends go to one endpoint: skip the hash lookup
  } else {
    if (auto it = sticky_.find(to); it != sticky_.end()) source = it->second;
    send_last_.emplace(to, source);
  }
  queue_.push_back({to, source, arena_.size(), datagram.size()});
  arena_.insert(arena_.end(), datagram.begin(), datagram.end());
  if (queue_.size() >= kFlushAt) flush();
}

void LoopDevice::flush() {
  flushTun();
  if (!queue_.empty() && !stopping_) {
    out_.clear();
    for (const Queued& q : queue_) {
      out_.push_back({q.to, q.source, {arena_.data() + q.offset, q.length}});
    }
    udp_.send(out_);
    counters_.udp_sent_datagrams += queue_.size();
  }
  queue_.clear();
  arena_.clear();
  if (!stopping_) armTimer(systemNow());
}

// ---- timers ----

void LoopDevice::armTimer(const Now& now) {
  int64_t deadline = device_->nextTimerDeadline();
  int64_t delay_ms = kMaxTimerDelayMs;
  if (deadline != INT64_MAX) {
    int64_t diff = deadline - now.mono_ns;
    delay_ms = diff <= 0 ? 0 : std::min<int64_t>((diff + kMs - 1) / kMs, kMaxTimerDelayMs);
  }
  delay_ms = std::min<int64_t>(
      delay_ms, std::max<int64_t>(0, (next_housekeeping_ns_ - now.mono_ns + kMs - 1) / kMs));
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<LoopDevice*>(t->data)->onTimer(); },
      static_cast<uint64_t>(delay_ms), 0);
}

void LoopDevice::onTimer() {
  Now now = systemNow();
  device_->onTimer(now, *this);
  if (now.mono_ns >= next_housekeeping_ns_) {
    next_housekeeping_ns_ = now.mono_ns + kHousekeepingNs;
    housekeeping();
    if (stopping_) return;
  }
  flush();
}

void LoopDevice::housekeeping() {
  struct stat st;
  if (stat(socket_path_.c_str(), &st) != 0 || st.st_ino != socket_ino_) {
    stop("UAPI socket " + socket_path_ + " removed");
    return;
  }
  if (tun_ && tun_->linkGone()) stop("TUN interface " + options_.ifname + " removed");
}

// ---- UAPI ----

void LoopDevice::onUapiConnection() {
  auto* c = new Client;
  c->self = this;
  uv_pipe_init(loop_, &c->pipe, 0);
  c->pipe.data = c;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->pipe);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&uapi_server_), stream) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe),
             [](uv_handle_t* h) { delete static_cast<Client*>(h->data); });
    return;
  }
  c->conn = std::make_unique<UapiConnection>(*device_, *this, *this);
  clients_.insert(c);
  log(LogLevel::kDebug, "UAPI: client connected");
  uv_read_start(
      stream,
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* c = static_cast<Client*>(h->data);
        *buf = uv_buf_init(c->buf, sizeof c->buf);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* c = static_cast<Client*>(s->data);
        c->self->onClientRead(c, nread, buf);
      });
}

void LoopDevice::onClientRead(Client* c, ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0) return;
  if (nread < 0) {
    closeClient(c, nread == UV_EOF);
    return;
  }
  std::string reply;
  Now now = systemNow();
  c->conn->feed({reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)}, now,
                reply);
  if (stopping_) return;  // a set can stop us only indirectly; be safe anyway
  flush();                // keepalives a set produced
  if (!reply.empty()) clientWrite(c, std::move(reply));
  if (c->conn->wantsClose()) closeClient(c, true);
}

void LoopDevice::clientWrite(Client* c, std::string data) {
  auto* w = new WriteReq;
  w->data = std::move(data);
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->pipe), &b, 1,
                    [](uv_write_t* req, int) { delete reinterpret_cast<WriteReq*>(req); });
  if (rc != 0) {
    delete w;
    closeClient(c, false);
  }
}

void LoopDevice::closeClient(Client* c, bool graceful) {
  if (c->closing) return;
  c->closing = true;
  clients_.erase(c);
  auto close = [](uv_handle_t* h) { delete static_cast<Client*>(h->data); };
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
  if (graceful && !stopping_) {
    // Let queued replies reach the client before closing (uv_close would cancel them).
    auto* req = new uv_shutdown_t;
    req->data = c;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->pipe), [](uv_shutdown_t* r, int) {
          auto* c = static_cast<Client*>(r->data);
          delete r;
          uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe),
                   [](uv_handle_t* h) { delete static_cast<Client*>(h->data); });
        }) == 0) {
      return;
    }
    delete req;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), close);
}

}  // namespace gatehouse::wg
