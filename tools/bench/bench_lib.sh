# Shared by the loopback benchmarks (gateway_bench.sh, quota_bench.sh); sourced, not run.
# Creates $TMP (mktemp under /tmp, world-readable so nginx workers read files in it), the PIDS
# array of processes to stop at exit (TERM, then KILL after 3 s; only these PIDs), the exit
# traps, and the helpers say, free_port, wait_port, cpu_ticks, wait_idle, nginx_common, start_static_mock,
# launch_gateway and wrk_script. Set
# BENCH_NAME (and, for launch_gateway, GATEHOUSE_BIN and REAL_KEY) before sourcing.
TMP=$(mktemp -d "/tmp/gh-${BENCH_NAME}.XXXXXX")
chmod 755 "$TMP" # nginx workers (user nobody) read the mock's files
PIDS=()
cleanup() {
  local p i
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 30); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$BENCH_NAME: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT TENTHS
  local i
  for ((i = 0; i < $2; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

CLK_TCK=$(getconf CLK_TCK)
# Waits (at most 30 s) until the processes use no CPU for 0.3 s: what a wrk run leaves behind
# (the gateway's log writer draining its queue) is finished, so it is counted in that run's CPU
# per request and does not slow the next run.
wait_idle() { # PID...
  local i prev cur
  prev=$(cpu_ticks "$@")
  for i in $(seq 1 100); do
    sleep 0.3
    cur=$(cpu_ticks "$@")
    [ "$cur" -le "$((prev + 1))" ] && return 0
    prev=$cur
  done
}
cpu_ticks() { # PID...: utime+stime of the processes and their direct children
  local p all=() t=0
  for p in "$@"; do all+=("$p") && all+=($(pgrep -P "$p" || true)); done
  for p in "${all[@]}"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
  done
  echo "$t"
}

# Starts `gatehouse gateway --no-mesh` on DIR/gateway.hujson (its loopback_listen), the provider
# key in $GH_BENCH_ANTHROPIC_KEY; sets GW_PID and GW_PORT once the port accepts.
launch_gateway() { # DIR NAME
  local d=$1
  mkdir -p "$d/state"
  GH_BENCH_ANTHROPIC_KEY=$REAL_KEY "$GATEHOUSE_BIN" gateway --config "$d/gateway.hujson" --no-mesh \
    --state-dir "$d/state" >"$d/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=($GW_PID)
  local i
  for i in $(seq 1 100); do [ -s "$d/state/loopback.port" ] && break; sleep 0.1; done
  GW_PORT=$(cat "$d/state/loopback.port" 2>/dev/null) || { cat "$d/gateway.log" >&2; say "gateway $2 did not start"; exit 1; }
  wait_port "$GW_PORT" 50
}

# A wrk script POSTing BODY as an Anthropic client; its done() prints one line
# "WRKJSON {requests, duration_us, p50_us, p99_us, sock_errors, status_errors}".
wrk_script() { # FILE BODY
  cat >"$1" <<EOS
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "-"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p99_us\":%d,\"sock_errors\":%d,\"status_errors\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOS
}

nginx_common() { # DIR
  cat <<EOF
worker_rlimit_nofile 8192;
error_log $1/logs/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
EOF
}

# The static mock: nginx (1 worker) answering POST /v1/messages with a fixed Anthropic Message
# (with usage), or with a fixed SSE stream when the query has stream=1 (nginx cannot read the
# JSON body). Sets MODEL, MOCK_PORT and MOCK_PID.
start_static_mock() {
  MODEL=claude-sonnet-4-5
  MSG_JSON='{"id":"msg_01BenchFixedResponse000","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello! This is a fixed benchmark answer from the static mock."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":15,"service_tier":"standard"}}'
  mkdir -p "$TMP/mock/logs" "$TMP/www"
  printf '%s' "$MSG_JSON" >"$TMP/www/message.json"
  {
    printf 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01BenchFixedStream0000","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}\n\n'
    printf 'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    printf 'event: ping\ndata: {"type": "ping"}\n\n'
    for w in Hello! This is a fixed benchmark answer from the static mock.; do
      printf 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s "}}\n\n' "$w"
    done
    printf 'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    printf 'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":15}}\n\n'
    printf 'event: message_stop\ndata: {"type":"message_stop"}\n\n'
  } >"$TMP/www/stream.sse"
  chmod 755 "$TMP/www" && chmod 644 "$TMP/www/"*
  MOCK_PORT=$(free_port)
  {
    nginx_common "$TMP/mock"
    cat <<EOF
worker_processes 1;
http {
  access_log off;
  client_body_temp_path $TMP/mock/cb; proxy_temp_path $TMP/mock/pt; fastcgi_temp_path $TMP/mock/ft;
  uwsgi_temp_path $TMP/mock/ut; scgi_temp_path $TMP/mock/st;
  keepalive_requests 1000000; keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$MOCK_PORT reuseport backlog=4096;
    root $TMP/www;
    location = /v1/messages {
      if (\$arg_stream) { rewrite ^ /stream.sse last; }
      rewrite ^ /message.json last;
    }
    # POST to a static file is a 405 in nginx; answer it as a GET of the same file.
    location = /message.json { internal; types { } default_type application/json; error_page 405 =200 \$uri; add_header request-id req_bench; }
    location = /stream.sse { internal; types { } default_type text/event-stream; error_page 405 =200 \$uri; add_header cache-control no-cache; }
  }
}
EOF
  } >"$TMP/mock/nginx.conf"
  nginx -c "$TMP/mock/nginx.conf" -p "$TMP/mock" -g 'daemon off;' 2>"$TMP/mock/stderr" &
  PIDS+=($!)
  MOCK_PID=$!
  wait_port "$MOCK_PORT" 50 || { cat "$TMP/mock/stderr" >&2; say "mock nginx did not start"; exit 1; }
}
