// Redis quota store: hiredis' async API on the gateway's libuv loop (adapters/libuv.h), one Lua
// script call per operation (redis_scripts.h), EVALSHA after SCRIPT LOAD with a fallback to EVAL
// when the server answers NOSCRIPT (restarted, flushed).
//
// Batching: reserves are queued and sent together on the loop's next turn (a uv_idle handle,
// which also keeps the loop from blocking in poll meanwhile), up to kMaxBatch plans per script
// call, so under load the Redis cost per request is a fraction of a round trip. Settles wait up
// to kSettleDelayMs for a reserve batch to ride with (under load one always comes), so a request
// costs about one script call instead of two; every queued settle goes first in the next call,
// so this replica's refunds always make room before its own reserves are decided. Other
// replicas see a settle at most kSettleDelayMs late. At most one batch call is in flight at a
// time: what queues up meanwhile goes in the next call when the reply comes, so the busier the
// gateway, the bigger the batches (an idle gateway sends at once). Admin calls, list() and
// close() send whatever is queued at once (the server still sees the calls in order). Plans are
// encoded to strings when queued: nothing points into a config that a reload may free before the
// batch is sent.
//
// Concurrency: a plan with a QuotaPlan::slot takes the slot in the same script call as its
// buckets (checked first; a refused bucket takes no slot), and its settle gives it back. A slot
// is a lease: its expiry is lease_ms past the reserve, and while this replica holds it a timer
// pushes the expiry forward every lease_ms / 3 (ZADD XX). A replica that dies, or cannot reach
// Redis, stops renewing, and its slots free themselves within lease_ms.
//
// Outage handling: a call fails (and the caller applies fail_open / fail_closed) when there is no
// connection, when the connection drops with the call pending, or when no reply came within
// timeout_ms (then the connection is dropped too: a hung server is an outage). Reconnection is
// lazy, at most every kReconnectMs, on the next call. Failures are counted in counters().errors.
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "proxy/quota/estimate.h"
#include "proxy/quota/redis_scripts.h"
#include "proxy/quota/store.h"

