// Quota core: spec parsing, exact refill against a millisecond-stepping model (differential),
// reservation and settlement over overdraft chains, flag, templates per user / tag / node.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <random>

#include "proxy/quota/bucket.h"
#include "proxy/quota/ledger.h"
#include "proxy/quota/store.h"

namespace gatehouse::proxy {
namespace {

constexpr int64_t kDay = 86'400'000;

BucketSpec spec(std::string name, std::string_view rate, std::string_view capacity = {},
                OnExceed on = OnExceed::kReject, std::string into = {}) {
  BucketSpec s;
  s.name = std::move(name);
  auto r = parseQuotaRate(rate);
  EXPECT_TRUE(r.isOk()) << r.status().message();
  s.unit = r->amount.unit;
  s.refill_amount = r->amount.value;
  s.refill_period_ms = r->period_ms;
  s.capacity = capacity.empty() ? r->amount.value : parseQuotaAmount(capacity)->value;
  s.on_exceed = on;
  s.overdraft_into = std::move(into);
  return s;
}

wg::Identity user(std::string login, std::vector<std::string> groups = {}) {
  wg::Identity id;
  id.name = "laptop-" + login.substr(0, login.find('@'));
  id.user_login = std::move(login);
  id.groups = std::move(groups);
  return id;
}

wg::Identity tagged(std::vector<std::string> tags) {
  wg::Identity id;
  id.name = "ci-runner";
  id.tags = std::move(tags);
  return id;
}

TEST(QuotaSpec, ParsesAmountsAndRates) {
  EXPECT_EQ(parseQuotaAmount("$5.00")->value, 5'000'000'000);
  EXPECT_EQ(parseQuotaAmount("$0.000000001")->value, 1);
  EXPECT_EQ(parseQuotaAmount("2M tokens")->value, 2'000'000);
  EXPECT_EQ(parseQuotaAmount("2M tokens")->unit, QuotaUnit::kTokens);
  EXPECT_EQ(parseQuotaAmount("1.5k requests")->value, 1500);
  EXPECT_EQ(parseQuotaAmount("500 requests")->unit, QuotaUnit::kRequests);
  auto r = parseQuotaRate("$5.00/day");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->amount.value, 5'000'000'000);
  EXPECT_EQ(r->period_ms, kDay);
  EXPECT_EQ(parseQuotaRate("2M tokens/day")->amount.unit, QuotaUnit::kTokens);
  EXPECT_EQ(parseQuotaRate("500 requests/hour")->period_ms, 3'600'000);
  EXPECT_EQ(parseQuotaRate("10 requests/minute")->period_ms, 60'000);
  EXPECT_EQ(parseQuotaRate("$200/month")->period_ms, 30 * kDay);
}

TEST(QuotaSpec, ErrorsNameTheExpectedForm) {
  for (std::string_view bad :
       {"5 dollars/day", "$5.00", "$-1/day", "$5/fortnight", "1.5 tokens/day", "tokens/day",
        "$0/day", "$1e3/day", "", "/", "99999999999M tokens/day"}) {
    auto r = parseQuotaRate(bad);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_NE(r.status().message().find("expected"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(parseQuotaAmount("5").isOk());
  EXPECT_FALSE(parseQuotaAmount("$1.0000000001").isOk());
}

// The model: a level kept in 1/period units (level × period + remainder), credited one
// millisecond at a time, capped at capacity × period.
struct NaiveBucket {
  __int128 scaled;
  int64_t period, amount, cap;
  void step(int64_t ms) {
    for (int64_t i = 0; i < ms; ++i) {
      if (scaled < static_cast<__int128>(cap) * period) {
        scaled = std::min<__int128>(scaled + amount, static_cast<__int128>(cap) * period);
      }
    }
  }
  int64_t level() const {
    __int128 q = scaled / period;
    if (scaled < 0 && scaled % period != 0) --q;  // floor for negative levels
    return static_cast<int64_t>(q);
  }
};

TEST(QuotaArithmetic, RefillMatchesMillisecondModel) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 40; ++round) {
    BucketSpec s;
    s.name = "b";
    s.refill_period_ms = 1 + rng() % 997;
    s.refill_amount = 1 + rng() % 50;
    s.capacity = 1 + rng() % 300;
    BucketState st = freshBucket(s, 0);
    NaiveBucket m{static_cast<__int128>(s.capacity) * s.refill_period_ms, s.refill_period_ms,
                  s.refill_amount, s.capacity};
    int64_t now = 0;
    for (int op = 0; op < 300; ++op) {
      int64_t dt = rng() % (2 * s.refill_period_ms);
      now += dt;
      m.step(dt);
      refillBucket(s, st, now);
      ASSERT_EQ(st.level - st.debt, m.level()) << "round " << round << " op " << op;
      ASSERT_GE(st.level, 0);
      // Reserve: all or nothing, then settle to a random real amount (may exceed the reservation:
      // the model goes negative by the shortfall; the bucket keeps its level at zero and owes
      // the rest as debt, so level − debt is the model's level).
      int64_t need = rng() % (s.capacity + 1);
      QuotaCharge c;
      c.chain.push_back({"b", &s});
      c.amount = need;
      std::vector<BucketState*> chain{&st};
      std::vector<int64_t> taken;
      ReserveOutcome out;
      bool ok = reserveChain(c, chain, &taken, &out);
      ASSERT_EQ(ok, m.level() >= need);
      if (!ok) continue;
      m.scaled -= static_cast<__int128>(need) * s.refill_period_ms;
      int64_t real = rng() % (need + 3);
      settleChain(c, chain, taken, real);
      if (real < need) {
        __int128 back = static_cast<__int128>(need - real) * s.refill_period_ms;
        m.scaled =
            std::min(m.scaled + back, static_cast<__int128>(s.capacity) * s.refill_period_ms);
      } else {
        m.scaled -= static_cast<__int128>(real - need) * s.refill_period_ms;
      }
      ASSERT_EQ(st.level - st.debt, m.level()) << "round " << round << " op " << op;
      ASSERT_GE(st.level, 0);
      ASSERT_TRUE(st.debt == 0 || st.level == 0);
      ASSERT_EQ(st.refill_rem, static_cast<int64_t>(m.scaled - static_cast<__int128>(m.level()) *
                                                                   s.refill_period_ms));
    }
  }
}

TEST(QuotaArithmetic, ExactToTheNanoDollarOverAMonth) {
  // $200/month in 1 ms steps vs one step: the same total, exact.
  BucketSpec s = spec("team", "$200.00/month", "$1000.00");
  BucketState a = freshBucket(s, 0), b = freshBucket(s, 0);
  a.level = b.level = 0;
  for (int64_t t = 1; t <= 10'000'000; t += 997) refillBucket(s, a, t);
  refillBucket(s, a, 10'000'000);
  refillBucket(s, b, 10'000'000);
  EXPECT_EQ(a.level, b.level);
  EXPECT_EQ(a.refill_rem, b.refill_rem);
  // 200e9 nanos × 1e7 ms / 2,592,000,000 ms = 771,604,938.27…
  EXPECT_EQ(b.level, 771'604'938);
  // A whole month from empty refills exactly the rate, capped by nothing.
  BucketState c = freshBucket(s, 0);
  c.level = 0;
  refillBucket(s, c, 30 * kDay);
  EXPECT_EQ(c.level, 200'000'000'000);
  EXPECT_EQ(c.refill_rem, 0);
}

TEST(QuotaArithmetic, RefillWithFakeClockAndRetryAfter) {
  BucketSpec s = spec("rpm", "60 requests/minute");
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"rpm", &s}}, 1});
  int64_t now = 1'000'000;
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(l.reserve(plan, now).allowed);
  ReserveOutcome r = l.reserve(plan, now);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.rejected, "rpm");
  EXPECT_EQ(r.rejected_level, 0);
  ASSERT_TRUE(r.retry_after_s);
  EXPECT_EQ(*r.retry_after_s, 1);
  now += 999;  // 0.999 requests earned
  EXPECT_FALSE(l.reserve(plan, now).allowed);
  now += 1;
  EXPECT_TRUE(l.reserve(plan, now).allowed);
  now += 30'000;
  EXPECT_EQ(l.at("rpm", s, now).level, 30);
  // A request bigger than the capacity never fits: no Retry-After from refilling.
  plan.charges[0].amount = 61;
  r = l.reserve(plan, now);
  EXPECT_FALSE(r.allowed);
  EXPECT_FALSE(r.retry_after_s);
}

TEST(QuotaLedger, ShortfallBecomesDebtNeverANegativeLevel) {
  // $1.00/day; a request reserves $0.50 and really costs $1.80 (the estimate was low).
  BucketSpec s = spec("daily", "$1.00/day");
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"daily", &s}}, 500'000'000});
  ReserveOutcome r = l.reserve(plan, 0);
  ASSERT_TRUE(r.allowed);
  QuotaAmounts real;
  real.nanos = 1'800'000'000;
  l.settle(plan, r.taken, real, 0);
  BucketState st = l.at("daily", s, 0);
  EXPECT_EQ(st.level, 0);           // never below zero for a shortfall
  EXPECT_EQ(st.debt, 800'000'000);  // $1.80 − $0.50 reserved − the $0.50 that was left
  plan.charges[0].amount = 0;       // even a free request waits while the bucket owes
  r = l.reserve(plan, 0);
  EXPECT_FALSE(r.allowed);
  ASSERT_TRUE(r.retry_after_s);
  // $0.80 of debt at $1.00/day: 0.8 days before the level rises at all.
  EXPECT_EQ(*r.retry_after_s, 69'120);
  // Refill pays the debt first: after 0.5 days, $0.30 still owed, level 0.
  st = l.at("daily", s, kDay / 2);
  EXPECT_EQ(st.level, 0);
  EXPECT_EQ(st.debt, 300'000'000);
  // An admin refill of $0.50 pays the $0.30 and leaves $0.20.
  l.refill("daily", s, 500'000'000, kDay / 2);
  st = l.at("daily", s, kDay / 2);
  EXPECT_EQ(st.debt, 0);
  EXPECT_EQ(st.level, 200'000'000);
  EXPECT_TRUE(l.reserve(plan, kDay / 2).allowed);
  // A refund pays debt first too: reserve $0.20, another request's shortfall leaves debt, then
  // the first settles at $0 and its $0.20 goes to the debt.
  plan.charges[0].amount = 200'000'000;
  ReserveOutcome a = l.reserve(plan, kDay / 2);
  ASSERT_TRUE(a.allowed);
  plan.charges[0].amount = 0;
  ReserveOutcome b = l.reserve(plan, kDay / 2);
  ASSERT_TRUE(b.allowed);
  real.nanos = 100'000'000;
  l.settle(plan, b.taken, real, kDay / 2);  // reserved 0, cost $0.10: level 0, owes $0.10
  EXPECT_EQ(l.at("daily", s, kDay / 2).debt, 100'000'000);
  real.nanos = 0;
  plan.charges[0].amount = 200'000'000;
  l.settle(plan, a.taken, real, kDay / 2);
  st = l.at("daily", s, kDay / 2);
  EXPECT_EQ(st.debt, 0);
  EXPECT_EQ(st.level, 100'000'000);
}

