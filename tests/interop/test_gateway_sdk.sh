#!/usr/bin/env bash
# The LLM gateway end to end, with the official SDKs behind a real tunnel.
#
#   namespace gw:  gatehouse control, the mock provider (HTTPS, test CA), gatehouse gateway ("ai",
#                  tag:ai) joined to the mesh
#   namespace cli: three `gatehouse up` nodes (alice in group:eng, the review bot tagged
#                  tag:pr-review-bot, bob), each forwarding 127.0.0.1:PORT → ai:80 through
#                  WireGuard; the `@anthropic-ai/sdk` and `openai` packages run here with key "-"
#
# Asserts: every SDK call (JSON and streaming; Messages, count_tokens, models; Chat; Responses)
# works; the mock saw the real key and never "-"; bodies pass byte for byte; the log has the
# right identity (a user and a tagged node), tokens and cost; an identity without a grant gets a
# provider-shaped 403 and a forged identity header changes nothing; a bad upstream certificate
# gives 502 with a clear message; a client disconnect mid-stream closes the upstream within 1 s
# and logs partial usage; an `rm -rf /` tool call is replaced by an explanation the SDK accepts
# (Anthropic, Chat and Responses; streamed and JSON) while a harmless one arrives byte-identical;
# the tool calls of the SDK turns are in /api/tools with their argv;
# `kill -9` of the gateway after N requests loses no record.
# Usage: test_gateway_sdk.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init gateway_sdk "${1:-}"
G=$GATEHOUSE_BIN
HERE=$(cd "$(dirname "$0")/../gateway" && pwd)
[ -x "$G" ] || die "gatehouse binary not found: '$G'"
command -v node >/dev/null || die "missing node (run tools/install-deps.sh)"
[ -d "$HERE/node_modules/openai" ] || die "missing SDKs: run npm ci --prefix tests/gateway"