namespace gatehouse::proxy {
namespace {

constexpr int64_t kReconnectMs = 250;
constexpr size_t kMaxBatch = 128;
constexpr uint64_t kSettleDelayMs = 5;

enum Script { kBatchScript, kAdminScript, kListScript, kScripts };

const std::string& scriptText(int s) {
  switch (s) {
    case kBatchScript:
      return redis_lua::kBatch;
    case kAdminScript:
      return redis_lua::kAdmin;
    default:
      return redis_lua::kList;
  }
}

int64_t monoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string num(int64_t v) { return std::to_string(v); }

class RedisQuotaStore;

// One plan as script arguments (redis_scripts.h) with bucket keys still by name.
struct EncodedLink {
  std::string key;
  BucketSpec spec;  // name and arithmetic only (for Retry-After), copied
  int64_t taken = 0;
};
struct EncodedCharge {
  int64_t amount = 0;
  std::vector<EncodedLink> links;
};
using EncodedPlan = std::vector<EncodedCharge>;

// A settle's charges whose real amount equals what was reserved change nothing (a request
// bucket: 1 reserved, 1 used) and are left out.
EncodedPlan encodePlan(const QuotaPlan& plan, const QuotaTaken* taken, const QuotaAmounts* real) {
  EncodedPlan out;
  for (size_t i = 0; i < plan.charges.size(); ++i) {
    const QuotaCharge& c = plan.charges[i];
    if (real && taken && i < taken->size()) {
      int64_t gave = 0;
      for (int64_t t : (*taken)[i]) gave += t;
      if (gave == real->of(c.unit())) continue;
    }
    EncodedCharge e;
    e.amount = real ? real->of(c.unit()) : c.amount;
    for (size_t k = 0; k < c.chain.size(); ++k) {
      const BucketSpec& src = *c.chain[k].spec;
      EncodedLink l;
      l.key = c.chain[k].key;
      l.spec.name = src.name;
      l.spec.unit = src.unit;
      l.spec.capacity = src.capacity;
      l.spec.refill_amount = src.refill_amount;
      l.spec.refill_period_ms = src.refill_period_ms;
      l.spec.on_exceed = src.on_exceed;
      if (taken && i < taken->size() && k < (*taken)[i].size()) l.taken = (*taken)[i][k];
      e.links.push_back(std::move(l));
    }
    out.push_back(std::move(e));
  }
  return out;
}

// A concurrency slot as the script sees it (redis_scripts.h); keys by name.
struct EncodedSlot {
  std::string who;
  std::string requests_key;  // "" when the plan has no max_requests
  std::string streams_key;   // "" when it has no max_streams or the request does not stream
  uint32_t max_requests = 0;
  uint32_t max_streams = 0;
  std::string member;
};

std::optional<EncodedSlot> encodeSlot(const QuotaPlan& plan, const std::string& prefix) {
  if (!plan.slot) return std::nullopt;
  EncodedSlot e;
  e.who = plan.slot->who;
  if (plan.max_requests) {
    e.requests_key = prefix + "r:" + plan.slot->who;
    e.max_requests = *plan.max_requests;
  }
  if (plan.max_streams && plan.slot->stream) {
    e.streams_key = prefix + "s:" + plan.slot->who;
    e.max_streams = *plan.max_streams;
  }
  if (e.requests_key.empty() && e.streams_key.empty()) return std::nullopt;
  e.member = plan.slot->id;
  return e;
}

struct PendingReserve {
  EncodedPlan plan;
  std::optional<EncodedSlot> slot;
  int64_t now_ms = 0;
  QuotaStore::ReserveDone done;
};
struct PendingSettle {
  EncodedPlan plan;
  std::optional<EncodedSlot> slot;
  int64_t now_ms = 0;
};

// One script call in flight. Freed by hiredis' callback, which always comes (reply, or NULL when
// the connection drops or the context is freed); the timer only reports the failure early.
struct Call {
  RedisQuotaStore* store;
  int script;
  std::vector<std::string> keys;
  std::vector<std::string> args;
  std::function<void(redisReply*, const std::string& error)> done;
  uv_timer_t* timer = nullptr;
  bool finished = false;
  bool eval = false;  // sent as EVAL (the server lacked the script)
};

class RedisQuotaStore final : public QuotaStore {
 public:
  RedisQuotaStore(uv_loop_t* loop, QuotaStoreConfig cfg) : loop_(loop), cfg_(std::move(cfg)) {
    idle_ = new uv_idle_t;
    uv_idle_init(loop_, idle_);
    idle_->data = this;
    settle_timer_ = new uv_timer_t;
    uv_timer_init(loop_, settle_timer_);
    settle_timer_->data = this;
    renew_timer_ = new uv_timer_t;
    uv_timer_init(loop_, renew_timer_);
    renew_timer_->data = this;
  }
  ~RedisQuotaStore() override {
    closed_ = true;
    drop();  // pending callbacks fire with NULL replies; closed_ silences them
    uv_close(reinterpret_cast<uv_handle_t*>(idle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(settle_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(renew_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

  bool sharesConcurrency() const override { return true; }

  // Sends the queued settles, then lets them reach the server (hiredis disconnects once they
  // are answered) while the loop keeps running. Queued reserves are refused.
  void close() override {
    if (closed_) return;
    flush(true);
    closed_ = true;
    uv_timer_stop(renew_timer_);
    if (ctx_ != nullptr) redisAsyncDisconnect(ctx_);
  }

  void reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) override {
    clock_offset_ms_ = now_ms - monoMs();  // the caller's clock, for lease renewals
    reserves_.push_back({encodePlan(plan, nullptr, nullptr), encodeSlot(plan, cfg_.redis_prefix),
                         now_ms, std::move(done)});
    queued();
  }

  void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
              int64_t now_ms) override {
    EncodedPlan p = encodePlan(plan, &taken, &real);
    std::optional<EncodedSlot> slot = encodeSlot(plan, cfg_.redis_prefix);
    if (slot) held_.erase(slot->member);
    if (p.empty() && !slot) return;
    settles_.push_back({std::move(p), std::move(slot), now_ms});
    if (settles_.size() >= kMaxBatch) {
      queued();
    } else {
      armSettleTimer();
    }
  }
  void armSettleTimer() {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(settle_timer_))) return;
    uv_timer_start(
        settle_timer_, [](uv_timer_t* t) { static_cast<RedisQuotaStore*>(t->data)->queued(); },
        kSettleDelayMs, 0);
  }

  void refill(const std::string& key, const BucketSpec& spec, int64_t amount, int64_t now_ms,
              StatusDone done) override {
    admin(key, spec, "refill", amount, now_ms, std::move(done));
  }
  void setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity, int64_t now_ms,
                   StatusDone done) override {
    admin(key, spec, "capacity", capacity, now_ms, std::move(done));
  }

