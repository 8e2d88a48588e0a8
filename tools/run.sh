#!/usr/bin/env bash
# The project's main job (README's first command): install dependencies, build build/ (Release,
# Ninja), then run `gatehouse dev` in the foreground: a control server, the built-in mock LLM
# provider (or the real one when ANTHROPIC_API_KEY / OPENAI_API_KEY is set), the gateway node
# "ai" and a node forwarding 127.0.0.1:8080 -> ai:80 through WireGuard. It prints a curl line and
# the Claude Code environment; Ctrl-C stops everything. Extra arguments go to `gatehouse dev`
# (e.g. --port 9090).
#
# tools/run.sh --wireguard-demo: the earlier live demo of two Gatehouse WireGuard devices in two
# network namespaces joined by a veth pair: handshake, ping, a 5 s iperf3, and a readable account
# of what happened. Everything it creates (namespaces, daemons, sockets) is removed on exit,
# Ctrl-C included. Env: DEMO_IMPL=wireguard-go runs that demo on wireguard-go.
# Env: SKIP_BUILD=1 skips deps and build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  # A package that cannot be installed (e.g. one only later issues need) should not stop the
  # demo: warn, and let the build fail by itself if something it needs is really missing.
  bash tools/install-deps.sh || echo "run.sh: WARNING: install-deps.sh failed (see above); trying the build anyway" >&2
  echo "== build (Release) into build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
fi

if [ "${1:-}" != --wireguard-demo ]; then
  echo "== gatehouse dev (Ctrl-C stops it)"
  exec "$ROOT/build/bin/gatehouse" dev "$@"
fi

# The interop harness gives namespaces, daemons, keys and cleanup traps (EXIT, INT, TERM).
IMPL=${DEMO_IMPL:-gatehouse}
export GH_IMPL=$IMPL GH_PEER_IMPL=$IMPL # both sides of the demo run the same implementation
source "$ROOT/tests/interop/lib.sh"
lib_init demo "$ROOT/build/bin/gatehouse"

section "two $IMPL devices in two network namespaces"
setup_pair "$IMPL" "$IMPL" 1
cat <<TXT
  $NS1: $IF1  tunnel $TUN_NET4.1 fd00::1   underlay veth1 10.231.1.1:10001
  $NS2: $IF2  tunnel $TUN_NET4.2 fd00::2   underlay veth1 10.231.1.2:10002
  $IF1 knows $IF2's endpoint and initiates; $IF2 learns $IF1's endpoint from the handshake.
TXT

section "handshake"
check "first ping triggers the handshake and gets a reply" ping_first "$NS1" "$TUN_NET4.2" 10
check "both sides report a handshake" wait_handshake "$IF2" "$PUB1" 5

section "ping, 20 each way over IPv4 and IPv6 tunnel addresses"
for target in "$NS1 $TUN_NET4.2" "$NS1 fd00::2" "$NS2 $TUN_NET4.1" "$NS2 fd00::1"; do
  read -r ns addr <<<"$target"
  if out=$(nsx "$ns" ping -n -q -c 20 -i 0.05 -W 2 "$addr" 2>&1); then
    pass "$ns -> $addr: $(grep -o '[0-9]* received, [0-9.]*% packet loss' <<<"$out"), rtt $(grep -o 'rtt.*' <<<"$out" | cut -d' ' -f4) ms (min/avg/max/mdev)"
  else
    fail "$ns -> $addr: $(grep 'packets' <<<"$out" || echo "$out")"
  fi
done

section "iperf3 TCP, 5 s, $IF1 -> $IF2"
spawn "$NS2" "$WORKDIR/iperf-server.log" iperf3 -s -1 -B "$TUN_NET4.2"
wait_tcp_listen "$NS2" 5201 5 || die "iperf3 server did not start"
if nsx "$NS1" timeout 30 iperf3 -c "$TUN_NET4.2" -t 5 -J >"$WORKDIR/iperf.json"; then
  read -r gbps retr mb <<<"$("$PYTHON" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
rcv, snt = e["sum_received"], e["sum_sent"]
print("%.3f" % (rcv["bits_per_second"] / 1e9), snt.get("retransmits", 0), round(rcv["bytes"] / 1e6))
' "$WORKDIR/iperf.json")"
  pass "iperf3: $gbps Gbit/s, $mb MB received, $retr TCP retransmits"
else
  fail "iperf3 failed: $(head -c 400 "$WORKDIR/iperf.json")"
fi

section "wg show $IF1 (after the traffic)"
wgn "$IF1" show "$IF1" | sed 's/^/  /'
section "wg show $IF2"
wgn "$IF2" show "$IF2" | sed 's/^/  /'
check "$IF1 daemon still running" wg_alive "$IF1"
check "$IF2 daemon still running" wg_alive "$IF2"
finish
