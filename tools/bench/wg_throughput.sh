#!/usr/bin/env bash
# WireGuard data-plane benchmark (not a test: it asserts nothing, it prints figures side by side).
# One run, the interop topology (two namespaces, one veth pair, one WireGuard device each), for
# three pairs: gatehouse<->gatehouse, gatehouse<->wireguard-go, wireguard-go<->wireguard-go.
# Per pair: iperf3 TCP with 1 and 4 streams, RUNS runs of SECONDS each (median and range of the
# receive rate, median retransmits), CPU seconds per GB moved (utime+stime of both WireGuard
# processes from /proc/PID/stat around each run), then ping p50/p99 over the tunnel on an idle link.
# Prints a table and the ratios ours/wireguard-go; writes JSON to tools/bench/results/.
#
# Usage: tools/bench/wg_throughput.sh [GATEHOUSE_BIN]   (default build/bin/gatehouse)
# Env: BENCH_RUNS (5) BENCH_SECONDS (10) BENCH_STREAMS ("1 4") BENCH_PINGS (200)
#      BENCH_PAIRS ("gatehouse:gatehouse gatehouse:wireguard-go wireguard-go:wireguard-go")
# Quick check: BENCH_RUNS=1 BENCH_SECONDS=3 BENCH_PINGS=50 BENCH_PAIRS=wireguard-go:wireguard-go
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
source "$ROOT/tests/interop/lib.sh"