  void list(ListDone done) override {
    flush(true);
    call(kListScript, {}, {cfg_.redis_prefix + "index"},
         [this, done = std::move(done)](redisReply* r, const std::string& error) {
           if (!error.empty()) return done(Status(EIO, error));
           std::vector<BucketRow> rows;
           std::string hash_prefix = cfg_.redis_prefix + "b:";
           for (size_t i = 0; i + 6 < r->elements; i += 7) {
             auto s = [&](size_t k) {
               redisReply* e = r->element[i + k];
               return e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
             };
             auto n = [&](size_t k) { return std::strtoll(s(k).c_str(), nullptr, 10); };
             std::string key = s(0);
             if (key.rfind(hash_prefix, 0) == 0) key = key.substr(hash_prefix.size());
             rows.push_back({key, s(1), BucketState{n(2), n(3), n(4), n(5), n(6)}});
           }
           done(std::move(rows));
         });
  }

  // hiredis callbacks.
  void onConnect(int status) {
    if (status != REDIS_OK) {
      std::fprintf(stderr, "gateway: quota store: redis %s:%u unreachable: %s\n",
                   cfg_.redis_host.c_str(), cfg_.redis_port, ctx_ ? ctx_->errstr : "");
      ctx_ = nullptr;  // hiredis frees it after this callback
      return;
    }
    std::fprintf(stderr, "gateway: quota store: connected to redis %s:%u\n",
                 cfg_.redis_host.c_str(), cfg_.redis_port);
  }
  void onDisconnect(int status) {
    if (status != REDIS_OK) {
      std::fprintf(stderr, "gateway: quota store: lost redis %s:%u: %s\n", cfg_.redis_host.c_str(),
                   cfg_.redis_port, ctx_ ? ctx_->errstr : "");
    }
    ctx_ = nullptr;
    for (std::string& s : sha_) s.clear();
  }

