#include "proxy/quota/ledger.h"

#include <algorithm>
#include <utility>

#include "proxy/config/grants.h"

namespace gatehouse::proxy {
namespace {

void replaceAll(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

void tighten(std::optional<uint32_t>& limit, const std::optional<uint32_t>& rule) {
  if (rule && (!limit || *rule < *limit)) limit = rule;
}

}  // namespace

const BucketSpec* QuotaConfig::bucket(std::string_view name) const {
  for (const BucketSpec& b : buckets) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

std::vector<std::string> expandBucketName(std::string_view name, const wg::Identity& who) {
  if (name.find('<') == std::string_view::npos) return {std::string(name)};  // not a template
  std::string base(name);
  replaceAll(base, "<user>", who.user_login.empty() ? who.name : who.user_login);
  replaceAll(base, "<node>", who.name);
  if (base.find("<tag>") == std::string::npos) return {base};
  std::vector<std::string> out;
  for (const std::string& tag : who.tags) {
    std::string one = base;
    replaceAll(one, "<tag>", tag);
    out.push_back(std::move(one));
  }
  return out;
}

QuotaPlan planFor(const QuotaConfig& config, const wg::Identity& who) {
  QuotaPlan plan;
  plan.charges.reserve(4);
  // A key charged once however many rules name it; plans are short, so a linear search.
  auto seen = [&plan](const std::string& key) {
    return std::any_of(plan.charges.begin(), plan.charges.end(),
                       [&](const QuotaCharge& c) { return c.chain.front().key == key; });
  };
  for (const QuotaRule& rule : config.rules) {
    bool match = std::any_of(rule.src.begin(), rule.src.end(),
                             [&](const std::string& s) { return srcMatches(s, who); });
    if (!match) continue;
    tighten(plan.max_requests, rule.max_requests);
    tighten(plan.max_streams, rule.max_streams);
    for (const std::string& name : rule.buckets) {
      const BucketSpec* head = config.bucket(name);
      if (head == nullptr) continue;  // the config loader rejects unknown names
      std::vector<std::string> keys = expandBucketName(name, who);
      for (size_t t = 0; t < keys.size(); ++t) {
        if (seen(keys[t])) continue;
        QuotaCharge charge;
        charge.chain.push_back({std::move(keys[t]), head});
        const BucketSpec* at = head;
        // The loader guarantees the chain is acyclic and keeps one unit.
        while (at->on_exceed == OnExceed::kOverdraft) {
          const BucketSpec* next = config.bucket(at->overdraft_into);
          if (next == nullptr || charge.chain.size() > config.buckets.size()) break;
          std::vector<std::string> nk = expandBucketName(next->name, who);
          if (nk.empty()) break;
          charge.chain.push_back({nk[std::min(t, nk.size() - 1)], next});
          at = next;
        }
        plan.charges.push_back(std::move(charge));
      }
    }
  }
  return plan;
}

void setAmounts(QuotaPlan& plan, const QuotaAmounts& amounts) {
  for (QuotaCharge& c : plan.charges) c.amount = amounts.of(c.unit());
}

bool reserveChain(const QuotaCharge& charge, std::vector<BucketState*>& states,
                  std::vector<int64_t>* taken, ReserveOutcome* out) {
  int64_t rest = charge.amount;
  size_t last = charge.chain.size() - 1;
  taken->assign(charge.chain.size(), 0);
  for (size_t i = 0; i < last; ++i) {
    int64_t give = std::clamp<int64_t>(states[i]->level, 0, rest);
    states[i]->level -= give;
    (*taken)[i] = give;
    rest -= give;
  }
  BucketState& end = *states[last];
  const BucketSpec& spec = *charge.chain[last].spec;
  // A bucket that owes a shortfall (debt) admits nothing until refills have paid it.
  if (end.debt == 0 && (end.level >= rest || (last > 0 && end.level > 0))) {
    if (last > 0 && rest > 0) out->overdrawn.push_back(charge.chain[last].key);
    end.level -= rest;
    (*taken)[last] = rest;
    return true;
  }
  if (spec.on_exceed == OnExceed::kFlag) {
    int64_t give = std::clamp<int64_t>(end.level, 0, rest);
    end.level -= give;
    (*taken)[last] = give;
    out->flagged.push_back(charge.chain[last].key);
    return true;
  }
  out->rejected = charge.chain[last].key;
  out->rejected_level = end.level;
  out->rejected_need = rest;
  out->retry_after_s = secondsUntil(spec, end, rest);
  return false;
}

void settleChain(const QuotaCharge& charge, std::vector<BucketState*>& states,
                 const std::vector<int64_t>& taken, int64_t real) {
  int64_t reserved = 0;
  for (int64_t t : taken) reserved += t;
  size_t last = charge.chain.size() - 1;
  if (real < reserved) {
    int64_t refund = reserved - real;
    for (size_t i = charge.chain.size(); i-- > 0 && refund > 0;) {
      int64_t back = std::min(refund, taken[i]);
      refund -= back;
      BucketState& st = *states[i];
      back = payDebt(st, back);
      int64_t cap = effectiveCapacity(*charge.chain[i].spec, st);
      if (st.level >= cap) continue;  // a lowered capacity: keep the level, credit nothing
      if (back >= cap - st.level) {
        st.level = cap;
        st.refill_rem = 0;
      } else {
        st.level += back;
      }
    }
  } else if (real > reserved) {
    int64_t extra = real - reserved;
    for (size_t i = 0; i < last; ++i) {
      int64_t give = std::clamp<int64_t>(states[i]->level, 0, extra);
      states[i]->level -= give;
      extra -= give;
    }
    // The last bucket: down to zero, the rest owed (never below zero for a shortfall).
    BucketState& end = *states[last];
    int64_t give = std::clamp<int64_t>(end.level, 0, extra);
    end.level -= give;
    end.debt = std::min(kMaxQuotaAmount, end.debt + (extra - give));
  }
}

QuotaLedger::Entries::iterator QuotaLedger::find(const std::string& key, const BucketSpec& spec,
                                                 int64_t now_ms) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    it = entries_.emplace(key, Entry{freshBucket(spec, now_ms), spec.name}).first;
    markDirty(it);
  }
  refillBucket(spec, it->second.state, now_ms);
  return it;
}

BucketState& QuotaLedger::at(const std::string& key, const BucketSpec& spec, int64_t now_ms) {
  return find(key, spec, now_ms)->second.state;
}

const QuotaLedger::Entry* QuotaLedger::entry(std::string_view key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void QuotaLedger::restore(const std::string& key, const std::string& spec, const BucketState& st) {
  Entry& e = entries_[key];
  e.state = st;
  e.spec = spec;
}

void QuotaLedger::markDirty(Entries::iterator it) {
  if (it->second.dirty) return;
  it->second.dirty = true;
  dirty_.push_back(it);
}

void QuotaLedger::markDirty(const std::string& key) {
  if (auto it = entries_.find(key); it != entries_.end()) markDirty(it);
}

std::vector<std::string> QuotaLedger::takeDirty() {
  std::vector<std::string> keys;
  keys.reserve(dirty_.size());
  for (Entries::iterator it : dirty_) {
    it->second.dirty = false;
    keys.push_back(it->first);
  }
  dirty_.clear();
  return keys;
}

ReserveOutcome QuotaLedger::reserve(const QuotaPlan& plan, int64_t now_ms) {
  ReserveOutcome out;
  // Work on copies so a refusal changes nothing; a key in several charges shares one copy. Plans
  // name a handful of buckets, so a linear search beats a map (and allocates nothing per key).
  struct Work {
    const std::string* key;
    Entries::iterator live;  // stable: entries are never erased
    BucketState copy;
  };
  std::vector<Work> work;
  work.reserve(8);
  auto held = [&](const std::string& key) -> Work* {
    for (Work& w : work) {
      if (*w.key == key) return &w;
    }
    return nullptr;
  };
  for (const QuotaCharge& c : plan.charges) {
    for (const ChainLink& l : c.chain) {
      if (held(l.key) != nullptr) continue;
      auto live = find(l.key, *l.spec, now_ms);
      work.push_back({&l.key, live, live->second.state});
    }
  }
  out.taken.resize(plan.charges.size());
  std::vector<BucketState*> chain;
  for (size_t i = 0; i < plan.charges.size(); ++i) {
    const QuotaCharge& c = plan.charges[i];
    chain.clear();
    for (const ChainLink& l : c.chain) chain.push_back(&held(l.key)->copy);
    if (!reserveChain(c, chain, &out.taken[i], &out)) {
      out.taken.clear();
      out.flagged.clear();
      out.overdrawn.clear();
      return out;
    }
  }
  for (Work& w : work) {
    w.live->second.state = w.copy;
    markDirty(w.live);
  }
  out.allowed = true;
  return out;
}

void QuotaLedger::settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
                         int64_t now_ms) {
  std::vector<BucketState*> chain;
  for (size_t i = 0; i < plan.charges.size() && i < taken.size(); ++i) {
    const QuotaCharge& c = plan.charges[i];
    chain.clear();
    for (const ChainLink& l : c.chain) {
      auto it = find(l.key, *l.spec, now_ms);
      markDirty(it);
      chain.push_back(&it->second.state);
    }
    settleChain(c, chain, taken[i], real.of(c.unit()));
  }
}

void QuotaLedger::refill(const std::string& key, const BucketSpec& spec, int64_t amount,
                         int64_t now_ms) {
  auto it = find(key, spec, now_ms);
  BucketState& st = it->second.state;
  int64_t cap = effectiveCapacity(spec, st);
  amount = payDebt(st, amount);
  if (st.level < cap) st.level = std::min(cap, st.level + amount);
  markDirty(it);
}

void QuotaLedger::setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity,
                              int64_t now_ms) {
  auto it = find(key, spec, now_ms);
  BucketState& st = it->second.state;
  st.capacity_set = capacity;
  st.level = std::min(st.level, effectiveCapacity(spec, st));
  markDirty(it);
}

}  // namespace gatehouse::proxy
