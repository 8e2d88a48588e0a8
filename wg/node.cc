#include "wg/node.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "wg/crypto/x25519.h"
#include "wg/device_impl.h"
#include "wg/netstack/fd_bridge.h"
#include "wg/node_glue.h"
#include "wg/uapi.h"

namespace gatehouse::wg {

// ---- LoopThread ----

LoopThread::LoopThread() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &async_, [](uv_async_t* a) {
    auto* self = static_cast<LoopThread*>(a->data);
    std::vector<std::function<void()>> tasks;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      tasks.swap(self->tasks_);
      stop = self->stopping_;
    }
    for (auto& t : tasks) t();
    if (stop) uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
  });
  async_.data = this;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

LoopThread::~LoopThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uv_async_send(&async_);
  thread_.join();
  uv_loop_close(&loop_);
}

void LoopThread::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
}

// ---- Node: lifecycle ----

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() { close(); }

void Node::log(LogLevel level, const std::string& msg) const {
  if (options_.log) options_.log(level, msg);
}

bool Node::onLoopThread() const { return loop_thread_id_.load() == std::this_thread::get_id(); }

Status Node::loadKey(Key32* key) {
  if (options_.private_key) {
    *key = *options_.private_key;
    return Status::ok();
  }
  if (options_.state_dir.empty()) {
    return Status(EINVAL, "node: set NodeOptions::private_key or NodeOptions::state_dir");
  }
  if (mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::fromErrno(errno, "node: create state directory " + options_.state_dir);
  }
  std::string path = options_.state_dir + "/node.key";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    Key32 seed;
    randombytes_buf(seed.data(), seed.size());
    *key = crypto::privateKeyFromRandom(seed);
    sodium_memzero(seed.data(), seed.size());
    std::string text = keyToBase64(*key) + "\n";
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Status::fromErrno(errno, "node: create key file " + path);
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    sodium_memzero(text.data(), text.size());
    ::close(fd);
    if (!ok) return Status(EIO, "node: write key file " + path);
    log(LogLevel::kInfo, "created node key " + path);
    return Status::ok();
  }
  if (fd < 0) return Status::fromErrno(errno, "node: open key file " + path);
  struct stat st;
  fstat(fd, &st);
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status(EPERM, "node: key file " + path + " is readable by others (mode " + mode +
                             "); fix it with: chmod 600 " + path);
  }
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  sodium_memzero(buf, sizeof buf);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  auto k = keyFromBase64(text);
  sodium_memzero(text.data(), text.size());
  if (!k) {
    return Status(EINVAL, "node: key file " + path +
                              ": not a base64 WireGuard private key (as `wg genkey` prints)");
  }
  *key = *k;
  return Status::ok();
}

Status Node::start() {
  if (started_.exchange(true)) return Status(EINVAL, "node: start() called twice");
  Key32 key;
  if (Status st = loadKey(&key); !st) return st;
  if (options_.loop_thread != nullptr) {
    loop_thread_ = options_.loop_thread;
  } else if (options_.loop == nullptr) {
    own_thread_ = std::make_unique<LoopThread>();
    loop_thread_ = own_thread_.get();
  }
  loop_ = loop_thread_ != nullptr ? loop_thread_->loop() : options_.loop;
  Status st;
  if (loop_thread_ != nullptr && !loop_thread_->onLoopThread()) {
    std::promise<Status> done;
    loop_thread_->post([&] { done.set_value(startOnLoop(key)); });
    st = done.get_future().get();
  } else {
    st = startOnLoop(key);
  }
  sodium_memzero(key.data(), key.size());
  if (!st) {
    close();
    return st;
  }
  return Status::ok();
}

