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
// Allowances (allowance_ms > 0; QUOTAS.md "Allowances"): a reserve that goes to Redis also asks
// for an allowance from each single-bucket chain (budget for kAllowanceRequests more requests
// like it) and, with a slot, kAllowanceSlots more slots per set (members NAME:1..n, renewed with
// the other leases). The script grants at most an eighth of what is left, so near a limit the
// allowances shrink to nothing and every request is decided in Redis again. The next reserves
// are then served from memory when every chain is a single bucket whose allowance covers the
// amount and a slot is free in each set; their settles refund into the allowance (or take an
// overrun from it). At most one ask per bucket or set is outstanding, so a batch cannot drain a
// bucket. Every allowance_ms, at close, and when refunds pile up past twice a chain's ask, what
// is left goes back to Redis as a settle. A replica that dies keeps its allowance away from the
// others: budget until the next refill, slots until their lease runs out.
//
// Outage handling: a call fails (and the caller applies fail_open / fail_closed) when there is no
// connection, when the connection drops with the call pending, or when no reply came within
// timeout_ms (then the connection is dropped too: a hung server is an outage). Reconnection is
// lazy, at most every kReconnectMs, on the next call. Failures are counted in counters().errors.
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "proxy/quota/estimate.h"
#include "proxy/quota/redis_scripts.h"
#include "proxy/quota/store.h"

