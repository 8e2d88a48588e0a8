#!/usr/bin/env bash
# End to end: `gatehouse up --tun` (TUN mode, root). Two namespaces joined by a veth underlay:
# NS_A runs `gatehouse control` (on 10.231.1.1) and alice's node (a user in group:eng), NS_B the
# review bot's node (tag:pr-review-bot, owned by alice). The policy grants the bot tcp:80 and
# ICMP on alice, nothing the other way.
#   - each interface carries the map's addresses (v4 /32, v6 /128), is up with its MTU, and the
#     mesh routes (100.64.0.0/10, the ULA /48) go through it;
#   - kernel `ping` through the tunnel works where ICMP is granted and is dropped where not;
#   - TCP the grant allows works (replies pass the source's filter as tracked flows); TCP it does
#     not allow is dropped at the destination (counted by the receive filter);
#   - `wg show IFNAME` works (UAPI); `gatehouse status/whois/ping` answer in TUN mode;
#   - an expired node key is rotated on the interface and the bot reaches alice again;
#   - `up --tun` without root fails with a clear message and creates nothing;
#   - SIGTERM removes the interface and its UAPI socket; deleting the interface ends the node.
# Usage: test_control_tun.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init control_tun "${1:-}"
G=$GATEHOUSE_BIN
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v curl >/dev/null || die "missing curl"
command -v setpriv >/dev/null || die "missing setpriv (util-linux)"

jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); $1"; }

NS_A="gh$LIB_TAG-a"
NS_B="gh$LIB_TAG-b"
IF_A="gt${LIB_TAG}a"
IF_B="gt${LIB_TAG}b"
CTL="10.231.1.1:7443"
ADMIN_SOCK=$WORKDIR/admin.sock
declare -A UP_PID=()
ns_create "$NS_A"
ns_create "$NS_B"
veth_link "$NS_A" "$NS_B" 1
for ifn in "$IF_A" "$IF_B"; do
  [ ${#ifn} -le 15 ] || die "interface name '$ifn' too long"
  [ -e "/var/run/wireguard/$ifn.sock" ] && die "socket for $ifn already exists (name collision)"
  # lib.sh's cleanup removes stale sockets and shows the logs of these on failure.
  LIB_IFACES+=("$ifn")
done
WG_IMPL[$IF_A]="gatehouse up --tun"
WG_IMPL[$IF_B]="gatehouse up --tun"
WG_NS[$IF_A]=$NS_A
WG_NS[$IF_B]=$NS_B
WG_LOG[$IF_A]=$WORKDIR/alice.log
WG_LOG[$IF_B]=$WORKDIR/bot.log

section "control server on the underlay"
cat >"$WORKDIR/policy.hujson" <<'EOF'
{
  // alice is an engineer; the review bot is a tagged node she owns. One way only: the bot may
  // reach alice on tcp:80 and ping her; alice may open nothing to the bot.
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:pr-review-bot": ["group:eng"]},
  "grants": [
    {"src": ["tag:pr-review-bot"], "dst": ["group:eng"], "ip": ["tcp:80", "icmp:*"]},
  ],
}
EOF
spawn "$NS_A" "$WORKDIR/control.log" "$G" control --state "$WORKDIR/control.db" \
  --policy "$WORKDIR/policy.hujson" --listen "$CTL" --admin-socket "$ADMIN_SOCK"
CKEY=""
for ((i = 0; i < 100; i++)); do
  CKEY=$(sed -n 's/.*server key \([A-Za-z0-9+/=]*\).*/\1/p' "$WORKDIR/control.log" | head -1)
  [ -n "$CKEY" ] && [ -S "$ADMIN_SOCK" ] && break
  sleep 0.1
done
if [ -z "$CKEY" ] || [ ! -S "$ADMIN_SOCK" ]; then
  die "control server did not start: $(cat "$WORKDIR/control.log")"
fi
admin() { "$G" admin --socket "$ADMIN_SOCK" "$@"; }
new_key() { admin --json keys create "$@" | jq_py 'print(d["secret"])'; }
check "admin: create alice" admin users create alice@example.com --display-name "Alice Archer"
KEY_ALICE=$(new_key --user alice@example.com --reusable)
KEY_BOT=$(new_key --user alice@example.com --tags tag:pr-review-bot)

section "up --tun without root fails clearly and creates nothing"
# The binary must be reachable by nobody: copy it next to the state if its own path is not.
GN=$G
if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$G" 2>/dev/null; then
  mkdir -p "$WORKDIR/bin"
  cp "$G" "$WORKDIR/bin/gatehouse"
  chmod 711 "$WORKDIR" "$WORKDIR/bin"
  chmod 755 "$WORKDIR/bin/gatehouse"
  GN=$WORKDIR/bin/gatehouse
fi
rc=0
out=$(ip netns exec "$NS_A" setpriv --reuid=65534 --regid=65534 --clear-groups \
  "$GN" up --tun "$IF_A" --control "$CTL" --control-key "$CKEY" --authkey "$KEY_ALICE" \
  --state-dir "$WORKDIR/nobody" --join-timeout 5 2>&1) || rc=$?
assert_ne "non-root up --tun exits non-zero" 0 "$rc"
check "…saying it needs root" grep -q -- "--tun needs root" <<<"$out"
check_not "…and no interface was created" ip -n "$NS_A" link show "$IF_A"
check_not "…and no state was written" test -e "$WORKDIR/nobody"

# up NAME NS IFNAME KEY UNDERLAY_ADDR: starts `gatehouse up --tun` in NS.
up() {
  local name=$1 ns=$2 ifn=$3 key=$4 adv=$5
  spawn "$ns" "$WORKDIR/$name.log" "$G" up --tun "$ifn" --control "$CTL" --control-key "$CKEY" \
    --authkey "$key" --state-dir "$WORKDIR/$name" --hostname "$name" --advertise "$adv" \
    --join-timeout 10
  UP_PID[$name]=$BG_PID
}
wait_ready() {
  local i
  for ((i = 0; i < 150; i++)); do
    grep -q "ready; local API" "$WORKDIR/$1.log" 2>/dev/null && return 0
    kill -0 "${UP_PID[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$WORKDIR/$1.log" >&2
  die "node $1 did not come up"
}

section "two TUN nodes join"
up alice "$NS_A" "$IF_A" "$KEY_ALICE" 10.231.1.1
up bot "$NS_B" "$IF_B" "$KEY_BOT" 10.231.1.2
wait_ready alice
wait_ready bot
pass "alice and the bot joined with --tun"

status_json() { "$G" status --state-dir "$WORKDIR/$1" --json; }
addr_of() { # NAME 4|6
  status_json "$1" | jq_py "print([a.split('/')[0] for a in d['self']['addresses'] if (':' in a) == ($2 == 6)][0])"
}
ALICE4=$(addr_of alice 4)
ALICE6=$(addr_of alice 6)
BOT4=$(addr_of bot 4)
BOT6=$(addr_of bot 6)
log "alice=$ALICE4 $ALICE6 bot=$BOT4 $BOT6"
ULA48=$("$PYTHON" -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1] + '/48', strict=False))" "$ALICE6")

