#!/usr/bin/env bash
# `gatehouse dev` end to end, as a user runs it: start it on a free port, wait for its ready line,
# run the curl line it prints (JSON and streaming), call it with the official Anthropic and OpenAI
# SDKs (key "-"), then Ctrl-C (SIGINT) it and check that it and every child exit within 5 s, that
# nothing listens on the port any more and that its temporary state directory is gone. On the way,
# `gatehouse admin logs|usage` read the log through the gateway and straight from its database.
# Usage: test_dev.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init dev "${1:-}"
G=$GATEHOUSE_BIN
HERE=$(cd "$(dirname "$0")/../gateway" && pwd)
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v curl >/dev/null || die "missing curl"
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); $1"; }
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$WORKDIR/dev.log

section "gatehouse dev --port $PORT"
# Unset real keys so the built-in mock answers (this test never reaches the internet).
env -u ANTHROPIC_API_KEY -u OPENAI_API_KEY "$G" dev --port "$PORT" >"$LOG" 2>&1 &
DEV_PID=$!
LIB_PIDS+=("$DEV_PID")
for ((i = 0; i < 900; i++)); do
  grep -q "gatehouse dev: ready" "$LOG" && break
  kill -0 "$DEV_PID" 2>/dev/null || break
  sleep 0.1
done
if grep -q "gatehouse dev: ready" "$LOG"; then
  pass "ready in $((i / 10)) s: $(grep -o 'ready on .*' "$LOG")"
else
  cat "$LOG" >&2
  die "gatehouse dev did not get ready"
fi
sed 's/^/  | /' "$LOG"
STATE=$(sed -n 's/^  state and logs: \([^ ]*\).*/\1/p' "$LOG")
CURL_LINE=$(grep '^  curl ' "$LOG" | head -1 | sed 's/^  //')
check "the printed curl line names the port" grep -q "http://127.0.0.1:$PORT/v1/messages" <<<"$CURL_LINE"
check "the Claude Code line is printed" grep -q "ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=-" "$LOG"

section "the printed curl line"
out=$(eval "$CURL_LINE -s --max-time 20") || true
if jq_py "sys.exit(0 if d['content'][0]['text'] == 'mock: Hello from the mesh' and d['usage']['output_tokens'] > 0 else 1)" <<<"$out" 2>/dev/null; then
  pass "JSON answer: $(jq_py "print(d['content'][0]['text'], '| usage', d['usage']['input_tokens'], d['usage']['output_tokens'])" <<<"$out")"
else
  fail "JSON answer"
  show_output "$out"
