// The Redis quota store's Lua against QuotaLedger (the C++ arithmetic): the same random plans,
// reservations, settlements, admin refills and clock steps on both, every level, carried
// remainder and decision compared. Amounts up to 2^50 and steps up to months exercise the
// 16-bit-limb product in the script. Needs /usr/bin/redis-server (started here, stopped by PID).
#include <gtest/gtest.h>

#include <random>

#include "proxy/quota/store.h"
#include "tests/proxy/redis_server.h"

namespace gatehouse::proxy {
namespace {

// Runs `loop` until `done` or 5 s.
void runUntil(uv_loop_t* loop, const bool& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
}

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "no " << kRedisServer;
    redis_ = std::make_unique<RedisServer>();
    ASSERT_TRUE(redis_->accepts());
    uv_loop_init(&loop_);
    store_ = open();
  }
  // A store on this test's Redis (another replica when called again).
  std::unique_ptr<QuotaStore> open(uint32_t lease_ms = 60'000, uint32_t allowance_ms = 0) {
    QuotaStoreConfig c;
    c.allowance_ms = allowance_ms;
    c.kind = QuotaStoreConfig::Kind::kRedis;
    c.redis_port = redis_->port();
    c.redis_prefix = "t:";
    c.timeout_ms = 3000;
    c.lease_ms = lease_ms;
    return openRedisQuotaStore(&loop_, c);
  }
  void TearDown() override {
    if (!redis_) return;
    store_.reset();
    for (int i = 0; i < 10; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }

  Result<ReserveOutcome> reserve(const QuotaPlan& p, int64_t now) {
    return reserve(*store_, p, now);
  }
  Result<ReserveOutcome> reserve(QuotaStore& store, const QuotaPlan& p, int64_t now) {
    bool done = false;
    Result<ReserveOutcome> out = Status(ETIMEDOUT, "no answer");
    store.reserve(p, now, [&](Result<ReserveOutcome> r) {
      out = std::move(r);
      done = true;
    });
    runUntil(&loop_, done);
    return out;
  }
  std::map<std::string, BucketState> rows() {
    bool done = false;
    std::map<std::string, BucketState> out;
    store_->list([&](Result<std::vector<BucketRow>> r) {
      EXPECT_TRUE(r) << r.status().message();
      if (r) {
        for (const BucketRow& b : r.value()) out[b.key] = b.state;
      }
      done = true;
    });
    runUntil(&loop_, done);
    return out;
  }
  void refill(const std::string& key, const BucketSpec& s, int64_t amount, int64_t now) {
    bool done = false;
    store_->refill(key, s, amount, now, [&](Status st) {
      EXPECT_TRUE(st) << st.message();
      done = true;
    });
    runUntil(&loop_, done);
  }

  std::unique_ptr<RedisServer> redis_;
  uv_loop_t loop_{};
  std::unique_ptr<QuotaStore> store_;
};

TEST_F(RedisStoreTest, MatchesLedgerOnRandomOperations) {
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  // Six buckets: a chain a → b → c (c may go negative by an overdraft, and owe debt), a flag
  // bucket, two plain ones with huge capacities and month-long periods.
  std::vector<BucketSpec> specs(6);
  const char* names[] = {"a", "b", "c", "f", "big", "rpm"};
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].name = names[i];
    specs[i].unit = QuotaUnit::kNanodollars;
    specs[i].capacity = pick(1, 1'000'000'000);
    specs[i].refill_amount = pick(1, 5'000'000'000);
    specs[i].refill_period_ms = pick(1, 2'592'000'000);
  }
  specs[0].on_exceed = OnExceed::kOverdraft;
  specs[1].on_exceed = OnExceed::kOverdraft;
  specs[3].on_exceed = OnExceed::kFlag;
  specs[4].capacity = kMaxQuotaAmount;
  specs[4].refill_amount = kMaxQuotaAmount;
  specs[4].refill_period_ms = 2'592'000'000;
  specs[5].unit = QuotaUnit::kRequests;
  specs[5].capacity = 5;
  specs[5].refill_amount = 1;
  specs[5].refill_period_ms = 997;
  auto link = [&](int i) { return ChainLink{specs[i].name, &specs[i]}; };

  QuotaLedger ledger;
  int64_t now = 1'700'000'000'000;
  int allowed = 0, refused = 0;
  for (int op = 0; op < 400; ++op) {
    now += rng() % 3 == 0 ? pick(0, 40'000'000'000) : pick(0, 2000);
    QuotaPlan plan;
    if (rng() % 2) plan.charges.push_back({{link(0), link(1), link(2)}, 0});
    if (rng() % 2) plan.charges.push_back({{link(3)}, 0});
    if (rng() % 3 == 0) plan.charges.push_back({{link(4)}, 0});
    if (rng() % 2) plan.charges.push_back({{link(5)}, 0});
    if (rng() % 4 == 0) plan.charges.push_back({{link(2)}, 0});  // c twice in one plan
    if (plan.charges.empty()) plan.charges.push_back({{link(4)}, 0});
    QuotaAmounts worst{pick(0, 1'500'000'000), 0, 1};
    if (rng() % 3 == 0) worst.nanos = pick(0, kMaxQuotaAmount / 4);
    setAmounts(plan, worst);

    if (op % 4 == 0) {
      // Several reserves in one loop turn go to Redis as one batch, in order.
      QuotaPlan other;
      other.charges.push_back({{link(2)}, pick(0, 300'000'000)});
      other.charges.push_back({{link(5)}, 1});
      std::vector<ReserveOutcome> want_batch;
      std::vector<Result<ReserveOutcome>> got_batch;
      for (int k = 0; k < 3; ++k) want_batch.push_back(ledger.reserve(other, now + k));
      for (int k = 0; k < 3; ++k) {
        store_->reserve(other, now + k,
                        [&](Result<ReserveOutcome> r) { got_batch.push_back(std::move(r)); });
      }
      bool all = false;
      store_->list([&](Result<std::vector<BucketRow>>) { all = true; });  // queued after them
      runUntil(&loop_, all);
      ASSERT_EQ(got_batch.size(), 3u);
      for (int k = 0; k < 3; ++k) {
        ASSERT_TRUE(got_batch[k]) << got_batch[k].status().message();
        ASSERT_EQ(got_batch[k]->allowed, want_batch[k].allowed) << "op " << op << " batch " << k;
        ASSERT_EQ(got_batch[k]->taken, want_batch[k].taken) << "op " << op << " batch " << k;
        if (want_batch[k].allowed) {
          QuotaAmounts real{pick(0, other.charges[0].amount + 1000), 0, 1};
          ledger.settle(other, want_batch[k].taken, real, now + 2);
          store_->settle(other, got_batch[k]->taken, real, now + 2);
        }
      }
      now += 2;
    }
    ReserveOutcome want = ledger.reserve(plan, now);
    auto got = reserve(plan, now);
    ASSERT_TRUE(got) << got.status().message();
    ASSERT_EQ(got->allowed, want.allowed) << "op " << op;
    ASSERT_EQ(got->taken, want.taken) << "op " << op;
    ASSERT_EQ(got->flagged, want.flagged) << "op " << op;
    ASSERT_EQ(got->overdrawn, want.overdrawn) << "op " << op;
    if (!want.allowed) {
      ++refused;
      ASSERT_EQ(got->rejected, want.rejected);
      ASSERT_EQ(got->rejected_level, want.rejected_level);
      ASSERT_EQ(got->rejected_need, want.rejected_need);
    } else {
      ++allowed;
      now += pick(0, 5000);
      QuotaAmounts real{pick(0, worst.nanos + worst.nanos / 8 + 1), 0, 1};
      ledger.settle(plan, want.taken, real, now);
      store_->settle(plan, got->taken, real, now);
    }
    if (op % 37 == 0) {
      int i = static_cast<int>(pick(0, 5));
      int64_t amount = pick(0, specs[i].capacity);
      ledger.refill(specs[i].name, specs[i], amount, now);
      refill(specs[i].name, specs[i], amount, now);
    }
    if (op % 10 == 9) {
      // A refused reserve leaves the ledger refilled to `now` but Redis untouched; refill is
      // exact whatever the steps, so compare both brought to the same time.
      auto stored = rows();
      for (const BucketSpec& spec : specs) {
        if (ledger.entry(spec.name) == nullptr) continue;
        ASSERT_TRUE(stored.count(spec.name)) << spec.name;
        BucketState mine = ledger.at(spec.name, spec, now);
        BucketState theirs = stored[spec.name];
        refillBucket(spec, theirs, now);
        EXPECT_EQ(theirs, mine) << spec.name << " op " << op << ": level " << theirs.level << " vs "
                                << mine.level;
      }
    }
  }
  EXPECT_GT(allowed, 50);
  EXPECT_GT(refused, 20);
}

TEST_F(RedisStoreTest, OutageIsAnErrorAndReconnects) {
  BucketSpec s;
  s.name = "r";
  s.unit = QuotaUnit::kRequests;
  s.capacity = 100;
  s.refill_amount = 100;
  s.refill_period_ms = 60'000;
  QuotaPlan plan;
  plan.charges.push_back({{{"r", &s}}, 1});
  ASSERT_TRUE(reserve(plan, 1000));
  redis_->stop();
  auto r = reserve(plan, 1000);
  EXPECT_FALSE(r);
  EXPECT_GE(store_->counters().errors.load(), 1u);
  redis_->start();
  // Reconnection is lazy and rate-limited: the first calls after the restart may still fail.
  bool ok = false;
  for (int i = 0; i < 50 && !ok; ++i) {
    ok = reserve(plan, 1000).isOk();
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ok);
}

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs the loop for `ms` of real time (timers fire: settles, lease renewals).
void runFor(uv_loop_t* loop, int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);  // poll never blocks past the deadline
  while (std::chrono::steady_clock::now() < until) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

// max_requests / max_streams hold across replicas: the slots live in Redis, taken by the
// reserve and given back by the settle; a replica that dies leaves its slots for one lease at
// most, and a live replica's renewals keep its slots however long the request runs.
TEST_F(RedisStoreTest, ConcurrencySlotsAreSharedByReplicasAndLeased) {
  constexpr uint32_t kLease = 600;
  std::unique_ptr<QuotaStore> a = open(kLease), b = open(kLease);
  ASSERT_TRUE(a->sharesConcurrency());
  QuotaPlan limits;
  limits.max_requests = 2;
  limits.max_streams = 1;
  auto slot = [&](const std::string& id, bool stream) {
    QuotaPlan p = limits;
    p.slot = QuotaPlan::Slot{"alice", id, stream};
    return p;
  };
  auto r = reserve(*a, slot("1", true), wallMs());
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_TRUE(r->allowed);
  // The other replica sees alice's stream.
  r = reserve(*b, slot("2", true), wallMs());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->allowed);
  EXPECT_EQ(r->concurrency,
            "concurrency limit: alice already has 1 streams in flight (max_streams 1)");
  r = reserve(*b, slot("2", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->allowed);
  r = reserve(*a, slot("3", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->allowed);
  EXPECT_EQ(r->concurrency,
            "concurrency limit: alice already has 2 requests in flight (max_requests 2)");
  // A's stream ends: its settle gives the slot back, and B can stream.
  a->settle(slot("1", true), {}, {0, 0, 0}, wallMs());
  runFor(&loop_, 50);
  r = reserve(*b, slot("3", true), wallMs());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->allowed) << r->concurrency;

  // B dies holding "2" and "3": nobody renews them, so they free themselves after the lease.
  b.reset();
  r = reserve(*a, slot("4", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->allowed) << "the dead replica's slots vanished before their lease ran out";
  runFor(&loop_, kLease + 200);
  r = reserve(*a, slot("4", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->allowed) << r->concurrency;

  // A lives and holds "4" for three leases: its renewals keep it, so C gets one slot, not two.
  runFor(&loop_, 3 * kLease);
  std::unique_ptr<QuotaStore> c = open(kLease);
  r = reserve(*c, slot("5", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->allowed);
  r = reserve(*c, slot("6", false), wallMs());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->allowed) << "A's renewed slot expired";
  EXPECT_EQ(r->concurrency,
            "concurrency limit: alice already has 2 requests in flight (max_requests 2)");
  c.reset();
  a.reset();
}

BucketSpec bucket(const std::string& name, QuotaUnit unit, int64_t capacity) {
  BucketSpec b;
  b.name = name;
  b.unit = unit;
  b.capacity = capacity;
  return b;
}
// A plan charging `amount` to one bucket instance (`spec` must outlive it).
QuotaPlan onePlan(const std::string& key, const BucketSpec& spec, int64_t amount) {
  QuotaPlan p;
  p.charges.push_back(QuotaCharge{{ChainLink{key, &spec}}, amount});
  return p;
}

// allowance_ms: a reserve that goes to Redis brings back budget and slots for the next ones,
// which are then decided here without a call; settles refund into the allowance; after
// allowance_ms everything unused goes back, and Redis holds exactly capacity minus real usage.
TEST_F(RedisStoreTest, AllowancesServeReservesWithoutCallsAndGoBack) {
  constexpr uint32_t kAllowanceMs = 300;
  std::unique_ptr<QuotaStore> a = open(60'000, kAllowanceMs), b = open(60'000, kAllowanceMs);
  BucketSpec dollars = bucket("d:<user>", QuotaUnit::kNanodollars, 1'000'000);
  QuotaPlan plan = onePlan("d:alice", dollars, 100);
  plan.max_requests = 100;
  auto with = [&](const std::string& id) {
    QuotaPlan p = plan;
    p.slot = QuotaPlan::Slot{"alice", id, false};
    return p;
  };
  auto r = reserve(*a, with("r1"), wallMs());
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_TRUE(r->allowed);
  EXPECT_EQ(r->taken, QuotaTaken{{100}});
  EXPECT_EQ(a->counters().calls.load(), 1u);
  // The call took the plan, 64 more of it (6,400) and 12 slots (an eighth of the 99 left).
  EXPECT_EQ(rows()["d:alice"].level, 1'000'000 - 100 - 6'400);
  for (int i = 2; i <= 13; ++i) {
    r = reserve(*a, with("r" + std::to_string(i)), wallMs());
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->allowed);
    EXPECT_EQ(r->taken, QuotaTaken{{100}});
  }
  EXPECT_EQ(a->counters().allowance_reserves.load(), 12u);
  EXPECT_EQ(a->counters().calls.load(), 1u) << "a reserve went to Redis with an allowance left";
  // Slots held ahead count for every replica: with room for 13 in flight, B gets nothing.
  QuotaPlan tight = plan;
  tight.charges.clear();
  tight.max_requests = 13;
  tight.slot = QuotaPlan::Slot{"alice", "b1", false};
  r = reserve(*b, tight, wallMs());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->allowed);
  EXPECT_EQ(r->concurrency,
            "concurrency limit: alice already has 13 requests in flight (max_requests 13)");
  // The 13 end having used 40 each: refunds go into the allowance, slots back to it.
  for (int i = 1; i <= 13; ++i) {
    a->settle(with("r" + std::to_string(i)), {{100}}, QuotaAmounts{40, 0, 1}, wallMs());
  }
  runFor(&loop_, kAllowanceMs * 2 + 200);
  EXPECT_EQ(rows()["d:alice"].level, 1'000'000 - 13 * 40) << "allowance not given back exactly";
  tight.max_requests = 1;
  r = reserve(*b, tight, wallMs());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->allowed) << r->concurrency << ": allowance slots not given back";
  b->settle(tight, {}, QuotaAmounts{0, 0, 1}, wallMs());
  runFor(&loop_, 50);
  a.reset();
  b.reset();
}

// Near the limit an allowance shrinks to nothing (an eighth of what is left), so two replicas
// together never admit more than the bucket holds, and once allowances are back (allowance_ms)
// they admit exactly what it holds.
TEST_F(RedisStoreTest, AllowancesNeverOverspendNearTheLimit) {
  constexpr uint32_t kAllowanceMs = 200;
  std::unique_ptr<QuotaStore> a = open(60'000, kAllowanceMs), b = open(60'000, kAllowanceMs);
  BucketSpec requests = bucket("n", QuotaUnit::kRequests, 50);
  QuotaPlan plan = onePlan("n", requests, 1);
  int admitted = 0;
  for (int i = 0; i < 80; ++i) {
    auto r = reserve(i % 2 ? *a : *b, plan, wallMs());
    ASSERT_TRUE(r) << r.status().message();
    admitted += r->allowed;
  }
  EXPECT_LE(admitted, 50);
  EXPECT_GE(admitted, 40) << "allowances held back too much near the limit";
  runFor(&loop_, kAllowanceMs * 2 + 100);
  for (int i = 0; i < 20; ++i) {
    auto r = reserve(i % 2 ? *a : *b, plan, wallMs());
    ASSERT_TRUE(r);
    admitted += r->allowed;
  }
  EXPECT_EQ(admitted, 50);
  runFor(&loop_, kAllowanceMs * 2 + 100);
  EXPECT_EQ(rows()["n"].level, 0);
  a.reset();
  b.reset();
}

// A replica keeps admitting from what it holds while Redis is gone (that budget was subtracted
// before the outage); beyond it, the outage is an error as without allowances.
TEST_F(RedisStoreTest, AllowancesKeepAdmittingThroughAnOutage) {
  std::unique_ptr<QuotaStore> a = open(60'000, 60'000);
  BucketSpec dollars = bucket("d", QuotaUnit::kNanodollars, 1'000'000);
  QuotaPlan plan = onePlan("d", dollars, 1'000);
  auto r = reserve(*a, plan, wallMs());
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_TRUE(r->allowed);
  redis_->stop();
  for (int i = 0; i < 64; ++i) {  // the allowance: 64 more like it
    r = reserve(*a, plan, wallMs());
    ASSERT_TRUE(r) << i << ": " << r.status().message();
    EXPECT_TRUE(r->allowed);
  }
  EXPECT_EQ(a->counters().allowance_reserves.load(), 64u);
  r = reserve(*a, plan, wallMs());
  EXPECT_FALSE(r) << "admitted beyond the allowance without Redis";
  EXPECT_GE(a->counters().errors.load(), 1u);
}

// Random reserves and settles (refunds, exact uses, overruns) on two replicas with allowances:
// at every step what is admitted and not refunded fits in the bucket, and once everything is
// settled and the allowances are back, Redis holds exactly capacity minus the real usage
// (level − debt: an overrun past an empty bucket is a debt).
TEST_F(RedisStoreTest, AllowancesRandomOperationsSettleExactly) {
  constexpr uint32_t kAllowanceMs = 50;
  constexpr int64_t kCapacity = 20'000;
  std::unique_ptr<QuotaStore> a = open(60'000, kAllowanceMs), b = open(60'000, kAllowanceMs);
  BucketSpec tokens = bucket("t", QuotaUnit::kTokens, kCapacity);
  std::mt19937_64 rng(7);
  struct Held {
    QuotaStore* store;
    QuotaPlan plan;
    QuotaTaken taken;
  };
  std::vector<Held> held;
  int64_t used = 0, admitted = 0, refused = 0;
  auto settleOne = [&](size_t i, bool overrun) {
    Held h = std::move(held[i]);
    held.erase(held.begin() + static_cast<ptrdiff_t>(i));
    int64_t gave = h.taken[0][0];
    int64_t real = overrun ? gave + static_cast<int64_t>(rng() % 100)
                           : static_cast<int64_t>(rng() % static_cast<uint64_t>(gave + 1));
    used += real;
    h.store->settle(h.plan, h.taken, QuotaAmounts{0, real, 1}, wallMs());
  };
  for (int op = 0; op < 600; ++op) {
    bool late = op >= 450;  // the last quarter may overrun (debts)
    if (held.empty() || rng() % 3 != 0) {
      QuotaStore& s = rng() % 2 ? *a : *b;
      QuotaPlan plan = onePlan("t", tokens, 1 + static_cast<int64_t>(rng() % 400));
      auto r = reserve(s, plan, wallMs());
      ASSERT_TRUE(r) << r.status().message();
      if (!r->allowed) {
        ++refused;
        continue;
      }
      ++admitted;
      held.push_back({&s, plan, r->taken});
    } else {
      settleOne(rng() % held.size(), late && rng() % 4 == 0);
    }
    if (!late) {
      int64_t in_flight = 0;
      for (const Held& h : held) in_flight += h.taken[0][0];
      ASSERT_LE(in_flight + used, kCapacity) << "admitted beyond the bucket at op " << op;
    }
    if (op % 50 == 0) runFor(&loop_, static_cast<int>(kAllowanceMs) + 20);  // returns happen
  }
  while (!held.empty()) settleOne(0, false);
  runFor(&loop_, 3 * static_cast<int>(kAllowanceMs) + 200);
  BucketState st = rows()["t"];
  EXPECT_EQ(st.level - st.debt, kCapacity - used)
      << "admitted " << admitted << ", refused " << refused << ", used " << used;
  EXPECT_GT(refused, 0) << "the bucket never ran low: the test proves little";
  EXPECT_GT(a->counters().allowance_reserves.load() + b->counters().allowance_reserves.load(), 0u);
}

}  // namespace
}  // namespace gatehouse::proxy