section "interface: addresses, link, MTU, routes"
addr_a=$(ip -n "$NS_A" addr show dev "$IF_A")
check "alice's interface has $ALICE4/32" grep -q "inet $ALICE4/32 " <<<"$addr_a"
check "alice's interface has $ALICE6/128" grep -q "inet6 $ALICE6/128 " <<<"$addr_a"
check "alice's interface is up with MTU 1420" grep -Eq "<[^>]*\bUP\b[^>]*> mtu 1420 " <<<"$addr_a"
check "bot's interface has $BOT4/32" bash -c "ip -n '$NS_B' addr show dev '$IF_B' | grep -q 'inet $BOT4/32 '"
check "route 100.64.0.0/10 through alice's interface" \
  bash -c "ip -n '$NS_A' route show 100.64.0.0/10 | grep -q 'dev $IF_A .*src $ALICE4'"
check "route $ULA48 through alice's interface" \
  bash -c "ip -n '$NS_A' -6 route show '$ULA48' | grep -q 'dev $IF_A'"
check "route 100.64.0.0/10 through the bot's interface" \
  bash -c "ip -n '$NS_B' route show 100.64.0.0/10 | grep -q 'dev $IF_B'"
check "a mesh address resolves to the interface" \
  bash -c "ip -n '$NS_B' route get '$ALICE4' | grep -q 'dev $IF_B'"

section "wg show on the interface (UAPI)"
PUB_BOT=$(status_json bot | jq_py 'print(d["self"]["node_key"])')
PUB_ALICE=$(status_json alice | jq_py 'print(d["self"]["node_key"])')
check "wg show $IF_A lists the bot as a peer" \
  bash -c "ip netns exec '$NS_A' wg show '$IF_A' peers | grep -qF '$PUB_BOT'"
check "wg show $IF_A public key is alice's node key" \
  bash -c "[ \"\$(ip netns exec '$NS_A' wg show '$IF_A' public-key)\" = '$PUB_ALICE' ]"
check "wg show $IF_B allowed-ips: alice's addresses" \
  bash -c "ip netns exec '$NS_B' wg show '$IF_B' allowed-ips | grep -F '$PUB_ALICE' | grep -q '$ALICE4/32'"