TEST(QuotaLedger, AllOrNothingAcrossBuckets) {
  BucketSpec user_b = spec("daily:<user>", "$5.00/day");
  BucketSpec team = spec("team", "$1.00/month");
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"daily:a", &user_b}}, 2'000'000'000});
  plan.charges.push_back({{{"team", &team}}, 2'000'000'000});
  ReserveOutcome r = l.reserve(plan, 0);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.rejected, "team");
  EXPECT_EQ(l.at("daily:a", user_b, 0).level, 5'000'000'000);  // untouched
  plan.charges[1].amount = 600'000'000;
  plan.charges[0].amount = 600'000'000;
  r = l.reserve(plan, 0);
  ASSERT_TRUE(r.allowed);
  // Settle to the real cost $0.123456789 on both.
  QuotaAmounts real;
  real.nanos = 123'456'789;
  setAmounts(plan, real);  // the plan's own amounts are not used by settle
  l.settle(plan, r.taken, real, 0);
  EXPECT_EQ(l.at("daily:a", user_b, 0).level, 5'000'000'000 - 123'456'789);
  EXPECT_EQ(l.at("team", team, 0).level, 1'000'000'000 - 123'456'789);
}

TEST(QuotaLedger, OverdraftChain) {
  BucketSpec a = spec("a", "$1.00/day", "", OnExceed::kOverdraft, "b");
  BucketSpec b = spec("b", "$1.00/day", "", OnExceed::kOverdraft, "c");
  BucketSpec c = spec("c", "$1.00/day");
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"a", &a}, {"b", &b}, {"c", &c}}, 0});
  auto charge = [&](int64_t cents) {
    plan.charges[0].amount = cents * 10'000'000;
    return l.reserve(plan, 0);
  };
  auto levels = [&] {
    return std::vector<int64_t>{l.at("a", a, 0).level / 10'000'000,
                                l.at("b", b, 0).level / 10'000'000,
                                l.at("c", c, 0).level / 10'000'000};
  };
  ReserveOutcome r = charge(150);  // a gives 100, b gives 50
  ASSERT_TRUE(r.allowed);
  EXPECT_EQ(levels(), (std::vector<int64_t>{0, 50, 100}));
  EXPECT_TRUE(r.overdrawn.empty());
  r = charge(120);  // b gives 50, c (the last, positive) gives 70
  ASSERT_TRUE(r.allowed);
  EXPECT_EQ(levels(), (std::vector<int64_t>{0, 0, 30}));
  EXPECT_EQ(r.overdrawn, std::vector<std::string>{"c"});
  r = charge(80);  // c is positive: the explicit overdraft takes it below zero
  ASSERT_TRUE(r.allowed);
  EXPECT_EQ(levels(), (std::vector<int64_t>{0, 0, -50}));
  r = charge(1);  // now the chain blocks
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.rejected, "c");
  // Settling the 80-cent request at 20 cents refunds c first.
  QuotaAmounts real;
  real.nanos = 200'000'000;
  QuotaTaken taken{{0, 0, 800'000'000}};
  l.settle(plan, taken, real, 0);
  EXPECT_EQ(levels(), (std::vector<int64_t>{0, 0, 10}));
  // Settling the 150-cent request at 160 cents: a and b are empty, c pays the extra 10.
  real.nanos = 1'600'000'000;
  l.settle(plan, {{1'000'000'000, 500'000'000, 0}}, real, 0);
  EXPECT_EQ(levels(), (std::vector<int64_t>{0, 0, 0}));
  // A day later all three are full again.
  EXPECT_EQ(l.at("c", c, kDay).level, 1'000'000'000);
}

TEST(QuotaLedger, FlagAllowsWithoutGoingNegative) {
  BucketSpec f = spec("soft", "100 requests/day", "", OnExceed::kFlag);
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"soft", &f}}, 60});
  EXPECT_TRUE(l.reserve(plan, 0).flagged.empty());
  ReserveOutcome r = l.reserve(plan, 0);
  ASSERT_TRUE(r.allowed);
  EXPECT_EQ(r.flagged, std::vector<std::string>{"soft"});
  EXPECT_EQ(r.taken[0][0], 40);
  EXPECT_EQ(l.at("soft", f, 0).level, 0);
}

