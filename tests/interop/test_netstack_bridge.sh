#!/usr/bin/env bash
# Interop: an embedded netstack node (`gatehouse bridge`: no TUN device) in namespace 1 and
# Debian's wireguard-go with a kernel TCP stack in namespace 2.
#   - ping (ICMP echo answered by lwIP), v4 and v6
#   - curl in ns2 → HTTP served by the node (built-in whoami): the answer names ns2's key (whoIs)
#   - 200 concurrent HTTP connections
#   - the node dials a server behind wireguard-go (local 127.0.0.1 → mesh), 100 MB by hash
#   - a client behind wireguard-go reaches a local service through the node, 100 MB by hash
#   - half-close and reset propagate like kernel sockets through the bridge
# Usage: test_netstack_bridge.sh GATEHOUSE_BIN    Env: TRANSFER_MB (default 100).
source "$(dirname "$0")/lib.sh"
lib_init netstack_bridge "${1:-}"
MB=${TRANSFER_MB:-100}
[ -x "$GATEHOUSE_BIN" ] || die "gatehouse binary '$GATEHOUSE_BIN' not executable"
command -v curl >/dev/null || die "missing curl"

setup_netstack_and_peer  # NS1: the netstack node (no TUN); NS2: wireguard-go + kernel TCP

section "start the netstack node"
spawn "$NS1" "$WORKDIR/bridge.log" "$GATEHOUSE_BIN" bridge --key-file "$WORKDIR/node.key" \
  --listen-port 10001 --address "$TUN_NET4.1" --address fd00::1 --hostname embedded \
  --peer "$PUB_peer,10.231.1.2:10002,$TUN_NET4.2/32,fd00::2/128,name=wg-go-peer" \
  --listen "$TUN_NET4.1:80" --to whoami \
  --listen 127.0.0.1:5001 --to "$TUN_NET4.2:5001" \
  --listen "$TUN_NET4.1:5002" --to 127.0.0.1:5002 \
  --listen 127.0.0.1:5004 --to "[fd00::2]:5004" \
  --listen 127.0.0.1:5005 --to "$TUN_NET4.2:5005"
BRIDGE_PID=$BG_PID
for _ in $(seq 50); do grep -q "forwarding 127.0.0.1:5005" "$WORKDIR/bridge.log" && break; sleep 0.1; done
kill -0 "$BRIDGE_PID" 2>/dev/null || { cat "$WORKDIR/bridge.log"; die "bridge did not start"; }

section "ICMP and HTTP served by the embedded node"
check "ping v4 to the node (first one waits for the handshake)" ping_first "$NS2" "$TUN_NET4.1" 10
check "ping v4 to the node" ping_ok "$NS2" "$TUN_NET4.1" 3
check "ping v6 to the node" ping_ok "$NS2" fd00::1 3
body=$(nsx "$NS2" curl -sS -m 10 "http://$TUN_NET4.1/" 2>&1 || true)
assert_eq "curl v4: whoami names the caller's key" "peer=$PUB_peer name=wg-go-peer addr=$TUN_NET4.2" "$body"
body=$(nsx "$NS2" curl -sS -m 10 "http://[fd00::1]/" 2>&1 || true)
assert_eq "curl v6: whoami names the caller's key" "peer=$PUB_peer name=wg-go-peer addr=fd00::2" "$body"

cat >"$WORKDIR/nshelper.py" <<'EOF'
"""Bounded helpers: concurrent HTTP clients, half-close and reset server/client pairs."""
import socket, sys, threading

def concurrent(addr, n, expect):
    ok = []; lock = threading.Lock(); start = threading.Barrier(n)
    def one():
        try:
            start.wait(20)
            s = socket.create_connection((addr, 80), timeout=30)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); buf = b""
            while True:
                b = s.recv(4096)
                if not b: break
                buf += b
            with lock: ok.append(b" 200 OK" in buf and expect.encode() in buf)
        except Exception as e:
            with lock: ok.append(False); print("client error", repr(e), file=sys.stderr)
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts: t.start()
    for t in ts: t.join(60)
    print(sum(ok))

def halfclose_server(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.bind(("::", port)); s.listen(1)
    s.settimeout(30); c, _ = s.accept(); c.settimeout(30); n = 0
    while True:
        b = c.recv(65536)
        if not b: break
        n += len(b)
    c.sendall(b"got %d after your FIN" % n); c.close()

def halfclose_client(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(b"x" * 100000); c.shutdown(socket.SHUT_WR); buf = b""
    while True:
        b = c.recv(65536)
        if not b: break
        buf += b
    print(buf.decode())

def reset_server(port):
    import struct
    s = socket.socket(); s.bind(("0.0.0.0", port)); s.listen(1); s.settimeout(30)
    c, _ = s.accept(); c.settimeout(30); c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()

def reset_client(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=30); c.sendall(b"x")
    try:
        while c.recv(4096): pass
        print("eof")
    except ConnectionResetError:
        print("ECONNRESET")

if __name__ == "__main__":
    m, a = sys.argv[1], sys.argv[2:]
    if m == "concurrent": concurrent(a[0], int(a[1]), a[2])
    elif m == "halfclose-server": halfclose_server(int(a[0]))
    elif m == "halfclose-client": halfclose_client(int(a[0]))
    elif m == "reset-server": reset_server(int(a[0]))
    elif m == "reset-client": reset_client(int(a[0]))
EOF
H="$WORKDIR/nshelper.py"
got=$(nsx "$NS2" timeout 90 "$PYTHON" "$H" concurrent "$TUN_NET4.1" 200 "peer=$PUB_peer" || true)
assert_eq "200 concurrent HTTP connections answered with the right identity" 200 "$got"

section "bulk transfers through the node, $MB MB each way"
bytes=$((MB * 1024 * 1024))
# node dials out: a local client in ns1 → 127.0.0.1:5001 → mesh → receiver behind wireguard-go
stream_start "$NS1" "$NS2" 127.0.0.1 5001 out "$bytes"
stream_wait out 180
# node accepts: a sender behind wireguard-go → node 5002 → local receiver in ns1
stream_start "$NS2" "$NS1" "$TUN_NET4.1" 5002 in "$bytes"
stream_wait in 180

section "half-close and reset"
spawn "$NS2" "$WORKDIR/hc.log" timeout 40 "$PYTHON" "$H" halfclose-server 5004
wait_tcp_listen "$NS2" 5004 10 || die "half-close server did not start"
got=$(nsx "$NS1" timeout 40 "$PYTHON" "$H" halfclose-client 5004 2>&1 || true)
assert_eq "half-close: the server saw our FIN and could still answer (v6 path)" \
  "got 100000 after your FIN" "$got"
spawn "$NS2" "$WORKDIR/rst.log" timeout 40 "$PYTHON" "$H" reset-server 5005
wait_tcp_listen "$NS2" 5005 10 || die "reset server did not start"
got=$(nsx "$NS1" timeout 40 "$PYTHON" "$H" reset-client 5005 2>&1 || true)
assert_eq "reset: the mesh server's RST reaches the local client as ECONNRESET" ECONNRESET "$got"

check "bridge still running" kill -0 "$BRIDGE_PID"
kill -TERM "$BRIDGE_PID"
check "bridge exits on SIGTERM" wait_pid_exit "$BRIDGE_PID" 50
if [ "$LIB_FAILED" -gt 0 ]; then tail -n 30 "$WORKDIR/bridge.log" >&2; fi
finish