  void onReply(Call* c, redisReply* r) {
    if (c->timer != nullptr) {
      uv_timer_stop(c->timer);
      uv_close(reinterpret_cast<uv_handle_t*>(c->timer),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      c->timer = nullptr;
    }
    if (closed_ || c->finished) {
      delete c;
      return;
    }
    if (r != nullptr && r->type == REDIS_REPLY_ERROR &&
        std::string_view(r->str, r->len).rfind("NOSCRIPT", 0) == 0 && !c->eval) {
      c->eval = true;
      sha_[c->script].clear();
      send(c);
      return;
    }
    c->finished = true;
    if (r == nullptr) {
      ++counters_.errors;
      c->done(nullptr, "redis connection lost");
    } else if (r->type == REDIS_REPLY_ERROR) {
      ++counters_.errors;
      c->done(nullptr, "redis: " + std::string(r->str, r->len));
    } else {
      c->done(r, "");
    }
    delete c;
  }

 private:
  std::vector<std::string> prelude(int64_t now_ms) const {
    return {num(now_ms), cfg_.redis_prefix + "index"};
  }

  void queued() {
    if (!idle_active_) {
      idle_active_ = true;
      uv_idle_start(idle_, [](uv_idle_t* h) { static_cast<RedisQuotaStore*>(h->data)->flush(); });
    }
  }

  // KEYS: one per distinct bucket of the batch, then one per concurrency set; ARGV: 0 (each
  // plan has its own time), index, then one MessagePack array: the number of buckets, the specs
  // per bucket key, the settles and the reserves, each group counted (redis_scripts.h).
  struct Batch {
    std::vector<std::string> keys;
    nlohmann::json specs = nlohmann::json::array();  // 5 per bucket key, in key order
    nlohmann::json args = nlohmann::json::array();   // the plans
    std::map<std::string, size_t> idx;               // bucket name or set key → KEYS index
  };
  // Every bucket key first, so that bucket indices are 1..nbuckets.
  void addBuckets(Batch& b, const EncodedPlan& plan) {
    for (const EncodedCharge& c : plan) {
      for (const EncodedLink& l : c.links) {
        auto [it, fresh] = b.idx.emplace(l.key, b.keys.size() + 1);
        if (!fresh) continue;
        b.keys.push_back(cfg_.redis_prefix + "b:" + l.key);
        b.specs.push_back(l.spec.capacity);
        b.specs.push_back(l.spec.refill_amount);
        b.specs.push_back(l.spec.refill_period_ms);
        b.specs.push_back(static_cast<int>(l.spec.on_exceed));
        b.specs.push_back(l.spec.name);
      }
    }
  }
  size_t setIndex(Batch& b, const std::string& key) {
    if (key.empty()) return 0;
    auto [it, fresh] = b.idx.emplace(key, b.keys.size() + 1);
    if (fresh) b.keys.push_back(key);
    return it->second;
  }
  void appendPlan(Batch& b, const EncodedPlan& plan, const std::optional<EncodedSlot>& slot,
                  int64_t now_ms, bool settle) {
    b.args.push_back(now_ms);
    if (!slot) {
      b.args.push_back(0);
    } else {
      b.args.push_back(1);
      b.args.push_back(setIndex(b, slot->requests_key));
      if (!settle) b.args.push_back(slot->max_requests);
      b.args.push_back(setIndex(b, slot->streams_key));
      if (!settle) b.args.push_back(slot->max_streams);
      b.args.push_back(slot->member);
      if (!settle) b.args.push_back(now_ms + static_cast<int64_t>(cfg_.lease_ms));
    }
    b.args.push_back(plan.size());
    for (const EncodedCharge& c : plan) {
      b.args.push_back(c.amount);
      b.args.push_back(c.links.size());
      for (const EncodedLink& l : c.links) {
        b.args.push_back(b.idx.at(l.key));
        if (settle) b.args.push_back(l.taken);
      }
    }
  }

  // Slots this replica holds: pushes each lease's expiry lease_ms past now, one ZADD XX per
  // set (XX: a slot already given back, or expired and dropped, is not revived).
  void renewSlots() {
    if (held_.empty()) {
      uv_timer_stop(renew_timer_);
      return;
    }
    if (ctx_ == nullptr || closed_) return;  // an outage: the leases run out on their own
    std::string expiry = num(monoMs() + clock_offset_ms_ + static_cast<int64_t>(cfg_.lease_ms));
    std::map<std::string, std::vector<const std::string*>> by_set;
    for (const auto& [member, slot] : held_) {
      if (!slot.requests_key.empty()) by_set[slot.requests_key].push_back(&member);
      if (!slot.streams_key.empty()) by_set[slot.streams_key].push_back(&member);
    }
    for (const auto& [key, members] : by_set) {
      std::vector<const char*> argv = {"ZADD", key.data(), "XX"};
      std::vector<size_t> lens = {4, key.size(), 2};
      for (const std::string* m : members) {
        argv.push_back(expiry.data());
        lens.push_back(expiry.size());
        argv.push_back(m->data());
        lens.push_back(m->size());
      }
      redisAsyncCommandArgv(ctx_, nullptr, nullptr, static_cast<int>(argv.size()), argv.data(),
                            lens.data());
    }
  }
  void hold(const EncodedSlot& slot) {
    held_[slot.member] = slot;
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(renew_timer_))) {
      uint64_t every = std::max<uint64_t>(cfg_.lease_ms / 3, 1);
      uv_timer_start(
          renew_timer_, [](uv_timer_t* t) { static_cast<RedisQuotaStore*>(t->data)->renewSlots(); },
          every, every);
    }
  }