TEST(QuotaLedger, RefundNeverAboveCapacityAndAdminOps) {
  BucketSpec s = spec("t", "1000 tokens/hour");
  QuotaLedger l;
  QuotaPlan plan;
  plan.charges.push_back({{{"t", &s}}, 600});
  ReserveOutcome r = l.reserve(plan, 0);
  ASSERT_TRUE(r.allowed);
  QuotaAmounts real;
  real.tokens = 100;
  l.settle(plan, r.taken, real, 3'600'000);  // an hour later the bucket refilled meanwhile
  EXPECT_EQ(l.at("t", s, 3'600'000).level, 1000);
  l.setCapacity("t", s, 300, 3'600'000);
  EXPECT_EQ(l.at("t", s, 3'600'000).level, 300);
  plan.charges[0].amount = 300;
  ASSERT_TRUE(l.reserve(plan, 3'600'000).allowed);
  l.refill("t", s, 1000, 3'600'000);
  EXPECT_EQ(l.at("t", s, 3'600'000).level, 300);  // capped at the capacity set
  l.setCapacity("t", s, 0, 3'600'000);            // back to the spec's 1000
  l.refill("t", s, 250, 3'600'000);
  EXPECT_EQ(l.at("t", s, 3'600'000).level, 550);
}

TEST(QuotaPlanTest, TemplatesPerUserTagAndNode) {
  QuotaConfig cfg;
  cfg.buckets.push_back(spec("daily:<user>", "$5.00/day"));
  cfg.buckets.push_back(spec("bot:<tag>", "2M tokens/day"));
  cfg.buckets.push_back(spec("node:<node>", "500 requests/day"));
  cfg.buckets.push_back(spec("team", "$200.00/month"));
  cfg.rules.push_back({{"group:eng"}, {"daily:<user>", "team"}, 16, 8, ""});
  cfg.rules.push_back(
      {{"tag:ci", "tag:review"}, {"bot:<tag>", "node:<node>"}, std::nullopt, 2, ""});
  cfg.rules.push_back({{"*"}, {"team"}, 4, std::nullopt, ""});

  QuotaPlan alice = planFor(cfg, user("alice@example.com", {"group:eng"}));
  ASSERT_EQ(alice.charges.size(), 2u);
  EXPECT_EQ(alice.charges[0].chain[0].key, "daily:alice@example.com");
  EXPECT_EQ(alice.charges[1].chain[0].key, "team");  // once, though two rules name it
  EXPECT_EQ(alice.max_requests, 4u);
  EXPECT_EQ(alice.max_streams, 8u);

  QuotaPlan bob = planFor(cfg, user("bob@example.com", {"group:eng"}));
  EXPECT_EQ(bob.charges[0].chain[0].key, "daily:bob@example.com");

  QuotaPlan bot = planFor(cfg, tagged({"tag:ci", "tag:review"}));
  std::vector<std::string> keys;
  for (auto& c : bot.charges) keys.push_back(c.chain[0].key);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"bot:tag:ci", "bot:tag:review", "node:ci-runner", "team"}));
  EXPECT_EQ(bot.max_streams, 2u);

  QuotaAmounts worst;
  worst.nanos = 7;
  worst.tokens = 9;
  setAmounts(bot, worst);
  EXPECT_EQ(bot.charges[0].amount, 9);
  EXPECT_EQ(bot.charges[2].amount, 1);
  EXPECT_EQ(bot.charges[3].amount, 7);
}

