#include "proxy/upstream/pool.h"

#include <algorithm>
#include <cerrno>

namespace gatehouse::proxy {

struct UpstreamPool::Upstream {
  UpstreamTarget target;
  std::deque<std::unique_ptr<IdleEntry>> idle;  // oldest at the front
  PoolStats stats;
};

// An idle connection, watched: the pool is its Callbacks while it waits for a new owner.
struct UpstreamPool::IdleEntry final : UpstreamConnection::Callbacks {
  UpstreamPool* pool = nullptr;
  Upstream* upstream = nullptr;
  std::unique_ptr<UpstreamConnection> conn;
  int64_t since_ms = 0;

  // Out-of-turn bytes would be read as the next request's response: drop the connection.
  void onUpstreamData(std::string_view) override { pool->dropIdle(this); }
  void onUpstreamClose(const Status&) override { pool->dropIdle(this); }
};

struct UpstreamPool::Waiter final : Cancellable {
  UpstreamPool* pool = nullptr;
  Upstream* upstream = nullptr;
  AcquireCallback cb;
  ConnectionOptions options;
  std::unique_ptr<UpstreamConnection> connecting;
  std::list<std::unique_ptr<Waiter>>::iterator self;

  void cancel() override { pool->removeWaiter(this); }
};

PoolStats& PoolStats::operator+=(const PoolStats& o) {
  connects += o.connects;
  connect_failures += o.connect_failures;
  handshake_failures += o.handshake_failures;
  reuses += o.reuses;
  idle_closed += o.idle_closed;
  idle_expired += o.idle_expired;
  idle_evicted += o.idle_evicted;
  released_closed += o.released_closed;
  return *this;
}

namespace {

uv_timer_t* newTimer(uv_loop_t* loop, void* data) {
  auto* t = new uv_timer_t;
  uv_timer_init(loop, t);
  t->data = data;
  return t;
}

void closeTimer(uv_timer_t* t) {
  t->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(t),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

std::string trustKey(const TlsOptions& o) { return o.ca_bundle_file + "\n" + o.extra_ca_file; }

}  // namespace

UpstreamPool::UpstreamPool(uv_loop_t* loop, PoolOptions options)
    : loop_(loop),
      options_(options),
      dispatch_timer_(newTimer(loop, this)),
      sweep_timer_(newTimer(loop, this)) {}

UpstreamPool::~UpstreamPool() {
  queued_.clear();
  waiters_.clear();  // destroys in-flight connections: cancelled, no callbacks
  closeIdle();
  closeTimer(dispatch_timer_);
  closeTimer(sweep_timer_);
}

UpstreamPool::Upstream& UpstreamPool::upstreamFor(const UpstreamTarget& target) {
  auto& slot = upstreams_[target.poolKey()];
  if (!slot) {
    slot = std::make_unique<Upstream>();
    slot->target = target;
  }
  return *slot;
}

const UpstreamPool::Upstream* UpstreamPool::findUpstream(const UpstreamTarget& target) const {
  auto it = upstreams_.find(target.poolKey());
  return it == upstreams_.end() ? nullptr : it->second.get();
}

Result<std::shared_ptr<TlsContext>> UpstreamPool::tlsContext(const TlsOptions& options) {
  auto& slot = contexts_[trustKey(options)];
  if (!slot) {
    // Failures are not cached: the operator may fix the file and the next acquire picks it up.
    auto created = TlsContext::create(options);
    if (!created) {
      contexts_.erase(trustKey(options));
      return created.status();
    }
    slot = created.value();
  }
  return slot;
}

Cancellable* UpstreamPool::acquire(const UpstreamTarget& target, AcquireCallback cb,
                                   const ConnectionOptions* options) {
  auto w = std::make_unique<Waiter>();
  w->pool = this;
  w->upstream = &upstreamFor(target);
  w->cb = std::move(cb);
  w->options = options ? *options : options_.connection;
  Waiter* raw = w.get();
  waiters_.push_back(std::move(w));
  raw->self = std::prev(waiters_.end());
  queued_.push_back(raw);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(dispatch_timer_))) {
    uv_timer_start(
        dispatch_timer_,
        [](uv_timer_t* t) {
          if (t->data) static_cast<UpstreamPool*>(t->data)->dispatch();
        },
        0, 0);
  }
  return raw;
}

void UpstreamPool::dispatch() {
  // Callbacks may acquire (appends) or cancel (erases from queued_); pop one at a time.
  while (!queued_.empty()) {
    Waiter* w = queued_.front();
    queued_.pop_front();
    serve(w);
  }
}

void UpstreamPool::serve(Waiter* w) {
  Upstream& up = *w->upstream;
  while (!up.idle.empty()) {
    std::unique_ptr<IdleEntry> entry = std::move(up.idle.back());
    up.idle.pop_back();
    std::unique_ptr<UpstreamConnection> conn = std::move(entry->conn);
    conn->setCallbacks(nullptr);
    if (!conn->isOpen()) continue;
    conn->resetExchange();
    conn->reused_ = true;
    ++up.stats.reuses;
    return complete(w, std::move(conn));
  }

  std::shared_ptr<TlsContext> tls;
  if (up.target.tls) {
    auto ctx = tlsContext(up.target.tls_options);
    if (!ctx) return complete(w, ctx.status());
    tls = ctx.value();
  }
  w->connecting =
      std::make_unique<UpstreamConnection>(loop_, up.target, std::move(tls), w->options);
  w->connecting->connect([this, w](const Status& status) { onConnected(w, status); });
}