NS_GW="gw$LIB_TAG"
NS_CLI="cli$LIB_TAG"
ns_create "$NS_GW"
ns_create "$NS_CLI"
veth_link "$NS_GW" "$NS_CLI" 1
GW_IP=10.231.1.1
CLI_IP=10.231.1.2
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); $1"; }
free_port() { nsx "$1" "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # FILE PATTERN TENTHS
  local i
  for ((i = 0; i < $3; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$1" >&2
  return 1
}

section "mock provider (HTTPS, test CA) and control server"
bash "$HERE/make_test_ca.sh" "$WORKDIR/tls" >/dev/null
REAL_ANT="sk-ant-real-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
REAL_OAI="sk-oai-real-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
spawn "$NS_GW" "$WORKDIR/mock.log" node "$HERE/mock_provider.mjs" --port 0 \
  --port-file "$WORKDIR/mock.port" --tls-cert "$WORKDIR/tls/server.pem" \
  --tls-key "$WORKDIR/tls/server.key" --anthropic-key "$REAL_ANT" --openai-key "$REAL_OAI"
wait_file "$WORKDIR/mock.port" 100 || die "mock provider did not start"
MOCK_PORT=$(cat "$WORKDIR/mock.port")
mock() { nsx "$NS_GW" curl -s --cacert "$WORKDIR/tls/ca.pem" "https://127.0.0.1:$MOCK_PORT$1" "${@:2}"; }

cat >"$WORKDIR/policy.hujson" <<'EOF'
{
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:ai": ["group:eng"], "tag:pr-review-bot": ["group:eng"]},
  "grants": [
    // Everyone may reach the gateway's HTTP port; what they may call is the gateway's business.
    {"src": ["autogroup:member", "tag:pr-review-bot"], "dst": ["tag:ai"], "ip": ["tcp:80"]},
    // The review bot's model grant arrives as an app capability on the gateway node.
    {"src": ["tag:pr-review-bot"], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/ai": [{"models": ["anthropic/claude-*"], "role": "user"}]}},
  ],
}
EOF
CPORT=7443
spawn "$NS_GW" "$WORKDIR/control.log" "$G" control --state "$WORKDIR/control.db" \
  --policy "$WORKDIR/policy.hujson" --listen "$GW_IP:$CPORT" --admin-socket "$WORKDIR/admin.sock"
wait_line "$WORKDIR/control.log" "server key" 100 || die "control server did not start"
CKEY=$(sed -n 's/.*server key \([A-Za-z0-9+/=]*\).*/\1/p' "$WORKDIR/control.log" | head -1)
admin() { "$G" admin --socket "$WORKDIR/admin.sock" "$@"; }
new_key() { admin --json keys create "$@" | jq_py 'print(d["secret"])'; }
admin users create alice@example.com --display-name "Alice Archer" >/dev/null
admin users create bob@example.com --display-name "Bob Baker" >/dev/null

section "gateway joins the mesh as \"ai\""
printf '%s\n' "$REAL_OAI" >"$WORKDIR/openai.key"
chmod 600 "$WORKDIR/openai.key"
cat >"$WORKDIR/gateway.hujson" <<EOF
{
  "hostname": "ai",
  "providers": {
    "anthropic": {"kind": "anthropic", "base_url": "https://127.0.0.1:$MOCK_PORT",
                  "key": "env:GH_TEST_ANTHROPIC_KEY", "models": ["claude-sonnet-4-5", "claude-*"],
                  "ca_file": "$WORKDIR/tls/ca.pem"},
    "openai": {"kind": "openai", "base_url": "https://127.0.0.1:$MOCK_PORT",
               "key": "file:$WORKDIR/openai.key", "models": ["gpt-5", "gpt-*", "o4-*"],
               "ca_file": "$WORKDIR/tls/ca.pem"},
    // No test CA: its certificate cannot be verified.
    "untrusted": {"kind": "openai", "base_url": "https://127.0.0.1:$MOCK_PORT",
                  "key": "file:$WORKDIR/openai.key", "models": ["untrusted-*"]},
  },
  "grants": [
    {"src": ["group:eng"], "models": ["anthropic/*", "openai/*", "untrusted/*"], "role": "admin"},
  ],
  "logging": {"database": "$WORKDIR/gateway-logs.db", "bodies": true},
  "prices": "$WORKDIR/prices.hujson",
}
EOF
# The operator's price override (USD per million tokens): exact figures to check the arithmetic.
cat >"$WORKDIR/prices.hujson" <<'EOF'
{
  "version": "test-1",
  "providers": {
    "anthropic": {"models": {"claude-*": {"input": "3", "output": "15"}}},
    "openai": {"models": {"gpt-5": {"input": "1.25", "cache_read": "0.125", "output": "10"}}},
  },
}
EOF
KEY_GW=$(new_key --user alice@example.com --tags tag:ai --reusable)
start_gateway() {
  : >"$WORKDIR/gateway.log"
  BG_PID=""
  ip netns exec "$NS_GW" env GH_TEST_ANTHROPIC_KEY="$REAL_ANT" "$G" gateway \
    --config "$WORKDIR/gateway.hujson" --control "$GW_IP:$CPORT" --control-key "$CKEY" \
    --authkey "$KEY_GW" --state-dir "$WORKDIR/gw" --advertise "$GW_IP" \
    >>"$WORKDIR/gateway.log" 2>&1 &
  GW_PID=$!
  LIB_PIDS+=("$GW_PID")
  wait_line "$WORKDIR/gateway.log" "gateway: ready" 150 || die "gateway did not start"
}
start_gateway
pass "gateway up: $(grep -o 'serving .*' "$WORKDIR/gateway.log" | head -1)"

section "three client nodes in another namespace, forwarding to ai:80 through the tunnel"
declare -A FWD=()
for who in alice bot bob; do
  case $who in
    alice) key=$(new_key --user alice@example.com) ;;
    bot) key=$(new_key --user alice@example.com --tags tag:pr-review-bot) ;;
    bob) key=$(new_key --user bob@example.com) ;;
  esac
  FWD[$who]=$(free_port "$NS_CLI")
  spawn "$NS_CLI" "$WORKDIR/$who.log" "$G" up --control "$GW_IP:$CPORT" --control-key "$CKEY" \
    --authkey "$key" --state-dir "$WORKDIR/$who" --hostname "$who" --advertise "$CLI_IP" \
    --forward "127.0.0.1:${FWD[$who]}=ai:80"
