// Quota ledger: the sans-I/O reservation arithmetic over many buckets (proxy/quota/QUOTAS.md).
//
//   QuotaConfig   buckets (specs, maybe templates) + rules (who is charged which buckets, and
//                 their concurrency limits) + the store; parsed by proxy/config/quota_config.cc.
//   planFor()     expands the rules that match an identity into a QuotaPlan: one QuotaCharge per
//                 bucket instance the request pays into, each with its overdraft chain.
//   QuotaLedger   bucket instances by key with reserve / settle / refill / setCapacity. Reserve
//                 is all-or-nothing over every charge of a plan; settle moves each charge from
//                 its reservation to the real amount.
//
// Chain semantics (identical in the Redis store's Lua, redis_scripts.cc):
//   reserve A on chain b0 → b1 → … → bk (b0..b(k-1) have on_exceed = overdraft):
//     b0..b(k-1) each give min(level, rest) (never below zero);
//     bk gives the rest if level ≥ rest, or if bk is an overdraft target (k > 0) with level > 0 —
//       the explicit overdraft, which may take bk below zero;
//     otherwise bk's on_exceed decides: reject (the whole plan is refused, nothing changes) or
//       flag (allowed; bk gives what it has, never going below zero; the plan reports the flag).
//   settle with real amount R against reservation A (what each bucket gave is remembered):
//     R < A: refund A − R, last bucket first, each at most what it gave, never above capacity;
//     R > A: charge R − A, b0..b(k-1) down to zero, then bk down to zero, the remainder becomes
//       bk's debt (the settlement shortfall: the provider has already billed it; refills pay the
//       debt before the level rises again).
//
// Sans-I/O: `now` is an argument. A QuotaLedger is not thread-safe: one owner (a store) calls it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "proxy/quota/bucket.h"
#include "wg/node.h"

namespace gatehouse::proxy {

struct QuotaRule {
  std::vector<std::string> src;          // as in grants: "*", login, "group:x", "tag:x"
  std::vector<std::string> buckets;      // bucket names (templates) charged, every one
  std::optional<uint32_t> max_requests;  // requests in flight per identity
  std::optional<uint32_t> max_streams;   // streaming requests in flight per identity
  std::string origin;
};

struct QuotaStoreConfig {
  enum class Kind : uint8_t { kMemory, kSqlite, kRedis };
  Kind kind = Kind::kSqlite;
  std::string database;  // kSqlite: absolute path
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  std::string redis_prefix = "gatehouse:quota:";
  bool fail_open = false;      // store unreachable: allow (true) or refuse with 503 (false)
  uint32_t timeout_ms = 1000;  // kRedis: a reply later than this counts as an outage
  // kRedis: a concurrency slot expires this long after its last renewal; the holding replica
  // renews its slots every lease_ms / 3, so only a replica that died (or lost Redis) leaves
  // slots behind, and only for this long.
  uint32_t lease_ms = 60'000;
  // kRedis: 0, or how long a replica may keep an allowance: budget and concurrency slots taken
  // from Redis ahead of the requests that will use them, served from memory without a Redis
  // call, and given back at most this long later (QUOTAS.md "Allowances").
  uint32_t allowance_ms = 0;
};

struct QuotaConfig {
  std::vector<BucketSpec> buckets;
  std::vector<QuotaRule> rules;
  QuotaStoreConfig store;
  // Input-token estimate for the reservation: ceil(request body bytes / bytes_per_token).
  uint32_t bytes_per_token = 4;
  // Output tokens reserved when a request names no max_tokens / max_output_tokens /
  // max_completion_tokens.
  uint32_t default_max_output_tokens = 4096;