void UpstreamPool::onConnected(Waiter* w, const Status& status) {
  // Runs inside the connection's callback; destroying it here is part of its contract.
  std::unique_ptr<UpstreamConnection> conn = std::move(w->connecting);
  PoolStats& stats = w->upstream->stats;
  if (!status) {
    if (conn->failedIn() == UpstreamConnection::State::kHandshaking) {
      ++stats.handshake_failures;
    } else {
      ++stats.connect_failures;
    }
    return complete(w, status);
  }
  ++stats.connects;
  complete(w, std::move(conn));
}

void UpstreamPool::complete(Waiter* w, Result<std::unique_ptr<UpstreamConnection>> result) {
  std::unique_ptr<Waiter> owned = std::move(*w->self);
  waiters_.erase(w->self);
  AcquireCallback cb = std::move(owned->cb);
  owned.reset();  // the handle is invalid from here on, as documented
  cb(std::move(result));
}

void UpstreamPool::removeWaiter(Waiter* w) {
  std::erase(queued_, w);
  waiters_.erase(w->self);  // destroys a connection in flight: cancelled, no callback
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn, bool reusable) {
  if (!conn) return;
  Upstream& up = upstreamFor(conn->target());
  // Bytes still queued mean the request was cut short; the server may be mid-read.
  if (!reusable || !conn->isOpen() || conn->bufferedBytes() > 0) {
    ++up.stats.released_closed;
    conn->close();
    return;
  }
  if (options_.max_idle_per_upstream == 0) {
    ++up.stats.idle_evicted;
    conn->close();
    return;
  }
  while (up.idle.size() >= options_.max_idle_per_upstream) {
    ++up.stats.idle_evicted;
    up.idle.front()->conn->close();
    up.idle.pop_front();
  }
  auto entry = std::make_unique<IdleEntry>();
  entry->pool = this;
  entry->upstream = &up;
  entry->since_ms = static_cast<int64_t>(uv_now(loop_));
  conn->resetExchange();
  conn->setCallbacks(entry.get());
  entry->conn = std::move(conn);
  up.idle.push_back(std::move(entry));
  armSweep();
}

void UpstreamPool::dropIdle(IdleEntry* entry) {
  Upstream& up = *entry->upstream;
  auto it = std::find_if(up.idle.begin(), up.idle.end(),
                         [entry](const auto& e) { return e.get() == entry; });
  if (it == up.idle.end()) return;
  ++up.stats.idle_closed;
  std::unique_ptr<IdleEntry> doomed = std::move(*it);
  up.idle.erase(it);
  doomed->conn->cancel();
  // `doomed` (and the connection whose callback we are in) is destroyed on return.
}

void UpstreamPool::closeIdle() {
  for (auto& [key, up] : upstreams_) {
    for (auto& e : up->idle) e->conn->close();
    up->idle.clear();
  }
}

void UpstreamPool::armSweep() {
  int64_t oldest = -1;
  for (auto& [key, up] : upstreams_) {
    if (!up->idle.empty() && (oldest < 0 || up->idle.front()->since_ms < oldest)) {
      oldest = up->idle.front()->since_ms;
    }
  }
  uv_timer_stop(sweep_timer_);
  if (oldest < 0) return;
  int64_t now = static_cast<int64_t>(uv_now(loop_));
  int64_t delay = std::max<int64_t>(oldest + options_.idle_timeout_ms - now, 0);
  uv_timer_start(
      sweep_timer_,
      [](uv_timer_t* t) {
        if (t->data) static_cast<UpstreamPool*>(t->data)->sweep();
      },
      static_cast<uint64_t>(delay), 0);
}

void UpstreamPool::sweep() {
  int64_t now = static_cast<int64_t>(uv_now(loop_));
  for (auto& [key, up] : upstreams_) {
    while (!up->idle.empty() && now - up->idle.front()->since_ms >= options_.idle_timeout_ms) {
      ++up->stats.idle_expired;
      up->idle.front()->conn->close();
      up->idle.pop_front();
    }
  }
  armSweep();
}

PoolStats UpstreamPool::stats() const {
  PoolStats total;
  for (auto& [key, up] : upstreams_) total += up->stats;
  return total;
}

PoolStats UpstreamPool::stats(const UpstreamTarget& target) const {
  const Upstream* up = findUpstream(target);
  return up ? up->stats : PoolStats{};
}

size_t UpstreamPool::idleCount() const {
  size_t n = 0;
  for (auto& [key, up] : upstreams_) n += up->idle.size();
  return n;
}

size_t UpstreamPool::idleCount(const UpstreamTarget& target) const {
  const Upstream* up = findUpstream(target);
  return up ? up->idle.size() : 0;
}

}  // namespace gatehouse::proxy
