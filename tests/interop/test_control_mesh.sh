#!/usr/bin/env bash
# End to end: `gatehouse control` and three `gatehouse up` nodes (netstack mode, loopback UDP), all
# real processes. A user in group:eng (alice), a node tagged tag:pr-review-bot (bot, owned by
# alice) and another user (bob). The policy lets the bot reach alice on tcp:80/8000 and ICMP
# (with an app capability), and bob reach alice on tcp:22.
#   - each node sees only the peers its grants allow (either direction);
#   - allowed TCP works; TCP the policy does not allow is dropped at the destination;
#   - whoIs on the destination names user, groups, tags and capabilities exactly;
#   - ping through the tunnel where ICMP is granted, not where it is not;
#   - a transfer running across a control server restart is not interrupted; a node restarted
#     while the server is down comes up from its persisted map and works; a restarted node that
#     only serves greets its peers, so they reach it at once;
#   - a policy change reaches the affected nodes; a deleted node's packets are refused;
#   - an expired node key is replaced and the node re-authenticates on its own;
#   - a reused single-use key, an expired key and a revoked key are refused with a clear message.
# Usage: test_control_mesh.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init control_mesh "${1:-}"
G=$GATEHOUSE_BIN
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v curl >/dev/null || die "missing curl"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); $1"; }

CPORT=$(free_port)
ADMIN_SOCK=$WORKDIR/admin.sock
declare -A UP_PID=()
CTL_PID=""

