#include "wg/netstack/netstack.h"

#include <errno.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "wg/netstack/lwip_util.h"

extern "C" {
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"  // tcp_tw_pcbs, tcp_ticks: the TIME_WAIT cap
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
}

namespace gatehouse::wg {
namespace {

constexpr uint32_t kMaxTimeoutsDelayMs = 100;  // L4: at least every 100 ms

// lwIP's process-global state and the one loop it is bound to (see the header).
struct Global {
  std::mutex mu;
  uv_loop_t* loop = nullptr;
  uv_timer_t* timer = nullptr;  // freed in its close callback
  std::vector<Netstack*> stacks;
};
Global& global() {
  static Global* g = new Global;  // never destroyed: lwIP itself lives until exit
  return *g;
}

void initLwipOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // P4: LWIP_RAND() is rand(); seed it from a CSPRNG before lwip_init() draws ports from it.
    if (sodium_init() < 0) abort();
    unsigned seed;
    randombytes_buf(&seed, sizeof seed);
    srand(seed);
    lwip_init();  // L1: never tcpip_init()
  });
}

void onTimeoutsTimer(uv_timer_t* t) {
  sys_check_timeouts();
  Global& g = global();
  if (g.timer != t) return;  // the last stack went away inside a callback
  uint32_t next = sys_timeouts_sleeptime();
  next = std::clamp<uint32_t>(next, 1, kMaxTimeoutsDelayMs);
  uv_timer_start(t, onTimeoutsTimer, next, 0);
}

bool badSource(const IpAddr& a) {
  const auto& b = a.bytes;
  if (a.isV4()) return b[0] == 0 || b[0] == 127 || b[0] >= 224;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool zero15 = std::all_of(b.begin(), b.begin() + 15, [](uint8_t x) { return x == 0; });
  return b[0] == 0xff || (zero15 && b[15] <= 1) || std::memcmp(b.data(), kMapped, 12) == 0;
}

// Transport protocols lwIP may see. Anything else is dropped before lwIP: notably UDP-Lite (136),
// compiled into Debian's build, whose checksum-coverage field larger than the datagram trips
// LWIP_ASSERT("delete me") in inet_chksum.c and aborts the process (found by netstack_fuzz).
bool allowedTransport(uint8_t proto) { return proto == 6 || proto == 17 || proto == 1; }
bool allowedTransport6(uint8_t nh) { return nh == 6 || nh == 17 || nh == 58; }

bool transportAllowed(std::span<const uint8_t> p) {
  if ((p[0] >> 4) == 4) return p.size() >= 20 && allowedTransport(p[9]);
  if (p.size() < 40) return false;
  if (p[6] == 44) return p.size() >= 48 && allowedTransport6(p[40]);  // one fragment header
  return allowedTransport6(p[6]);
}

err_t emitPbuf(struct netif* nif, struct pbuf* p) {
  auto* self = static_cast<Netstack*>(nif->state);
  thread_local std::vector<uint8_t> buf;
  buf.resize(p->tot_len);
  pbuf_copy_partial(p, buf.data(), p->tot_len, 0);
  // lwIP routes replies it originates (RST, ICMP errors) by destination only, so with several
  // nodes in one process a packet can leave through the wrong netif: its source decides.
  Netstack* owner = self;
  if (auto src = IpAddr::packetSource(buf); src && !self->isLocal(*src)) {
    for (Netstack* s : global().stacks) {
      if (s->isLocal(*src)) owner = s;
    }
  }
  owner->emit(buf, owner != self);
  return ERR_OK;
}

err_t outputV4(struct netif* nif, struct pbuf* p, const ip4_addr_t*) { return emitPbuf(nif, p); }
err_t outputV6(struct netif* nif, struct pbuf* p, const ip6_addr_t*) { return emitPbuf(nif, p); }

err_t netifInit(struct netif* nif) {
  nif->name[0] = 'g';
  nif->name[1] = 'h';
  nif->output = outputV4;
  nif->output_ip6 = outputV6;
  nif->flags = 0;  // point-to-point: no ARP, no broadcast
  return ERR_OK;
}

}  // namespace

struct Netstack::DialTimer {
  uv_timer_t handle;
  Netstack* stack;
  std::weak_ptr<TcpConn> conn;
};