fi
STREAM_LINE=${CURL_LINE/\"max_tokens\":256,/\"max_tokens\":256,\"stream\":true,}
out=$(eval "$STREAM_LINE -sN --max-time 20") || true
text=$(printf '%s\n' "$out" | sed -n 's/^data: //p' | "$PYTHON" -c '
import json, sys
t = ""
for line in sys.stdin:
    d = json.loads(line)
    if d.get("type") == "content_block_delta": t += d["delta"]["text"]
print(t)' 2>/dev/null) || true
events=$(printf '%s\n' "$out" | sed -n 's/^event: //p' | tr '\n' ' ')
if [ "$text" = "mock: Hello from the mesh" ] && [[ $events == message_start*message_delta\ message_stop\  ]]; then
  pass "streaming answer: $events"
else
  fail "streaming answer (text '$text', events '$events')"
  show_output "$out"
fi

section "official SDKs with key \"-\""
sdk_ok() { # DESC PYTHON-ASSERTION ARGS...
  local desc=$1 expr=$2 out
  shift 2
  out=$(env NODE_NO_WARNINGS=1 node "$HERE/sdk_client.mjs" --base-url "http://127.0.0.1:$PORT" \
    --api-key - --timeout 20000 "$@" 2>&1) || true
  if printf '%s' "$out" | tail -n 1 | jq_py "sys.exit(0 if d.get('ok') and ($expr) else 1)" 2>/dev/null; then
    pass "$desc"
  else
    fail "$desc"
    show_output "$out"
  fi
}
if command -v node >/dev/null && [ -d "$HERE/node_modules/openai" ]; then
  sdk_ok "@anthropic-ai/sdk messages" "d['text'] == 'mock: hello there'" --provider anthropic \
    --scenario messages --model claude-sonnet-4-5 --prompt "hello there"
  sdk_ok "openai chat" "d['text'] == 'mock: hi'" --provider openai --scenario chat \
    --model gpt-5 --prompt "hi"
else
  fail "SDKs missing: run npm ci --prefix tests/gateway"
fi

section "gatehouse admin reads the log (the dev user is an admin)"
GW="http://127.0.0.1:$PORT"
out=$("$G" admin logs --gateway "$GW" 2>&1) && rc=0 || rc=$?
assert_eq "admin logs: exit 0" 0 "$rc"
rows=$(grep -c " dev@gatehouse.dev " <<<"$out" || true)
check "admin logs: a header and a row per call, by the dev user ($rows rows)" \
  bash -c '[ "$2" -ge 4 ] && head -1 <<<"$1" | grep -q "^TIME (UTC) *ID *WHO *MODEL *STATUS"' _ "$out" "$rows"
newest=$("$G" admin logs --gateway "$GW" --model claude-sonnet-4-5 --limit 1 --json |
  jq_py "print(d['requests'][0]['id'])") || true
one=$("$G" admin logs --gateway "$GW" "$newest" 2>&1) || true
check "admin logs ID: the whole record with its request body" \
  jq_py "sys.exit(0 if d['id'] == '$newest' and d.get('request_body') else 1)" <<<"$one"
out=$("$G" admin usage --by model --gateway "$GW" 2>&1) && rc=0 || rc=$?
assert_eq "admin usage --by model: exit 0" 0 "$rc"
check "admin usage: claude-sonnet-4-5 row, gpt-5 row and TOTAL" \
  bash -c 'grep -q "^claude-sonnet-4-5 " <<<"$1" && grep -q "^gpt-5 " <<<"$1" && grep -q "^TOTAL " <<<"$1"' _ "$out"
total_api=$(curl -s "$GW/api/usage?group_by=user" | jq_py "print(sum(r['requests'] for r in d['rows']))")
total_db=$("$G" admin usage --by user --json --db "$STATE/gateway-logs.db" | jq_py "print(sum(r['requests'] for r in d['rows']))") || true
assert_eq "admin usage --db reads the same log from the file" "$total_api" "$total_db"
out=$("$G" admin logs --gateway "$GW" --since yesterday 2>&1) && rc=0 || rc=$?
assert_eq "a bad --since: exit 2" 2 "$rc"
check "… naming the forms it takes" grep -q "want Unix ms, a date" <<<"$out"
DEAD=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$("$G" admin logs --gateway "http://127.0.0.1:$DEAD" 2>&1) && rc=0 || rc=$?
assert_eq "an unreachable gateway: exit 2" 2 "$rc"
check "… with the address and the reason" grep -q "cannot reach the gateway at http://127.0.0.1:$DEAD" <<<"$out"

section "Ctrl-C stops everything"
KIDS=$(pgrep -P "$DEV_PID" | tr '\n' ' ' || true)
check "dev runs its children (pids $KIDS)" test -n "$KIDS"
kill -INT "$DEV_PID"
gone() {
  local p
  kill -0 "$DEV_PID" 2>/dev/null && return 1
  for p in $KIDS; do kill -0 "$p" 2>/dev/null && return 1; done
  return 0
}
for ((i = 0; i < 50; i++)); do
  gone && break
  sleep 0.1
done
if gone; then
  pass "dev and its children exited within $((i / 10)).$((i % 10)) s"
else
  fail "still running 5 s after SIGINT: $(ps -o pid=,args= -p "$DEV_PID,${KIDS// /,}" 2>/dev/null | tr '\n' ';')"
fi
wait "$DEV_PID" 2>/dev/null && rc=0 || rc=$?
assert_eq "exit status after SIGINT" 0 "$rc"
check_not "nothing listens on 127.0.0.1:$PORT" bash -c "ss -Hltn 'sport = :$PORT' | grep -q ."
check "the temporary state directory is removed" test -n "$STATE" -a ! -e "$STATE"
check "it said it stopped" grep -q "gatehouse dev: stopped" "$LOG"
finish
