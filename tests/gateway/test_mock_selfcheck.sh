#!/usr/bin/env bash
# Self-check of the mock provider: starts mock_provider.mjs over HTTPS with a fresh test CA, runs
# sdk_client.mjs (the official @anthropic-ai/sdk and openai packages) against it directly with
# NODE_EXTRA_CA_CERTS, and checks what the SDKs return against the mock's documented behaviour
# and token formula (README.md). Prints "N passed, N failed"; exits non-zero on any failure.
#
#   bash tests/gateway/test_mock_selfcheck.sh
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

if [ ! -d node_modules/@anthropic-ai/sdk ] || [ ! -d node_modules/openai ]; then
  echo "test_mock_selfcheck: installing the SDKs (npm ci)"
  npm ci --no-audit --no-fund --silent || { echo "0 passed, 1 failed (npm ci)"; exit 1; }
fi

work=$(mktemp -d)
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ] && kill -0 "$mock_pid" 2>/dev/null; then kill -TERM "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null; fi
  [ -n "${KEEP_WORK:-}" ] && echo "work dir: $work" || rm -rf "$work"
}
trap cleanup EXIT

bash "$here/make_test_ca.sh" "$work/tls" >/dev/null || { echo "0 passed, 1 failed (make_test_ca.sh)"; exit 1; }

AKEY="sk-ant-api03-selfcheck-$RANDOM$RANDOM"
OKEY="sk-proj-selfcheck-$RANDOM$RANDOM"
node "$here/mock_provider.mjs" --port 0 --port-file "$work/port" --tls-cert "$work/tls/server.pem" \
  --tls-key "$work/tls/server.key" --anthropic-key "$AKEY" --openai-key "$OKEY" >"$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
if [ ! -s "$work/port" ]; then
  echo "mock did not start:"; cat "$work/mock.log"; echo "0 passed, 1 failed"; exit 1
fi
PORT=$(cat "$work/port")
BASE="https://127.0.0.1:$PORT"
export NODE_EXTRA_CA_CERTS="$work/tls/ca.pem"

OUT='{}'
REC='null'
nchecks=0
mkdir -p "$work/checks"

# client PROVIDER SCENARIO [sdk_client args...]: runs one SDK call with the right key; sets OUT
# (the client's JSON line) and REC (the mock's record of the last request).
client() {
  local provider=$1 scenario=$2
  shift 2
  local key=$AKEY
  [ "$provider" = openai ] && key=$OKEY
  client_as "$provider" "$scenario" "$key" "$@"
}
client_as() {
  local provider=$1 scenario=$2 key=$3
  shift 3
  OUT=$(node "$here/sdk_client.mjs" --provider "$provider" --base-url "$BASE" --api-key "$key" \
    --scenario "$scenario" "$@" 2>>"$work/client.err")
  [ -n "$OUT" ] || OUT='{"ok":false,"error":{"message":"no output"}}'
  fetch_record
}
fetch_record() {
  REC=$(curl -sS --cacert "$work/tls/ca.pem" "$BASE/__mock/requests?limit=1")
}

# check DESCRIPTION JS_EXPRESSION: saved with the current OUT and REC; all checks are evaluated
# in one node process at the end with r = client output, rec = the mock's record of the last
# request, tok(bytes) = ceil(bytes/4), u8(str) = UTF-8 byte length, eq = JSON equality.
check() {
  nchecks=$((nchecks + 1))
  local f
  f=$(printf '%s/checks/%03d' "$work" "$nchecks")
  printf '%s' "$1" >"$f.desc"
  printf '%s' "$2" >"$f.expr"
  printf '%s' "$OUT" >"$f.out"
  printf '%s' "$REC" >"$f.rec"
}

PROMPT='Hello from the SDK client'
export AKEY OKEY PROMPT

# ---------------------------------------------------------------- Anthropic
client anthropic messages
check "anthropic messages: plain text reply" 'r.ok && r.text === "mock: Hello from the SDK client" && r.stop_reason === "end_turn"'
check "anthropic messages: input_tokens = ceil(body bytes/4), no cache" \
  'r.usage.input_tokens === tok(rec.body_bytes) && r.usage.cache_read_input_tokens === 0 && r.usage.cache_creation_input_tokens === 0 && eq(r.usage.cache_creation, {ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0})'