section "kernel ping through the tunnel"
wait_for "bot → alice ping (ICMP granted)" 100 ip netns exec "$NS_B" ping -n -c 1 -W 1 "$ALICE4"
check "bot → alice ping, 3 of 3" ping_ok "$NS_B" "$ALICE4" 3
check "bot → alice ping over IPv6" ip netns exec "$NS_B" ping -6 -n -c 2 -i 0.2 -W 2 "$ALICE6"
check "handshake seen by wg show" bash -c "ip netns exec '$NS_A' wg show '$IF_A' latest-handshakes | grep -F '$PUB_BOT' | grep -vq '\s0$'"
denied_of() { status_json "$1" | jq_py 'print(d["data_plane"]["filter_denied"])'; }
before=$(denied_of bot)
check_not "alice → bot ping is dropped (no grant)" ip netns exec "$NS_A" ping -n -c 2 -i 0.2 -W 1 "$BOT4"
assert_gt "…by the bot's receive filter" "$(denied_of bot)" "$before"

section "TCP: granted works, the rest is dropped at the destination"
cat >"$WORKDIR/serve.py" <<'EOF'
# A tiny HTTP/1.0 server on every given port (IPv4 and IPv6): GET / answers who called;
# GET /bulk sends 32 MiB; PUT /sink answers the sha256 of the body it received.
import hashlib, socket, sys, threading
BLOCK = bytes(range(256)) * 256  # 64 KiB
def reply(c, body):
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
def handle(c, port, peer):
    c.settimeout(10)
    req = b""
    while b"\r\n\r\n" not in req:
        b = c.recv(65536)
        if not b: return
        req += b
    head, rest = req.split(b"\r\n\r\n", 1)
    if head.startswith(b"GET /bulk"):
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % (512 * len(BLOCK)))
        for _ in range(512): c.sendall(BLOCK)
    elif head.startswith(b"PUT /sink"):
        n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        h = hashlib.sha256(rest); got = len(rest)
        while got < n:
            b = c.recv(1 << 18)
            if not b: break
            h.update(b); got += len(b)
        reply(c, h.hexdigest().encode())
    else:
        reply(c, ("hello from %s:%d to %s\n" % (sys.argv[1], port, peer)).encode())
def serve(port):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(16)
    while True:
        c, peer = s.accept()
        try:
            handle(c, port, peer[0])
        except OSError:
            pass
        c.close()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
EOF
spawn "$NS_A" "$WORKDIR/serve_a.log" "$PYTHON" "$WORKDIR/serve.py" alice 80 8080
spawn "$NS_B" "$WORKDIR/serve_b.log" "$PYTHON" "$WORKDIR/serve.py" bot 80
wait_tcp_listen "$NS_A" 8080 5 || die "alice's test server did not start"
wait_tcp_listen "$NS_B" 80 5 || die "the bot's test server did not start"
body=$(ip netns exec "$NS_B" curl -s -m 5 "http://$ALICE4/" || true)
assert_eq "bot → alice:80 (granted) answers" "hello from alice:80 to ::ffff:$BOT4" "$body"
body=$(ip netns exec "$NS_B" curl -s -m 5 "http://[$ALICE6]/" || true)
assert_eq "bot → alice:80 over IPv6 answers" "hello from alice:80 to $BOT6" "$body"
before=$(denied_of alice)
rc=0
ip netns exec "$NS_B" curl -s -m 3 -o /dev/null "http://$ALICE4:8080/" || rc=$?
assert_eq "bot → alice:8080 (not granted) times out (curl 28), no refusal" 28 "$rc"
assert_gt "…dropped by alice's receive filter" "$(denied_of alice)" "$before"
before=$(denied_of bot)
rc=0
ip netns exec "$NS_A" curl -s -m 3 -o /dev/null "http://$BOT4/" || rc=$?
assert_eq "alice → bot:80 (no grant that way) times out" 28 "$rc"
assert_gt "…dropped by the bot's receive filter" "$(denied_of bot)" "$before"
body=$(ip netns exec "$NS_B" curl -s -m 5 "http://$ALICE4/" || true)
assert_eq "bot → alice:80 still works right after (the drops were the filter)" \
  "hello from alice:80 to ::ffff:$BOT4" "$body"

section "bulk TCP both ways through the offload path, filter on"
want=$("$PYTHON" -c 'import hashlib; print(hashlib.sha256((bytes(range(256))*256)*512).hexdigest())')
got=$(ip netns exec "$NS_B" curl -s -m 60 "http://$ALICE4/bulk" | sha256sum | cut -d' ' -f1)
assert_eq "32 MiB alice → bot (a reply flow the bot's filter tracks) arrives whole" "$want" "$got"
head -c $((24 * 1024 * 1024)) /dev/urandom >"$WORKDIR/upload.bin"
want=$(sha256sum "$WORKDIR/upload.bin" | cut -d' ' -f1)
got=$(ip netns exec "$NS_B" curl -s -m 60 -T "$WORKDIR/upload.bin" "http://$ALICE4/sink" || true)
assert_eq "24 MiB bot → alice (granted, coalesced on alice's TUN) arrives whole" "$want" "$got"

