#include "proxy/gateway/gateway.h"

#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "proxy/gateway/connection.h"

namespace gatehouse::proxy {

struct Gateway::Listener {
  uv_tcp_t tcp;
  Gateway* gw;
  wg::Identity identity;
};

std::string newRequestId() {
  // 48 bits of Unix milliseconds, then 80 random bits: unique, and in time order, so the log's
  // unique index on ids grows at its end instead of touching a random page per insert. The random
  // bits come from a per-thread buffer refilled from the OS every 400 ids.
  thread_local uint8_t pool[4000];
  thread_local size_t used = sizeof pool;
  if (used + 10 > sizeof pool) {
    randombytes_buf(pool, sizeof pool);
    used = 0;
  }
  uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  uint8_t b[16];
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  std::memcpy(b + 6, pool + used, 10);
  sodium_memzero(pool + used, 10);
  used += 10;
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (uint8_t x : b) {
    out += hex[x >> 4];
    out += hex[x & 15];
  }
  return out;
}

Gateway::Gateway(uv_loop_t* loop, GatewayOptions options)
    : loop_(loop), options_(std::move(options)) {
  shared_.config = options_.config;
  shared_.prices = options_.prices;
  shared_.grants = std::make_shared<const GrantSet>(*options_.config);
  PoolOptions po;
  pool_ = std::make_unique<UpstreamPool>(loop_, po);
  store_ = options_.quota_store;
  if (store_ == nullptr && options_.config->quotas.enabled()) {
    auto store = openQuotaStore(loop_, options_.config->quotas.store);
    if (store) {
      store_ = std::move(store.value());
    } else {
      // Requests that a quota rule covers are refused (503) until the store opens.
      std::fprintf(stderr, "gateway: quota store: %s\n", store.status().message().c_str());
    }
  }
  async_ = new uv_async_t;
  uv_async_init(loop_, async_, [](uv_async_t* a) {
    auto* gw = static_cast<Gateway*>(a->data);
    std::vector<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(gw->adopt_mu_);
      pending.swap(gw->pending_);
    }
    for (Pending& p : pending) gw->adopt(p.fd, std::move(p.identity), std::move(p.remote));
  });
  async_->data = this;
  defer_timer_ = new uv_timer_t;
  uv_timer_init(loop_, defer_timer_);
  defer_timer_->data = this;
}

Gateway::~Gateway() {
  close();
  runDeferred();  // deferrals made while closing
}

void Gateway::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (defer_timer_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(defer_timer_))) {
    uv_timer_start(
        defer_timer_, [](uv_timer_t* t) { static_cast<Gateway*>(t->data)->runDeferred(); }, 0, 0);
  }
}

void Gateway::runDeferred() {
  // A deferred function may defer again: those run on the next round.
  std::vector<std::function<void()>> now;
  now.swap(deferred_);
  for (auto& fn : now) fn();
}

int64_t Gateway::nowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Gateway::reload(std::shared_ptr<const GatewayConfig> config,
                     std::shared_ptr<const PriceTable> prices) {
  if (config) {
    shared_.grants = std::make_shared<const GrantSet>(*config);
    shared_.config = std::move(config);
    pool_->closeIdle();
  }
  if (prices) shared_.prices = std::move(prices);
}

void Gateway::adopt(int fd, std::optional<wg::Identity> identity, std::string remote) {
  if (closed_) {
    ::close(fd);
    return;
  }
  auto* c = new Connection(*this, std::move(identity), std::move(remote));
  connections_.insert(c);
  ++counters_.connections;
  if (Status st = c->open(fd); !st) {
    ::close(fd);
    c->abort();
    return;
  }
  c->startReading();
}

void Gateway::adoptFromAnyThread(int fd, std::optional<wg::Identity> identity, std::string remote) {
  {
    std::lock_guard<std::mutex> lock(adopt_mu_);
    pending_.push_back({fd, std::move(identity), std::move(remote)});
  }
  uv_async_send(async_);
}

Result<uint16_t> Gateway::listenLoopback(const wg::Endpoint& at, wg::Identity identity) {
  auto* l = new Listener;
  l->gw = this;
  l->identity = std::move(identity);
  uv_tcp_init(loop_, &l->tcp);
  l->tcp.data = l;
  sockaddr_storage ss;
  at.toSockaddr(&ss);
  int rc = uv_tcp_bind(&l->tcp, reinterpret_cast<sockaddr*>(&ss), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 1024, [](uv_stream_t* s, int status) {
      if (status < 0) return;
      auto* l = static_cast<Listener*>(s->data);
      l->gw->acceptLoopback(s, l->identity);
    });
  }
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp),
             [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
    return Status(-rc, "listen on " + at.toString() + ": " + uv_strerror(rc));
  }
  sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&l->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  auto ep =
      wg::Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), static_cast<socklen_t>(len));
  listener_ = l;
  return ep ? ep->port : uint16_t{0};
}

void Gateway::acceptLoopback(uv_stream_t* server, const wg::Identity& identity) {
  auto* c = new Connection(*this, identity, "loopback");
  connections_.insert(c);
  ++counters_.connections;
  if (closed_ || uv_accept(server, reinterpret_cast<uv_stream_t*>(c->handle())) != 0) {
    c->abort();
    return;
  }
  sockaddr_storage peer;
  int len = sizeof peer;
  if (uv_tcp_getpeername(c->handle(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    auto ep =
        wg::Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&peer), static_cast<socklen_t>(len));
    if (ep) c->setRemote(ep->toString());
  }
  uv_tcp_nodelay(c->handle(), 1);
  c->startReading();
}

void Gateway::forget(Connection* c) { connections_.erase(c); }

void Gateway::quotaEvent(QuotaEvent e) {
  if (e.kind == "rejected") ++counters_.quota_rejected;
  if (e.kind == "flagged") ++counters_.quota_flagged;
  if (e.kind == "overdraft") ++counters_.quota_overdrafts;
  if (e.kind == "store_error") ++counters_.quota_store_errors;
  if (e.kind == "fail_open") ++counters_.quota_fail_open;
  if (options_.on_quota_event) options_.on_quota_event(e);
  if (options_.webhooks != nullptr && options_.webhooks->wants("quota")) {
    options_.webhooks->publish(
        quotaWebhookEvent({std::move(e.kind), std::move(e.bucket), std::move(e.identity),
                           std::move(e.request_id), std::move(e.message)},
                          nowMs()));
  }
}

void Gateway::submitRecord(RequestRecord record) {
  // Admin API calls (dashboards polling the log) are not events.
  WebhookDispatcher* hooks = record.api_kind == "admin" ? nullptr : options_.webhooks;
  if (hooks != nullptr) {
    for (WebhookEvent& e : recordEvents(
             record, [hooks](std::string_view k) { return hooks->wants(k); }, nowMs())) {
      hooks->publish(std::move(e));
    }
  }
  if (options_.log != nullptr) options_.log->submit(std::move(record));
}

void Gateway::close() {
  if (closed_) return;
  closed_ = true;
  if (listener_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_->tcp),
             [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
    listener_ = nullptr;
  }
  for (Connection* c : std::set<Connection*>(connections_)) c->abort();
  connections_.clear();
  // close() never runs inside a connection's callbacks: finish what was deferred now.
  runDeferred();
  if (defer_timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(defer_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    defer_timer_ = nullptr;
  }
  if (store_) store_->close();  // after the aborts: their settlements are written
  if (async_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(async_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }
  std::lock_guard<std::mutex> lock(adopt_mu_);
  for (Pending& p : pending_) ::close(p.fd);
  pending_.clear();
  pool_.reset();
}

}  // namespace gatehouse::proxy