check "anthropic messages: output_tokens = ceil(text bytes/4)" 'r.usage.output_tokens === tok(u8(r.text))'
check "anthropic messages: request-id header, key as bearer, path" \
  'r.request_id === rec.request_id && /^req_/.test(r.request_id) && rec.headers.authorization === "Bearer " + process.env.AKEY && rec.path === "/v1/messages"'

client anthropic messages --anthropic-auth x-api-key
check "anthropic messages: key accepted as x-api-key" 'r.ok && rec.headers["x-api-key"] === process.env.AKEY && rec.headers.authorization === undefined'

client anthropic messages-stream --prompt 'run it [[mock:text "Running it now."]] [[mock:tool_use Bash "rm -rf /"]]' --tools
check "anthropic stream helper: text + tool_use reassembled" \
  'r.ok && r.text === "Running it now." && r.tool_calls.length === 1 && r.tool_calls[0].name === "Bash" && eq(r.tool_calls[0].input, {command: "rm -rf /"}) && /^toolu_/.test(r.tool_calls[0].id) && r.stop_reason === "tool_use"'
check "anthropic stream helper: usage from message_start + message_delta" \
  'r.usage.input_tokens === tok(rec.body_bytes) && r.usage.output_tokens === tok(u8("Running it now.") + u8(JSON.stringify({command: "rm -rf /"})))'
check "anthropic stream: SSE event sequence recorded" 'rec.stream === true && rec.events === r.events + 1 && rec.finished_at !== null'

client anthropic messages-stream-raw --prompt 'x [[mock:tool_use Write {"file_path":"/tmp/ü.txt","content":"a \"q\" 🎉 ]] {x}"}]]'
check "anthropic raw stream: input_json_delta pieces concatenate to the input" \
  'r.ok && eq(r.tool_calls[0].input, {file_path: "/tmp/ü.txt", content: "a \"q\" 🎉 ]] {x}"}) && r.event_counts.content_block_delta === 6 && r.first_event === "message_start" && r.last_event === "message_stop"'
check "anthropic raw stream: tool-only reply has no text block" 'eq(r.content_types, ["tool_use"]) && r.text === ""'

client anthropic messages-stream --thinking
check "anthropic thinking: thinking block with signature, then text" \
  'r.ok && eq(r.content_types, ["thinking", "text"]) && r.thinking === "Thinking about: " + process.env.PROMPT && r.signature.length > 20'
check "anthropic thinking: thinking_tokens in output_tokens" \
  'r.usage.output_tokens_details.thinking_tokens === tok(u8(r.thinking)) && r.usage.output_tokens === tok(u8(r.text)) + tok(u8(r.thinking))'

client anthropic messages-stream --prompt 'count [[mock:tokens in=100 out=50 cache_read=30 cache_write_5m=20 cache_write_1h=10 reasoning=7]]'
check "anthropic tokens directive: exact usage (stream)" \
  'r.ok && r.usage.input_tokens === 100 && r.usage.output_tokens === 50 && r.usage.cache_read_input_tokens === 30 && r.usage.cache_creation_input_tokens === 30 && eq(r.usage.cache_creation, {ephemeral_5m_input_tokens: 20, ephemeral_1h_input_tokens: 10}) && r.usage.output_tokens_details.thinking_tokens === 7'
client anthropic messages --prompt 'count [[mock:tokens in=100 out=50 cache_read=30 cache_write_5m=20 cache_write_1h=10]]'
check "anthropic tokens directive: exact usage (JSON)" \
  'r.usage.input_tokens === 100 && r.usage.output_tokens === 50 && r.usage.cache_read_input_tokens === 30 && r.usage.cache_creation_input_tokens === 30'

client anthropic messages-stream-raw --prompt 'long [[mock:long 300]]'
check "anthropic long: 300 text deltas" 'r.ok && r.event_counts.content_block_delta === 300 && r.text.startsWith("w0 w1 ") && r.text.endsWith("w299 ") && r.usage.output_tokens === tok(u8(r.text))'

client anthropic count-tokens
check "anthropic count_tokens: ceil(body bytes/4)" 'r.ok && r.input_tokens === tok(rec.body_bytes) && rec.path === "/v1/messages/count_tokens"'
client anthropic models
check "anthropic models.list" 'r.ok && r.models.includes("claude-sonnet-5") && rec.provider === "anthropic"'

