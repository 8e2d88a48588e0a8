#!/usr/bin/env bash
# Netstack benchmark (not a test: it asserts nothing, it prints figures side by side with the
# peers measured in the same run). The embedded node (wg/node.h: WireGuard + lwIP, no TUN) against:
#   1. netstack <-> netstack: two node processes over loopback UDP (in a private namespace);
#   2. netstack <-> wireguard-go + kernel TCP, in two namespaces joined by a veth pair, both ways;
#   3. TUN mode, the reference: `gatehouse wireguard` <-> `gatehouse wireguard` and
#      `gatehouse wireguard` <-> wireguard-go, kernel TCP on both ends;
# for: single TCP stream throughput (RUNS x SECONDS, median [range]), connections per second
# (dial, 1-byte answer, close; PARALLEL at once), and memory: RSS of a node with 10,000
# configured peers (beside wireguard-go's and `gatehouse wireguard`'s RSS with the same 10,000
# peers) and user-space memory per idle connection (heap from mallinfo2 and RSS, 2,000
# connections through the callback API, 1,000 through the fd API).
# Targets (issue 3): netstack<->netstack >= 0.8 Gbit/s single stream; 10,000 peers < 100 MB RSS;
# <= 16 KB user-space memory per idle connection. The report goes to stdout and
# tools/bench/results/netstack-STAMP.txt.
#
# Usage: tools/bench/netstack_bench.sh [GATEHOUSE_BIN]   (default build/bin/gatehouse; the tool
#        netstack_perf is taken from the same bin/ directory)
# Env: BENCH_RUNS (3) BENCH_SECONDS (5) BENCH_CPS_SECONDS (2) BENCH_PARALLEL (16)
#      BENCH_PEERS (10000) BENCH_IDLE (2000) BENCH_SECTIONS ("1 2 3 4": which of the above to run)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
source "$ROOT/tests/interop/lib.sh"
GATEHOUSE_BIN=$(realpath "${1:-${GATEHOUSE_BIN:-$ROOT/build/bin/gatehouse}}")
PERF="$(dirname "$GATEHOUSE_BIN")/netstack_perf"
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
CPS_SECS=${BENCH_CPS_SECONDS:-2} # lwIP's 16,384 ephemeral ports wrap after ~3 s at 5k/s
PARALLEL=${BENCH_PARALLEL:-16}
NPEERS=${BENCH_PEERS:-10000}
NIDLE=${BENCH_IDLE:-2000}
SECTIONS=" ${BENCH_SECTIONS:-1 2 3 4} "
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
lib_init netstack_bench "$GATEHOUSE_BIN"
LIB_QUIET_CLEANUP=1
[ -x "$PERF" ] || die "$PERF not built (cmake --build build --target netstack_perf)"
REPORT="$WORKDIR/report.txt"
declare -A R=() # result name -> text (unset: "-")

