#!/usr/bin/env bash
# Interop: the two embedding examples (examples/whoami_server.{cc,c}: the C++ Node callback API
# and the C ABI) each run as a netstack node (no TUN) in namespace 1; Debian's wireguard-go with
# a kernel TCP stack sits in namespace 2. curl in namespace 2 must get an answer naming
# namespace 2's public key, name and allowed IPs (whoIs), over IPv4 and IPv6, also with 50
# concurrent requests; each example exits cleanly on SIGTERM.
# Usage: test_examples.sh GATEHOUSE_BIN   (the examples are found next to it: BUILD/bin/)
source "$(dirname "$0")/lib.sh"
lib_init examples "${1:-}"
BIN_DIR=$(cd "$(dirname "$GATEHOUSE_BIN")" && pwd)
command -v curl >/dev/null || die "missing curl"

setup_netstack_and_peer  # NS1: the netstack node (no TUN); NS2: wireguard-go + kernel TCP

# concurrent N URL: N curls at once; prints how many answers named the peer's key.
concurrent() {
  local n=$1 url=$2 i
  for ((i = 0; i < n; i++)); do
    nsx "$NS2" curl -sS -m 20 "$url" >"$WORKDIR/c.$i" 2>&1 &
  done
  wait
  cat "$WORKDIR"/c.* | grep -c "^public_key=$PUB_peer\$" || true
  rm -f "$WORKDIR"/c.*
}

for example in whoami_cpp whoami_c; do
  section "$example"
  exe="$BIN_DIR/$example"
  [ -x "$exe" ] || die "$exe not built"
  spawn "$NS1" "$WORKDIR/$example.log" "$exe" --key-file "$WORKDIR/node.key" \
    --address "$TUN_NET4.1,fd00::1" --listen-port 10001 --port 8080 \
    --peer "$PUB_peer,10.231.1.2:10002,$TUN_NET4.2/32,fd00::2/128,name=wg-go-peer"
  pid=$BG_PID
  for _ in $(seq 50); do grep -q "listening on" "$WORKDIR/$example.log" && break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null || { cat "$WORKDIR/$example.log"; die "$example did not start"; }

  # The first request waits for the handshake; give it a few tries.
  body=""
  for _ in 1 2 3 4 5; do
    body=$(nsx "$NS2" curl -sS -m 5 "http://$TUN_NET4.1:8080/" 2>&1) && break
    sleep 0.5
  done
  printf '%s\n' "$body" | sed 's/^/        /'
  assert_eq "$example v4: public key is the namespace peer's" "public_key=$PUB_peer" \
    "$(grep '^public_key=' <<<"$body" || true)"
  assert_eq "$example v4: peer name" "name=wg-go-peer" "$(grep '^name=' <<<"$body" || true)"
  assert_eq "$example v4: allowed IPs" "allowed_ips=$TUN_NET4.2/32,fd00::2/128" \
    "$(grep '^allowed_ips=' <<<"$body" || true)"
  check "$example v4: remote is the peer's tunnel address" grep -q "^remote=$TUN_NET4.2:" <<<"$body"
  body=$(nsx "$NS2" curl -sS -m 10 "http://[fd00::1]:8080/x?y" -H 'X-Pad: 1' 2>&1 || true)
  assert_eq "$example v6: public key is the namespace peer's" "public_key=$PUB_peer" \
    "$(grep '^public_key=' <<<"$body" || true)"
  check "$example v6: remote is the peer's v6 address" grep -q '^remote=\[fd00::2\]:' <<<"$body"
  code=$(nsx "$NS2" curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://$TUN_NET4.1:8080/" || true)
  assert_eq "$example: HTTP status" 200 "$code"
  assert_eq "$example: 50 concurrent requests all name the peer" 50 \
    "$(concurrent 50 "http://$TUN_NET4.1:8080/")"

  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$example did not exit within 5 s of SIGTERM"
  else
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    assert_eq "$example exits on SIGTERM with status 0" 0 "$rc"
  fi
  if [ "$LIB_FAILED" -gt 0 ]; then tail -n 20 "$WORKDIR/$example.log" >&2; fi
done
finish