TEST(QuotaPlanTest, OverdraftTargetTemplatesExpandForTheSameCaller) {
  QuotaConfig cfg;
  cfg.buckets.push_back(spec("daily:<user>", "$5.00/day", "", OnExceed::kOverdraft, "team"));
  cfg.buckets.push_back(spec("team", "$200.00/month"));
  cfg.rules.push_back({{"*"}, {"daily:<user>"}, std::nullopt, std::nullopt, ""});
  QuotaPlan p = planFor(cfg, user("carol@example.com"));
  ASSERT_EQ(p.charges.size(), 1u);
  ASSERT_EQ(p.charges[0].chain.size(), 2u);
  EXPECT_EQ(p.charges[0].chain[1].key, "team");
}

TEST(MemoryQuotaStoreTest, AnswersSynchronously) {
  BucketSpec s = spec("r", "2 requests/day");
  MemoryQuotaStore store;
  QuotaPlan plan;
  plan.charges.push_back({{{"r", &s}}, 1});
  int allowed = 0;
  for (int i = 0; i < 3; ++i) {
    store.reserve(plan, 0, [&](Result<ReserveOutcome> r) {
      allowed += r.isOk() && r.value().allowed ? 1 : 0;
    });
  }
  EXPECT_EQ(allowed, 2);
  std::vector<BucketRow> rows;
  store.list([&](Result<std::vector<BucketRow>> r) { rows = r.value(); });
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].spec, "r");
  EXPECT_EQ(rows[0].state.level, 0);
}

