#!/usr/bin/env bash
# Quota benchmark (run by hand, never in CI; asserts nothing, prints figures side by side).
#
# One run, everything on loopback: the static nginx mock of bench_lib.sh (a fixed Anthropic
# Message with usage), a redis-server (Debian's, no persistence), and four
# `gatehouse gateway --no-mesh` processes on loopback_listen, identical but for "quotas":
#   off     no quotas
#   sqlite  three buckets per request (dollars per user, tokens per user, team requests), SQLite
#           store (in-memory ledger, write-behind)
#   redis   the same buckets in Redis (the store batches each loop turn's settles and reserves
#           into one EVALSHA), every request decided in Redis
#   allow   the same, with "allowance_ms": 1000: budget and slots taken ahead in allowances,
#           most requests decided in the gateway (QUOTAS.md "Allowances")
# Buckets are sized so nothing is refused: the figures are the cost of the bookkeeping.
# wrk at 64 connections (and 1), JSON, ROUNDS rounds interleaved, each round starting one config
# further along (off sqlite redis allow, then sqlite redis allow off, …);
# per config the best round's requests/s with its p50/p99, the added p99 and ratio vs the best
# "off" round, the median over rounds of the ratio to that round's "off" run (paired, less
# sensitive to a busy machine), CPU µs per request (gateway, plus redis-server for the Redis
# configs) and Redis script calls per request.
# Then "side by side": "off" and each quota config loaded at the same time, one wrk with 64
# connections each, SIDE_ROUNDS rounds: the median ratio of their requests/s and each one's CPU
# per request. Both share whatever else the machine is doing, so on a noisy VM this ratio is far
# steadier than one from runs taken one after another (two identical gateways measure
# 0.97–1.05 this way).
# Targets (issue 7): sqlite ≥ 0.95×, redis ≥ 0.9× at 64 connections.
#
# Usage: tools/bench/quota_bench.sh [GATEHOUSE_BIN]   (default build/bin/gatehouse)
# Env: BENCH_SECONDS (8) per wrk run; BENCH_ROUNDS (4); BENCH_SIDE_ROUNDS (= ROUNDS; 0 skips);
# BENCH_CONNS ("64 1"); BENCH_PERF=off|sqlite|redis|allow|redis-server
# profiles that process with `perf record` during its runs (the top of `perf report` is saved
# under tools/bench/results/).
# Needs: nginx, wrk, redis-server, python3 (tools/install-deps.sh). Root is not needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
GATEHOUSE_BIN=${1:-${GATEHOUSE_BIN:-$ROOT/build/bin/gatehouse}}
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-4}
SIDE_ROUNDS=${BENCH_SIDE_ROUNDS:-$ROUNDS}
CONNS=${BENCH_CONNS:-"64 1"}
for c in nginx wrk redis-server python3 curl; do
  command -v "$c" >/dev/null || { echo "quota_bench: $c missing (tools/install-deps.sh)" >&2; exit 1; }
done
[ -x "$GATEHOUSE_BIN" ] || { echo "quota_bench: no gatehouse binary at $GATEHOUSE_BIN" >&2; exit 1; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] || { echo "quota_bench: BENCH_ROUNDS 1..10" >&2; exit 1; }
[ "$SIDE_ROUNDS" -ge 0 ] && [ "$SIDE_ROUNDS" -le 10 ] || { echo "quota_bench: BENCH_SIDE_ROUNDS 0..10" >&2; exit 1; }
[ "$SECS" -ge 1 ] && [ "$SECS" -le 120 ] || { echo "quota_bench: BENCH_SECONDS 1..120" >&2; exit 1; }

BENCH_NAME=quota_bench
RESULTS_DIR="$ROOT/tools/bench/results"
mkdir -p "$RESULTS_DIR"
# shellcheck source=tools/bench/bench_lib.sh
source "$ROOT/tools/bench/bench_lib.sh"

# ---- the static mock (nginx) ----------------------------------------------------------------
start_static_mock

# ---- redis ------------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
REDIS_PID=$!
wait_port "$REDIS_PORT" 50 || { cat "$TMP/redis.log" >&2; say "redis did not start"; exit 1; }