done
for who in alice bot bob; do
  wait_line "$WORKDIR/$who.log" "ready; local API" 150 || die "$who did not join"
done
pass "alice, bot and bob joined"

# wait_for_ok DESC TENTHS CMD...: passes once CMD succeeds within TENTHS × 0.1 s.
wait_for_ok() {
  local desc=$1 tenths=$2 i start=$SECONDS
  shift 2
  for ((i = 0; i < tenths; i++)); do
    if "$@" >/dev/null 2>&1; then
      pass "$desc (after $((SECONDS - start)) s)"
      return 0
    fi
    sleep 0.1
  done
  fail "$desc (not within $((tenths / 10)) s)"
}
sdk() { # WHO ARGS...: one SDK call from WHO's namespace through WHO's forward
  local who=$1
  shift
  nsx "$NS_CLI" env NODE_NO_WARNINGS=1 node "$HERE/sdk_client.mjs" --base-url "http://127.0.0.1:${FWD[$who]}" \
    --api-key - --timeout 20000 "$@"
}
sdk_ok() { # DESC WHO ARGS... [-- PYTHON-ASSERTION on d]
  local desc=$1 who=$2 out
  shift 2
  local args=() expr="True"
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
      expr=$2
      break
    fi
    args+=("$1")
    shift
  done
  out=$(sdk "$who" "${args[@]}" 2>&1) || true
  if printf '%s' "$out" | tail -n 1 | jq_py "sys.exit(0 if d.get('ok') and ($expr) else 1)" 2>/dev/null; then
    pass "$desc"
  else
    fail "$desc"
    show_output "$out"
  fi
}

section "official SDKs with API key \"-\" (alice: group:eng)"
for auth in sdk x-api-key; do
  sdk_ok "anthropic messages (key as $auth)" alice --provider anthropic --scenario messages \
    --anthropic-auth "$auth" --model claude-sonnet-4-5 --prompt "hello there" \
    -- "d['text'] == 'mock: hello there'"
done
sdk_ok "anthropic messages stream with a tool call" alice --provider anthropic \
  --scenario messages-stream --model claude-sonnet-4-5 \
  --prompt 'list files [[mock:tool_use Bash "ls -la /tmp"]]' \
  -- "d['tool_calls'][0]['input'] == {'command': 'ls -la /tmp'} and d['stop_reason'] == 'tool_use'"
sdk_ok "a streamed rm -rf / tool_use is replaced: no tool_use, the explanation, end_turn" alice \
  --provider anthropic --scenario messages-stream --model claude-sonnet-4-5 \
  --prompt 'clean up [[mock:tool_use Bash "rm -rf /"]]' \
  -- "d['tool_calls'] == [] and d['content_types'] == ['text'] and 'rm-rf-root' in d['text'] and 'rm -rf /' in d['text'] and d['stop_reason'] == 'end_turn'"
sdk_ok "anthropic count_tokens" alice --provider anthropic --scenario count-tokens \
  --model claude-sonnet-4-5 -- "d['input_tokens'] > 0"
# /v1/models lists the concrete model names of the providers' lists that the caller's grants
# allow (patterns cannot be listed): alice may use both providers.
sdk_ok "anthropic models.list: alice's granted models" alice --provider anthropic --scenario models \
  -- "sorted(d['models']) == ['claude-sonnet-4-5', 'gpt-5']"
sdk_ok "openai chat" alice --provider openai --scenario chat --model gpt-5 --prompt "hi" \
  -- "d['text'] == 'mock: hi'"
sdk_ok "openai chat stream with include_usage" alice --provider openai --scenario chat-stream \
  --model gpt-5 --prompt 'go [[mock:tokens in=1200 out=80 cache_read=1000 reasoning=30]]' \
  -- "d['usage']['prompt_tokens'] == 2200 and d['usage']['completion_tokens'] == 80"
sdk_ok "openai responses" alice --provider openai --scenario responses --model gpt-5 \
  --prompt "hey" -- "d['text'] == 'mock: hey'"