start_control() {
  : >"$WORKDIR/control.log"
  "$G" control --state "$WORKDIR/control.db" --policy "$WORKDIR/policy.hujson" \
    --listen "127.0.0.1:$CPORT" --admin-socket "$ADMIN_SOCK" >>"$WORKDIR/control.log" 2>&1 &
  CTL_PID=$!
  LIB_PIDS+=("$CTL_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    CKEY=$(sed -n 's/.*server key \([A-Za-z0-9+/=]*\).*/\1/p' "$WORKDIR/control.log" | head -1)
    [ -n "$CKEY" ] && [ -S "$ADMIN_SOCK" ] && return 0
    sleep 0.1
  done
  cat "$WORKDIR/control.log" >&2
  die "control server did not start"
}

admin() { "$G" admin --socket "$ADMIN_SOCK" "$@"; }
new_key() { admin --json keys create "$@" | jq_py 'print(d["secret"])'; }

# up NAME KEY [ARGS...]: starts `gatehouse up` for NAME (state in $WORKDIR/NAME) in the background.
up() {
  local name=$1 key=$2
  shift 2
  local auth=()
  [ -n "$key" ] && auth=(--authkey "$key")
  "$G" up --control "127.0.0.1:$CPORT" --control-key "$CKEY" "${auth[@]}" \
    --state-dir "$WORKDIR/$name" --hostname "$name" --advertise 127.0.0.1 --join-timeout 10 \
    "$@" >>"$WORKDIR/$name.log" 2>&1 &
  UP_PID[$name]=$!
  LIB_PIDS+=("$!")
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

stop_up() {
  kill -TERM "${UP_PID[$1]}" 2>/dev/null || true
  wait_pid_exit "${UP_PID[$1]}" 50 || kill -KILL "${UP_PID[$1]}" 2>/dev/null || true
}

status_json() { "$G" status --state-dir "$WORKDIR/$1" --json; }
peer_names() { status_json "$1" | jq_py 'print(",".join(sorted(p.get("name","?") for p in d["peers"])))'; }
self_field() { status_json "$1" | jq_py "print(d['self']['$2'])"; }
addr_of() { status_json "$1" | jq_py "print(d['self']['addresses'][0].split('/')[0])"; }

# wait_for DESC TENTHS CMD...: passes once CMD succeeds within TENTHS × 0.1 s.
wait_for() {
  local desc=$1 tenths=$2 i
  shift 2
  for ((i = 0; i < tenths; i++)); do
    if "$@" >/dev/null 2>&1; then
      pass "$desc"
      return 0
    fi
    sleep 0.1
  done
  fail "$desc (not within $((tenths / 10)) s)"
}

peers_are() { [ "$(peer_names "$1")" = "$2" ]; }
http_ok() { curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" | grep -q 200; }

section "control server, users, keys"
cat >"$WORKDIR/policy.hujson" <<'EOF'
{
  // alice is an engineer; the review bot is a tagged node she owns; bob is another user.
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:pr-review-bot": ["group:eng"]},
  "grants": [
    {"src": ["tag:pr-review-bot"], "dst": ["group:eng"], "ip": ["tcp:80", "tcp:8000", "icmp:*"],
     "app": {"gatehouse.dev/cap/ai": [{"models": ["anthropic/claude-*"], "role": "user"}]}},
    {"src": ["bob@example.com"], "dst": ["group:eng"], "ip": ["tcp:22"]},
  ],
}
EOF
start_control
check "admin: create alice" admin users create alice@example.com --display-name "Alice Archer"
check "admin: create bob" admin users create bob@example.com --display-name "Bob Baker"
KEY_ALICE=$(new_key --user alice@example.com --reusable)
KEY_BOT=$(new_key --user alice@example.com --tags tag:pr-review-bot)
KEY_BOB=$(new_key --user bob@example.com)

# A local service on alice's host that streams 48 MiB slowly (≈6 s): the transfer that must
# survive a control server restart.
SPORT=$(free_port)
cat >"$WORKDIR/slow_server.py" <<'EOF'
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
block = bytes(range(256)) * 256  # 64 KiB
while True:
    c, _ = s.accept()
    try:
        for i in range(768):
            c.sendall(block)
            if i % 16 == 0: time.sleep(0.12)
    except OSError:
        pass
    c.close()
EOF
"$PYTHON" "$WORKDIR/slow_server.py" "$SPORT" &
LIB_PIDS+=("$!")

FWD_BOT=$(free_port)
FWD_BOT_BULK=$(free_port)
FWD_BOB80=$(free_port)
FWD_BOB22=$(free_port)
up alice "$KEY_ALICE" --serve 80=whoami --serve 22=whoami --serve "8000=127.0.0.1:$SPORT"
wait_ready alice
up bot "$KEY_BOT" --forward "127.0.0.1:$FWD_BOT=alice:80" \
  --forward "127.0.0.1:$FWD_BOT_BULK=alice:8000"
up bob "$KEY_BOB" --forward "127.0.0.1:$FWD_BOB80=alice:80" \
  --forward "127.0.0.1:$FWD_BOB22=alice:22"
wait_ready bot
wait_ready bob
ADDR_ALICE=$(addr_of alice)
ADDR_BOT=$(addr_of bot)
ADDR_BOB=$(addr_of bob)
log "alice=$ADDR_ALICE bot=$ADDR_BOT bob=$ADDR_BOB"

section "visibility: each node sees only the peers its grants allow"
wait_for "alice sees bob and bot" 50 peers_are alice "bob,bot"
wait_for "bot sees only alice" 50 peers_are bot "alice"
wait_for "bob sees only alice" 50 peers_are bob "alice"
check "state files are 0600" bash -c "[ \$(stat -c %a '$WORKDIR/alice/node.key') = 600 ] &&
  [ \$(stat -c %a '$WORKDIR/alice/machine.key') = 600 ] && [ \$(stat -c %a '$WORKDIR/alice/map.pb') = 600 ]"

section "allowed TCP works, the rest is dropped at the destination"
wait_for "bot → alice:80 (granted)" 50 http_ok "$FWD_BOT"
body=$(curl -s -m 5 "http://127.0.0.1:$FWD_BOT/")
who=$(printf '%s\n' "$body" | sed -n 2p | jq_py 'print(json.dumps([d["user"], d["groups"], d["tags"], d["capabilities"], d["name"]], sort_keys=True))')
assert_eq "whoami on alice names the bot: no user, its tag, its capability" \
  '[{"display_name": "", "login": ""}, [], ["tag:pr-review-bot"], {"gatehouse.dev/cap/ai": [{"models": ["anthropic/claude-*"], "role": "user"}]}, "bot"]' "$who"
wait_for "bob → alice:22 (granted)" 50 http_ok "$FWD_BOB22"
body=$(curl -s -m 5 "http://127.0.0.1:$FWD_BOB22/")
who=$(printf '%s\n' "$body" | sed -n 2p | jq_py 'print(json.dumps([d["user"], d["groups"], d["tags"], d["capabilities"]], sort_keys=True))')
assert_eq "whoami on alice names bob: user and display name, no groups, tags or caps" \
  '[{"display_name": "Bob Baker", "login": "bob@example.com"}, [], [], {}]' "$who"
code=$(curl -s -m 4 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FWD_BOB80/" || true)
assert_eq "bob → alice:80 (not granted) gets no answer" "000" "$code"
code=$(curl -s -m 4 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FWD_BOB22/" || true)
assert_eq "bob → alice:22 still works right after (the drop was the filter, not the path)" "200" "$code"

section "gatehouse whois / status / ping"
who=$("$G" whois --state-dir "$WORKDIR/alice" --json "$ADDR_BOT" | jq_py 'i=d["identity"]; print(json.dumps([i["name"], i["user"]["login"], i["groups"], i["tags"], i["capabilities"]], sort_keys=True))')
assert_eq "whois bot on alice" \
  '["bot", "", [], ["tag:pr-review-bot"], {"gatehouse.dev/cap/ai": [{"models": ["anthropic/claude-*"], "role": "user"}]}]' "$who"
who=$("$G" whois --state-dir "$WORKDIR/bob" --json "$ADDR_ALICE" | jq_py 'i=d["identity"]; print(json.dumps([i["name"], i["user"], i["groups"], i["tags"], i["capabilities"]], sort_keys=True))')
assert_eq "whois alice on bob: user, groups, no capabilities on bob's node" \
  '["alice", {"display_name": "Alice Archer", "login": "alice@example.com"}, ["group:eng"], [], {}]' "$who"
out=$("$G" status --state-dir "$WORKDIR/alice")
check "status table lists bot with its tag and endpoint" grep -Eq "^bot +$ADDR_BOT/32 +tag:pr-review-bot +127\.0\.0\.1:[0-9]+ " <<<"$out"
check "status shows the control connection" grep -q "control: connected" <<<"$out"
check "ping bot → alice through the tunnel (ICMP granted)" "$G" ping --state-dir "$WORKDIR/bot" -c 2 alice
check_not "ping alice → bot is dropped at bot (no grant)" "$G" ping --state-dir "$WORKDIR/alice" -c 1 --timeout-ms 500 bot

section "control server restart: a running transfer is not interrupted"
"$PYTHON" - "$FWD_BOT_BULK" >"$WORKDIR/bulk.out" 2>&1 <<'EOF' &
import hashlib, socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest())
EOF
BULK_PID=$!
sleep 1
kill -TERM "$CTL_PID"
wait_pid_exit "$CTL_PID" 50 || die "control server did not stop"
pass "control server stopped mid-transfer"
sleep 1
start_control
pass "control server started again on the same state and port"
wait "$BULK_PID" || true
want="$((768 * 65536)) $("$PYTHON" -c 'import hashlib; print(hashlib.sha256((bytes(range(256))*256)*768).hexdigest())')"
assert_eq "48 MiB transfer across the restart arrived whole" "$want" "$(cat "$WORKDIR/bulk.out")"

section "control server down: a restarted node comes up from its persisted map"
kill -TERM "$CTL_PID"
wait_pid_exit "$CTL_PID" 50 || die "control server did not stop"
stop_up bot
: >"$WORKDIR/bot.log"
up bot "" --forward "127.0.0.1:$FWD_BOT=alice:80"
wait_ready bot
wait_for "bot restarted while control is down reaches alice from its last map" 50 http_ok "$FWD_BOT"
# The other side: alice, which only serves, restarts while bot holds a session with the old
# process. alice greets its peers as it starts, so bot gets through at once rather than after
# WireGuard's rekey timeout (about 15 s when nobody greets).
http_ok "$FWD_BOT" || true
stop_up alice
: >"$WORKDIR/alice.log"
up alice "$KEY_ALICE" --serve 80=whoami --serve 22=whoami --serve "8000=127.0.0.1:$SPORT"
wait_ready alice
t0=$(date +%s%N)
reached=no
while [ $((($(date +%s%N) - t0) / 1000000)) -lt 6000 ]; do
  if curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FWD_BOT/" | grep -q 200; then
    reached=yes
    break
  fi
  sleep 0.1
done
assert_eq "bot reaches the restarted alice within 6 s (alice greets its peers)" yes "$reached"
start_control
conn() { status_json "$1" | jq_py 'sys.exit(0 if d["control"]["state"]=="connected" else 1)'; }
wait_for "alice reconnected to the restarted server" 150 conn alice
wait_for "bot reconnected to the restarted server" 150 conn bot
wait_for "bob reconnected to the restarted server" 150 conn bob

section "policy change reaches every affected node"
sed 's|    {"src": \["bob@example.com"\], "dst": \["group:eng"\], "ip": \["tcp:22"\]},|&\n    {"src": ["bob@example.com"], "dst": ["tag:pr-review-bot"], "ip": ["tcp:80"]},|' \
  "$WORKDIR/policy.hujson" >"$WORKDIR/policy2.hujson"
check "admin policy set (bob may reach the bot)" admin policy set "$WORKDIR/policy2.hujson"
wait_for "bob now sees alice and bot" 50 peers_are bob "alice,bot"
wait_for "bot now sees alice and bob" 50 peers_are bot "alice,bob"
printf '{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["tcp:99999"]}]}' >"$WORKDIR/bad.hujson"
check_not "a bad policy is rejected" admin policy set "$WORKDIR/bad.hujson"
wait_for "…and the old one stays (bob still sees the bot)" 20 peers_are bob "alice,bot"

section "deleting a node: its peers refuse its packets"
check "admin nodes delete bob" admin nodes delete bob
wait_for "alice no longer lists bob" 50 peers_are alice "bot"
code=$(curl -s -m 4 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FWD_BOB22/" || true)
assert_eq "bob → alice:22 is refused now" "000" "$code"

section "expired node key: replaced, then the node re-authenticates"
old_key=$(self_field alice node_key)
check "admin nodes expire alice" admin nodes expire alice
new_key_ok() { k=$(self_field alice node_key) && [ -n "$k" ] && [ "$k" != "$old_key" ]; }
wait_for "alice rotated her node key and registered again" 100 new_key_ok
wait_for "bot reaches alice again under her new key" 100 http_ok "$FWD_BOT"
check "alice's log says why" grep -q "node key expired" "$WORKDIR/alice.log"

section "refused auth keys"
KEY_ONCE=$(new_key --user bob@example.com)
up carol "$KEY_ONCE"
wait_ready carol
stop_up carol
rm -rf "$WORKDIR/carol2"
refused() { # NAME KEY PATTERN DESC
  local rc
  "$G" up --control "127.0.0.1:$CPORT" --control-key "$CKEY" --authkey "$2" \
    --state-dir "$WORKDIR/$1" --hostname "$1" --advertise 127.0.0.1 --join-timeout 10 \
    >"$WORKDIR/$1.log" 2>&1 && rc=0 || rc=$?
  if [ "$rc" -eq 1 ] && grep -q "$3" "$WORKDIR/$1.log"; then
    pass "$4: $(grep -o "control server refused.*" "$WORKDIR/$1.log" | head -1)"
  else
    fail "$4 (exit $rc)"
    show_output "$(cat "$WORKDIR/$1.log")"
  fi
}
refused carol2 "$KEY_ONCE" "already used" "a reused single-use key is refused"
KEY_SHORT=$(new_key --user bob@example.com --expiry 1)
sleep 2
refused carol3 "$KEY_SHORT" "expired" "an expired key is refused"
KEY_REV=$(new_key --user bob@example.com --reusable)
REV_ID=$(admin --json keys list | jq_py 'print(max(k["id"] for k in d["keys"]))')
check "admin keys revoke" admin keys revoke "$REV_ID"
refused carol4 "$KEY_REV" "revoked" "a revoked key is refused"
refused carol5 "ghauth-0000000000000000000000000000000000000000" "unknown\|invalid\|not" \
  "an unknown key is refused"

finish
