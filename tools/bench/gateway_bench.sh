#!/usr/bin/env bash
# LLM gateway benchmark (run by hand, never in CI; asserts nothing, prints figures side by side).
#
# One run, everything on loopback, against a fixed upstream so the mock is not the bottleneck:
#   mock     a second nginx answering POST /v1/messages with a fixed Anthropic Message JSON (with
#            usage), or with a fixed Anthropic SSE stream (message_start usage ... message_delta
#            usage, message_stop) when the query has stream=1 (nginx cannot read the JSON body)
#   direct   wrk → mock
#   nginx    wrk → nginx reverse proxy (1 worker, keepalive upstream, proxy_buffering off) → mock
#   gateway  wrk → `gatehouse gateway --no-mesh` on loopback_listen with loopback_identity; grants,
#            usage tap, cost and the SQLite request log with bodies all on → mock
#   tunnel   wrk → `gatehouse up --forward 127.0.0.1:P=ai:80` → WireGuard (loopback UDP) →
#            `gatehouse gateway` joined to a local `gatehouse control` → mock
# Each with wrk at 64 connections and at 1, JSON and SSE: requests/s, latency p50/p99, added p50/p99
# vs direct, gateway/nginx ratios, CPU µs per request (utime+stime of the proxy's processes from
# /proc/PID/stat from the start of the run until they are idle again, so the log writer's backlog
# counts, divided by the requests). Each run starts with the proxy idle.
# Then N concurrent long-lived SSE streams (default 512) paced by tests/gateway/mock_provider.mjs
# (long L, slow MS) direct, through nginx and through the gateway: TTFB p99 and inter-event gap
# p99 (added vs direct), lost / reordered / merged events (tools/bench/gateway_streams.py).
# Prints a table; saves it and the raw rows under tools/bench/results/ (gitignored).
#
# Usage: tools/bench/gateway_bench.sh [GATEHOUSE_BIN]   (default build/bin/gatehouse)
# Env: BENCH_SECONDS (10) per wrk run; BENCH_STREAMS (512); BENCH_STREAM_EVENTS (20);
#      BENCH_STREAM_SLOW_MS (200); BENCH_TUNNEL (1; 0 skips the tunnel row); BENCH_MODES ("json sse")
# Needs: nginx, wrk, node, python3 (tools/install-deps.sh). Root is not needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
GATEHOUSE_BIN=${1:-${GATEHOUSE_BIN:-$ROOT/build/bin/gatehouse}}
SECS=${BENCH_SECONDS:-10}
NSTREAMS=${BENCH_STREAMS:-512}
SEVENTS=${BENCH_STREAM_EVENTS:-20}
SSLOW=${BENCH_STREAM_SLOW_MS:-200}
TUNNEL=${BENCH_TUNNEL:-1}
MODES=${BENCH_MODES:-"json sse"}
RESULTS_DIR="$ROOT/tools/bench/results"
STAMP=$(date -u +%Y%m%d-%H%M%S)
for c in nginx wrk node python3; do
  command -v "$c" >/dev/null || { echo "gateway_bench: $c missing (tools/install-deps.sh)" >&2; exit 1; }
done
[ -x "$GATEHOUSE_BIN" ] || { echo "gateway_bench: no gatehouse binary at $GATEHOUSE_BIN" >&2; exit 1; }