# ---- three gateways ---------------------------------------------------------------------------
REAL_KEY="sk-ant-bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
quotas_section() { # off|sqlite|redis DIR
  [ "$1" = off ] && return 0
  local store
  if [ "$1" = sqlite ]; then
    store="{\"kind\": \"sqlite\", \"database\": \"$2/quotas.db\"}"
  else
    local allowance=0
    [ "$1" = allow ] && allowance=1000
    store="{\"kind\": \"redis\", \"address\": \"127.0.0.1:$REDIS_PORT\", \"on_error\": \"fail_closed\", \"allowance_ms\": $allowance, \"prefix\": \"bench:$1:\"}"
  fi
  cat <<EOF
  "quotas": {
    "store": $store,
    "buckets": {
      "daily:<user>": {"rate": "\$1000000.00/minute"},
      "tokens:<user>": {"rate": "1000B tokens/minute"},
      "team": {"rate": "1000B requests/minute"},
    },
    "rules": [{"src": ["group:eng"], "buckets": ["daily:<user>", "tokens:<user>", "team"],
               "max_requests": 100000}],
  },
EOF
}
start_gateway() { # NAME → sets GW_PID GW_PORT
  local d="$TMP/$1"
  mkdir -p "$d"
  {
    cat <<EOF
{
  "loopback_listen": "127.0.0.1:0",
  "loopback_identity": {"user": "bench@example.com", "groups": ["group:eng"]},
  "providers": {
    "anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:$MOCK_PORT", "local": true,
                  "key": "env:GH_BENCH_ANTHROPIC_KEY", "models": ["claude-*"]},
  },
  "grants": [{"src": ["group:eng"], "models": ["anthropic/claude-*"], "role": "admin"}],
  "logging": {"database": "$d/gateway-logs.db", "bodies": true, "queue_size": 100000},
EOF
    quotas_section "$1" "$d"
    echo '}'
  } >"$d/gateway.hujson"
  launch_gateway "$d" "$1"
}
CONFIGS=(off sqlite redis allow)
declare -A PORT GWPID
for cfg in "${CONFIGS[@]}"; do
  start_gateway $cfg
  PORT[$cfg]=$GW_PORT
  GWPID[$cfg]=$GW_PID
done

BODY="{\"model\":\"$MODEL\",\"max_tokens\":256,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in one short sentence.\"}]}"
wrk_script "$TMP/req.lua" "$BODY"
for cfg in "${CONFIGS[@]}"; do
  code=$(curl -s -o "$TMP/probe.out" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'anthropic-version: 2023-06-01' -H 'x-api-key: -' --data-binary "$BODY" \
    "http://127.0.0.1:${PORT[$cfg]}/v1/messages")
  [ "$code" = 200 ] || { say "$cfg: probe answered $code: $(head -c 300 "$TMP/probe.out")"; exit 1; }
done

: >"$TMP/rows.jsonl"
say "wrk ${SECS}s per run, $ROUNDS rounds; mock :$MOCK_PORT redis :$REDIS_PORT; gateways off :${PORT[off]} sqlite :${PORT[sqlite]} redis :${PORT[redis]} allow :${PORT[allow]}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for conns in $CONNS; do
  threads=2
  [ "$conns" -lt 2 ] && threads=1
  for round in $(seq 1 "$ROUNDS"); do
    for k in 0 1 2 3; do
      cfg=${CONFIGS[$(((k + round - 1) % 4))]}
      cpu_pids=("${GWPID[$cfg]}")
      [ "$cfg" = redis ] || [ "$cfg" = allow ] && cpu_pids+=("$REDIS_PID")
      wait_idle "${cpu_pids[@]}"
      t0=$(cpu_ticks "${cpu_pids[@]}")
      r0=$(cpu_ticks "$REDIS_PID")
      perf_pid=""
      redis_perf_pid=""
      if [ "${BENCH_PERF:-}" = redis-server ] && [ "$cfg" != off ] && [ "$cfg" != sqlite ] && command -v perf >/dev/null; then
        perf record -F 499 -g -p "$REDIS_PID" -o "$RESULTS_DIR/perf-redis-server-$cfg-c$conns-r$round.data" \
          -- sleep "$SECS" >/dev/null 2>&1 &
        redis_perf_pid=$!
      fi
      if [ "${BENCH_PERF:-}" = "$cfg" ] && command -v perf >/dev/null; then
        perf record -F 499 ${BENCH_PERF_CALLGRAPH:---call-graph dwarf,16384} -p "${GWPID[$cfg]}" -o "$RESULTS_DIR/perf-$cfg-c$conns-r$round.data" \
          -- sleep "$SECS" >/dev/null 2>&1 &
        perf_pid=$!
      fi
      out=$(timeout $((SECS + 30)) wrk -t$threads -c"$conns" -d"${SECS}s" --timeout 10s -s "$TMP/req.lua" \
        "http://127.0.0.1:${PORT[$cfg]}/v1/messages" 2>&1) || true
      [ -z "$redis_perf_pid" ] || wait "$redis_perf_pid" || true
      if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$RESULTS_DIR/perf-$cfg-c$conns-r$round.data" --no-children --percent-limit 0.7 \
          --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 \
          >"$RESULTS_DIR/perf-$cfg-c$conns-r$round.txt" || true
        say "$cfg c$conns round $round: profile in $RESULTS_DIR/perf-$cfg-c$conns-r$round.txt"
      fi
      wait_idle "${cpu_pids[@]}"  # the log writer's backlog belongs to this run
      t1=$(cpu_ticks "${cpu_pids[@]}")
      r1=$(cpu_ticks "$REDIS_PID")
      line=$(sed -n 's/^WRKJSON //p' <<<"$out")
      [ -n "$line" ] || { say "$cfg c$conns: wrk failed: $(tail -n 3 <<<"$out")"; continue; }
      python3 -c "import json,sys; d=json.loads(sys.argv[1]); d.update(config=sys.argv[2], conns=int(sys.argv[3]), round=int(sys.argv[4]), cpu_us=(int(sys.argv[6])-int(sys.argv[5]))*1e6/int(sys.argv[7])/max(1,d['requests']), redis_us=(int(sys.argv[9])-int(sys.argv[8]))*1e6/int(sys.argv[7])/max(1,d['requests'])); print(json.dumps(d))" \
        "$line" "$cfg" "$conns" "$round" "$t0" "$t1" "$CLK_TCK" "$r0" "$r1" >>"$TMP/rows.jsonl"
      say "$cfg c$conns round $round: $(tail -n 1 "$TMP/rows.jsonl")"
    done
  done
