// The Lua scripts behind the Redis quota store. Each runs atomically on the Redis server, so
// gateway replicas sharing one Redis never interleave inside a reserve or a settle.
//
// They implement exactly the arithmetic of bucket.cc (refill with carried remainder) and
// ledger.cc (chains, overdraft, flag, settle) in Lua 5.1, whose numbers are doubles: every level
// stays below 2^50 (kMaxQuotaAmount) and the one product that can exceed 2^53 (elapsed × amount
// in refill) is done in 16-bit limbs, so results are exact to the unit. redis_store_test checks
// them against QuotaLedger on the same random operations.
//
// Storage: bucket KEY is a hash at PREFIX .. "b:" .. KEY with fields level, rem, upd, cap, debt,
// spec; the set PREFIX .. "index" lists every KEY (for GET /api/quotas).
//
// Arguments (numbers as decimal strings, except inside the batch's MessagePack array).
// Reserves and settles travel in batches (redis_store.cc): the settles first, then the
// reserves, each plan in order, exactly as QuotaLedger would process the same calls one by one.
//   batch    KEYS = bucket hashes, then concurrency sets; ARGV = 0, index, and one MessagePack
//            array (numbers arrive as numbers: Lua's string-to-number conversion was most of
//            the script's cost) of: nbuckets, then per bucket key: capacity, refill_amount,
//            period_ms, on_exceed (0 reject, 1 overdraft, 2 flag), spec name; then nsettles,
//            settle plans, nreserves, reserve plans.
//            A plan: now, a slot, nchains, then per chain: amount (settle: the real amount),
//            nlinks, then per link its key index (settle: and the amount that bucket gave),
//            then (reserve only) the allowance wanted from the chain's last bucket (0: none).
//            A slot: 0 (none) | reserve: 1, requests set idx, max_requests, streams set idx,
//            max_streams, member, lease expiry ms, slot allowance wanted in the requests set
//            and in the streams set, allowance member name | settle: 1, requests set idx,
//            streams set idx, member (a set index 0: no limit of that kind).
//            → per reserve plan, concatenated: {1, nflagged, keyidx..., noverdrawn,
//              keyidx..., taken per link in order, allowance granted per chain, [with a slot:
//              slots granted in the requests set, in the streams set, as members NAME:1..n]}
//              | {0, keyidx, level, need, debt}
//              | {2, 1 (requests) or 2 (streams), in flight, max}: a concurrency refusal
//            An allowance is at most an eighth of the level (of the room below the limit)
//            left after the plan; none from a bucket that owes a debt.
//   concurrency sets: PREFIX .. "r:" .. WHO (requests) and PREFIX .. "s:" .. WHO (streams),
//            sorted sets of slot ids scored by lease expiry (ms); the holder renews with ZADD XX.
//   admin    KEYS[1]; ARGV = now, index, capacity, refill_amount, period_ms, spec,
//            op ("refill" | "capacity"), value → level
//   list     ARGV = index → flat {hash key, spec, level, rem, upd, cap, debt, ...}
#pragma once

#include <string>

namespace gatehouse::proxy::redis_lua {

extern const std::string kBatch;
extern const std::string kAdmin;
extern const std::string kList;

}  // namespace gatehouse::proxy::redis_lua