# result LOGFILE KEY: the value of KEY= in the RESULT line of LOGFILE.
result() { sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p; s/^RESULT $2=\([^ ]*\).*/\1/p" "$1" | head -n1; }

# median_of NAME CMD...: runs CMD RUNS times (each prints a RESULT line with gbps=), stores
# "median [min-max]" in R[NAME].
median_of() {
  local name=$1 r out vals=()
  shift
  for ((r = 1; r <= RUNS; r++)); do
    out="$WORKDIR/$name.$r"
    timeout $((SECS + 60)) "$@" >"$out" 2>&1 || {
      echo "  $name run $r failed:"
      tail -n 5 "$out"
      continue
    }
    vals+=("$(result "$out" gbps)")
    printf '  %-34s run %d/%d: %s Gbit/s\n' "$name" "$r" "$RUNS" "${vals[-1]}"
  done
  R[$name]=$(printf '%s\n' "${vals[@]}" | sort -g | awk '{v[NR]=$1} END {
    if (NR == 0) { print "failed"; exit }
    printf "%.3f [%.3f-%.3f]", v[int((NR + 1) / 2)], v[1], v[NR] }')
}

# cps_of NAME CMD...: one connections-per-second run; R[NAME] = "cps (errors)".
cps_of() {
  local name=$1 out="$WORKDIR/$1.cps"
  shift
  if timeout $((CPS_SECS + 60)) "$@" >"$out" 2>&1; then
    R[$name]="$(result "$out" cps) ($(result "$out" errors) errors)"
  else
    R[$name]="failed"
    tail -n 5 "$out"
  fi
  printf '  %-34s %s conn/s\n' "$name" "${R[$name]}"
}

# start_bg NS NAME CMD...: a server in NS, waited for until it prints READY.
start_bg() {
  local ns=$1 name=$2 i
  shift 2
  spawn "$ns" "$WORKDIR/$name.log" "$@"
  for ((i = 0; i < 100; i++)); do
    grep -q READY "$WORKDIR/$name.log" 2>/dev/null && return 0
    kill -0 "$BG_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORKDIR/$name.log"
  die "$name did not start"
}

stop_bg() {
  kill -TERM "$1" 2>/dev/null || true
  wait_pid_exit "$1" 50 || kill -KILL "$1" 2>/dev/null || true
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "== netstack benchmark: $RUNS x ${SECS}s single stream, ${CPS_SECS}s x $PARALLEL parallel" \
  "for conn/s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
gen_keys n1
gen_keys n2
gen_keys peer

if want 1; then
section "1. netstack <-> netstack (two processes, loopback UDP)"
NSL="gh$LIB_TAG-l"
ns_create "$NSL"
node1=(--key-file "$WORKDIR/n1.key" --address 10.60.0.1)
node2=(--key-file "$WORKDIR/n2.key" --address 10.60.0.2)
start_bg "$NSL" ns-sink "$PERF" sink "${node2[@]}" --listen-port 42002 --port 5001 \
  --peer "$PUB_n1,127.0.0.1:42001,10.60.0.1/32"
sink=$BG_PID
median_of ns_ns ip netns exec "$NSL" "$PERF" source "${node1[@]}" --listen-port 42001 \
  --peer "$PUB_n2,127.0.0.1:42002,10.60.0.2/32" --to 10.60.0.2:5001 --seconds "$SECS"
stop_bg "$sink"
start_bg "$NSL" ns-cps "$PERF" cps-server "${node2[@]}" --listen-port 42004 --port 5002 \
  --peer "$PUB_n1,127.0.0.1:42003,10.60.0.1/32"
cps=$BG_PID
cps_of ns_ns_cps ip netns exec "$NSL" "$PERF" cps-client "${node1[@]}" --listen-port 42003 \
  --peer "$PUB_n2,127.0.0.1:42004,10.60.0.2/32" --to 10.60.0.2:5002 --seconds "$CPS_SECS" \
  --parallel "$PARALLEL"
stop_bg "$cps"
fi

if want 2; then
section "2. netstack <-> wireguard-go + kernel TCP (namespaces, veth)"
NA="gh$LIB_TAG-a"
NB="gh$LIB_TAG-b"
IFB="wg${LIB_TAG}b"
ns_create "$NA"
ns_create "$NB"
veth_link "$NA" "$NB" 1
start_wg "$NB" "$IFB" wireguard-go
wgn "$IFB" set "$IFB" private-key "$WORKDIR/peer.key" listen-port 10002 \
  peer "$PUB_n1" allowed-ips "$TUN_NET4.1/32" endpoint 10.231.1.1:10001
tun_up "$NB" "$IFB" 2
nodeA=(--key-file "$WORKDIR/n1.key" --address "$TUN_NET4.1" --listen-port 10001
  --peer "$PUB_peer,10.231.1.2:10002,$TUN_NET4.2/32")
start_bg "$NB" wg-ksink "$PERF" ksink --port 5001
ksink=$BG_PID
median_of ns_wg ip netns exec "$NA" "$PERF" source "${nodeA[@]}" --to "$TUN_NET4.2:5001" --seconds "$SECS"
stop_bg "$ksink"
start_bg "$NA" ns-sink-a "$PERF" sink "${nodeA[@]}" --port 5001
sink=$BG_PID
ping_first "$NB" "$TUN_NET4.1" 10 >/dev/null || die "no handshake between wireguard-go and the node"
median_of wg_ns ip netns exec "$NB" "$PERF" ksource --to "$TUN_NET4.1:5001" --seconds "$SECS"
stop_bg "$sink"
start_bg "$NA" ns-cps-a "$PERF" cps-server "${nodeA[@]}" --port 5002
cps=$BG_PID
ping_first "$NB" "$TUN_NET4.1" 10 >/dev/null || die "no handshake between wireguard-go and the node"
cps_of wg_ns_cps ip netns exec "$NB" "$PERF" kcps-client --to "$TUN_NET4.1:5002" --seconds "$CPS_SECS" \
  --parallel "$PARALLEL"
stop_bg "$cps"
fi

if want 3; then
section "3. TUN mode (reference): kernel TCP over gatehouse wireguard"
for pair in gatehouse:gatehouse gatehouse:wireguard-go; do
  a=${pair%%:*}
  b=${pair##*:}
  key=tun_${b//-/_}
  SUFFIX=${b:0:1} setup_pair "$a" "$b" 1
  ping_first "$NS1" "$TUN_NET4.2" 10 >/dev/null || die "$pair: no handshake"
  start_bg "$NS2" "$key-ksink" "$PERF" ksink --port 5001
  ksink=$BG_PID
  median_of "$key" ip netns exec "$NS1" "$PERF" ksource --to "$TUN_NET4.2:5001" --seconds "$SECS"
  start_bg "$NS2" "$key-kcps" "$PERF" kcps-server --port 5002
  kcps=$BG_PID
  cps_of "${key}_cps" ip netns exec "$NS1" "$PERF" kcps-client --to "$TUN_NET4.2:5002" \
    --seconds "$CPS_SECS" --parallel "$PARALLEL"
  stop_bg "$ksink"
  stop_bg "$kcps"
done
fi

if want 4; then
section "4. memory"
"$PERF" peers --count "$NPEERS" >"$WORKDIR/peers.out" 2>&1 || cat "$WORKDIR/peers.out"
R[peers_rss]="$(result "$WORKDIR/peers.out" rss_total_kb) KB total, $(result "$WORKDIR/peers.out" bytes_per_peer) B/peer"
echo "  netstack node, $NPEERS peers: ${R[peers_rss]}"
# The same peers (random keys, 2 allowed IPs, an endpoint each) in the TUN daemons.
"$PYTHON" - "$NPEERS" >"$WORKDIR/peers.conf" <<'PY'
import base64, os, sys
n = int(sys.argv[1])
print("[Interface]\nPrivateKey = " + base64.b64encode(os.urandom(32)).decode() + "\n")
for i in range(n):
    print("[Peer]\nPublicKey = %s\nAllowedIPs = 10.129.%d.%d/32, 10.130.%d.%d/32\nEndpoint = 127.0.0.1:%d\n"
          % (base64.b64encode(os.urandom(32)).decode(), i >> 8 & 255, i & 255, i >> 8 & 255, i & 255,
             20000 + i % 30000))
PY
NSM="gh$LIB_TAG-m"
ns_create "$NSM"
for impl in wireguard-go gatehouse; do
  ifn="wg${LIB_TAG}m${impl:0:1}"
  start_wg "$NSM" "$ifn" "$impl"
  sleep 0.5
  base=$(rss_kb "${WG_PID[$ifn]}")
  wgn "$ifn" setconf "$ifn" "$WORKDIR/peers.conf"
  sleep 1
  full=$(rss_kb "${WG_PID[$ifn]}")
  R[peers_$impl]="$full KB total, $(((full - base) * 1024 / NPEERS)) B/peer"
  echo "  $impl (TUN daemon), $NPEERS peers: ${R[peers_$impl]}"
  stop_wg "$ifn" || true
done
"$PERF" idle --count "$NIDLE" >"$WORKDIR/idle.out" 2>&1 || cat "$WORKDIR/idle.out"
"$PERF" idle --count $((NIDLE / 2)) --fd >"$WORKDIR/idlefd.out" 2>&1 || cat "$WORKDIR/idlefd.out"
for f in idle idlefd; do
  o="$WORKDIR/$f.out"
  R[$f]="$(result "$o" heap_per_end) B heap, $(result "$o" rss_per_end) B RSS per end ($(result "$o" connections) conns)"
  echo "  $f: ${R[$f]}"
done
fi

{
  echo
  echo "Netstack benchmark, $(date -u +%FT%TZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "single TCP stream, $RUNS x ${SECS}s, Gbit/s median [range]; conn/s over ${CPS_SECS}s, $PARALLEL parallel"
  printf '%-52s %-26s %s\n' "path" "1 stream Gbit/s" "conn/s (errors)"
  printf '%-52s %-26s %s\n' "netstack <-> netstack (loopback UDP)" "${R[ns_ns]:--}" "${R[ns_ns_cps]:--}"
  printf '%-52s %-26s %s\n' "netstack -> wireguard-go + kernel TCP" "${R[ns_wg]:--}" "-"
  printf '%-52s %-26s %s\n' "wireguard-go + kernel TCP -> netstack" "${R[wg_ns]:--}" "${R[wg_ns_cps]:--}"
  printf '%-52s %-26s %s\n' "TUN: gatehouse <-> gatehouse (kernel TCP)" "${R[tun_gatehouse]:--}" "${R[tun_gatehouse_cps]:--}"
  printf '%-52s %-26s %s\n' "TUN: gatehouse <-> wireguard-go (kernel TCP)" "${R[tun_wireguard_go]:--}" "${R[tun_wireguard_go_cps]:--}"
  echo
  printf '%-52s %s\n' "$NPEERS configured peers: netstack node (RSS)" "${R[peers_rss]:--}"
  printf '%-52s %s\n' "$NPEERS configured peers: wireguard-go TUN daemon" "${R[peers_wireguard-go]:--}"
  printf '%-52s %s\n' "$NPEERS configured peers: gatehouse wireguard daemon" "${R[peers_gatehouse]:--}"
  printf '%-52s %s\n' "idle connection, callback API (both ends in-process)" "${R[idle]:--}"
  printf '%-52s %s\n' "idle connection, fd API (+ kernel socket pair)" "${R[idlefd]:--}"
  echo "targets: netstack<->netstack >= 0.8 Gbit/s; $NPEERS peers < 100 MB RSS; <= 16 KB per idle connection"
} | tee "$REPORT"
mkdir -p "$ROOT/tools/bench/results"
cp "$REPORT" "$ROOT/tools/bench/results/netstack-$(date +%Y%m%d-%H%M%S).txt"
finish