sdk_ok "openai responses stream with a function call" alice --provider openai \
  --scenario responses-stream --model gpt-5 --prompt 'x [[mock:tool_use shell "git status"]]' \
  -- "len(d['tool_calls']) == 1"
sdk_ok "openai models.list: alice's granted models" alice --provider openai --scenario models \
  -- "sorted(d['models']) == ['claude-sonnet-4-5', 'gpt-5']"

section "guardrails in OpenAI Chat and Responses (streamed and JSON) and Anthropic JSON"
RM='[[mock:text "Cleaning up."]] [[mock:tool_use shell "rm -rf /"]]'
HARMLESS='[[mock:text "Checking."]] [[mock:tool_use shell "git diff --stat"]]'
BLOCKED="d['tool_calls'] == [] and 'rm-rf-root' in d['text'] and '(rm -rf /)' in d['text']"
for sc in chat-stream chat-stream-raw chat; do
  sdk_ok "$sc: the rm -rf / call never arrives, the explanation does, finish_reason stop" alice \
    --provider openai --scenario "$sc" --model gpt-5 --prompt "$RM" \
    -- "$BLOCKED and d['text'].startswith('Cleaning up.') and d['stop_reason'] == 'stop'"
done
sdk_ok "responses stream: finalResponse() has a message where the call was" alice \
  --provider openai --scenario responses-stream --model gpt-5 --prompt "$RM" \
  -- "$BLOCKED and d['output_types'] == ['message', 'message'] and d['status'] == 'completed'"
sdk_ok "responses stream (raw): sequence_number still 0, 1, 2, ... after the rewrite" alice \
  --provider openai --scenario responses-stream-raw --model gpt-5 --prompt "$RM" \
  -- "$BLOCKED and d['sequence_ok'] and d['output_types'] == ['message', 'message']"
sdk_ok "responses JSON: a message item where the call was" alice \
  --provider openai --scenario responses --model gpt-5 --prompt "$RM" \
  -- "$BLOCKED and d['output_types'] == ['message', 'message']"
sdk_ok "anthropic JSON: the tool_use is a text block, stop_reason end_turn" alice \
  --provider anthropic --scenario messages --model claude-sonnet-4-5 \
  --prompt 'clean up [[mock:tool_use Bash "rm -rf /"]]' \
  -- "d['tool_calls'] == [] and d['content_types'] == ['text'] and 'rm-rf-root' in d['text'] and d['stop_reason'] == 'end_turn'"
# same_bytes DESC ASSERTION ARGS...: the body the SDK read hashes like the one the mock wrote.
same_bytes() {
  local desc=$1 expr=$2 out got want
  shift 2
  out=$(sdk alice --hash-body "$@" 2>&1) || true
  got=$(printf '%s' "$out" | tail -n 1 | jq_py "print(d.get('body_sha256') if d.get('ok') and ($expr) else 'bad')" 2>/dev/null)
  want=$(mock '/__mock/requests?limit=1' | jq_py "print((d['records'] if isinstance(d, dict) else d)[-1]['response_sha256'])")
  if [ -n "$got" ] && [ "$got" != bad ] && [ "$got" = "$want" ]; then
    pass "$desc"
  else
    fail "$desc (client $got, provider $want)"
    show_output "$out"
  fi
}
CALL_OK="d['tool_calls'][0]['input'] == {'command': 'git diff --stat'}"
for sc in chat-stream chat responses-stream responses; do
  same_bytes "$sc with a harmless call: byte-identical to the provider's body" "$CALL_OK" \
    --provider openai --scenario "$sc" --model gpt-5 --prompt "$HARMLESS"
done

