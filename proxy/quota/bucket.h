// Quota buckets: spec strings, units and the token-bucket arithmetic (proxy/quota/QUOTAS.md).
//
// A bucket holds an integer level in one unit (nano-dollars, tokens or requests), starts full at
// its capacity and refills at a fixed rate ("$5.00/day" = 5e9 nano-dollars per 86,400,000 ms).
// Refill is exact: the fraction of a unit earned but not yet credited is carried in `refill_rem`
// (numerator over the period), so crediting in many small steps gives exactly what one big step
// gives, floor(elapsed × amount / period) in total, until the bucket is full.
//
// Spec strings (errors name the expected form):
//   amount  "$5.00" | "$0.000000001" | "2M tokens" | "2000000 tokens" | "500 requests" | "1k
//   requests" rate    AMOUNT "/" ("minute"|"min"|"hour"|"day"|"week"|"month")   month = 30 days
//
// Sans-I/O: `now` (Unix ms) is an argument; nothing here reads a clock or does I/O. Pure functions
// over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wg/status.h"

namespace gatehouse::proxy {

enum class QuotaUnit : uint8_t { kNanodollars, kTokens, kRequests };
std::string_view quotaUnitName(QuotaUnit unit);  // "dollars", "tokens", "requests"

// Largest capacity or amount a bucket accepts: 2^50 (≈ $1.1M in nano-dollars). Keeps every sum
// exact in int64 and in the Redis store's Lua numbers (doubles, exact below 2^53).
inline constexpr int64_t kMaxQuotaAmount = int64_t{1} << 50;

struct QuotaAmount {
  QuotaUnit unit = QuotaUnit::kNanodollars;
  int64_t value = 0;
  bool operator==(const QuotaAmount&) const = default;
};

struct QuotaRate {
  QuotaAmount amount;
  int64_t period_ms = 0;
  bool operator==(const QuotaRate&) const = default;
};

// "$5.00", "2M tokens", "500 requests". On failure the Status (EINVAL) message says what is wrong
// and shows the expected form.
Result<QuotaAmount> parseQuotaAmount(std::string_view text);
// "$5.00/day", "2M tokens/day", "500 requests/hour".
Result<QuotaRate> parseQuotaRate(std::string_view text);

// "$5.000000000", "2000000 tokens", "500 requests".
std::string formatQuotaAmount(QuotaUnit unit, int64_t value);

enum class OnExceed : uint8_t { kReject, kOverdraft, kFlag };
std::string_view onExceedName(OnExceed e);  // "reject", "overdraft", "flag"

// One configured bucket. `name` may be a template holding <user>, <tag> or <node>.
struct BucketSpec {
  std::string name;
  QuotaUnit unit = QuotaUnit::kNanodollars;
  int64_t capacity = 0;       // maximum and starting level, in `unit`
  int64_t refill_amount = 0;  // credited per refill_period_ms; 0 = never refills by itself
  int64_t refill_period_ms = 0;
  OnExceed on_exceed = OnExceed::kReject;
  std::string overdraft_into;  // kOverdraft: the next bucket (a name or template)
  std::string origin;          // "gateway.hujson:40:7"
};

// The stored state of one bucket instance (a spec with its template expanded).
struct BucketState {
  int64_t level = 0;         // < 0 only after an explicit overdraft (QUOTAS.md "Chains")
  int64_t refill_rem = 0;    // 0 ≤ refill_rem < refill_period_ms: credit carried to the next step
  int64_t updated_ms = 0;    // last refill time
  int64_t capacity_set = 0;  // capacity set through the admin API; 0 = the spec's
  // Settlement shortfalls not yet paid (≥ 0, at most kMaxQuotaAmount): what real usage cost
  // beyond the reservation and an empty level. Refills, refunds and admin refills pay it before
  // the level rises, so while it is owed the level stays at or below zero and nothing new is
  // admitted. The level itself never goes below zero for it.
  int64_t debt = 0;
  bool operator==(const BucketState&) const = default;
};

// Pays `credit` into the debt first; returns what is left for the level.
inline int64_t payDebt(BucketState& st, int64_t credit) {
  int64_t pay = credit < st.debt ? credit : st.debt;
  st.debt -= pay;
  return credit - pay;
}

// The capacity in force for a bucket instance.
inline int64_t effectiveCapacity(const BucketSpec& spec, const BucketState& st) {
  return st.capacity_set > 0 ? st.capacity_set : spec.capacity;
}

// "$5.000000000/day", "500 requests/hour" ("/90000 ms" for a period without a name).
std::string formatQuotaRate(const BucketSpec& spec);

// A new instance: full, as of `now_ms`.
BucketState freshBucket(const BucketSpec& spec, int64_t now_ms);

// Credits what accrued since st.updated_ms (the debt first), capped at the capacity (a level
// already above it, after a capacity was lowered, is left alone). A `now_ms` earlier than
// updated_ms credits nothing (clocks of replicas may differ slightly).
void refillBucket(const BucketSpec& spec, BucketState& st, int64_t now_ms);

// Whole seconds until the bucket holds `need` with no debt (≥ 1), or nullopt if it never will by
// refilling (no refill, or need above capacity).
std::optional<int64_t> secondsUntil(const BucketSpec& spec, const BucketState& st, int64_t need);

// floor((a × b + c) / d) and the remainder, exact in 128 bits; a, b, c ≥ 0, d > 0. The quotient
// saturates at INT64_MAX.
int64_t mulAddDiv(int64_t a, int64_t b, int64_t c, int64_t d, int64_t* rem);

}  // namespace gatehouse::proxy
