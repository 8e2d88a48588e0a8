#!/usr/bin/env bash
# Quotas through real processes: `gatehouse mock-provider`, `gatehouse gateway --no-mesh` on a
# loopback listener with a SQLite quota store, curl as the client and `gatehouse admin quotas`
# as the operator. A request bucket runs out (429 in Anthropic's shape, Retry-After, the bucket's
# name), the CLI lists and refills it, the gateway is restarted (SIGTERM) and the levels are still
# there, capacity is set, two replicas sharing a redis-server see one bucket, and a bucket spec
# that does not parse stops the gateway with file:line:column and the expected form.
# Usage: test_quota_cli.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init quota_cli "${1:-}"
G=$GATEHOUSE_BIN
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v curl >/dev/null || die "missing curl"
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); $1"; }
W=$WORKDIR

section "mock provider"
"$G" mock-provider --listen 127.0.0.1:0 --port-file "$W/mock.port" >"$W/mock.log" 2>&1 &
LIB_PIDS+=($!)
wait_for "mock provider port file" 50 test -s "$W/mock.port"
MOCK=$(cat "$W/mock.port")

# write_config NAME QUOTAS_JSON
write_config() {
  mkdir -p "$W/$1/state"
  cat >"$W/$1/gateway.hujson" <<EOF
{
  "loopback_listen": "127.0.0.1:0",
  "loopback_identity": {"user": "alice@example.com", "groups": ["group:eng"]},
  "providers": {
    "anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:$MOCK", "local": true,
                  "models": ["claude-*"]},
  },
  "grants": [{"src": ["group:eng"], "models": ["anthropic/*"], "role": "admin"}],
  "logging": {"database": "$W/$1/logs.db"},
  "quotas": $2,
}
EOF
}
# start_gateway NAME → GW_PID, GW_PORT
start_gateway() {
  rm -f "$W/$1/state/loopback.port"
  "$G" gateway --config "$W/$1/gateway.hujson" --no-mesh --state-dir "$W/$1/state" \
    >>"$W/$1/gateway.log" 2>&1 &
  GW_PID=$!
  LIB_PIDS+=("$GW_PID")
  wait_for "gateway $1 up" 100 test -s "$W/$1/state/loopback.port"
  GW_PORT=$(cat "$W/$1/state/loopback.port")
}
stop_gateway() {
  kill -TERM "$1"
  wait_pid_exit "$1" 100 || fail "gateway did not exit on SIGTERM"
}
call() { # PORT → prints the status; the body in $W/body, headers in $W/headers
  curl -s --max-time 10 -o "$W/body" -D "$W/headers" -w '%{http_code}' \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H 'x-api-key: -' \
    --data-binary '{"model":"claude-test","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$1/v1/messages"
}
level() { # PORT BUCKET → the level per gatehouse admin quotas --json
  "$G" admin quotas --gateway "http://127.0.0.1:$1" --json |
    jq_py "print(next((b['level'] for b in d['buckets'] if b['bucket'] == '$2'), 'none'))"
}

QUOTAS='{
    "store": {"kind": "sqlite", "database": "'"$W"'/quotas.db"},
    "buckets": {"calls:<user>": {"rate": "3 requests/day"},
                "tokens:<user>": {"rate": "100k tokens/day"}},
    "rules": [{"src": ["group:eng"], "buckets": ["calls:<user>", "tokens:<user>"],
               "max_streams": 4}],
  }'
write_config a "$QUOTAS"

section "a request bucket runs out"
start_gateway a
A=$GW_PORT
for i in 1 2 3; do assert_eq "call $i is served" 200 "$(call "$A")"; done
assert_eq "call 4 is refused" 429 "$(call "$A")"
check "Anthropic's error shape" grep -q '"type":"rate_limit_error"' "$W/body"
check "the message names the bucket" grep -q 'calls:alice@example.com' "$W/body"
check "Retry-After is set" grep -qi '^retry-after: [0-9]' "$W/headers"
check "the gateway logged the event" grep -q 'quota rejected bucket=calls:alice@example.com' "$W/a/gateway.log"