client_as anthropic messages "-"
check "anthropic 401 with the placeholder key" \
  'r.ok === false && r.error.status === 401 && r.error.type === "authentication_error" && r.error.message === "invalid x-api-key"'
client_as anthropic messages "wrong" --anthropic-auth x-api-key
check "anthropic 401 with a wrong x-api-key" 'r.error.status === 401 && r.error.type === "authentication_error"'

client anthropic messages --prompt 'x [[mock:status 529]]'
check "anthropic status 529: overloaded_error" 'r.error.status === 529 && r.error.type === "overloaded_error"'
client anthropic messages-stream --prompt 'x [[mock:status 429]]'
check "anthropic status 429: rate_limit_error" 'r.error.status === 429 && r.error.type === "rate_limit_error"'
client anthropic messages-stream --prompt 'x [[mock:error-after 3]]'
check "anthropic error-after 3: mid-stream error event" 'r.ok === false && r.error.type === "overloaded_error" && rec.events === 4'
client anthropic messages-stream --prompt 'x [[mock:abort-after 3]]'
check "anthropic abort-after 3: mock destroys the connection" \
  'r.ok === false && rec.events === 3 && rec.interrupted === true && rec.closed_by === "mock" && rec.closed_at !== null'

client anthropic messages-stream --header 'x-mock-scenario: tool_use Read {"file_path":"/etc/passwd"}; slow 5' \
  --header 'X-Gatehouse-User: mallory@example.com'
check "anthropic x-mock-scenario header + extra headers reach the mock" \
  'r.ok && r.tool_calls[0].name === "Read" && eq(r.tool_calls[0].input, {file_path: "/etc/passwd"}) && rec.headers["x-gatehouse-user"] === "mallory@example.com" && rec.scenario.slow === 5'

# Client disconnect: the client aborts after 3 events of a slow stream; the mock records when
# the connection closed.
client anthropic messages-stream-raw --prompt 'x [[mock:slow 100]] [[mock:long 50]]' --abort-after-events 3
for _ in $(seq 1 20); do
  [[ $REC == *'"closed_at":'[0-9]* ]] && break
  sleep 0.1
  fetch_record
done
check "client abort: closed_at recorded within 1 s, closed by the client" \
  'r.aborted === true && rec.interrupted === true && rec.closed_by === "client" && rec.closed_at - r.aborted_at < 1000 && rec.events < 10'

# ---------------------------------------------------------------- OpenAI Chat Completions
client openai chat
check "openai chat: plain text reply" 'r.ok && r.text === "mock: Hello from the SDK client" && r.stop_reason === "stop"'
check "openai chat: usage formula" \
  'r.usage.prompt_tokens === tok(rec.body_bytes) && r.usage.completion_tokens === tok(u8(r.text)) && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens && r.usage.prompt_tokens_details.cached_tokens === 0 && r.usage.completion_tokens_details.reasoning_tokens === 0'
check "openai chat: x-request-id header, bearer key" \
  'r.request_id === rec.request_id && rec.headers.authorization === "Bearer " + process.env.OKEY && rec.provider === "openai"'

client openai chat-stream --tools --prompt 'list [[mock:tool_use shell {"command":["ls","-la","/tmp"]}]]'
check "openai chat stream helper: tool call arguments reassembled" \
  'r.ok && r.tool_calls.length === 1 && r.tool_calls[0].name === "shell" && eq(r.tool_calls[0].input, {command: ["ls", "-la", "/tmp"]}) && /^call_/.test(r.tool_calls[0].id) && r.stop_reason === "tool_calls" && r.text === null'
check "openai chat stream: include_usage chunk with choices: [] and the formula" \
  'r.event_counts.usage_chunk === 1 && r.usage.prompt_tokens === tok(rec.body_bytes) && r.usage.completion_tokens === tok(u8(JSON.stringify({command: ["ls", "-la", "/tmp"]}))) && JSON.parse(rec.body).stream_options.include_usage === true'