section "gatehouse status / whois / ping in TUN mode"
st=$(status_json alice)
assert_eq "status: data plane is tun on $IF_A" "tun $IF_A" "$(jq_py 'print(d["data_plane"]["mode"], d["data_plane"]["interface"])' <<<"$st")"
assert_eq "status: alice's peers are the bot, with its tag" '[["bot", ["tag:pr-review-bot"]]]' \
  "$(jq_py 'print(json.dumps([[p["name"], p["tags"]] for p in d["peers"]]))' <<<"$st")"
assert_gt "status: bytes received from the bot" "$(jq_py 'print(d["peers"][0]["rx_bytes"])' <<<"$st")" 0
out=$("$G" status --state-dir "$WORKDIR/alice")
check "status table lists the bot with its address, tag and endpoint" \
  grep -Eq "^bot +$BOT4/32 +tag:pr-review-bot +10\.231\.1\.2:[0-9]+ " <<<"$out"
check "status table names the data plane and counts policy drops" \
  grep -Eq "^data plane: tun $IF_A  UDP port [0-9]+  denied by policy [1-9][0-9]*$" <<<"$out"
who=$("$G" whois --state-dir "$WORKDIR/alice" --json "$BOT4" | jq_py 'i=d["identity"]; print(json.dumps([i["name"], i["tags"], i["node_key"], i["endpoint"].split(":")[0]]))')
assert_eq "whois bot on alice: name, tag, key, endpoint" "[\"bot\", [\"tag:pr-review-bot\"], \"$PUB_BOT\", \"10.231.1.2\"]" "$who"
who=$("$G" whois --state-dir "$WORKDIR/bot" --json "$ALICE6" | jq_py 'i=d["identity"]; print(json.dumps([i["name"], i["user"]["login"], i["groups"]]))')
assert_eq "whois alice (by IPv6) on the bot: user and group" '["alice", "alice@example.com", ["group:eng"]]' "$who"
who=$("$G" whois --state-dir "$WORKDIR/bot" --json "$BOT4" | jq_py 'print(d["identity"]["is_self"], d["identity"]["node_key"])')
assert_eq "whois of its own address: this node, its key" "True $PUB_BOT" "$who"
check "gatehouse ping bot → alice (kernel ICMP through $IF_B)" "$G" ping --state-dir "$WORKDIR/bot" -c 2 alice
check "gatehouse ping bot → alice by IPv6 address" "$G" ping --state-dir "$WORKDIR/bot" -c 1 "$ALICE6"
check_not "gatehouse ping alice → bot is dropped at the bot" \
  "$G" ping --state-dir "$WORKDIR/alice" -c 1 --timeout-ms 500 bot

section "expired node key: rotated on the interface"
old_key=$PUB_ALICE
check "admin nodes expire alice" admin nodes expire alice
new_key_ok() {
  k=$(ip netns exec "$NS_A" wg show "$IF_A" public-key) && [ -n "$k" ] && [ "$k" != "$old_key" ]
}
wait_for "alice's interface switched to a new node key" 100 new_key_ok
http_ok() { [ "$(ip netns exec "$NS_B" curl -s -m 2 "http://$ALICE4/")" = "hello from alice:80 to ::ffff:$BOT4" ]; }
wait_for "the bot reaches alice again under her new key" 150 http_ok
check "alice's log says why" grep -q "node key expired" "$WORKDIR/alice.log"

section "shutdown removes the interface"
kill -TERM "${UP_PID[alice]}"
rc=0
wait_pid_exit "${UP_PID[alice]}" 50 || rc=1
assert_eq "alice's node exits within 5 s of SIGTERM" 0 "$rc"
check_not "…and her interface is gone" ip -n "$NS_A" link show "$IF_A"
check_not "…with its UAPI socket" test -e "/var/run/wireguard/$IF_A.sock"
check_not "…and the mesh route" bash -c "ip -n '$NS_A' route show 100.64.0.0/10 | grep -q ."
ip -n "$NS_B" link del "$IF_B"
rc=0
wait_pid_exit "${UP_PID[bot]}" 50 || rc=1
assert_eq "deleting the bot's interface ends its node within 5 s" 0 "$rc"
check "…and its log says why" grep -q "removed: leaving the mesh" "$WORKDIR/bot.log"
check_not "…and its UAPI socket is gone" test -e "/var/run/wireguard/$IF_B.sock"

finish