section "gatehouse admin quotas"
"$G" admin quotas --gateway "http://127.0.0.1:$A" >"$W/list.txt"
sed 's/^/  | /' "$W/list.txt"
check "list shows the request bucket" grep -q '^calls:alice@example.com .* 0 requests' "$W/list.txt"
check "list shows the token bucket" grep -q '^tokens:alice@example.com' "$W/list.txt"
TOKENS=$(level "$A" tokens:alice@example.com)
assert_gt "three calls were charged to the token bucket" $((100000 - TOKENS)) 0
check "refill 2 requests" "$G" admin quotas --gateway "http://127.0.0.1:$A" refill \
  calls:alice@example.com "2 requests"
assert_eq "level after the refill" 2 "$(level "$A" calls:alice@example.com)"
assert_eq "a call is served again" 200 "$(call "$A")"
check_not "a refill in the wrong unit is refused" "$G" admin quotas --gateway \
  "http://127.0.0.1:$A" refill calls:alice@example.com '$5'
TOKENS=$(level "$A" tokens:alice@example.com)

section "restart keeps the levels (SQLite)"
stop_gateway "$GW_PID"
start_gateway a
A=$GW_PORT
assert_eq "request bucket after the restart" 1 "$(level "$A" calls:alice@example.com)"
T2=$(level "$A" tokens:alice@example.com)
assert_ge "token bucket after the restart (refill only adds)" "$T2" "$TOKENS"
assert_le "token bucket after the restart (a few seconds of refill)" "$T2" $((TOKENS + 20))
check "set the capacity" "$G" admin quotas --gateway "http://127.0.0.1:$A" capacity \
  calls:alice@example.com "10 requests"
"$G" admin quotas --gateway "http://127.0.0.1:$A" --json >"$W/q.json"
assert_eq "capacity shown" 10 "$(jq_py "print([b['capacity'] for b in d['buckets'] if b['bucket'] == 'calls:alice@example.com'][0])" <"$W/q.json")"
stop_gateway "$GW_PID"

section "two replicas share one redis-server"
if [ -x /usr/bin/redis-server ]; then
  RPORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  /usr/bin/redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$W/redis.log" 2>&1 &
  REDIS_PID=$!
  LIB_PIDS+=("$REDIS_PID")
  wait_for "redis-server up" 50 bash -c "exec 3<>/dev/tcp/127.0.0.1/$RPORT"
  RQ='{"store": {"kind": "redis", "address": "127.0.0.1:'"$RPORT"'"},
       "buckets": {"team": {"rate": "4 requests/day"}},
       "rules": [{"src": ["*"], "buckets": ["team"]}]}'
  write_config r1 "$RQ"
  write_config r2 "$RQ"
  start_gateway r1
  P1=$GW_PORT R1=$GW_PID
  start_gateway r2
  P2=$GW_PORT R2=$GW_PID
  codes=""
  for p in "$P1" "$P2" "$P1" "$P2" "$P1" "$P2"; do codes="$codes $(call "$p")"; done
  assert_eq "4 served then 429, alternating replicas" " 200 200 200 200 429 429" "$codes"
  assert_eq "both replicas see the same level" "$(level "$P1" team)" "$(level "$P2" team)"
  section "redis outage: fail_closed"
  kill -TERM "$REDIS_PID"
  wait_pid_exit "$REDIS_PID" 50 || true
  assert_eq "503 while redis is down" 503 "$(call "$P1")"
  check "the gateway logged the outage" grep -q 'quota store_error' "$W/r1/gateway.log"
  stop_gateway "$R1"
  stop_gateway "$R2"
else
  log "no /usr/bin/redis-server: replica section skipped"
fi

section "a bucket spec that does not parse"
write_config bad '{"buckets": {"daily:<user>": {"rate": "5 dollars/day"}},
  "rules": [{"src": ["*"], "buckets": ["daily:<user>"]}]}'
rc=0
"$G" gateway --config "$W/bad/gateway.hujson" --no-mesh --state-dir "$W/bad/state" >"$W/bad.out" 2>&1 ||
  rc=$?
assert_eq "the gateway refuses the config" 2 "$rc"
sed 's/^/  | /' "$W/bad.out"
check "the error names file:line:column" grep -q "gateway.hujson:[0-9]*:[0-9]*: quotas: bucket \"daily:<user>\"" "$W/bad.out"
check "the error shows the expected form" grep -q 'expected AMOUNT/PERIOD such as "\$5.00/day"' "$W/bad.out"
check_not "no follow-on error for the rule naming it" grep -q 'which is not in' "$W/bad.out"

finish