section "the provider saw the real key, never the placeholder"
mock /__mock/requests >"$WORKDIR/mock_requests.json"
keys_ok=$(jq_py "
recs = d['records'] if isinstance(d, dict) else d
bad = []
for r in recs:
    h = {k.lower(): v for k, v in r['headers'].items()} if isinstance(r['headers'], dict) else {}
    creds = [h.get('x-api-key'), h.get('authorization')]
    creds = [c for c in creds if c is not None]
    if any(c in ('-', 'Bearer -') for c in creds): bad.append(('placeholder', r['path']))
    if not creds: bad.append(('none', r['path']))
    for c in creds:
        if '$REAL_ANT' not in c and '$REAL_OAI' not in c: bad.append(('other', r['path']))
    if any(k.startswith('x-gatehouse-') or k.startswith('tailscale-') for k in h): bad.append(('identity', r['path']))
print('ok %d' % len(recs) if not bad else bad)
" <"$WORKDIR/mock_requests.json")
check "every upstream request carried the real key ($keys_ok)" grep -q '^ok [1-9]' <<<"$keys_ok"

section "byte-exact pass-through"
BODY='{"model":"claude-sonnet-4-5",  "max_tokens": 64, "messages":[{"role":"user","content":"exact \u00e9 bytes"}], "x_unknown_field": {"kept": [1, 2.50, true]}}'
printf '%s' "$BODY" >"$WORKDIR/req.json"
nsx "$NS_CLI" curl -s -o "$WORKDIR/count_gw.json" -H 'content-type: application/json' \
  -H 'anthropic-version: 2023-06-01' -H 'x-api-key: -' -H 'anthropic-beta: test-beta-2026' \
  --data-binary @"$WORKDIR/req.json" "http://127.0.0.1:${FWD[alice]}/v1/messages/count_tokens?beta=true"
mock '/__mock/requests?limit=1' >"$WORKDIR/last.json"
got=$(jq_py "r=(d['records'] if isinstance(d, dict) else d)[-1]; print(r['body'] == open('$WORKDIR/req.json').read() and r['path'].endswith('?beta=true') and [v for k,v in r['headers'].items() if k.lower()=='anthropic-beta'] == ['test-beta-2026'])" <"$WORKDIR/last.json")
assert_eq "request body, query string and anthropic-beta reached the provider unchanged" "True" "$got"
mock /v1/messages/count_tokens?beta=true -H 'content-type: application/json' \
  -H 'anthropic-version: 2023-06-01' -H "x-api-key: $REAL_ANT" --data-binary @"$WORKDIR/req.json" \
  -o "$WORKDIR/count_direct.json"
check "response body through the gateway is byte-identical to the provider's" \
  cmp "$WORKDIR/count_gw.json" "$WORKDIR/count_direct.json"

section "identity: a tagged node with a capability grant; a user without a grant"
sdk_ok "bot (tag:pr-review-bot, capability grant) may use claude" bot --provider anthropic \
  --scenario messages --model claude-haiku-4-5 --prompt "review"
sdk_ok "bot's models.list holds only what its capability grants (no gpt-5)" bot --provider openai \
  --scenario models -- "d['models'] == ['claude-sonnet-4-5']"
out=$(sdk bot --provider openai --scenario chat --model gpt-5 --prompt "x")
got=$(printf '%s' "$out" | tail -n1 | jq_py "e=d['error']; print(e['status'], e.get('type'))")
assert_eq "bot has no grant for openai/gpt-5: 403 in OpenAI's shape" "403 permission_error" "$got"
out=$(sdk bob --provider anthropic --scenario messages --model claude-sonnet-4-5 --prompt "x")
got=$(printf '%s' "$out" | tail -n1 | jq_py "e=d['error']; print(e['status'], e.get('type'))")
assert_eq "bob has no grant: 403 in Anthropic's shape" "403 permission_error" "$got"
check "…and the message names bob and the model" grep -q 'bob@example.com.*claude-sonnet-4-5' <<<"$out"
out=$(sdk bob --provider anthropic --scenario messages --model claude-sonnet-4-5 --prompt "x" \
  --header 'x-gatehouse-user: alice@example.com' --header 'tailscale-user-login: alice@example.com' \
  --header 'x-forwarded-user: alice@example.com')
got=$(printf '%s' "$out" | tail -n1 | jq_py "print(d['error']['status'])")
assert_eq "forged identity headers change nothing: still 403" "403" "$got"

section "upstream failures"
out=$(sdk alice --provider openai --scenario chat --model untrusted-1 --prompt "x")
got=$(printf '%s' "$out" | tail -n1 | jq_py "e=d['error']; print(e['status'])")
assert_eq "untrusted upstream certificate: 502" "502" "$got"
check "…with a clear message" grep -qi 'certificate' <<<"$out"
check_not "…that never shows a key" grep -q "$REAL_OAI" <<<"$out"

section "client disconnect mid-stream"
mock /__mock/reset -X POST >/dev/null
out=$(sdk alice --provider anthropic --scenario messages-stream-raw --model claude-sonnet-4-5 \
  --prompt 'long [[mock:long 400]] [[mock:slow 20]]' --abort-after-events 10)
t_abort=$(printf '%s' "$out" | tail -n1 | jq_py "print(d.get('aborted_at') or '')")
sleep 2
closed=$(mock /__mock/requests | jq_py "r=(d['records'] if isinstance(d, dict) else d)[-1]; print(r.get('closed_at'), r.get('closed_by'), r.get('interrupted'))")
log "abort at $t_abort, upstream: $closed"
got=$("$PYTHON" - "$t_abort" "$closed" <<'EOF'
import sys
from datetime import datetime
def ms(x):
    try: return float(x)
    except ValueError: return datetime.fromisoformat(x.replace('Z', '+00:00')).timestamp() * 1000
a = ms(sys.argv[1]); c = sys.argv[2].split()
print('ok' if c[0] != 'None' and 0 <= ms(c[0]) - a < 1000 else 'late %s' % c)
EOF
)
assert_eq "the upstream connection closed within 1 s of the client" "ok" "$got"

section "request log: identity, tokens, cost (admin API through the tunnel)"
sleep 1
nsx "$NS_CLI" curl -s "http://127.0.0.1:${FWD[alice]}/api/requests?limit=200" >"$WORKDIR/requests.json"
got=$(jq_py "
recs = d['requests'] if 'requests' in d else d['records']
a = [r for r in recs if r['identity']['user_login'] == 'alice@example.com' and r['status'] == 200]
b = [r for r in recs if 'tag:pr-review-bot' in r['identity']['tags'] and r['status'] == 200 and r['api_kind'] == 'anthropic.messages']
m = [r for r in recs if 'tag:pr-review-bot' in r['identity']['tags'] and r['api_kind'] == 'models']
chat = [r for r in a if r['api_kind'] == 'openai.chat' and r['tokens'].get('cache_read') == 1000]
print(len(a) >= 8, len(b) == 1 and len(m) == 1 and m[0]['status'] == 200, len(chat) == 1 and chat[0]['tokens']['input'] == 1200 and chat[0]['tokens']['output'] == 80 and chat[0]['tokens']['reasoning'] == 30 and chat[0].get('cost_nanodollars') == 2425000)
" <"$WORKDIR/requests.json")
# 1200 × $1.25 + 1000 cached × $0.125 + 80 × $10 per million = $0.002425 = 2,425,000 nano-dollars.
assert_eq "alice's requests, the bot's (by tag) and exact tokens + cost for the chat stream" \
  "True True True" "$got"
log "chat records: $(jq_py "print([(r['model'], r['tokens'], r.get('cost_nanodollars')) for r in d.get('requests', d.get('records', [])) if r['api_kind'] == 'openai.chat'])" <"$WORKDIR/requests.json")"
got=$(jq_py "
recs = d['requests'] if 'requests' in d else d['records']
p = [r for r in recs if r.get('error') == 'client disconnected']
print(len(p) == 1 and p[0]['partial'] and (p[0]['tokens'].get('input') or 0) > 0)
" <"$WORKDIR/requests.json")
assert_eq "the aborted stream is logged as partial with the usage seen so far" "True" "$got"
got=$(nsx "$NS_CLI" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${FWD[bob]}/api/requests")
assert_eq "bob is not an admin: 403 on /api" "403" "$got"
out=$(nsx "$NS_CLI" "$G" admin logs --gateway "http://127.0.0.1:${FWD[bob]}" 2>&1) && rc=0 || rc=$?
assert_eq "gatehouse admin logs as bob: refused (exit 1)" 1 "$rc"
check "… and says why (403, role admin)" grep -q "403.*role admin" <<<"$out"
out=$(nsx "$NS_CLI" "$G" admin usage --by user --gateway "http://127.0.0.1:${FWD[alice]}" 2>&1) && rc=0 || rc=$?
assert_eq "gatehouse admin usage as alice (admin) through the tunnel: exit 0" 0 "$rc"
check "… lists alice and the bot's tag by user with a TOTAL row" \
  bash -c 'grep -q "^alice@example.com " <<<"$1" && grep -q "^TOTAL " <<<"$1"' _ "$out"
check_not "no provider key in the log database" grep -qa -e "$REAL_ANT" -e "$REAL_OAI" \
  "$WORKDIR/gateway-logs.db" "$WORKDIR/gateway-logs.db-wal"

section "tool calls: the SDKs' tool_use and function_call land in /api/tools"
nsx "$NS_CLI" curl -s "http://127.0.0.1:${FWD[alice]}/api/tools?limit=100" >"$WORKDIR/tools.json"
got=$(jq_py "
calls = d['tool_calls']
bash = [c for c in calls if c['name'] == 'Bash' and c['command'] == 'ls -la /tmp']
shell = [c for c in calls if c['name'] == 'shell' and c['source'] == 'function_call' and c['command'] == 'git status']
rm = [c for c in calls if c['command'] == 'rm -rf /']
enforced = [{'rule': 'rm-rf-root', 'action': 'block', 'enforced': True}]
print(len(bash) == 1 and bash[0]['type'] == 'shell' and bash[0]['args_state'] == 'complete'
      and bash[0]['commands'] == [{'argv': ['ls', '-la', '/tmp']}] and bash[0]['guardrail'] == []
      and bash[0]['identity']['user_login'] == 'alice@example.com',
      len(shell) == 1 and shell[0]['commands'] == [{'argv': ['git', 'status']}],
      sorted((c['name'], c['source']) for c in rm) == sorted([('Bash', 'tool_use')] * 2 + [('shell', 'tool_calls')] * 3 + [('shell', 'function_call')] * 3)
      and all(c['guardrail'] == enforced for c in rm))
" <"$WORKDIR/tools.json")
assert_eq "the streamed Bash tool_use and the Responses shell call, typed, with argv; the 8 blocked calls, enforced" \
  "True True True" "$got"
got=$(nsx "$NS_CLI" curl -s "http://127.0.0.1:${FWD[alice]}/api/tools?command=ls%20-la" |
  jq_py "print(len(d['tool_calls']))")
assert_eq "/api/tools?command=ls -la finds it" "1" "$got"
got=$(nsx "$NS_CLI" curl -s "http://127.0.0.1:${FWD[alice]}/api/tools/stats" |
  jq_py "print(sum(r['by_type'].get('shell', 0) for r in d['rows']) >= 2)")
assert_eq "/api/tools/stats counts them as shell" "True" "$got"

section "kill -9 of the gateway loses no completed request"
before=$("$PYTHON" -c "import sqlite3; print(sqlite3.connect('$WORKDIR/gateway-logs.db').execute('select count(*) from requests').fetchone()[0])")
for i in 1 2 3 4 5; do
  sdk alice --provider anthropic --scenario messages --model claude-sonnet-4-5 --prompt "n$i" >/dev/null
done
kill -KILL "$GW_PID"
wait "$GW_PID" 2>/dev/null || true
after=$("$PYTHON" -c "import sqlite3; print(sqlite3.connect('$WORKDIR/gateway-logs.db').execute('select count(*) from requests').fetchone()[0])")
assert_eq "all 5 records are there after kill -9" "$((before + 5))" "$after"
start_gateway
serves() { sdk alice --provider anthropic --scenario messages --model claude-sonnet-4-5 \
  --prompt back 2>/dev/null | tail -n1 | jq_py "sys.exit(0 if d.get('ok') else 1)"; }
wait_for_ok "the restarted gateway serves again" 300 serves

finish