client openai chat-stream-raw --prompt 'two [[mock:text "Two calls."]] [[mock:tool_use shell {"command":["pwd"]}]] [[mock:tool_use read_file {"path":"/etc/hosts"}]]'
check "openai chat raw stream: two tool calls by index plus text" \
  'r.ok && r.text === "Two calls." && r.tool_calls.length === 2 && eq(r.tool_calls[1].input, {path: "/etc/hosts"}) && r.tool_calls[1].name === "read_file" && r.tool_calls[0].id !== r.tool_calls[1].id'

client openai chat-stream --prompt 'x [[mock:tokens in=100 cache_read=40 out=30 reasoning=10]]'
check "openai chat tokens directive: prompt includes cached, completion includes reasoning" \
  'r.usage.prompt_tokens === 140 && r.usage.prompt_tokens_details.cached_tokens === 40 && r.usage.completion_tokens === 30 && r.usage.completion_tokens_details.reasoning_tokens === 10 && r.usage.total_tokens === 170'

client openai chat-stream --prompt 'x [[mock:error-after 2]]'
check "openai chat error-after: SDK raises the in-stream error" 'r.ok === false && r.error.type === "server_error"'
client openai chat --prompt 'x [[mock:status 500]]'
check "openai chat status 500: server_error" 'r.error.status === 500 && r.error.type === "server_error"'
client openai chat --prompt 'x [[mock:stop max_tokens]]'
check "openai chat stop max_tokens -> finish_reason length" 'r.ok && r.stop_reason === "length"'

client_as openai chat "-"
check "openai 401 with the placeholder key" \
  'r.error.status === 401 && r.error.type === "invalid_request_error" && r.error.code === "invalid_api_key" && r.error.message.startsWith("Incorrect API key provided")'

# ---------------------------------------------------------------- OpenAI Responses
client openai responses
check "openai responses: message output and usage formula" \
  'r.ok && r.text === "mock: Hello from the SDK client" && eq(r.output_types, ["message"]) && r.usage.input_tokens === tok(rec.body_bytes) && r.usage.output_tokens === tok(u8(r.text)) && r.usage.total_tokens === r.usage.input_tokens + r.usage.output_tokens && r.usage.input_tokens_details.cached_tokens === 0 && r.usage.output_tokens_details.reasoning_tokens === 0'

client openai responses-stream --tools --prompt 'do [[mock:text "On it."]] [[mock:tool_use shell {"command":["git","status"]}]]'
check "openai responses stream helper: text + function_call reassembled" \
  'r.ok && r.text === "On it." && eq(r.output_types, ["message", "function_call"]) && eq(r.tool_calls[0].input, {command: ["git", "status"]}) && r.event_counts["response.function_call_arguments.delta"] === 5 && r.last_event === "response.completed"'
check "openai responses stream: usage in response.completed" \
  'r.usage.input_tokens === tok(rec.body_bytes) && r.usage.output_tokens === tok(u8("On it.") + u8(JSON.stringify({command: ["git", "status"]})))'

client openai responses-stream-raw --tools --prompt 'sh [[mock:local_shell "ls -la /"]] [[mock:custom_tool apply_patch "*** Begin Patch\n*** End Patch"]]'
check "openai responses raw stream: sequence_number 0,1,2,… on every event" 'r.ok && r.sequence_ok === true && r.first_event === "response.created"'
check "openai responses: local_shell_call and custom_tool_call items" \
  'eq(r.output_types, ["custom_tool_call", "local_shell_call"]) && r.tool_calls[1].type === "local_shell_call" && eq(r.tool_calls[1].input.command, ["bash", "-lc", "ls -la /"]) && r.tool_calls[0].input === "*** Begin Patch\n*** End Patch" && r.event_counts["response.custom_tool_call_input.delta"] === 4'

client openai responses-stream --prompt 'x [[mock:tokens in=1000 cache_read=600 out=80 reasoning=64]]'
check "openai responses tokens directive" \
  'r.usage.input_tokens === 1600 && r.usage.input_tokens_details.cached_tokens === 600 && r.usage.output_tokens === 80 && r.usage.output_tokens_details.reasoning_tokens === 64 && r.usage.total_tokens === 1680'

client openai responses-stream-raw --prompt 'x [[mock:stop max_tokens]]'
check "openai responses stop max_tokens -> response.incomplete" 'r.ok && r.last_event === "response.incomplete" && r.status === "incomplete"'

client openai models
check "openai models.list" 'r.ok && r.models.includes("gpt-5.4") && rec.provider === "openai"'