  void flush(bool force = false) {
    if (idle_active_) {
      uv_idle_stop(idle_);
      idle_active_ = false;
    }
    if (batches_in_flight_ > 0 && !force && !closed_) return;  // the reply's callback requeues
    uv_timer_stop(settle_timer_);                              // every queued settle goes now
    if (closed_) {
      for (PendingReserve& r : std::exchange(reserves_, {})) {
        r.done(Status(ECANCELED, "the quota store is closing"));
      }
      settles_.clear();
      return;
    }
    while (!settles_.empty() || !reserves_.empty()) {
      Batch b;
      size_t ns = std::min(settles_.size(), kMaxBatch);
      size_t nr = std::min(reserves_.size(), kMaxBatch);
      for (size_t i = 0; i < ns; ++i) addBuckets(b, settles_[i].plan);
      for (size_t i = 0; i < nr; ++i) addBuckets(b, reserves_[i].plan);
      size_t nbuckets = b.keys.size();
      b.args.push_back(ns);
      for (size_t i = 0; i < ns; ++i) {
        appendPlan(b, settles_[i].plan, settles_[i].slot, settles_[i].now_ms, true);
      }
      settles_.erase(settles_.begin(), settles_.begin() + static_cast<ptrdiff_t>(ns));
      b.args.push_back(nr);
      auto waiting = std::make_shared<std::vector<PendingReserve>>();
      for (size_t i = 0; i < nr; ++i) {
        appendPlan(b, reserves_[i].plan, reserves_[i].slot, reserves_[i].now_ms, false);
        waiting->push_back(std::move(reserves_[i]));
      }
      reserves_.erase(reserves_.begin(), reserves_.begin() + static_cast<ptrdiff_t>(nr));
      std::vector<std::string> by_idx(nbuckets);
      for (const auto& [key, i] : b.idx) {
        if (i <= nbuckets) by_idx[i - 1] = key;
      }
      nlohmann::json all = nlohmann::json::array({nbuckets});
      auto& flat = all.get_ref<nlohmann::json::array_t&>();
      for (nlohmann::json& x : b.specs.get_ref<nlohmann::json::array_t&>()) {
        flat.push_back(std::move(x));
      }
      for (nlohmann::json& x : b.args.get_ref<nlohmann::json::array_t&>()) {
        flat.push_back(std::move(x));
      }
      std::string packed;
      nlohmann::json::to_msgpack(all, packed);
      std::vector<std::string> argv = {"0", cfg_.redis_prefix + "index", std::move(packed)};
      ++batches_in_flight_;
      call(kBatchScript, std::move(b.keys), std::move(argv),
           [this, waiting, by_idx = std::move(by_idx)](redisReply* r, const std::string& error) {
             --batches_in_flight_;
             if (!reserves_.empty() || settles_.size() >= kMaxBatch) {
               queued();
             } else if (!settles_.empty()) {
               armSettleTimer();
             }
             size_t pos = 0;
             for (PendingReserve& w : *waiting) {
               if (!error.empty()) {
                 w.done(Status(EIO, error));
                 continue;
               }
               Result<ReserveOutcome> out = decodeReserve(r, &pos, w.plan, w.slot, by_idx);
               if (out && out->allowed && w.slot) hold(*w.slot);
               w.done(std::move(out));
             }
           });
      if (!force) break;  // the rest rides in the next call, sent when this one is answered
    }
  }