done

# Sanity after the load: the buckets were charged and settled (levels below capacity, nothing
# refused), the stores answered.
for cfg in sqlite redis allow; do
  n=$(curl -s "http://127.0.0.1:${PORT[$cfg]}/api/quotas" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["buckets"]))' 2>/dev/null || echo "?")
  say "$cfg: GET /api/quotas lists $n buckets; quota lines in its log: $(grep -c 'quota ' "$TMP/$cfg/gateway.log" || true)"
done
# How many script calls each Redis store made for how many requests (batching, allowances; from
# its /api/metrics), and what one call costs inside redis-server.
for cfg in redis allow; do
  reqs=$(python3 -c 'import json,sys; print(sum(json.loads(l)["requests"] for l in open(sys.argv[1]) if json.loads(l)["config"] == sys.argv[2]))' "$TMP/rows.jsonl" "$cfg")
  metrics=$(curl -s "http://127.0.0.1:${PORT[$cfg]}/api/metrics")
  calls=$(sed -n 's/^gatehouse_quota_store_calls_total //p' <<<"$metrics")
  local_n=$(sed -n 's/^gatehouse_quota_allowance_reserves_total //p' <<<"$metrics")
  say "$cfg: ${calls:-?} script calls for $reqs requests (+ probes): $(python3 -c "print(f'{${calls:-0} / max(1, $reqs):.3f}')") per request; ${local_n:-?} reserves served from allowances"
done
if command -v redis-cli >/dev/null; then
  per=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_evalsha:calls=[0-9]*,usec=[0-9]*,usec_per_call=\([0-9.]*\).*/\1/p')
  say "redis-server: ${per:-?} us per script call (both Redis configs)"
fi

# Side by side: "off" and one quota config loaded at the same time (one wrk each, 64
# connections each), so whatever else the machine does slows both alike; per round the ratio of
# their requests/s and each one's CPU per request.
: >"$TMP/side.jsonl"
if [ "$SIDE_ROUNDS" -gt 0 ]; then
  for cfg in sqlite redis allow; do
    for round in $(seq 1 "$SIDE_ROUNDS"); do
      wait_idle "${GWPID[off]}" "${GWPID[$cfg]}"
      a0=$(cpu_ticks "${GWPID[off]}")
      b0=$(cpu_ticks "${GWPID[$cfg]}")
      timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" --timeout 10s -s "$TMP/req.lua" \
        "http://127.0.0.1:${PORT[off]}/v1/messages" >"$TMP/side-off.out" 2>&1 &
      side_pid=$!
      timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" --timeout 10s -s "$TMP/req.lua" \
        "http://127.0.0.1:${PORT[$cfg]}/v1/messages" >"$TMP/side-cfg.out" 2>&1 || true
      wait "$side_pid" || true
      wait_idle "${GWPID[off]}" "${GWPID[$cfg]}"
      a1=$(cpu_ticks "${GWPID[off]}")
      b1=$(cpu_ticks "${GWPID[$cfg]}")
      python3 - "$TMP/side-off.out" "$TMP/side-cfg.out" "$cfg" "$round" "$a0" "$a1" "$b0" "$b1" "$CLK_TCK" \
        >>"$TMP/side.jsonl" <<'PY' || say "side by side $cfg round $round: wrk failed"