  bool enabled() const { return !rules.empty(); }
  const BucketSpec* bucket(std::string_view name) const;
};

// One bucket instance in a chain: the store key (the expanded name) and its spec.
struct ChainLink {
  std::string key;
  const BucketSpec* spec = nullptr;
};

struct QuotaCharge {
  std::vector<ChainLink> chain;  // head first, then overdraft targets
  int64_t amount = 0;            // reserved, in the chain's unit
  QuotaUnit unit() const { return chain.front().spec->unit; }
};

struct QuotaPlan {
  std::vector<QuotaCharge> charges;
  std::optional<uint32_t> max_requests;
  std::optional<uint32_t> max_streams;
  // A concurrency slot held in the store for the request's lifetime, when the store counts
  // requests in flight for every replica (Redis); otherwise each gateway counts its own
  // (ConcurrencyLimiter) and this is empty. Reserve takes the slot, settle gives it back.
  struct Slot {
    std::string who;  // identityKey()
    std::string id;   // unique per request: the request id
    bool stream = false;
  };
  std::optional<Slot> slot;
  bool empty() const { return charges.empty(); }
};

// Worst case (reserve) or real (settle) amounts of one request per unit.
struct QuotaAmounts {
  int64_t nanos = 0;
  int64_t tokens = 0;
  int64_t requests = 1;
  int64_t of(QuotaUnit u) const {
    return u == QuotaUnit::kNanodollars ? nanos : u == QuotaUnit::kTokens ? tokens : requests;
  }
};

// `name` with <user>, <node> and <tag> replaced; one result per tag for <tag> (none when the
// identity has no tags). <user> is the login, or the node name for a node without a user.
std::vector<std::string> expandBucketName(std::string_view name, const wg::Identity& who);

// The charges of every rule whose src matches `who`, each bucket instance once, amounts zero.
// The tightest concurrency limits of the matching rules.
QuotaPlan planFor(const QuotaConfig& config, const wg::Identity& who);
void setAmounts(QuotaPlan& plan, const QuotaAmounts& amounts);

// What each bucket of each charge gave (same shape as the plan's chains).
using QuotaTaken = std::vector<std::vector<int64_t>>;

struct ReserveOutcome {
  bool allowed = false;
  QuotaTaken taken;
  std::vector<std::string> flagged;    // keys of buckets that were short but on_exceed = flag
  std::vector<std::string> overdrawn;  // keys of overdraft targets that lent
  // Refused: the bucket that refused, its level and what the request needed from it.
  std::string rejected;
  int64_t rejected_level = 0;
  int64_t rejected_need = 0;
  std::optional<int64_t> retry_after_s;  // nullopt: refilling alone will never make room
  // Refused by a concurrency limit held in the store (QuotaPlan::slot): the message, and
  // `rejected` stays empty.
  std::string concurrency;
};

class QuotaLedger {
 public:
  ReserveOutcome reserve(const QuotaPlan& plan, int64_t now_ms);
  void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
              int64_t now_ms);
  // Admin: add `amount` (capped at capacity). Creates the instance if new.
  void refill(const std::string& key, const BucketSpec& spec, int64_t amount, int64_t now_ms);
  // Admin: capacity for this instance (0 = back to the spec's); the level is capped at it.
  void setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity,
                   int64_t now_ms);

  // The instance, refilled to now (created full if new).
  BucketState& at(const std::string& key, const BucketSpec& spec, int64_t now_ms);
  struct Entry {
    BucketState state;
    std::string spec;  // the BucketSpec's name
    bool dirty = false;
  };
  // Every instance by key; nullptr / absent when the ledger has never seen it.
  const std::map<std::string, Entry, std::less<>>& entries() const { return entries_; }
  const Entry* entry(std::string_view key) const;
  void restore(const std::string& key, const std::string& spec, const BucketState& st);
  // Keys changed since the last call (for write-behind persistence), in the order first changed.
  std::vector<std::string> takeDirty();
  void markDirty(const std::string& key);

 private:
  using Entries = std::map<std::string, Entry, std::less<>>;
  // at(), as the entry's iterator.
  Entries::iterator find(const std::string& key, const BucketSpec& spec, int64_t now_ms);
  void markDirty(Entries::iterator it);

  Entries entries_;                       // never erased from: iterators stay valid
  std::vector<Entries::iterator> dirty_;  // the entries with dirty set
};

// The pure per-chain steps, shared by QuotaLedger and the differential tests. `levels` are the
// chain's states already refilled; they are updated in place.
bool reserveChain(const QuotaCharge& charge, std::vector<BucketState*>& states,
                  std::vector<int64_t>* taken, ReserveOutcome* out);
void settleChain(const QuotaCharge& charge, std::vector<BucketState*>& states,
                 const std::vector<int64_t>& taken, int64_t real);

}  // namespace gatehouse::proxy
