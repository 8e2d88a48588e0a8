#!/usr/bin/env bash
# Hooks through real processes: `gatehouse mock-provider`, `gatehouse gateway --no-mesh` with a
# "hooks" section, curl as the client, and a Python receiver that is both the pre_request hook
# and the webhook endpoint. The receiver checks every webhook signature with Python's own
# hmac/hashlib (independent of the gateway's BoringSSL code) and logs each 2xx delivery by id.
# pre_request allow and block (403, Anthropic's shape); request_complete / tool_call /
# guardrail_block events arrive signed; with the receiver down, events stay in the outbox, the
# gateway is killed with SIGKILL, and after a restart every pending event is delivered exactly
# once; a hooks mistake stops the gateway with file:line:column.
# Usage: test_hooks_cli.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init hooks_cli "${1:-}"
G=$GATEHOUSE_BIN
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v curl >/dev/null || die "missing curl"
command -v sqlite3 >/dev/null || die "missing sqlite3"
W=$WORKDIR
SECRET=interop-webhook-secret

section "mock provider and receiver"
"$G" mock-provider --listen 127.0.0.1:0 --port-file "$W/mock.port" >"$W/mock.log" 2>&1 &
LIB_PIDS+=($!)
wait_for "mock provider port file" 50 test -s "$W/mock.port"
MOCK=$(cat "$W/mock.port")
RPORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/receiver.py" <<'PY'
import base64, hashlib, hmac, http.server, json, sys
port, secret, log = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/check":
            blocked = b"forbidden" in body
            out = json.dumps({"action": "block", "message": "the receiver says no"} if blocked
                             else {"action": "allow"}).encode()
        else:
            i, t = self.headers["webhook-id"], self.headers["webhook-timestamp"]
            mac = hmac.new(secret, f"{i}.{t}.".encode() + body, hashlib.sha256).digest()
            ok = self.headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
            with open(log, "a") as f:
                f.write("%s %s %s\n" % (i, json.loads(body)["type"], "sig_ok" if ok else "sig_bad"))
            out = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
start_receiver() {
  "$PYTHON" "$W/receiver.py" "$RPORT" "$SECRET" "$W/delivered.log" >>"$W/receiver.log" 2>&1 &
  RECV_PID=$!
  LIB_PIDS+=("$RECV_PID")
  wait_for "receiver up" 50 bash -c "exec 3<>/dev/tcp/127.0.0.1/$RPORT"
}
start_receiver

mkdir -p "$W/state"
cat >"$W/gateway.hujson" <<EOF
{
  "loopback_listen": "127.0.0.1:0",
  "loopback_identity": {"user": "alice@example.com"},
  "providers": {
    "anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:$MOCK", "local": true,
                  "models": ["claude-*"]},
  },
  "grants": [{"src": ["*"], "models": ["*"]}],
  "logging": {"database": "$W/logs.db"},
  "hooks": {
    "pre_request": {"url": "http://127.0.0.1:$RPORT/check", "timeout_ms": 2000,
                    "failure": "fail_open"},
    "webhooks": [{"url": "http://127.0.0.1:$RPORT/events", "secret": "env:HOOK_SECRET",
                  "events": ["request_complete", "tool_call", "guardrail_block"]}],
    "outbox": "$W/outbox.db",
  },
}
EOF
start_gateway() {
  rm -f "$W/state/loopback.port"
  HOOK_SECRET=$SECRET "$G" gateway --config "$W/gateway.hujson" --no-mesh --state-dir "$W/state" \
    >>"$W/gateway.log" 2>&1 &
  GW_PID=$!
  LIB_PIDS+=("$GW_PID")
  wait_for "gateway up" 100 test -s "$W/state/loopback.port"
  GW_PORT=$(cat "$W/state/loopback.port")
}
call() { # TEXT [EXTRA_JSON] → prints the status; the body in $W/body
  curl -s --max-time 10 -o "$W/body" -w '%{http_code}' \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H 'x-api-key: -' \
    --data-binary '{"model":"claude-test","max_tokens":32,'"${2:-}"'"messages":[{"role":"user","content":"'"$1"'"}]}' \
    "http://127.0.0.1:$GW_PORT/v1/messages"
}
delivered() { if [ -f "$W/delivered.log" ]; then wc -l <"$W/delivered.log"; else echo 0; fi; }
TOOLS='"tools":[{"name":"Bash","input_schema":{"type":"object"}}],'

section "pre_request: allow and block"
start_gateway
assert_eq "an allowed call is served" 200 "$(call "hello")"
check "the provider answered" grep -q 'mock: hello' "$W/body"
assert_eq "a blocked call is refused" 403 "$(call "forbidden words")"
check "Anthropic's error shape with the hook's message" grep -q \
  '"type":"permission_error","message":"blocked by the pre_request hook: the receiver says no"' "$W/body"

section "webhooks: signed events"
assert_eq "a call whose answer runs rm -rf /" 200 "$(call "bash: rm -rf /" "$TOOLS")"
wait_for "5 events delivered (3 request_complete, tool_call, guardrail_block)" 100 \
  bash -c "[ \$(wc -l <'$W/delivered.log') -ge 5 ]"
check "a tool_call event" grep -q ' tool_call sig_ok' "$W/delivered.log"
check "a guardrail_block event" grep -q ' guardrail_block sig_ok' "$W/delivered.log"
check_not "no bad signature" grep -q sig_bad "$W/delivered.log"

section "pending events survive SIGKILL"
kill -TERM "$RECV_PID"
wait_pid_exit "$RECV_PID" 50 || fail "receiver did not stop"
BEFORE=$(delivered)
assert_eq "served with the hook down (fail_open)" 200 "$(call "while the receiver is down")"
assert_eq "and another" 200 "$(call "bash: ls" "$TOOLS")"
wait_for "3 events pending in the outbox" 50 \
  bash -c "[ \$(sqlite3 '$W/outbox.db' 'select count(*) from outbox') -eq 3 ]"
sqlite3 "$W/outbox.db" 'select event_id from outbox' | sort >"$W/pending.ids"
kill -KILL "$GW_PID"
wait_pid_exit "$GW_PID" 50 || fail "gateway did not die"
start_receiver
start_gateway
wait_for "the pending events are delivered after the restart" 100 \
  bash -c "[ \$(wc -l <'$W/delivered.log') -ge $((BEFORE + 3)) ]"
sleep 1
tail -n +$((BEFORE + 1)) "$W/delivered.log" | awk '{print $1}' | sort >"$W/after.ids"
assert_same_file "exactly the pending ids, each once" "$W/pending.ids" "$W/after.ids"
check_not "no bad signature" grep -q sig_bad "$W/delivered.log"
assert_eq "the outbox is empty" 0 "$(sqlite3 "$W/outbox.db" 'select count(*) from outbox')"
kill -TERM "$GW_PID"
wait_pid_exit "$GW_PID" 100 || fail "gateway did not exit on SIGTERM"

section "a hooks mistake"
sed -i 's/"failure": "fail_open"/"failure": "fail_opne"/' "$W/gateway.hujson"
rc=0
HOOK_SECRET=$SECRET "$G" gateway --config "$W/gateway.hujson" --no-mesh >"$W/bad.out" 2>&1 || rc=$?
assert_eq "the gateway refuses the config" 2 "$rc"
sed 's/^/  | /' "$W/bad.out"
check "the error names file:line:column and the choices" grep -q \
  'gateway.hujson:[0-9]*:[0-9]*: hooks: "failure" must be one of fail_closed, fail_open' "$W/bad.out"

finish
