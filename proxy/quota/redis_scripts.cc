#include "proxy/quota/redis_scripts.h"

namespace gatehouse::proxy::redis_lua {
namespace {

// Shared by reserve, settle and admin: exact refill (bucket.cc refillBucket) and state I/O.
const char* const kCommon = R"lua(
local B = 65536
local MAXAMOUNT = 1125899906842624  -- 2^50, bucket.h kMaxQuotaAmount
local function limbs(x)
  local t = {}
  for i = 1, 4 do local l = x % B; t[i] = l; x = (x - l) / B end
  return t
end
-- floor((a*b + c) / d) and the remainder, exact for a, b < 2^53, c < d < 2^32.
local TWO52 = 4503599627370496
local function muladddiv(a, b, c, d)
  if b == 0 or a <= TWO52 / b then
    -- The common case (a refill every few minutes or more often): a*b + c < 2^53, so every
    -- double below is an exact integer; the quotient is corrected by at most one.
    local n = a * b + c
    local q = math.floor(n / d)
    local r = n - q * d
    if r < 0 then q = q - 1; r = r + d elseif r >= d then q = q + 1; r = r - d end
    return q, r
  end
  local la, lb = limbs(a), limbs(b)
  local p = {0, 0, 0, 0, 0, 0, 0, 0, 0}
  for i = 1, 4 do for j = 1, 4 do p[i + j - 1] = p[i + j - 1] + la[i] * lb[j] end end
  p[1] = p[1] + c
  for k = 1, 8 do local l = p[k] % B; p[k + 1] = p[k + 1] + (p[k] - l) / B; p[k] = l end
  local q, r = 0, 0
  for k = 9, 1, -1 do
    local cur = r * B + p[k]
    local qd = math.floor(cur / d)
    local rr = cur - qd * d
    while rr < 0 do qd = qd - 1; rr = rr + d end
    while rr >= d do qd = qd + 1; rr = rr - d end
    r = rr; q = q * B + qd
  end
  return q, r
end
local index = ARGV[2]
local st = {}
local function capof(s, spec) if s.cap > 0 then return s.cap end return spec.capacity end
-- Pays `credit` into the debt first; returns what is left for the level.
local function paydebt(s, credit)
  local pay = math.min(credit, s.debt)
  s.debt = s.debt - pay
  return credit - pay
end
-- The bucket's state, read once per script, refilled to `t` (plans in one batch carry their
-- own times, in order).
local function load(idx, spec, t)
  local s = st[idx]
  if not s then
    local v = redis.call('HMGET', KEYS[idx], 'level', 'rem', 'upd', 'cap', 'debt')
    if v[1] then
      s = {level = tonumber(v[1]), rem = tonumber(v[2]), upd = tonumber(v[3]), cap = tonumber(v[4]),
           debt = tonumber(v[5] or '0')}
    else
      s = {level = spec.capacity, rem = 0, upd = t, cap = 0, debt = 0, new = true}
    end
    s.spec = spec
    st[idx] = s
  end
  if t > s.upd then
    local elapsed = t - s.upd
    s.upd = t
    local c = capof(s, spec)
    if spec.amount > 0 and spec.period > 0 then
      if s.level >= c and s.debt == 0 then
        s.rem = 0
      else
        local add, rem = muladddiv(elapsed, spec.amount, s.rem, spec.period)
        add = paydebt(s, add)
        if s.debt > 0 then
          s.rem = rem
        elseif s.level >= c then
          s.rem = 0
        elseif add >= c - s.level then
          s.level = c; s.rem = 0
        else
          s.level = s.level + add; s.rem = rem
        end
      end
    end
  end
  return s
end
local function save()
  for idx, s in pairs(st) do
    redis.call('HMSET', KEYS[idx], 'level', string.format('%d', s.level),
               'rem', string.format('%d', s.rem), 'upd', string.format('%d', s.upd),
               'cap', string.format('%d', s.cap), 'debt', string.format('%d', s.debt),
               'spec', s.spec.name)
    if s.new then redis.call('SADD', index, KEYS[idx]) end
  end
end
-- Each bucket's spec, by key index (the batch script fills it from ARGV).
local specs = {}
local function clamp(x, lo, hi) if x < lo then return lo end if x > hi then return hi end return x end
)lua";