BENCH_NAME=gateway_bench
# shellcheck source=tools/bench/bench_lib.sh
source "$ROOT/tools/bench/bench_lib.sh"
wait_line() { # FILE PATTERN TENTHS
  local i
  for ((i = 0; i < $3; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$1" >&2
  return 1
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the static mock (nginx) ----------------------------------------------------------------
mkdir -p "$TMP/proxy/logs"
start_static_mock

# ---- the paced mock for long-lived streams (Node.js) ------------------------------------------
REAL_KEY="sk-ant-bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
node "$ROOT/tests/gateway/mock_provider.mjs" --port 0 --port-file "$TMP/node.port" \
  --anthropic-key "$REAL_KEY" --openai-key "$REAL_KEY" --provider anthropic --max-records 0 \
  >"$TMP/node.log" 2>&1 &
PIDS+=($!)

# ---- nginx reverse proxy --------------------------------------------------------------------
PROXY_PORT=$(free_port)
PROXY_STREAM_PORT=$(free_port)
{
  nginx_common "$TMP/proxy"
  cat <<EOF
worker_processes 1;
http {
  access_log off;
  client_body_temp_path $TMP/proxy/cb; proxy_temp_path $TMP/proxy/pt; fastcgi_temp_path $TMP/proxy/ft;
  uwsgi_temp_path $TMP/proxy/ut; scgi_temp_path $TMP/proxy/st;
  keepalive_requests 1000000; keepalive_timeout 120s;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 128; }
  upstream paced { server 127.0.0.1:NODEPORT; keepalive 128; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering off;
  proxy_request_buffering on;
  proxy_read_timeout 600s;
  server { listen 127.0.0.1:$PROXY_PORT backlog=4096; location / { proxy_pass http://mock; } }
  server { listen 127.0.0.1:$PROXY_STREAM_PORT backlog=4096; location / { proxy_pass http://paced; } }
}
EOF
} >"$TMP/proxy/nginx.conf.in"
for i in $(seq 1 100); do [ -s "$TMP/node.port" ] && break; sleep 0.1; done
NODE_PORT=$(cat "$TMP/node.port" 2>/dev/null) || { cat "$TMP/node.log" >&2; say "node mock did not start"; exit 1; }
sed "s/NODEPORT/$NODE_PORT/" "$TMP/proxy/nginx.conf.in" >"$TMP/proxy/nginx.conf"
nginx -c "$TMP/proxy/nginx.conf" -p "$TMP/proxy" -g 'daemon off;' 2>"$TMP/proxy/stderr" &
PIDS+=($!)
PROXY_PID=$!
wait_port "$PROXY_PORT" 50 || { cat "$TMP/proxy/stderr" >&2; say "nginx proxy did not start"; exit 1; }

# ---- the gateway on loopback ----------------------------------------------------------------
gateway_config() { # FILE UPSTREAM_PORT LOOPBACK(0|1) DB
  {
    echo '{'
    echo '  "hostname": "ai",'
    if [ "$3" = 1 ]; then
      echo '  "loopback_listen": "127.0.0.1:0",'
      echo '  "loopback_identity": {"user": "bench@example.com", "groups": ["group:eng"]},'
    fi
    cat <<EOF
  "providers": {
    "anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:$2", "local": true,
                  "key": "env:GH_BENCH_ANTHROPIC_KEY", "models": ["claude-*"]},
  },
  "grants": [{"src": ["group:eng"], "models": ["anthropic/claude-*"]}],
  "logging": {"database": "$4", "bodies": true, "queue_size": 100000},
}
EOF
  } >"$1"
}
start_gateway_loopback() { # NAME UPSTREAM_PORT → sets GW_PID GW_PORT
  mkdir -p "$TMP/$1"
  gateway_config "$TMP/$1/gateway.hujson" "$2" 1 "$TMP/$1/gateway-logs.db"
  launch_gateway "$TMP/$1" "$1"
}
start_gateway_loopback gw "$MOCK_PORT"
GWA_PID=$GW_PID GWA_PORT=$GW_PORT

# ---- wrk ------------------------------------------------------------------------------------
for mode in json sse; do
  stream=false
  [ $mode = sse ] && stream=true
  body="{\"model\":\"$MODEL\",\"max_tokens\":256,\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in one short sentence.\"}]}"
  wrk_script "$TMP/$mode.lua" "$body"
done
: >"$TMP/rows.jsonl"
# run_wrk CONFIG MODE CONNS PORT CPU_PIDS...
run_wrk() {
  local cfg=$1 mode=$2 conns=$3 port=$4
  shift 4
  local path=/v1/messages threads=2 t0 t1 out line
  [ "$mode" = sse ] && path="/v1/messages?stream=1"
  [ "$conns" -lt 2 ] && threads=1
  # Sanity: one request must answer 200 with the expected body shape.
  local code
  code=$(curl -s -o "$TMP/probe.out" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'anthropic-version: 2023-06-01' -H 'x-api-key: -' \
    --data-binary "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$TMP/$mode.lua")" "http://127.0.0.1:$port$path")
  if [ "$code" != 200 ]; then
    say "$cfg $mode: probe answered $code: $(head -c 300 "$TMP/probe.out")"
  fi
  [ $# -eq 0 ] || wait_idle "$@"
  t0=$([ $# -gt 0 ] && cpu_ticks "$@" || echo 0)
  out=$(timeout $((SECS + 30)) wrk -t$threads -c"$conns" -d"${SECS}s" --timeout 10s -s "$TMP/$mode.lua" \
    "http://127.0.0.1:$port$path" 2>&1) || true
  [ $# -eq 0 ] || wait_idle "$@"  # the log writer's backlog belongs to this run
  t1=$([ $# -gt 0 ] && cpu_ticks "$@" || echo 0)
  line=$(sed -n 's/^WRKJSON //p' <<<"$out")
  if [ -z "$line" ]; then
    say "$cfg $mode c$conns: wrk failed: $(tail -n 3 <<<"$out")"
    return 0
  fi
  python3 -c "
import json,sys
d=json.loads(sys.argv[1]); d.update(config=sys.argv[2], mode=sys.argv[3], conns=int(sys.argv[4]),
  cpu_us=(int(sys.argv[6])-int(sys.argv[5]))*1e6/int(sys.argv[7])/max(1,d['requests']) if sys.argv[8]=='1' else None, probe=sys.argv[9])
print(json.dumps(d))" "$line" "$cfg" "$mode" "$conns" "$t0" "$t1" "$CLK_TCK" "$([ $# -gt 0 ] && echo 1 || echo 0)" "$code" \
    >>"$TMP/rows.jsonl"
  say "$cfg $mode c$conns: $(tail -n 1 "$TMP/rows.jsonl")"
}
bench_config() { # CONFIG PORT CPU_PIDS...
  local cfg=$1 port=$2 mode conns
  shift 2
  for mode in $MODES; do
    for conns in 64 1; do run_wrk "$cfg" "$mode" "$conns" "$port" "$@"; done
  done
}
say "wrk: ${SECS}s per run; mock :$MOCK_PORT, nginx :$PROXY_PORT, gateway :$GWA_PORT; load $LOAD_START"
bench_config direct "$MOCK_PORT"
bench_config nginx "$PROXY_PORT" "$PROXY_PID"
bench_config gateway "$GWA_PORT" "$GWA_PID"
LOGGED=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from requests').fetchone()[0])" "$TMP/gw/gateway-logs.db" 2>/dev/null || echo "?")
say "gateway request log: $LOGGED records"

# ---- through the tunnel -----------------------------------------------------------------------
TUNNEL_NOTE=""
if [ "$TUNNEL" = 1 ]; then
  (
    set -e
    d="$TMP/mesh"
    mkdir -p "$d"
    cat >"$d/policy.hujson" <<'EOF'
{
  "groups": {"group:eng": ["bench@example.com"]},
  "tagOwners": {"tag:ai": ["group:eng"]},
  "grants": [{"src": ["autogroup:member"], "dst": ["tag:ai"], "ip": ["tcp:80"]}],
}
EOF
    CPORT=$(free_port)
    "$GATEHOUSE_BIN" control --state "$d/control.db" --policy "$d/policy.hujson" \
      --listen "127.0.0.1:$CPORT" --admin-socket "$d/admin.sock" >"$d/control.log" 2>&1 &
    echo $! >>"$TMP/mesh.pids"
    wait_line "$d/control.log" "server key" 100
    CKEY=$(sed -n 's/.*server key \([A-Za-z0-9+/=]*\).*/\1/p' "$d/control.log" | head -1)
    admin() { "$GATEHOUSE_BIN" admin --socket "$d/admin.sock" "$@"; }
    key() { admin --json keys create "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'; }
    admin users create bench@example.com >/dev/null
    KGW=$(key --user bench@example.com --tags tag:ai --reusable)
    KCLI=$(key --user bench@example.com)
    gateway_config "$d/gateway.hujson" "$MOCK_PORT" 0 "$d/gateway-logs.db"
    GH_BENCH_ANTHROPIC_KEY=$REAL_KEY "$GATEHOUSE_BIN" gateway --config "$d/gateway.hujson" \
      --control "127.0.0.1:$CPORT" --control-key "$CKEY" --authkey "$KGW" --state-dir "$d/gw" \
      --advertise 127.0.0.1 >"$d/gateway.log" 2>&1 &
    echo $! >>"$TMP/mesh.pids"
    echo $! >"$TMP/mesh.gwpid"
    wait_line "$d/gateway.log" "gateway: ready" 200
    FWD=$(free_port)
    "$GATEHOUSE_BIN" up --control "127.0.0.1:$CPORT" --control-key "$CKEY" --authkey "$KCLI" \
      --state-dir "$d/cli" --hostname benchcli --advertise 127.0.0.1 \
      --forward "127.0.0.1:$FWD=ai:80" >"$d/cli.log" 2>&1 &
    echo $! >>"$TMP/mesh.pids"
    echo $! >"$TMP/mesh.clipid"
    wait_line "$d/cli.log" "ready; local API" 200
    echo "$FWD" >"$TMP/mesh.port"
  ) || say "tunnel setup failed (see above); no tunnel row"
  if [ -f "$TMP/mesh.pids" ]; then
    while read -r p; do PIDS+=("$p"); done <"$TMP/mesh.pids"
  fi
  if [ -s "$TMP/mesh.port" ]; then
    FWD=$(cat "$TMP/mesh.port")
    for i in $(seq 1 100); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H 'x-api-key: -' \
        --data-binary "{\"model\":\"$MODEL\",\"max_tokens\":8,\"messages\":[]}" "http://127.0.0.1:$FWD/v1/messages")" = 200 ] && break
      sleep 0.2
    done
    # CPU: the gateway and the client node (both ends of the tunnel).
    bench_config tunnel "$FWD" "$(cat "$TMP/mesh.gwpid")" "$(cat "$TMP/mesh.clipid")"
    TUNNEL_NOTE="tunnel CPU = gateway + client node"
  fi
fi

# ---- long-lived streams -----------------------------------------------------------------------
: >"$TMP/streams.jsonl"
start_gateway_loopback gwpaced "$NODE_PORT"
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
STREAM_TIMEOUT=$(((SEVENTS * SSLOW) / 1000 + 60))
# Warm the Node mock (JIT, first connections) so the first measured row is not its cold start.
timeout 60 python3 "$ROOT/tools/bench/gateway_streams.py" 127.0.0.1 "$NODE_PORT" 64 5 10 30 "$REAL_KEY" >/dev/null 2>&1 || true
for target in "direct $NODE_PORT $REAL_KEY" "nginx $PROXY_STREAM_PORT $REAL_KEY" "gateway $GW_PORT -"; do
  set -- $target
  say "streams: $NSTREAMS × (long $SEVENTS, slow $SSLOW ms) via $1"
  out=$(timeout $((STREAM_TIMEOUT + 30)) python3 "$ROOT/tools/bench/gateway_streams.py" 127.0.0.1 "$2" \
    "$NSTREAMS" "$SEVENTS" "$SSLOW" "$STREAM_TIMEOUT" "$3" 2>&1 | tail -n 1) || true
  python3 -c "import json,sys; d=json.loads(sys.argv[1]); d['config']=sys.argv[2]; print(json.dumps(d))" \
    "$out" "$1" >>"$TMP/streams.jsonl" 2>/dev/null || say "streams via $1 failed: $out"
  say "  $(tail -n 1 "$TMP/streams.jsonl")"
  sleep 1
done

# ---- report ---------------------------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RESULTS_DIR"
REPORT="$RESULTS_DIR/gateway-$STAMP.txt"
python3 - "$TMP/rows.jsonl" "$TMP/streams.jsonl" "$LOAD_START" "$LOAD_END" "$SECS" "$NSTREAMS" \
  "$SEVENTS" "$SSLOW" "$(nproc)" "$LOGGED" "$TUNNEL_NOTE" "$RESULTS_DIR/gateway-$STAMP.json" <<'EOF' | tee "$REPORT"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
streams = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
load0, load1, secs, n, ev, slow, ncpu, logged, tnote, jpath = sys.argv[3:13]
json.dump({"wrk": rows, "streams": streams, "load_start": load0, "load_end": load1}, open(jpath, "w"), indent=1)
def get(cfg, mode, c):
    for r in rows:
        if r["config"] == cfg and r["mode"] == mode and r["conns"] == c:
            return r
def rps(r): return r["requests"] / (r["duration_us"] / 1e6)
print(f"Gateway benchmark: wrk {secs}s per run, {ncpu} CPUs, load average {load0} at start, {load1} at end")
print("nginx proxy: 1 worker process; gateway: one loop thread + log writer; upstream: static nginx mock")
print()
print(f"{'config':8} {'mode':4} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'CPU us/req':>10} {'errors':>6}")
for r in rows:
    d = get("direct", r["mode"], r["conns"])
    ap50 = (r["p50_us"] - d["p50_us"]) / 1000 if d and r["config"] != "direct" else None
    ap99 = (r["p99_us"] - d["p99_us"]) / 1000 if d and r["config"] != "direct" else None
    f = lambda x, w, p=3: f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}}"
    err = r["sock_errors"] + r["status_errors"]
    print(f"{r['config']:8} {r['mode']:4} {r['conns']:5d} {rps(r):9.0f} {r['p50_us']/1000:8.3f} {r['p99_us']/1000:8.3f} {f(ap50,8)} {f(ap99,8)} {f(r['cpu_us'],10,1)} {err:6d}")
print()
for cfg in ("gateway", "tunnel"):
    for mode in ("json", "sse"):
        g64, n64, g1, n1, d1 = get(cfg, mode, 64), get("nginx", mode, 64), get(cfg, mode, 1), get("nginx", mode, 1), get("direct", mode, 1)
        if not (g64 and n64 and g1 and n1 and d1):
            continue
        ratio = rps(g64) / rps(n64)
        ga, na = (g1["p50_us"] - d1["p50_us"]) / 1000, (n1["p50_us"] - d1["p50_us"]) / 1000
        print(f"{cfg} {mode}: req/s at 64 conns = {ratio:.2f}x nginx (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}); "
              f"added p50 at 1 conn {ga:.3f} ms vs nginx {na:.3f} ms (target <=: {'met' if ga <= na else 'NOT met'})"
              + (f"; CPU/req {g64['cpu_us'] / n64['cpu_us']:.2f}x nginx" if g64.get('cpu_us') and n64.get('cpu_us') else ""))
if tnote: print(f"({tnote})")
print(f"gateway request log records written: {logged}")
if streams:
    print()
    print(f"{n} concurrent SSE streams, {ev} text deltas each, {slow} ms apart (paced Node mock):")
    print(f"{'config':8} {'ok':>5} {'failed':>6} {'events':>7} {'merged':>6} {'TTFB p50':>9} {'TTFB p99':>9} {'+TTFB p99':>9} {'gap p50':>8} {'gap p99':>8} {'+gap p99':>8}")
    d = next((s for s in streams if s["config"] == "direct"), None)
    for s in streams:
        g = lambda k: s.get(k) if s.get(k) is not None else float("nan")
        at = g("ttfb_p99") - d["ttfb_p99"] if d and s is not d and d.get("ttfb_p99") is not None else float("nan")
        ag = g("gap_p99") - d["gap_p99"] if d and s is not d and d.get("gap_p99") is not None else float("nan")
        print(f"{s['config']:8} {s['ok']:5d} {s['failed']:6d} {s['events']:7d} {s['merged']:6d} {g('ttfb_p50'):9.1f} {g('ttfb_p99'):9.1f} {at:9.1f} {g('gap_p50'):8.1f} {g('gap_p99'):8.1f} {ag:8.1f}")
        if s.get("errors"): print(f"         errors: {s['errors']}")
EOF
say "saved $REPORT"