  // One plan's answer at *pos in the batch reply; advances *pos.
  static Result<ReserveOutcome> decodeReserve(redisReply* r, size_t* pos, const EncodedPlan& plan,
                                              const std::optional<EncodedSlot>& slot,
                                              const std::vector<std::string>& by_idx) {
    auto bad = [] { return Status(EPROTO, "redis: unexpected reply to the reserve script"); };
    if (r->type != REDIS_REPLY_ARRAY) return bad();
    auto at = [&](size_t i) -> std::optional<int64_t> {
      if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER) return std::nullopt;
      return r->element[i]->integer;
    };
    auto name = [&](std::optional<int64_t> i) {
      return i && *i >= 1 && static_cast<size_t>(*i) <= by_idx.size() ? by_idx[*i - 1]
                                                                      : std::string();
    };
    ReserveOutcome out;
    size_t p = *pos;
    auto first = at(p++);
    if (!first) return bad();
    if (*first == 2) {
      if (p + 3 > r->elements) return bad();
      std::string who = slot ? slot->who : "";
      out.concurrency = concurrencyRefusal(who, at(p).value_or(1) == 2, at(p + 1).value_or(0),
                                           at(p + 2).value_or(0));
      *pos = p + 3;
      return out;
    }
    if (*first == 0) {
      if (p + 4 > r->elements) return bad();
      out.rejected = name(at(p));
      out.rejected_level = at(p + 1).value_or(0);
      out.rejected_need = at(p + 2).value_or(0);
      int64_t debt = at(p + 3).value_or(0);
      *pos = p + 4;
      for (const EncodedCharge& c : plan) {
        for (const EncodedLink& l : c.links) {
          if (l.key != out.rejected) continue;
          BucketState st;
          st.level = out.rejected_level;  // the carried fraction is not returned: round up
          st.debt = debt;
          out.retry_after_s = secondsUntil(l.spec, st, out.rejected_need);
        }
      }
      return out;
    }
    auto nf = at(p++);
    if (!nf) return bad();
    for (int64_t i = 0; i < *nf; ++i) out.flagged.push_back(name(at(p++)));
    auto no = at(p++);
    if (!no) return bad();
    for (int64_t i = 0; i < *no; ++i) out.overdrawn.push_back(name(at(p++)));
    for (const EncodedCharge& c : plan) {
      std::vector<int64_t> t;
      for (size_t k = 0; k < c.links.size(); ++k) {
        auto v = at(p++);
        if (!v) return bad();
        t.push_back(*v);
      }
      out.taken.push_back(std::move(t));
    }
    *pos = p;
    out.allowed = true;
    return out;
  }

  void admin(const std::string& key, const BucketSpec& spec, const char* op, int64_t value,
             int64_t now_ms, StatusDone done) {
    flush(true);  // queued reserves and settles first: the server sees calls in order
    std::vector<std::string> args = prelude(now_ms);
    args.push_back(num(spec.capacity));
    args.push_back(num(spec.refill_amount));
    args.push_back(num(spec.refill_period_ms));
    args.push_back(spec.name);
    args.push_back(op);
    args.push_back(num(value));
    call(kAdminScript, {cfg_.redis_prefix + "b:" + key}, std::move(args),
         [done = std::move(done)](redisReply*, const std::string& error) {
           done(error.empty() ? Status::ok() : Status(EIO, error));
         });
  }

  void drop() {
    redisAsyncContext* ac = ctx_;
    if (ac == nullptr) return;
    ctx_ = nullptr;
    ac->data = nullptr;
    for (std::string& s : sha_) s.clear();
    redisAsyncFree(ac);
  }

  void connect() {
    int64_t now = monoMs();
    if (ctx_ != nullptr || closed_ || now < next_connect_ms_) return;
    next_connect_ms_ = now + kReconnectMs;
    redisAsyncContext* c = redisAsyncConnect(cfg_.redis_host.c_str(), cfg_.redis_port);
    if (c == nullptr || c->err) {
      if (c != nullptr) redisAsyncFree(c);
      return;
    }
    c->data = this;
    redisLibuvAttach(c, loop_);
    redisAsyncSetConnectCallback(c, [](const redisAsyncContext* ac, int status) {
      if (ac->data != nullptr) static_cast<RedisQuotaStore*>(ac->data)->onConnect(status);
    });
    redisAsyncSetDisconnectCallback(c, [](const redisAsyncContext* ac, int status) {
      if (ac->data != nullptr) static_cast<RedisQuotaStore*>(ac->data)->onDisconnect(status);
    });
    ctx_ = c;
    for (int s = 0; s < kScripts; ++s) loadScript(s);
  }