Status Node::startOnLoop(const Key32& key) {
  loop_thread_id_ = std::this_thread::get_id();
  async_ = new uv_async_t;
  uv_async_init(loop_, async_, [](uv_async_t* a) {
    auto* self = static_cast<Node*>(a->data);
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(self->post_mu_);
      tasks.swap(self->posted_);
    }
    for (auto& t : tasks) {
      if (self->closed_) break;
      t();
    }
  });
  async_->data = this;

  Now now = systemNow();
  device_ = std::make_unique<Device>(random_, DeviceOptions{.mtu = options_.mtu});
  device_->setPrivateKey(key, now);
  glue_ = std::make_unique<Glue>(*this, loop_);
  for (const NodePeer& p : options_.peers) {
    if (!device_->addPeer(p.public_key, now)) {
      log(LogLevel::kError, "peer " + keyToBase64(p.public_key) + " is this node's own key");
      continue;
    }
    if (p.preshared_key) device_->setPresharedKey(p.public_key, *p.preshared_key);
    if (p.endpoint) device_->setEndpoint(p.public_key, *p.endpoint);
    for (const IpPrefix& prefix : p.allowed_ips) device_->addAllowedIp(p.public_key, prefix);
  }
  auto ns = Netstack::create(
      loop_,
      NetstackOptions{
          .addresses = options_.addresses, .mtu = options_.mtu, .name = options_.hostname},
      [this](std::span<const uint8_t> p) { glue_->fromNetstack(p); });
  if (!ns) return ns.status();
  netstack_ = std::move(ns.value());
  if (Status st = glue_->start(options_.listen_port); !st) return st;
  udp_port_ = glue_->port();
  // Keepalives go out now, so set them after the UDP port exists.
  glue_->run([&] {
    for (const NodePeer& p : options_.peers) {
      if (p.persistent_keepalive != 0) {
        device_->setPersistentKeepalive(p.public_key, p.persistent_keepalive, now, *glue_);
      }
    }
  });
  std::string addrs;
  for (const IpAddr& a : options_.addresses) addrs += " " + a.toString();
  log(LogLevel::kInfo, "node up: UDP port " + std::to_string(glue_->port()) + ", addresses" +
                           addrs + ", " + std::to_string(options_.peers.size()) + " peers");
  return Status::ok();
}

void Node::close() {
  if (!started_ || closed_.exchange(true)) return;
  if (loop_thread_ != nullptr && !onLoopThread() && loop_thread_id_.load() != std::thread::id()) {
    std::promise<void> done;
    loop_thread_->post([&] {
      closeOnLoop();
      done.set_value();
    });
    done.get_future().wait();
  } else {
    closeOnLoop();
  }
  own_thread_.reset();  // joins once our handles have closed
}

void Node::closeOnLoop() {
  closed_ = true;
  for (auto& weak : fd_listeners_) {
    if (auto l = weak.lock()) {
      std::lock_guard<std::mutex> lock(l->mu_);
      l->node_ = nullptr;
    }
  }
  failPings();
  for (FdBridge* b : std::vector<FdBridge*>(bridges_)) b->abort();
  bridges_.clear();
  if (netstack_) netstack_->close();
  if (glue_) {
    glue_->stop();
    glue_.release();  // deletes itself once its handles have closed
  }
  if (async_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(async_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }
  std::lock_guard<std::mutex> lock(post_mu_);
  posted_.clear();  // waiters see a broken promise
}

void Node::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (closed_ || async_ == nullptr) return;
    posted_.push_back(std::move(fn));
  }
  uv_async_send(async_);
}

Status Node::runOnLoop(const std::function<Status()>& fn) {
  if (!started_ || closed_) return Status(EBADF, "node is not running");
  if (onLoopThread()) return fn();
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  post([done, &fn] { done->set_value(fn()); });
  try {
    return fut.get();
  } catch (const std::future_error&) {
    return Status(EBADF, "node closed");
  }
}

// ---- identity ----