import json, sys
def row(path):
    return json.loads(open(path).read().split("WRKJSON ", 1)[1].splitlines()[0])
a, b = row(sys.argv[1]), row(sys.argv[2])
ticks = [int(x) for x in sys.argv[5:9]]
hz = int(sys.argv[9])
print(json.dumps({"config": sys.argv[3], "round": int(sys.argv[4]),
                  "off_rps": a["requests"] / (a["duration_us"] / 1e6),
                  "rps": b["requests"] / (b["duration_us"] / 1e6),
                  "off_cpu_us": (ticks[1] - ticks[0]) * 1e6 / hz / max(1, a["requests"]),
                  "cpu_us": (ticks[3] - ticks[2]) * 1e6 / hz / max(1, b["requests"]),
                  "errors": a["sock_errors"] + a["status_errors"] + b["sock_errors"] + b["status_errors"]}))
PY
      say "side by side $cfg round $round: $(tail -n 1 "$TMP/side.jsonl")"
    done
  done
fi


python3 - "$TMP/rows.jsonl" "$TMP/side.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
side = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
for r in rows:
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
by = {}
for r in rows:
    by.setdefault((r["config"], r["conns"]), []).append(r)
def paired(cfg, conns):
    # Each round's ratio to the "off" run right before it (same load on the machine), median.
    offs = {r["round"]: r for r in by.get(("off", conns), [])}
    ratios = [r["rps"] / offs[r["round"]]["rps"] for r in by.get((cfg, conns), []) if r["round"] in offs]
    return statistics.median(ratios) if ratios else float("nan")
print()
print(f"{'config':8} {'conns':>5} {'best req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'added p99':>9} {'x off best':>10} {'x off paired':>12} {'CPU us/req':>10} {'of it redis':>11} {'errors':>6}")
for conns in sorted({k[1] for k in by}, reverse=True):
    best_off = max(by.get(("off", conns), []), key=lambda r: r["rps"], default=None)
    for cfg in ("off", "sqlite", "redis", "allow"):
        rs = by.get((cfg, conns))
        if not rs:
            continue
        b = max(rs, key=lambda r: r["rps"])
        added = (b["p99_us"] - best_off["p99_us"]) / 1000 if best_off else float("nan")
        ratio = b["rps"] / best_off["rps"] if best_off else float("nan")
        cpu = statistics.median(r["cpu_us"] for r in rs)
        rcpu = statistics.median(r["redis_us"] for r in rs) if cfg in ("redis", "allow") else 0.0
        errs = sum(r["sock_errors"] + r["status_errors"] for r in rs)
        print(f"{cfg:8} {conns:5d} {b['rps']:10.0f} {b['p50_us']/1000:7.2f} {b['p99_us']/1000:7.2f} {added:+9.2f} {ratio:10.3f} {paired(cfg, conns):12.3f} {cpu:10.1f} {rcpu:11.1f} {errs:6d}")
print("\nbest: each config's best round; paired: median over rounds of the ratio to the off run of the")
print("same round; CPU: median utime+stime per request of the gateway (+ redis-server for redis")
print("and allow). allow: redis with allowance_ms 1000.")
if side:
    print()
    print("side by side: off and the config loaded at once, wrk 64 connections each")
    print(f"{'config':8} {'rounds':>6} {'x off median':>12} {'x off range':>13} {'CPU us/req':>10} {'off CPU':>8} {'errors':>6}")
    for cfg in ("sqlite", "redis", "allow"):
        rs = [r for r in side if r["config"] == cfg]
        if not rs:
            continue
        ratios = [r["rps"] / r["off_rps"] for r in rs]
        print(f"{cfg:8} {len(rs):6d} {statistics.median(ratios):12.3f} {min(ratios):6.3f}-{max(ratios):.3f} "
              f"{statistics.median(r['cpu_us'] for r in rs):10.1f} {statistics.median(r['off_cpu_us'] for r in rs):8.1f} "
              f"{sum(r['errors'] for r in rs):6d}")
print("targets at 64 connections: sqlite >= 0.95x off, redis >= 0.9x off")
EOF