GATEHOUSE_BIN=${1:-${GATEHOUSE_BIN:-$ROOT/build/bin/gatehouse}}
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_SECONDS:-10}
STREAMS=${BENCH_STREAMS:-"1 4"}
PINGS=${BENCH_PINGS:-200}
PAIRS=${BENCH_PAIRS:-"gatehouse:gatehouse gatehouse:wireguard-go wireguard-go:wireguard-go"}
RESULTS_DIR="$ROOT/tools/bench/results"
STAMP=$(date +%Y%m%d-%H%M%S)
TMP=$(mktemp -d /tmp/gh-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
command -v iperf3 >/dev/null || { echo "iperf3 missing: run tools/install-deps.sh" >&2; exit 1; }

# bench_pair IMPL1 IMPL2 OUTDIR: runs in a subshell with its own namespaces and cleanup trap.
# IMPL1 (device 1, the iperf3 client and pinger) initiates.
bench_pair() {
  local a=$1 b=$2 out=$3
  OURS=$a THEIRS=$b # only for lib_init's banner line
  lib_init bench "$GATEHOUSE_BIN"
  LIB_QUIET_CLEANUP=1
  setup_pair "$a" "$b" 1
  ping_first "$NS1" "$TUN_NET4.2" 10 >/dev/null || die "$a<->$b: no handshake"
  spawn "$NS2" "$WORKDIR/iperf-server.log" iperf3 -s -B "$TUN_NET4.2"
  wait_tcp_listen "$NS2" 5201 5 || die "iperf3 server did not start"
  local p r t0 t1
  : >"$out/runs.txt"
  for p in $STREAMS; do
    for ((r = 1; r <= RUNS; r++)); do
      t0=$(cpu_ticks "${WG_PID[$IF1]}" "${WG_PID[$IF2]}")
      # timeout bounds a hung run; iperf3's own -t bounds the normal one.
      nsx "$NS1" timeout $((SECS + 30)) iperf3 -c "$TUN_NET4.2" -t "$SECS" -P "$p" -J \
        >"$out/iperf-$p-$r.json" || die "iperf3 -P $p run $r failed"
      t1=$(cpu_ticks "${WG_PID[$IF1]}" "${WG_PID[$IF2]}")
      echo "$p $r $((t1 - t0))" >>"$out/runs.txt"
      printf '  %-26s -P %s run %d/%d done\n' "$a<->$b" "$p" "$r" "$RUNS"
    done
  done
  # Idle-link latency: 10 ms apart (root may go below 200 ms), 1 s deadline per reply.
  nsx "$NS1" ping -n -c "$PINGS" -i 0.01 -W 1 "$TUN_NET4.2" >"$out/ping.txt" || true
  exit 0
}

# summarize_pair OUTDIR PAIR: one JSON object from the raw files.
summarize_pair() {
  "$PYTHON" - "$1" "$2" "$(getconf CLK_TCK)" <<'PY'
import json, os, re, statistics, sys
d, pair, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = {"pair": pair, "status": "ok", "streams": {}}
for line in open(os.path.join(d, "runs.txt")):
    p, r, ticks = line.split()
    e = json.load(open(os.path.join(d, f"iperf-{p}-{r}.json")))["end"]
    got = e["sum_received"]
    run = {"gbps": got["bits_per_second"] / 1e9, "bytes": got["bytes"],
           "retransmits": e["sum_sent"].get("retransmits", 0), "cpu_s": int(ticks) / hz}
    run["cpu_s_per_gb"] = run["cpu_s"] / (got["bytes"] / 1e9) if got["bytes"] else None
    res["streams"].setdefault(p, {"runs": []})["runs"].append(run)
for p, s in res["streams"].items():
    g = [x["gbps"] for x in s["runs"]]
    s.update(gbps_median=statistics.median(g), gbps_min=min(g), gbps_max=max(g),
             retransmits_median=round(statistics.median(x["retransmits"] for x in s["runs"])),
             cpu_s_per_gb_median=statistics.median(x["cpu_s_per_gb"] or 0 for x in s["runs"]))
text = open(os.path.join(d, "ping.txt")).read()
rtts = sorted(float(x) for x in re.findall(r"time=([0-9.]+) ms", text))
m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
def pct(q):  # nearest-rank percentile
    return rtts[min(len(rtts) - 1, max(0, -(-q * len(rtts) // 100) - 1))] if rtts else None
res["ping"] = {"sent": int(m.group(1)) if m else 0, "received": len(rtts),
               "p50_ms": pct(50), "p99_ms": pct(99)}
print(json.dumps(res))
PY
}

echo "== WireGuard throughput benchmark: runs=$RUNS x ${SECS}s, streams: $STREAMS, $PINGS pings"
echo "   host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
: >"$TMP/all.jsonl"
for pair in $PAIRS; do
  a=${pair%%:*}
  b=${pair##*:}
  if [[ "$pair" == *gatehouse* ]] && [ ! -x "$GATEHOUSE_BIN" ]; then
    echo "  $a<->$b: skipped ($GATEHOUSE_BIN not built)"
    echo "{\"pair\": \"$a<->$b\", \"status\": \"skipped: no gatehouse binary\"}" >>"$TMP/all.jsonl"
    continue
  fi
  dir="$TMP/$a-$b"
  mkdir -p "$dir"
  echo "-- $a <-> $b"
  # Not in an `if`: set -e must stay active inside the subshell (bash ignores it in conditions).
  set +e
  (bench_pair "$a" "$b" "$dir")
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    summarize_pair "$dir" "$a<->$b" >>"$TMP/all.jsonl"
  else
    echo "  $a<->$b: FAILED (exit $rc); see the messages above"
    echo "{\"pair\": \"$a<->$b\", \"status\": \"failed (exit $rc)\"}" >>"$TMP/all.jsonl"
  fi
done

mkdir -p "$RESULTS_DIR"
OUTFILE="$RESULTS_DIR/wg_throughput-$STAMP.json"
"$PYTHON" - "$TMP/all.jsonl" "$OUTFILE" "$RUNS" "$SECS" "$PINGS" "$(nproc)" \
  "$(uname -r)" "$(wireguard-go --version 2>/dev/null | head -n1)" <<'PY'
import json, sys
src, out, runs, secs, pings, ncpu, kernel, wgv = sys.argv[1:9]
pairs = [json.loads(l) for l in open(src) if l.strip()]
by = {p["pair"]: p for p in pairs}
def fmt_rate(s):
    return f"{s['gbps_median']:.3f} [{s['gbps_min']:.3f}-{s['gbps_max']:.3f}]" if s else "-"
print()
hdr = f"{'pair':28} {'1 stream Gbit/s [range]':>26} {'retr':>6} {'4 streams Gbit/s [range]':>26} " \
      f"{'retr':>6} {'CPU s/GB 1/4':>13} {'ping p50/p99 ms':>16}"
print(hdr); print("-" * len(hdr))
for p in pairs:
    if p["status"] != "ok":
        print(f"{p['pair']:28} {p['status']}"); continue
    s1, s4 = p["streams"].get("1"), p["streams"].get("4")
    cpu = "/".join(f"{s['cpu_s_per_gb_median']:.1f}" if s else "-" for s in (s1, s4))
    pg = p["ping"]
    ping = f"{pg['p50_ms']:.3f}/{pg['p99_ms']:.3f}" if pg["p50_ms"] is not None else "no replies"
    print(f"{p['pair']:28} {fmt_rate(s1):>26} {s1['retransmits_median'] if s1 else '-':>6} "
          f"{fmt_rate(s4):>26} {s4['retransmits_median'] if s4 else '-':>6} {cpu:>13} {ping:>16}")
ratios = {}
base = by.get("wireguard-go<->wireguard-go")
for name in ("gatehouse<->gatehouse", "gatehouse<->wireguard-go"):
    ours = by.get(name)
    if not (base and ours and base["status"] == ours["status"] == "ok"):
        continue
    r = {}
    if "1" in ours["streams"] and "1" in base["streams"]:
        r["single_stream_throughput"] = ours["streams"]["1"]["gbps_median"] / base["streams"]["1"]["gbps_median"]
    if ours["ping"]["p50_ms"] and base["ping"]["p50_ms"]:
        r["ping_p50"] = ours["ping"]["p50_ms"] / base["ping"]["p50_ms"]
    ratios[name + " / wireguard-go<->wireguard-go"] = r
print()
if ratios:
    for k, r in ratios.items():
        # Targets (issue 2) are for gatehouse<->gatehouse; a mixed pair is bounded by wireguard-go.
        t1, t2 = (" (target >= 4)", " (target <= 0.5)") if k.startswith("gatehouse<->gatehouse") else ("", "")
        print(f"{k}: single-stream throughput x{r.get('single_stream_throughput', float('nan')):.2f}"
              f"{t1}, ping p50 x{r.get('ping_p50', float('nan')):.2f}{t2}")
else:
    print("ratios: need both a gatehouse pair and wireguard-go<->wireguard-go in this run")
json.dump({"benchmark": "wg_throughput", "runs": int(runs), "seconds": int(secs),
           "pings": int(pings), "cpus": int(ncpu), "kernel": kernel, "wireguard_go": wgv,
           "pairs": pairs, "ratios": ratios}, open(out, "w"), indent=1)
print(f"results: {out}")
PY