Identity Node::identityFor(const IpAddr& addr, bool* found) {
  Identity id;
  *found = false;
  if (netstack_->isLocal(addr)) {
    *found = true;
    id.is_self = true;
    id.node_public_key = *device_->publicKey();
    for (const IpAddr& a : options_.addresses) id.allowed_ips.push_back({a, uint8_t(a.maxBits())});
    id.name = options_.hostname;
    if (identity_enricher_) identity_enricher_(addr, id);
    return id;
  }
  auto* peer = static_cast<const Peer*>(device_->internals().allowed_ips.lookup(addr));
  if (peer == nullptr) return id;
  auto info = device_->peerInfo(peer->public_key);
  if (!info) return id;
  *found = true;
  id.node_public_key = info->public_key;
  id.allowed_ips = info->allowed_ips;
  id.endpoint = info->endpoint;
  for (const NodePeer& p : options_.peers) {
    if (p.public_key == info->public_key) id.name = p.name;
  }
  if (identity_enricher_) identity_enricher_(addr, id);
  return id;
}

Result<Identity> Node::whoIs(const IpAddr& addr) {
  Identity id;
  Status st = runOnLoop([&] {
    bool found = false;
    id = identityFor(addr, &found);
    return found ? Status::ok()
                 : Status(ENOENT, "whoIs " + addr.toString() + ": no peer owns this address");
  });
  if (!st) return st;
  return id;
}

Result<Key32> Node::publicKey() {
  Key32 k{};
  Status st = runOnLoop([&] {
    k = *device_->publicKey();
    return Status::ok();
  });
  if (!st) return st;
  return k;
}

// ---- callback API ----

Result<std::shared_ptr<TcpListener>> Node::listenTcp(uint16_t port, AcceptFn on_accept) {
  if (!netstack_ || closed_) return Status(EBADF, "listen: node is not running");
  return netstack_->listenTcp(port, std::move(on_accept));
}

Result<std::shared_ptr<UdpSocket>> Node::listenUdp(uint16_t port) {
  if (!netstack_ || closed_) return Status(EBADF, "listen: node is not running");
  return netstack_->listenUdp(port);
}

Result<std::shared_ptr<TcpConn>> Node::dialTcp(const std::string& address, int64_t timeout_ms,
                                               std::function<void(const Status&)> on_connected) {
  if (!netstack_ || closed_) return Status(EBADF, "dial: node is not running");
  auto to = resolveDial(address);
  if (!to || to->port == 0) {
    return Status(EINVAL, "dial: bad address '" + address +
                              "' (want ip:port, [ip6]:port, or host:port for a peer's name)");
  }
  if (!netstack_->isLocal(to->addr) &&
      device_->internals().allowed_ips.lookup(to->addr) == nullptr) {
    return Status(EHOSTUNREACH,
                  "dial " + address + ": no peer's allowed IPs contain " + to->addr.toString());
  }
  return netstack_->dialTcp(*to, timeout_ms, std::move(on_connected));
}

// ---- fd API ----

void Node::bridge(std::shared_ptr<TcpConn> conn, int fd) {
  if (closed_ || !conn->open()) {  // reset while we were connecting the other side
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
    return;
  }
  FdBridge* b = FdBridge::start(loop_, std::move(conn), fd, [this](FdBridge* done) {
    bridges_.erase(std::remove(bridges_.begin(), bridges_.end(), done), bridges_.end());
  });
  bridges_.push_back(b);
}

void Node::acceptFd(const std::shared_ptr<FdListener>& l, std::shared_ptr<TcpConn> conn) {
  {
    std::lock_guard<std::mutex> lock(l->mu_);
    if (l->closed_ || l->ready_.size() >= kFdBacklog) {
      conn->abort();
      return;
    }
  }
  int ours, theirs;
  if (Status st = makeLoopbackPair(&ours, &theirs); !st) {
    log(LogLevel::kError, st.message());
    conn->abort();
    return;
  }
  FdConn fc{theirs, conn->localEndpoint(), conn->remoteEndpoint()};
  bridge(std::move(conn), ours);
  {
    std::lock_guard<std::mutex> lock(l->mu_);
    l->ready_.push_back(fc);
  }
  uint64_t one = 1;
  (void)!::write(l->event_fd_, &one, sizeof one);
  l->cv_.notify_one();
}