// A debt survives a restart of the SQLite store, and a table written before the debt column
// existed (version 1) is upgraded in place with its levels kept.
TEST(QuotaSqliteStore, DebtSurvivesRestartAndVersion1TablesUpgrade) {
  std::string path = "/tmp/gatehouse-quota-test-" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE quota_buckets(key TEXT PRIMARY KEY, spec TEXT NOT NULL, "
                           "level INTEGER NOT NULL, refill_rem INTEGER NOT NULL, updated_ms "
                           "INTEGER NOT NULL, capacity_set INTEGER NOT NULL) WITHOUT ROWID; "
                           "INSERT INTO quota_buckets VALUES('old', 'daily', 123, 0, 0, 0);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  BucketSpec s = spec("daily", "$1.00/day");
  QuotaPlan plan;
  plan.charges.push_back({{{"new", &s}}, 500'000'000});
  auto list = [](QuotaStore& st) {
    std::map<std::string, BucketState> out;
    st.list([&](Result<std::vector<BucketRow>> rows) {
      ASSERT_TRUE(rows.isOk());
      for (BucketRow& r : rows.value()) out[r.key] = r.state;
    });
    return out;
  };
  {
    auto st = openSqliteQuotaStore(path, 10);
    ASSERT_TRUE(st.isOk()) << st.status().message();
    EXPECT_EQ(list(*st.value())["old"].level, 123);
    bool allowed = false;
    QuotaTaken taken;
    st.value()->reserve(plan, 0, [&](Result<ReserveOutcome> o) {
      ASSERT_TRUE(o.isOk());
      allowed = o->allowed;
      taken = o->taken;
    });
    ASSERT_TRUE(allowed);
    QuotaAmounts real;
    real.nanos = 1'800'000'000;
    st.value()->settle(plan, taken, real, 0);
    st.value()->close();
  }
  auto st = openSqliteQuotaStore(path, 10);
  ASSERT_TRUE(st.isOk()) << st.status().message();
  auto rows = list(*st.value());
  EXPECT_EQ(rows["old"].level, 123);
  EXPECT_EQ(rows["new"].level, 0);
  EXPECT_EQ(rows["new"].debt, 800'000'000);
  st.value()->close();
  st.value().reset();
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-shm").c_str());
}

}  // namespace
}  // namespace gatehouse::proxy