namespace gatehouse::proxy {
namespace {

constexpr int64_t kReconnectMs = 250;
constexpr size_t kMaxBatch = 128;
constexpr uint64_t kSettleDelayMs = 5;
constexpr int64_t kMaxAllowanceScale = 64;  // asks grow up to 64 times these
constexpr int64_t kAllowanceRequests = 64;  // budget asked for: this many requests like this one
constexpr uint32_t kAllowanceSlots = 64;    // concurrency slots asked for, per set

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
  int64_t want = 0;  // reserve: the allowance asked from the last link's bucket
};
using EncodedPlan = std::vector<EncodedCharge>;

// A settle's charges whose real amount equals what was reserved change nothing (a request
// bucket: 1 reserved, 1 used) and are left out.
EncodedLink encodeLink(const ChainLink& link) {
  const BucketSpec& src = *link.spec;
  EncodedLink l;
  l.key = link.key;
  l.spec.name = src.name;
  l.spec.unit = src.unit;
  l.spec.capacity = src.capacity;
  l.spec.refill_amount = src.refill_amount;
  l.spec.refill_period_ms = src.refill_period_ms;
  l.spec.on_exceed = src.on_exceed;
  return l;
}

// `skip`: charges already settled against an allowance.
EncodedPlan encodePlan(const QuotaPlan& plan, const QuotaTaken* taken, const QuotaAmounts* real,
                       const std::vector<char>* skip = nullptr) {
  EncodedPlan out;
  for (size_t i = 0; i < plan.charges.size(); ++i) {
    const QuotaCharge& c = plan.charges[i];
    if (skip && (*skip)[i]) continue;
    if (real && taken && i < taken->size()) {
      int64_t gave = 0;
      for (int64_t t : (*taken)[i]) gave += t;
      if (gave == real->of(c.unit())) continue;
    }
    EncodedCharge e;
    e.amount = real ? real->of(c.unit()) : c.amount;
    for (size_t k = 0; k < c.chain.size(); ++k) {
      EncodedLink l = encodeLink(c.chain[k]);
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
  // Reserve: the slot allowance asked for in each set, and the name its members are made from.
  uint32_t want_requests = 0;
  uint32_t want_streams = 0;
  std::string grant_name;
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

// Budget this replica holds for a bucket (allowance_ms).
struct Allowance {
  EncodedLink link;  // the bucket, for giving it back
  int64_t amount = 0;
  int64_t ask = 0;  // the largest ask; more than twice this held goes back at once
};
// Allowance slots lent to one request in flight.
struct Lent {
  std::string requests_key, requests_member, streams_key, streams_member;
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
    return_timer_ = new uv_timer_t;
    uv_timer_init(loop_, return_timer_);
    return_timer_->data = this;
    // Allowance slot members are named after this replica: unique across replicas and restarts.
    uint64_t r = 0;
    randombytes_buf(&r, sizeof r);
    char id[24];
    std::snprintf(id, sizeof id, "a%016llx", static_cast<unsigned long long>(r));
    replica_id_ = id;
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
    uv_close(reinterpret_cast<uv_handle_t*>(return_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

  bool sharesConcurrency() const override { return true; }

  // Sends the queued settles, then lets them reach the server (hiredis disconnects once they
  // are answered) while the loop keeps running. Queued reserves are refused.
  void close() override {
    if (closed_) return;
    giveBackAllowances();
    flush(true);
    closed_ = true;
    uv_timer_stop(renew_timer_);
    uv_timer_stop(return_timer_);
    if (ctx_ != nullptr) redisAsyncDisconnect(ctx_);
  }

  void reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) override {
    clock_offset_ms_ = now_ms - monoMs();  // the caller's clock, for lease renewals
    std::optional<EncodedSlot> slot = encodeSlot(plan, cfg_.redis_prefix);
    if (cfg_.allowance_ms > 0 && !closed_) {
      if (std::optional<ReserveOutcome> out = fromAllowance(plan, slot)) {
        ++counters_.allowance_reserves;
        return done(std::move(*out));
      }
    }
    EncodedPlan p = encodePlan(plan, nullptr, nullptr);
    if (cfg_.allowance_ms > 0) askAllowance(p, slot);
    reserves_.push_back({std::move(p), std::move(slot), now_ms, std::move(done)});
    queued();
  }

  void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
              int64_t now_ms) override {
    std::optional<EncodedSlot> slot = encodeSlot(plan, cfg_.redis_prefix);
    if (slot) {
      auto it = lent_.find(slot->member);
      if (it != lent_.end()) {  // slots from the allowance go back to it
        if (!it->second.requests_key.empty()) {
          free_[it->second.requests_key].push_back(std::move(it->second.requests_member));
        }
        if (!it->second.streams_key.empty()) {
          free_[it->second.streams_key].push_back(std::move(it->second.streams_member));
        }
        lent_.erase(it);
        slot.reset();
      } else {
        held_.erase(slot->member);
      }
    }
    std::vector<char> local;
    if (cfg_.allowance_ms > 0 && !closed_) local = settleFromAllowance(plan, taken, real);
    EncodedPlan p = encodePlan(plan, &taken, &real, local.empty() ? nullptr : &local);
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

  // Allowances -------------------------------------------------------------------------------

  // The plan served from this replica's allowances, or nullopt (then Redis decides). Only plans
  // whose chains are single buckets with a nonzero amount: the ledger's answer for them is "the
  // bucket gives the amount", which an allowance (budget already taken from it) can give.
  std::optional<ReserveOutcome> fromAllowance(const QuotaPlan& plan,
                                              const std::optional<EncodedSlot>& slot) {
    std::vector<std::string>* rfree = nullptr;
    std::vector<std::string>* sfree = nullptr;
    if (slot) {
      if (!slot->requests_key.empty() && !(rfree = freeSlots(slot->requests_key))) return {};
      if (!slot->streams_key.empty() && !(sfree = freeSlots(slot->streams_key))) return {};
    }
    for (const QuotaCharge& c : plan.charges) {
      if (c.chain.size() != 1 || c.amount <= 0) return {};
      auto it = allow_.find(c.chain[0].key);
      if (it == allow_.end() || it->second.amount < c.amount) return {};
    }
    ReserveOutcome out;
    out.allowed = true;
    for (const QuotaCharge& c : plan.charges) {
      allow_[c.chain[0].key].amount -= c.amount;  // planFor: each bucket instance once
      out.taken.push_back({c.amount});
    }
    if (slot) {
      Lent& l = lent_[slot->member];
      if (rfree) {
        l.requests_key = slot->requests_key;
        l.requests_member = std::move(rfree->back());
        rfree->pop_back();
      }
      if (sfree) {
        l.streams_key = slot->streams_key;
        l.streams_member = std::move(sfree->back());
        sfree->pop_back();
      }
    }
    return out;
  }
  std::vector<std::string>* freeSlots(const std::string& set) {
    auto it = free_.find(set);
    return it == free_.end() || it->second.empty() ? nullptr : &it->second;
  }

  // Asks for allowances where none is asked yet (one ask per bucket or set in flight).
  // A bucket's ask doubles each time (up to kMaxAllowanceScale) and halves every allowance_ms,
  // so a busy bucket settles at about one ask per allowance_ms. (Slots need no such growth: a
  // request gives its slot back to the allowance.)
  int64_t scale(const std::string& key) {
    int64_t& m = scale_[key];
    int64_t now = std::max<int64_t>(m, 1);
    m = std::min(now * 2, kMaxAllowanceScale);
    return now;
  }
  void askAllowance(EncodedPlan& plan, std::optional<EncodedSlot>& slot) {
    for (EncodedCharge& c : plan) {
      if (c.links.size() != 1 || c.amount <= 0) continue;
      if (!asked_.insert(c.links[0].key).second) continue;
      int64_t per = kAllowanceRequests * scale(c.links[0].key);
      c.want = c.amount > kMaxQuotaAmount / per ? kMaxQuotaAmount : c.amount * per;
    }
    if (!slot) return;
    if (!slot->requests_key.empty() && asked_.insert(slot->requests_key).second) {
      slot->want_requests = kAllowanceSlots;
    }
    if (!slot->streams_key.empty() && asked_.insert(slot->streams_key).second) {
      slot->want_streams = kAllowanceSlots;
    }
    if (slot->want_requests || slot->want_streams) {
      slot->grant_name = replica_id_ + ":" + num(static_cast<int64_t>(++grant_seq_));
    }
  }
  // The answer to an ask (grants: per chain, then with a slot per set), or its failure.
  void granted(const EncodedPlan& plan, const std::optional<EncodedSlot>& slot,
               const std::vector<int64_t>& grants) {
    bool any = false;
    for (size_t i = 0; i < plan.size(); ++i) {
      const EncodedCharge& c = plan[i];
      if (c.want == 0) continue;
      asked_.erase(c.links[0].key);
      int64_t g = i < grants.size() ? grants[i] : 0;
      if (g <= 0) continue;
      Allowance& a = allow_[c.links[0].key];
      a.link = c.links[0];
      a.amount += g;
      a.ask = std::max(a.ask, c.want);
      any = true;
    }
    if (slot) {
      const std::string* sets[] = {&slot->requests_key, &slot->streams_key};
      uint32_t wants[] = {slot->want_requests, slot->want_streams};
      for (size_t k = 0; k < 2; ++k) {
        if (wants[k] == 0) continue;
        asked_.erase(*sets[k]);
        size_t at = plan.size() + k;
        int64_t g = at < grants.size() ? grants[at] : 0;
        std::vector<std::string>& f = free_[*sets[k]];
        for (int64_t m = 1; m <= g; ++m) f.push_back(slot->grant_name + ":" + num(m));
        any = any || g > 0;
      }
      if (any) startRenewing();
    }
    if (any) startReturning();
  }

  // Starts the periodic return of what allowances hold (every allowance_ms), if not running.
  void startReturning() {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(return_timer_))) return;
    uv_timer_start(
        return_timer_,
        [](uv_timer_t* t) { static_cast<RedisQuotaStore*>(t->data)->giveBackAllowances(); },
        cfg_.allowance_ms, cfg_.allowance_ms);
  }

  // Marks the charges settled against an allowance: a refund goes into it, an overrun comes out
  // of it when it covers all of it (otherwise Redis settles that charge as usual).
  std::vector<char> settleFromAllowance(const QuotaPlan& plan, const QuotaTaken& taken,
                                        const QuotaAmounts& real) {
    std::vector<char> local(plan.charges.size(), 0);
    bool any = false;
    for (size_t i = 0; i < plan.charges.size(); ++i) {
      const QuotaCharge& c = plan.charges[i];
      if (c.chain.size() != 1 || i >= taken.size() || taken[i].size() != 1) continue;
      int64_t gave = taken[i][0];
      int64_t r = real.of(c.unit());
      auto it = allow_.find(c.chain[0].key);
      if (r > gave && (it == allow_.end() || it->second.amount < r - gave)) continue;
      if (r != gave) {
        if (it == allow_.end()) {
          it = allow_.emplace(c.chain[0].key, Allowance{}).first;
          it->second.link = encodeLink(c.chain[0]);
          it->second.ask = std::min(gave * kAllowanceRequests, kMaxQuotaAmount);
        }
        Allowance& a = it->second;
        a.amount += gave - r;
        if (a.amount > 2 * a.ask) giveBack(it, a.amount - a.ask);  // refunds piling up
      }
      local[i] = 1;
      any = true;
    }
    if (any) startReturning();
    return local;
  }

  // Queues the return of `amount` of the allowance (a settle of it against nothing used); the
  // allowance goes when nothing is left.
  void giveBack(std::map<std::string, Allowance>::iterator it, int64_t amount) {
    Allowance& a = it->second;
    if (amount > 0) {
      EncodedLink l = a.link;
      l.taken = amount;
      EncodedCharge c;
      c.amount = 0;
      c.links.push_back(std::move(l));
      settles_.push_back({EncodedPlan{std::move(c)}, std::nullopt, nowMs()});
      armSettleTimer();
    }
    a.amount -= amount;
    if (a.amount <= 0) allow_.erase(it);
  }
  // Every allowance and free slot goes back (every allowance_ms, and at close).
  void giveBackAllowances() {
    while (!allow_.empty()) giveBack(allow_.begin(), allow_.begin()->second.amount);
    for (auto it = scale_.begin(); it != scale_.end();) {
      it->second /= 2;
      it = it->second <= 1 ? scale_.erase(it) : std::next(it);
    }
    for (auto& [set, members] : free_) {
      for (std::string& m : members) {
        EncodedSlot e;
        e.requests_key = set;
        e.member = std::move(m);
        settles_.push_back({EncodedPlan{}, std::move(e), nowMs()});
      }
    }
    free_.clear();
    if (!settles_.empty()) armSettleTimer();
    if (lent_.empty()) uv_timer_stop(return_timer_);
  }
  int64_t nowMs() const { return monoMs() + clock_offset_ms_; }

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
      if (!settle) {
        b.args.push_back(now_ms + static_cast<int64_t>(cfg_.lease_ms));
        b.args.push_back(slot->want_requests);
        b.args.push_back(slot->want_streams);
        b.args.push_back(slot->grant_name);
      }
    }
    b.args.push_back(plan.size());
    for (const EncodedCharge& c : plan) {
      b.args.push_back(c.amount);
      b.args.push_back(c.links.size());
      for (const EncodedLink& l : c.links) {
        b.args.push_back(b.idx.at(l.key));
        if (settle) b.args.push_back(l.taken);
      }
      if (!settle) b.args.push_back(c.want);
    }
  }

  // Slots this replica holds: pushes each lease's expiry lease_ms past now, one ZADD XX per
  // set (XX: a slot already given back, or expired and dropped, is not revived).
  void renewSlots() {
    if (held_.empty() && free_.empty() && lent_.empty()) {
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
    for (const auto& [set, members] : free_) {
      for (const std::string& m : members) by_set[set].push_back(&m);
    }
    for (const auto& [id, l] : lent_) {
      if (!l.requests_key.empty()) by_set[l.requests_key].push_back(&l.requests_member);
      if (!l.streams_key.empty()) by_set[l.streams_key].push_back(&l.streams_member);
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
    startRenewing();
  }
  void startRenewing() {
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
      ++counters_.calls;
      call(kBatchScript, std::move(b.keys), std::move(argv),
           [this, waiting, by_idx = std::move(by_idx)](redisReply* r, const std::string& error) {
             --batches_in_flight_;
             if (!reserves_.empty() || settles_.size() >= kMaxBatch) {
               queued();
             } else if (!settles_.empty()) {
               armSettleTimer();
             }
             size_t pos = 0;
             std::vector<int64_t> grants;
             for (PendingReserve& w : *waiting) {
               grants.clear();
               if (!error.empty()) {
                 if (cfg_.allowance_ms > 0) granted(w.plan, w.slot, grants);
                 w.done(Status(EIO, error));
                 continue;
               }
               Result<ReserveOutcome> out = decodeReserve(r, &pos, w.plan, w.slot, by_idx, &grants);
               if (out && out->allowed && w.slot) hold(*w.slot);
               if (cfg_.allowance_ms > 0) granted(w.plan, w.slot, grants);
               w.done(std::move(out));
             }
           });
      if (!force) break;  // the rest rides in the next call, sent when this one is answered
    }
  }

  // One plan's answer at *pos in the batch reply; advances *pos.
  // `grants`: the allowances granted (per chain, then per slot set).
  static Result<ReserveOutcome> decodeReserve(redisReply* r, size_t* pos, const EncodedPlan& plan,
                                              const std::optional<EncodedSlot>& slot,
                                              const std::vector<std::string>& by_idx,
                                              std::vector<int64_t>* grants) {
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
    for (size_t i = 0; i < plan.size() + (slot ? 2 : 0); ++i) {
      auto g = at(p++);
      if (!g) return bad();
      grants->push_back(*g);
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
  // Allowances: budget per bucket key, free slot members per set, slots lent to requests in
  // flight (by the request's slot id), the buckets and sets with an ask in flight.
  std::map<std::string, Allowance> allow_;
  std::map<std::string, std::vector<std::string>> free_;
  std::map<std::string, Lent> lent_;
  std::set<std::string> asked_;
  std::map<std::string, int64_t> scale_;  // by bucket key or set: the next ask's multiplier
  std::string replica_id_;
  uint64_t grant_seq_ = 0;
  uv_timer_t* return_timer_ = nullptr;  // every allowance_ms while allowances are held
  int64_t clock_offset_ms_ = 0;         // the gateway's clock minus monoMs()
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