// One call per loop turn: the settles, then the reserves, each plan in order; a reserve is
// all or nothing (a refused plan's levels are put back).
const char* const kBatchBody = R"lua(
-- Everything but the index name arrives as one MessagePack array in ARGV[3]: numbers come out
-- of cmsgpack as numbers (no string-to-number conversion, which dominated the script's cost),
-- and the plans are read in place, without building a table per chain or link.
local A = cmsgpack.unpack(ARGV[3])
local pos = 2
for i = 1, A[1] do
  specs[i] = {capacity = A[pos], amount = A[pos + 1], period = A[pos + 2], onex = A[pos + 3],
              name = A[pos + 4]}
  pos = pos + 5
end
-- Concurrency slots: a sorted set per identity (requests, and streams), member = the request's
-- slot id, score = when the lease expires. Each set is read once per call (expired members
-- dropped, then counted); the count is kept here as plans take and give back slots, and the
-- removals and additions go to Redis in one ZREM and one ZADD per set.
local count, removed, added = {}, {}, {}
local function inflight(k, t)
  if count[k] == nil then
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', string.format('%d', t))
    count[k] = redis.call('ZCARD', KEYS[k])
  end
  return count[k]
end
local function release(k, member)
  if k == 0 then return end
  local r = removed[k]
  if r == nil then r = {}; removed[k] = r end
  r[#r + 1] = member
end
local function take(k, exp, member)
  if k == 0 then return end
  local a = added[k]
  if a == nil then a = {}; added[k] = a end
  a[#a + 1] = exp
  a[#a + 1] = member
  count[k] = count[k] + 1
end
-- An allowance of slots (QUOTAS.md "Allowances"): up to `want` more members NAME:1..NAME:g, at
-- most an eighth of the room left, so a replica never holds more than a fraction of a limit.
local function grantslots(k, max, want, name, exp)
  if k == 0 or want <= 0 then return 0 end
  local g = math.min(want, math.floor((max - count[k]) / 8))
  if g <= 0 then return 0 end
  for i = 1, g do take(k, exp, name .. ':' .. i) end
  return g
end
local nsettle = A[pos]
pos = pos + 1
for p = 1, nsettle do
  local t = A[pos]
  if A[pos + 1] == 1 then
    -- Give the slot back: requests set (0: none), streams set (0: none), member.
    release(A[pos + 2], A[pos + 4])
    release(A[pos + 3], A[pos + 4])
    pos = pos + 5
  else
    pos = pos + 2
  end
  local nch = A[pos]
  pos = pos + 1
  for c = 1, nch do
    -- A chain: real amount, nlinks, then (key index, taken) per link.
    local real, nl = A[pos], A[pos + 1]
    local base = pos + 2
    pos = base + 2 * nl
    local reserved = 0
    for i = 0, nl - 1 do reserved = reserved + A[base + 2 * i + 1] end
    if real < reserved then
      local refund = reserved - real
      for i = nl - 1, 0, -1 do
        if refund <= 0 then break end
        local idx = A[base + 2 * i]
        local back = math.min(refund, A[base + 2 * i + 1])
        refund = refund - back
        local s = load(idx, specs[idx], t)
        back = paydebt(s, back)
        local c = capof(s, s.spec)
        if s.level < c then
          if back >= c - s.level then s.level = c; s.rem = 0 else s.level = s.level + back end
        end
      end
    elseif real > reserved then
      local extra = real - reserved
      for i = 0, nl - 2 do
        local idx = A[base + 2 * i]
        local s = load(idx, specs[idx], t)
        local give = clamp(s.level, 0, extra)
        s.level = s.level - give; extra = extra - give
      end
      local idx = A[base + 2 * (nl - 1)]
      local s = load(idx, specs[idx], t)
      local give = clamp(s.level, 0, extra)
      s.level = s.level - give
      s.debt = math.min(MAXAMOUNT, s.debt + extra - give)
    end
  end
end
for k, members in pairs(removed) do redis.call('ZREM', KEYS[k], unpack(members)) end
local nreserve = A[pos]
pos = pos + 1
local out, nout = {}, 0
local function emit(v) nout = nout + 1; out[nout] = v end
-- Per plan, without a table per plan (this loop is most of the script's cost): the levels a plan
-- changed (to put back when it is refused), what each link gave, and the rare flagged and
-- overdrawn buckets.
local saved, nsaved = {}, 0
local savedidx = {}
local taken, ntaken = {}, 0
local gidx, gwant, ngrant = {}, {}, 0
local function debit(idx, s, v)
  if saved[idx] == nil then
    saved[idx] = s.level
    nsaved = nsaved + 1
    savedidx[nsaved] = idx
  end
  s.level = s.level - v
end
for p = 1, nreserve do
  local t = A[pos]
  for i = 1, nsaved do saved[savedidx[i]] = nil end
  nsaved, ntaken, ngrant = 0, 0, 0
  local flagged, overdrawn = nil, nil
  local refused = false
  local rk, sk, member, exp = 0, 0, nil, nil
  local maxr, maxs, wantr, wants, gname = 0, 0, 0, 0, nil
  if A[pos + 1] == 1 then
    -- The slot to take: requests set, max_requests, streams set, max_streams (set 0: no limit
    -- of that kind), member, lease expiry, then the slot allowance wanted in each set and the
    -- name its members are made from. Checked before any bucket is touched.
    rk, sk, member, exp = A[pos + 2], A[pos + 4], A[pos + 6], A[pos + 7]
    maxr, maxs, wantr, wants, gname = A[pos + 3], A[pos + 5], A[pos + 8], A[pos + 9], A[pos + 10]
    if rk > 0 then
      local n = inflight(rk, t)
      if n >= A[pos + 3] then refused = true; emit(2); emit(1); emit(n); emit(A[pos + 3]) end
    end
    if not refused and sk > 0 then
      local n = inflight(sk, t)
      if n >= A[pos + 5] then refused = true; emit(2); emit(2); emit(n); emit(A[pos + 5]) end
    end
    pos = pos + 11
  else
    pos = pos + 2
  end
  local nch = A[pos]
  pos = pos + 1
  for c = 1, nch do
    -- A chain: amount, nlinks, the key index per link, then the allowance wanted from its last
    -- bucket (0 for none).
    local rest, nl = A[pos], A[pos + 1]
    local base = pos + 2
    pos = base + nl + 1
    ngrant = ngrant + 1
    gidx[ngrant] = A[base + nl - 1]
    gwant[ngrant] = A[base + nl]
    if not refused then
      for i = 0, nl - 2 do
        local idx = A[base + i]
        local s = load(idx, specs[idx], t)
        local give = clamp(s.level, 0, rest)
        debit(idx, s, give); rest = rest - give
        ntaken = ntaken + 1; taken[ntaken] = give
      end
      local idx = A[base + nl - 1]
      local spec = specs[idx]
      local s = load(idx, spec, t)
      if s.debt == 0 and (s.level >= rest or (nl > 1 and s.level > 0)) then
        if nl > 1 and rest > 0 then
          overdrawn = overdrawn or {}
          overdrawn[#overdrawn + 1] = idx
        end
        debit(idx, s, rest)
        ntaken = ntaken + 1; taken[ntaken] = rest
      elseif spec.onex == 2 then
        local give = clamp(s.level, 0, rest)
        debit(idx, s, give)
        ntaken = ntaken + 1; taken[ntaken] = give
        flagged = flagged or {}
        flagged[#flagged + 1] = idx
      else
        refused = true
        emit(0); emit(idx); emit(s.level); emit(rest); emit(s.debt)
      end
    end
  end
  if refused then
    for i = 1, nsaved do local idx = savedidx[i]; st[idx].level = saved[idx] end
  else
    if member then
      take(rk, exp, member)
      take(sk, exp, member)
    end
    emit(1)
    if flagged then
      emit(#flagged)
      for _, v in ipairs(flagged) do emit(v) end
    else
      emit(0)
    end
    if overdrawn then
      emit(#overdrawn)
      for _, v in ipairs(overdrawn) do emit(v) end
    else
      emit(0)
    end
    for i = 1, ntaken do emit(taken[i]) end
    -- Allowances, once the plan is in: per chain what its bucket granted beyond the plan (at
    -- most an eighth of what is left, none while it owes a debt), then the slots per set.
    for i = 1, ngrant do
      local g, w = 0, gwant[i]
      if w > 0 then
        local s = st[gidx[i]]
        if s.debt == 0 and s.level >= 8 then
          g = math.min(w, math.floor(s.level / 8))
          s.level = s.level - g
        end
      end
      emit(g)
    end
    if member then
      emit(grantslots(rk, maxr, wantr, gname, exp))
      emit(grantslots(sk, maxs, wants, gname, exp))
    end
  end
end
save()
for k, a in pairs(added) do redis.call('ZADD', KEYS[k], unpack(a)) end
return out
)lua";

const char* const kAdminBody = R"lua(
local spec = {capacity = tonumber(ARGV[3]), amount = tonumber(ARGV[4]), period = tonumber(ARGV[5]),
              name = ARGV[6]}
local s = load(1, spec, tonumber(ARGV[1]))
local op, value = ARGV[7], tonumber(ARGV[8])
if op == 'refill' then
  local c = capof(s, spec)
  value = paydebt(s, value)
  if s.level < c then s.level = math.min(c, s.level + value) end
else
  s.cap = value
  s.level = math.min(s.level, capof(s, spec))
end
save()
return s.level
)lua";

}  // namespace

const std::string kBatch = std::string(kCommon) + kBatchBody;
const std::string kAdmin = std::string(kCommon) + kAdminBody;
const std::string kList = R"lua(
local out = {}
for _, k in ipairs(redis.call('SMEMBERS', ARGV[1])) do
  local v = redis.call('HMGET', k, 'spec', 'level', 'rem', 'upd', 'cap', 'debt')
  if v[1] then
    out[#out + 1] = k
    for i = 1, 6 do out[#out + 1] = v[i] or '0' end
  end
end
return out
)lua";

}  // namespace gatehouse::proxy::redis_lua