Result<std::unique_ptr<Netstack>> Netstack::create(uv_loop_t* loop, NetstackOptions options,
                                                   PacketFn output) {
  if (options.addresses.empty()) return Status(EINVAL, "netstack: no tunnel address given");
  size_t v6 = 0;
  for (const IpAddr& a : options.addresses) {
    if (a.family == IpAddr::Family::kNone) return Status(EINVAL, "netstack: empty address");
    v6 += a.isV6();
  }
  if (v6 > LWIP_IPV6_NUM_ADDRESSES) {
    return Status(EINVAL, "netstack: at most " + std::to_string(LWIP_IPV6_NUM_ADDRESSES) +
                              " IPv6 addresses per node");
  }
  initLwipOnce();
  Global& g = global();
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (g.loop != nullptr && g.loop != loop) {
      return Status(EBUSY,
                    "netstack: lwIP is process-global and already runs on another loop; put "
                    "every node of this process on one loop (NodeOptions::loop)");
    }
    g.loop = loop;
  }
  std::unique_ptr<Netstack> ns(new Netstack(loop, std::move(options), std::move(output)));
  if (Status st = ns->init(); !st) return st;
  return ns;
}

Netstack::Netstack(uv_loop_t* loop, NetstackOptions options, PacketFn output)
    : loop_(loop), options_(std::move(options)), output_(std::move(output)) {}

Status Netstack::init() {
  Global& g = global();
  for (Netstack* s : g.stacks) {
    for (const IpAddr& a : options_.addresses) {
      if (s->isLocal(a)) {
        return Status(EADDRINUSE, "netstack: address " + a.toString() +
                                      " already belongs to another node in this process");
      }
    }
  }
  netif_ = std::make_unique<struct netif>();
  std::memset(netif_.get(), 0, sizeof(struct netif));
  ip4_addr_t addr4{}, mask4{}, gw4{};
  if (auto a = addressOf(IpAddr::Family::kV4)) {
    std::memcpy(&addr4.addr, a->bytes.data(), 4);
    mask4.addr = 0xffffffff;
  }
  if (netif_add(netif_.get(), &addr4, &mask4, &gw4, this, netifInit, ip_input) == nullptr) {
    return Status(ENOMEM, "netstack: netif_add failed");
  }
  netif_added_ = true;
  netif_->mtu = options_.mtu;
  netif_->mtu6 = options_.mtu;
  // P7: no DAD, no autoconfiguration, no router solicitations; addresses preferred at once.
  netif_->ip6_autoconfig_enabled = 0;
  netif_->rs_count = 0;
  int slot = 0;
  for (const IpAddr& a : options_.addresses) {
    if (!a.isV6()) continue;
    ip_addr_t la = toLwip(a);
    netif_ip6_addr_set(netif_.get(), slot, ip_2_ip6(&la));
    netif_ip6_addr_set_state(netif_.get(), slot, IP6_ADDR_PREFERRED);
    ++slot;
  }
  netif_set_link_up(netif_.get());
  netif_set_up(netif_.get());
  if (netif_default == nullptr) netif_set_default(netif_.get());

  task_timer_ = new uv_timer_t;
  uv_timer_init(loop_, task_timer_);
  task_timer_->data = this;
  if (g.stacks.empty()) {
    g.timer = new uv_timer_t;
    uv_timer_init(loop_, g.timer);
    uv_timer_start(g.timer, onTimeoutsTimer, kMaxTimeoutsDelayMs, 0);
  }
  g.stacks.push_back(this);
  return Status::ok();
}

Netstack::~Netstack() { close(); }