  void loadScript(int s) {
    const std::string& text = scriptText(s);
    const char* argv[] = {"SCRIPT", "LOAD", text.data()};
    size_t lens[] = {6, 4, text.size()};
    auto* slot = new std::pair<RedisQuotaStore*, int>(this, s);
    redisAsyncCommandArgv(
        ctx_,
        [](redisAsyncContext*, void* reply, void* priv) {
          auto* p = static_cast<std::pair<RedisQuotaStore*, int>*>(priv);
          auto* r = static_cast<redisReply*>(reply);
          if (r != nullptr && r->type == REDIS_REPLY_STRING && !p->first->closed_) {
            p->first->sha_[p->second] = std::string(r->str, r->len);
          }
          delete p;
        },
        slot, 3, argv, lens);
  }

  void call(int script, std::vector<std::string> keys, std::vector<std::string> args,
            std::function<void(redisReply*, const std::string&)> done) {
    connect();
    if (ctx_ == nullptr) {
      ++counters_.errors;
      done(nullptr,
           "redis " + cfg_.redis_host + ":" + std::to_string(cfg_.redis_port) + " unreachable");
      return;
    }
    auto* c = new Call{this, script, std::move(keys), std::move(args), std::move(done)};
    c->timer = new uv_timer_t;
    uv_timer_init(loop_, c->timer);
    c->timer->data = c;
    uv_timer_start(
        c->timer,
        [](uv_timer_t* t) {
          auto* c = static_cast<Call*>(t->data);
          RedisQuotaStore* self = c->store;
          if (c->finished || self->closed_) return;
          c->finished = true;
          ++self->counters_.errors;
          c->done(nullptr,
                  "redis did not answer within " + std::to_string(self->cfg_.timeout_ms) + " ms");
          // A hung server is an outage: drop the connection; the pending calls complete (with
          // NULL replies; `c` among them, freed) and the next call reconnects.
          self->drop();
        },
        cfg_.timeout_ms, 0);
    send(c);
  }

  void send(Call* c) {
    if (ctx_ == nullptr) {
      onReply(c, nullptr);
      return;
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    bool by_sha = !c->eval && !sha_[c->script].empty();
    const std::string& body = by_sha ? sha_[c->script] : scriptText(c->script);
    std::string nkeys = num(static_cast<int64_t>(c->keys.size()));
    argv.push_back(by_sha ? "EVALSHA" : "EVAL");
    lens.push_back(by_sha ? 7 : 4);
    argv.push_back(body.data());
    lens.push_back(body.size());
    argv.push_back(nkeys.data());
    lens.push_back(nkeys.size());
    for (const std::string& k : c->keys) {
      argv.push_back(k.data());
      lens.push_back(k.size());
    }
    for (const std::string& a : c->args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    int rc = redisAsyncCommandArgv(
        ctx_,
        [](redisAsyncContext*, void* reply, void* priv) {
          auto* c = static_cast<Call*>(priv);
          c->store->onReply(c, static_cast<redisReply*>(reply));
        },
        c, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (rc != REDIS_OK) onReply(c, nullptr);
  }

  uv_loop_t* loop_;
  QuotaStoreConfig cfg_;
  redisAsyncContext* ctx_ = nullptr;
  int64_t next_connect_ms_ = 0;
  bool closed_ = false;
  std::string sha_[kScripts];
  uv_idle_t* idle_ = nullptr;
  uv_timer_t* settle_timer_ = nullptr;       // a settle waiting for a reserve batch to ride with
  uv_timer_t* renew_timer_ = nullptr;        // every lease_ms / 3 while slots are held
  std::map<std::string, EncodedSlot> held_;  // slots this replica holds, by member
  int64_t clock_offset_ms_ = 0;              // the gateway's clock minus monoMs()
  int batches_in_flight_ = 0;
  bool idle_active_ = false;
  std::vector<PendingReserve> reserves_;
  std::vector<PendingSettle> settles_;
};

}  // namespace

std::unique_ptr<QuotaStore> openRedisQuotaStore(uv_loop_t* loop, const QuotaStoreConfig& config) {
  return std::make_unique<RedisQuotaStore>(loop, config);
}

}  // namespace gatehouse::proxy