Result<std::shared_ptr<FdListener>> Node::listenFd(uint16_t port) {
  auto l = std::shared_ptr<FdListener>(new FdListener);
  l->node_ = this;
  l->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  if (l->event_fd_ < 0) return Status::fromErrno(errno, "listen: eventfd");
  std::weak_ptr<FdListener> weak = l;
  Status st = runOnLoop([&] {
    auto r = listenTcp(port, [this, weak](std::shared_ptr<TcpConn> c) {
      if (auto l = weak.lock()) {
        acceptFd(l, std::move(c));
      } else {
        c->abort();
      }
    });
    if (!r) return r.status();
    l->listener_ = r.value();
    l->port_ = r.value()->port();
    fd_listeners_.push_back(l);
    return Status::ok();
  });
  if (!st) return st;
  return l;
}

FdListener::~FdListener() {
  close();
  ::close(event_fd_);
}

Result<FdConn> FdListener::accept(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (node_ != nullptr && node_->onLoopThread()) {
    return Status(EDEADLK, "accept: blocking call on the node's loop thread");
  }
  auto ready = [this] { return !ready_.empty() || closed_ || node_ == nullptr; };
  if (timeout_ms < 0) {
    cv_.wait(lock, ready);
  } else {
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready);
  }
  if (ready_.empty()) {
    if (closed_ || node_ == nullptr) return Status(EBADF, "accept: listener or node closed");
    return Status(ETIMEDOUT, "accept: timed out");
  }
  FdConn c = ready_.front();
  ready_.pop_front();
  uint64_t v;
  (void)!::read(event_fd_, &v, sizeof v);
  return c;
}

void FdListener::close() {
  std::deque<FdConn> pending;
  Node* node;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    pending.swap(ready_);
    node = node_;
  }
  cv_.notify_all();
  uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof one);
  for (const FdConn& c : pending) ::close(c.fd);
  if (node != nullptr) {
    node->post([l = listener_] {
      if (l) l->close();
    });
  }
}

Result<FdConn> Node::dialFd(const std::string& address, int64_t timeout_ms) {
  if (onLoopThread()) return Status(EDEADLK, "dial: blocking call on the node's loop thread");
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    Status status;
    FdConn conn;
    std::shared_ptr<TcpConn> tcp;
  };
  auto state = std::make_shared<State>();
  auto finish = [state](Status st, FdConn c) {
    std::lock_guard<std::mutex> lock(state->mu);
    state->tcp.reset();
    if (state->abandoned) {
      if (c.fd >= 0) ::close(c.fd);
      return;
    }
    state->status = std::move(st);
    state->conn = c;
    state->done = true;
    state->cv.notify_all();
  };
  Status st = runOnLoop([&] {
    auto r = dialTcp(address, timeout_ms, [this, state, finish](const Status& s) {
      std::shared_ptr<TcpConn> tcp = state->tcp;
      if (!s || !tcp) {
        finish(s.isOk() ? Status(ECONNABORTED, "dial: aborted") : s, {});
        return;
      }
      int ours, theirs;
      if (Status ps = makeLoopbackPair(&ours, &theirs); !ps) {
        tcp->abort();
        finish(ps, {});
        return;
      }
      FdConn fc{theirs, tcp->localEndpoint(), tcp->remoteEndpoint()};
      bridge(tcp, ours);
      finish(Status::ok(), fc);
    });
    if (!r) return r.status();
    std::lock_guard<std::mutex> lock(state->mu);
    state->tcp = r.value();
    return Status::ok();
  });
  if (!st) return st;
  std::unique_lock<std::mutex> lock(state->mu);
  auto limit = std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms + 2000 : 24 * 3600 * 1000);
  if (!state->cv.wait_for(lock, limit, [&] { return state->done || closed_.load(); }) ||
      !state->done) {
    state->abandoned = true;
    return Status(closed_ ? EBADF : ETIMEDOUT, "dial " + address + ": no answer");
  }
  if (!state->status) return state->status;
  return state->conn;
}

}  // namespace gatehouse::wg