client_as openai responses "sk-wrong-key-0123456789"
check "openai responses 401 masks the wrong key" \
  'r.error.status === 401 && r.error.code === "invalid_api_key" && !r.error.message.includes("wrong-key-0123")'

# ---------------------------------------------------------------- raw HTTP details
hdrs=$(curl -sS --cacert "$work/tls/ca.pem" -o "$work/body" -w '%{http_code}' "$BASE/v1/messages" \
  -H "x-api-key: $AKEY" -H 'content-type: application/json' -d '{"model":"m","max_tokens":1,"messages":[]}')
OUT=$(node -e 'console.log(JSON.stringify({code: process.argv[1], body: require("fs").readFileSync(process.argv[2], "utf8")}))' "$hdrs" "$work/body")
check "anthropic: missing anthropic-version -> 400 invalid_request_error" \
  'r.code === "400" && JSON.parse(r.body).error.type === "invalid_request_error"'

# Exact SSE bytes (the SDKs hide ping and the [DONE] sentinel).
curl -sS --cacert "$work/tls/ca.pem" -o "$work/sse" "$BASE/v1/messages" -H "x-api-key: $AKEY" \
  -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
  -d '{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"a b c d e"}]}'
OUT=$(node -e 'const s=require("fs").readFileSync(process.argv[1],"utf8"); console.log(JSON.stringify({names: [...s.matchAll(/^event: (.*)$/gm)].map(m=>m[1]), frames: s.split("\n\n").filter(Boolean).length, crlf: s.includes("\r")}))' "$work/sse")
check "anthropic SSE: exact event sequence with one ping" \
  'eq(r.names, ["message_start","content_block_start","ping","content_block_delta","content_block_delta","content_block_delta","content_block_stop","message_delta","message_stop"]) && r.frames === r.names.length && !r.crlf'
curl -sS --cacert "$work/tls/ca.pem" -o "$work/sse" "$BASE/v1/chat/completions" -H "authorization: Bearer $OKEY" \
  -H 'content-type: application/json' -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
OUT=$(node -e 'const s=require("fs").readFileSync(process.argv[1],"utf8"); const f=s.split("\n\n").filter(Boolean); console.log(JSON.stringify({last: f[f.length-1], allData: f.every(x=>x.startsWith("data: ")), usage: s.includes("\"usage\"")}))' "$work/sse")
check "openai chat SSE: data-only frames ending in [DONE], no usage without include_usage" \
  'r.last === "data: [DONE]" && r.allData && !r.usage'

curl -sS --cacert "$work/tls/ca.pem" -X POST "$BASE/__mock/reset" >/dev/null
OUT=$(curl -sS --cacert "$work/tls/ca.pem" "$BASE/__mock/requests")
check "control: POST /__mock/reset clears the records" 'Array.isArray(r) && r.length === 0'

kill -TERM "$mock_pid"
wait "$mock_pid"
rc=$?
mock_pid=
OUT="{\"rc\":$rc}"
check "mock exits 0 on SIGTERM" 'r.rc === 0'

node - "$work/checks" "$nchecks" <<'EOF'
const fs = require('fs');
const [dir, n] = process.argv.slice(2);
const tok = (x) => Math.ceil(x / 4), u8 = (s) => Buffer.byteLength(s ?? '', 'utf8');
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);
let passed = 0, failed = 0;
for (let i = 1; i <= Number(n); i++) {
  const f = (ext) => fs.readFileSync(`${dir}/${String(i).padStart(3, '0')}.${ext}`, 'utf8');
  const desc = f('desc'), expr = f('expr'), out = f('out'), recRaw = f('rec');
  let ok = false, err = '';
  try {
    const r = JSON.parse(out);
    const recParsed = JSON.parse(recRaw);
    const rec = Array.isArray(recParsed) ? recParsed[recParsed.length - 1] : recParsed;
    ok = Boolean(eval(expr));
  } catch (e) { err = String(e); }
  if (ok) { passed++; console.log(`ok   - ${desc}`); continue; }
  failed++;
  console.log(`FAIL - ${desc}\n       expr:   ${expr}${err ? `\n       error:  ${err}` : ''}`);
  console.log(`       output: ${out.slice(0, 1500)}\n       record: ${recRaw.slice(0, 800)}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
EOF