void Netstack::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& weak : listeners_) {
    if (auto l = weak.lock()) l->close();
  }
  for (auto& weak : udp_sockets_) {
    if (auto u = weak.lock()) u->close();
  }
  auto conns = std::move(conns_);
  for (auto& c : conns) c->detach();
  for (DialTimer* t : dial_timers_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&t->handle),
             [](uv_handle_t* h) { delete static_cast<DialTimer*>(h->data); });
  }
  dial_timers_.clear();
  tasks_.clear();
  // The node's TIME_WAIT pcbs would outlive its netif (lwIP leaves them when it goes away).
  if (netif_added_) dropTimeWait(0);
  if (task_timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(task_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    task_timer_ = nullptr;
  }
  Global& g = global();
  if (netif_added_) {
    netif_remove(netif_.get());
    netif_added_ = false;
  }
  g.stacks.erase(std::remove(g.stacks.begin(), g.stacks.end(), this), g.stacks.end());
  if (netif_default == nullptr && !g.stacks.empty()) netif_set_default(g.stacks[0]->netif());
  if (g.stacks.empty()) {
    uv_close(reinterpret_cast<uv_handle_t*>(g.timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    g.timer = nullptr;
    std::lock_guard<std::mutex> lock(g.mu);
    g.loop = nullptr;
  }
}

bool Netstack::isLocal(const IpAddr& a) const {
  return std::find(options_.addresses.begin(), options_.addresses.end(), a) !=
         options_.addresses.end();
}

std::optional<IpAddr> Netstack::addressOf(IpAddr::Family family) const {
  for (const IpAddr& a : options_.addresses) {
    if (a.family == family) return a;
  }
  return std::nullopt;
}

void Netstack::input(std::span<const uint8_t> packet) {
  if (closed_) return;
  auto dst = IpAddr::packetDestination(packet);
  auto src = IpAddr::packetSource(packet);
  if (!dst || !src || packet.size() > 0xffff) {
    ++counters_.in_malformed;
    return;
  }
  if (!isLocal(*dst)) {
    ++counters_.in_not_local;
    return;
  }
  if (src->family != dst->family || isLocal(*src) || badSource(*src)) {
    ++counters_.in_bad_source;
    return;
  }
  if (!transportAllowed(packet)) {
    ++counters_.in_bad_protocol;
    return;
  }
  struct pbuf* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
  if (p == nullptr) return;
  pbuf_take(p, packet.data(), static_cast<u16_t>(packet.size()));
  ++counters_.in_packets;
  // lwIP routes the replies it originates (RST, ICMP) by destination, and a destination that is
  // another in-process node's address would match that node's netif and go to
  // netif_loop_output (P1). While this packet is processed, the other netifs look down.
  auto& stacks = global().stacks;
  for (Netstack* s : stacks) {
    if (s != this) s->netif_->flags &= ~NETIF_FLAG_UP;
  }
  struct tcp_pcb* tw_head = tcp_tw_pcbs;
  if (netif_->input(p, netif_.get()) != ERR_OK) pbuf_free(p);  // L3
  for (Netstack* s : stacks) s->netif_->flags |= NETIF_FLAG_UP;
  // A pcb enters TIME_WAIT only while lwIP processes a segment, at the head of tcp_tw_pcbs:
  // the list is walked only when its head changed.
  if (tcp_tw_pcbs != tw_head && tcp_tw_pcbs != nullptr) {
    counters_.timewait_evicted += dropTimeWait(options_.max_timewait);
  }
}

size_t Netstack::timeWaitCount() const {
  if (!netif_added_) return 0;
  u8_t idx = netif_get_index(netif_.get());
  size_t n = 0;
  for (struct tcp_pcb* pcb = tcp_tw_pcbs; pcb != nullptr; pcb = pcb->next) {
    n += pcb->netif_idx == idx;
  }
  return n;
}

size_t Netstack::dropTimeWait(size_t keep) {
  // Every pcb of this node is bound to its netif (listen and dial both tcp_bind_netif; accepted
  // pcbs inherit netif_idx from the listener), so netif_idx tells whose a TIME_WAIT pcb is.
  u8_t idx = netif_get_index(netif_.get());
  tw_scratch_.clear();
  for (struct tcp_pcb* pcb = tcp_tw_pcbs; pcb != nullptr; pcb = pcb->next) {
    if (pcb->netif_idx == idx) tw_scratch_.push_back(pcb);
  }
  if (tw_scratch_.size() <= keep) return 0;
  size_t excess = tw_scratch_.size() - keep;
  // Oldest first, measured as tcp_kill_timewait does (tcp.c): ticks since the last segment.
  auto age = [](const struct tcp_pcb* pcb) { return static_cast<u32_t>(tcp_ticks - pcb->tmr); };
  std::nth_element(tw_scratch_.begin(), tw_scratch_.begin() + static_cast<ptrdiff_t>(excess - 1),
                   tw_scratch_.end(), [&](const struct tcp_pcb* x, const struct tcp_pcb* y) {
                     return age(x) > age(y);
                   });
  for (size_t i = 0; i < excess; ++i) {
    tcp_abort(tw_scratch_[i]);  // TIME_WAIT: unlinked and freed, no RST, no callback
  }
  tw_scratch_.clear();
  return excess;
}

void Netstack::emit(std::span<const uint8_t> packet, bool redirected) {
  ++counters_.out_packets;
  counters_.out_redirected += redirected;
  if (output_) output_(packet);
}

void Netstack::post(std::function<void()> task) {
  if (closed_) return;
  tasks_.push_back(std::move(task));
  if (tasks_.size() == 1) {
    uv_timer_start(
        task_timer_, [](uv_timer_t* t) { static_cast<Netstack*>(t->data)->runTasks(); }, 0, 0);
  }
}

void Netstack::runTasks() {
  // Tasks may post more; those run on the next turn, so a busy pipe cannot starve the loop.
  std::vector<std::function<void()>> tasks;
  tasks.swap(tasks_);
  for (auto& t : tasks) {
    if (closed_) return;
    t();
  }
}

void Netstack::track(const std::shared_ptr<TcpConn>& conn) { conns_.push_back(conn); }

void Netstack::untrack(TcpConn* conn) {
  auto it = std::find_if(conns_.begin(), conns_.end(),
                         [conn](const std::shared_ptr<TcpConn>& c) { return c.get() == conn; });
  if (it == conns_.end()) return;
  // Keep the object alive until the current callback returns: release from the loop.
  std::shared_ptr<TcpConn> keep = std::move(*it);
  conns_.erase(it);
  post([keep] {});
}

// ---- TCP listen ----

namespace {
err_t acceptCb(void* arg, struct tcp_pcb* newpcb, err_t err) {
  auto* l = static_cast<TcpListener*>(arg);
  if (err != ERR_OK || newpcb == nullptr) return ERR_VAL;
  if (l == nullptr) {
    tcp_abort(newpcb);
    return ERR_ABRT;
  }
  return static_cast<err_t>(l->accept(newpcb));
}
}  // namespace

int TcpListener::accept(struct tcp_pcb* newpcb) {
  if (closed() || !on_accept_ || stack_->closed()) {
    tcp_abort(newpcb);
    return ERR_ABRT;
  }
  auto conn = std::make_shared<TcpConn>(stack_, fromLwip(&newpcb->local_ip, newpcb->local_port),
                                        fromLwip(&newpcb->remote_ip, newpcb->remote_port));
  conn->attachPcb(newpcb);
  conn->setState(TcpConn::State::kConnected);
  stack_->track(conn);
  auto keep = shared_from_this();
  on_accept_(conn);
  return ERR_OK;
}

Result<std::shared_ptr<TcpListener>> Netstack::listenTcp(uint16_t port, AcceptFn on_accept) {
  if (closed_) return Status(EBADF, "listen: node is closed");
  auto l = std::shared_ptr<TcpListener>(new TcpListener);
  l->stack_ = this;
  l->on_accept_ = std::move(on_accept);
  for (const IpAddr& a : options_.addresses) {
    struct tcp_pcb* pcb = tcp_new_ip_type(a.isV4() ? IPADDR_TYPE_V4 : IPADDR_TYPE_V6);
    if (pcb == nullptr) return Status(ENOMEM, "listen: out of memory");
    tcp_bind_netif(pcb, netif_.get());
    ip_addr_t la = toLwip(a);
    err_t err = tcp_bind(pcb, &la, l->port_ != 0 ? l->port_ : port);
    if (err != ERR_OK) {
      tcp_abort(pcb);
      return Status(err == ERR_USE ? EADDRINUSE : EINVAL,
                    "listen: TCP port " + std::to_string(port) + " on " + a.toString() + ": " +
                        (err == ERR_USE ? "address in use" : "bind failed"));
    }
    struct tcp_pcb* lpcb = tcp_listen_with_backlog_and_err(pcb, TCP_DEFAULT_LISTEN_BACKLOG, &err);
    if (lpcb == nullptr) {
      tcp_abort(pcb);
      return Status(ENOMEM, "listen: tcp_listen failed");
    }
    l->port_ = lpcb->local_port;
    tcp_arg(lpcb, l.get());
    tcp_accept(lpcb, acceptCb);
    l->pcbs_.push_back(lpcb);
  }
  listeners_.push_back(l);
  return l;
}

TcpListener::~TcpListener() { close(); }

void TcpListener::close() {
  for (struct tcp_pcb* pcb : pcbs_) {
    tcp_arg(pcb, nullptr);
    tcp_accept(pcb, nullptr);
    tcp_close(pcb);  // never fails for a listen pcb
  }
  pcbs_.clear();
}

// ---- TCP dial ----

Result<std::shared_ptr<TcpConn>> Netstack::dialTcp(
    const Endpoint& to, int64_t timeout_ms, std::function<void(const Status&)> on_connected) {
  if (closed_) return Status(EBADF, "dial: node is closed");
  if (!to.valid() || to.port == 0) return Status(EINVAL, "dial: invalid address " + to.toString());
  if (isLocal(to.addr)) return dialSelf(to, std::move(on_connected));
  auto local = addressOf(to.addr.family);
  if (!local) {
    return Status(EAFNOSUPPORT, std::string("dial ") + to.toString() + ": node has no IPv" +
                                    (to.addr.isV4() ? "4" : "6") + " address");
  }
  struct tcp_pcb* pcb = tcp_new_ip_type(to.addr.isV4() ? IPADDR_TYPE_V4 : IPADDR_TYPE_V6);
  if (pcb == nullptr) return Status(ENOMEM, "dial: out of memory");
  tcp_bind_netif(pcb, netif_.get());
  ip_addr_t la = toLwip(*local), ra = toLwip(to.addr);
  if (tcp_bind(pcb, &la, 0) != ERR_OK) {
    tcp_abort(pcb);
    return Status(EADDRNOTAVAIL, "dial: no free local port");
  }
  auto conn = std::make_shared<TcpConn>(this, Endpoint{*local, pcb->local_port}, to);
  conn->attachPcb(pcb);
  conn->setConnectCallback(std::move(on_connected));
  err_t err = tcp_connect(pcb, &ra, to.port, [](void* arg, struct tcp_pcb* p, err_t e) -> err_t {
    return static_cast<err_t>(TcpConn::onConnected(arg, p, e));
  });
  if (err != ERR_OK) {
    conn->setConnectCallback(nullptr);
    conn->detach();
    return Status(err == ERR_RTE ? EHOSTUNREACH : ENOBUFS,
                  "dial " + to.toString() + ": " + lwip_strerr(err));
  }
  track(conn);
  if (timeout_ms > 0) startDialTimer(conn, timeout_ms);
  return conn;
}

void Netstack::startDialTimer(const std::shared_ptr<TcpConn>& conn, int64_t timeout_ms) {
  auto* t = new DialTimer{{}, this, conn};
  uv_timer_init(loop_, &t->handle);
  t->handle.data = t;
  dial_timers_.push_back(t);
  uv_timer_start(
      &t->handle,
      [](uv_timer_t* h) {
        auto* t = static_cast<DialTimer*>(h->data);
        Netstack* self = t->stack;
        auto& v = self->dial_timers_;
        v.erase(std::remove(v.begin(), v.end(), t), v.end());
        auto conn = t->conn.lock();
        uv_close(reinterpret_cast<uv_handle_t*>(h),
                 [](uv_handle_t* h) { delete static_cast<DialTimer*>(h->data); });
        if (conn && conn->open() && !conn->connected()) {
          conn->fail(Status(
              ETIMEDOUT, "dial " + conn->remoteEndpoint().toString() + ": connection timed out"));
        }
      },
      static_cast<uint64_t>(timeout_ms), 0);
}

Result<std::shared_ptr<TcpConn>> Netstack::dialSelf(
    const Endpoint& to, std::function<void(const Status&)> on_connected) {
  std::shared_ptr<TcpListener> listener;
  for (auto& weak : listeners_) {
    auto l = weak.lock();
    if (l && !l->closed() && l->port() == to.port) listener = l;
  }
  if (!listener) {
    return Status(ECONNREFUSED, "dial " + to.toString() + ": connection refused (own address)");
  }
  Endpoint client{to.addr, next_pipe_port_};
  next_pipe_port_ = next_pipe_port_ == 65535 ? 49152 : next_pipe_port_ + 1;
  auto a = std::make_shared<TcpConn>(this, client, to);
  auto b = std::make_shared<TcpConn>(this, to, client);
  TcpConn::makePipe(a, b);
  a->setConnectCallback(std::move(on_connected));
  track(a);
  track(b);
  post([a, b, listener] {
    if (!b->open()) return;
    if (listener->closed() || !listener->on_accept_) {
      b->abort();
      a->finishConnect(Status(ECONNREFUSED, "dial: connection refused (listener closed)"));
      return;
    }
    listener->on_accept_(b);
    a->finishConnect(Status::ok());
  });
  return a;
}

// ---- UDP ----

namespace {
void udpRecvCb(void* arg, struct udp_pcb*, struct pbuf* p, const ip_addr_t* addr, u16_t port) {
  auto* s = static_cast<UdpSocket*>(arg);
  if (s != nullptr && p != nullptr) {
    thread_local std::vector<uint8_t> buf;
    buf.resize(p->tot_len);
    pbuf_copy_partial(p, buf.data(), p->tot_len, 0);
    s->deliver(fromLwip(addr, port), buf);
  }
  if (p != nullptr) pbuf_free(p);
}
}  // namespace

Result<std::shared_ptr<UdpSocket>> Netstack::listenUdp(uint16_t port) {
  if (closed_) return Status(EBADF, "listen: node is closed");
  auto s = std::shared_ptr<UdpSocket>(new UdpSocket);
  s->stack_ = this;
  for (const IpAddr& a : options_.addresses) {
    struct udp_pcb* pcb = udp_new_ip_type(a.isV4() ? IPADDR_TYPE_V4 : IPADDR_TYPE_V6);
    if (pcb == nullptr) return Status(ENOMEM, "listen: out of memory");
    udp_bind_netif(pcb, netif_.get());
    ip_addr_t la = toLwip(a);
    if (udp_bind(pcb, &la, s->port_ != 0 ? s->port_ : port) != ERR_OK) {
      udp_remove(pcb);
      return Status(EADDRINUSE, "listen: UDP port " + std::to_string(port) + " on " + a.toString() +
                                    ": address in use");
    }
    s->port_ = pcb->local_port;
    udp_recv(pcb, udpRecvCb, s.get());
    s->pcbs_.push_back(pcb);
  }
  udp_sockets_.push_back(s);
  return s;
}

UdpSocket::~UdpSocket() { close(); }

void UdpSocket::close() {
  for (struct udp_pcb* pcb : pcbs_) udp_remove(pcb);
  pcbs_.clear();
}

void UdpSocket::deliver(const Endpoint& from, std::span<const uint8_t> data) {
  if (!closed() && on_message_) on_message_(from, data);
}

Status UdpSocket::sendTo(const Endpoint& to, std::span<const uint8_t> data) {
  if (closed() || stack_->closed()) return Status(EBADF, "udp send: socket is closed");
  if (!to.valid() || to.port == 0) return Status(EINVAL, "udp send: invalid address");
  if (data.size() > 65507) return Status(EMSGSIZE, "udp send: datagram too large");
  auto local = stack_->addressOf(to.addr.family);
  if (!local) return Status(EAFNOSUPPORT, "udp send: node has no address of that family");
  if (stack_->isLocal(to.addr)) {  // P1: never through lwIP
    Endpoint from{to.addr, port_};
    for (auto& weak : stack_->udp_sockets_) {
      auto dst = weak.lock();
      if (dst && !dst->closed() && dst->port() == to.port) {
        std::vector<uint8_t> copy(data.begin(), data.end());
        stack_->post([dst, from, copy] { dst->deliver(from, copy); });
      }
    }
    return Status::ok();
  }
  struct udp_pcb* pcb = nullptr;
  for (struct udp_pcb* p : pcbs_) {
    if (IP_IS_V4_VAL(p->local_ip) == to.addr.isV4()) pcb = p;
  }
  if (pcb == nullptr) return Status(EAFNOSUPPORT, "udp send: no socket of that family");
  struct pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(data.size()), PBUF_RAM);
  if (p == nullptr) return Status(ENOBUFS, "udp send: out of memory");
  pbuf_take(p, data.data(), static_cast<u16_t>(data.size()));
  ip_addr_t ra = toLwip(to.addr);
  err_t err = udp_sendto(pcb, p, &ra, to.port);
  pbuf_free(p);
  if (err != ERR_OK) return Status(ENOBUFS, std::string("udp send: ") + lwip_strerr(err));
  return Status::ok();
}

}  // namespace gatehouse::wg
