# shellcheck shell=bash
# Interop test library: sourced by tests/interop/test_*.sh, tools/run.sh and tools/bench/*.sh.
#
# What it gives a script:
#   - network namespaces joined by veth pairs (underlay 10.231.I.S/24 and fd99:I::S/64, where I is
#     the link index and S the side 1 or 2), all created by this process and deleted on exit;
#   - start_wg NS IFNAME IMPL: a WireGuard userspace daemon (IMPL = gatehouse | wireguard-go) in
#     the foreground inside NS, with its log in $WORKDIR, waited for until its UAPI socket exists;
#   - key helpers (wg genkey/pubkey/genpsk), tunnel addresses 192.168.241.S/24 + fd00::S/64;
#   - wait helpers (socket, handshake, any command: wait_for), a python3 stream/UDP/UAPI helper
#     ($PYHELPER);
#   - assertions (check, check_not, assert_eq, assert_gt, ...) that print what failed and count;
#   - finish: prints "N passed, N failed" and exits non-zero on any failure.
#
# Naming: the UAPI socket directory /var/run/wireguard is not namespaced, so every namespace,
# interface and socket name carries the test tag + $$ (U5 in the reference) to let tests run side by
# side and never collide with another engineer's daemon.
#
# Implementation choice: the "ours" side is gatehouse unless GH_IMPL overrides it (used to
# validate the harness with wireguard-go on both sides); the peer is wireguard-go unless
# GH_PEER_IMPL overrides it.

# ---------------------------------------------------------------------------------------------
# State

LIB_NAME=""          # test name, e.g. handshake_transfer
LIB_TAG=""           # short unique tag: 4 letters of the name + $$ (fits 15-char IFNAMSIZ)
WORKDIR=""           # scratch dir, removed on exit
LIB_PIDS=()          # every background process we started (killed on exit)
LIB_NETNS=()         # every namespace we created (deleted on exit)
LIB_IFACES=()        # every WireGuard interface we started (stale sockets removed on exit)
declare -A WG_PID=() # IFNAME -> daemon pid
declare -A WG_IMPL=() # IFNAME -> implementation name
declare -A WG_NS=()  # IFNAME -> namespace
declare -A WG_LOG=() # IFNAME -> log file
LIB_PASSED=0
LIB_FAILED=0
LIB_FINISHED=0
LIB_QUIET_CLEANUP=0  # 1: no summary line (benchmarks print their own report)
OURS="${GH_IMPL:-gatehouse}"
THEIRS="${GH_PEER_IMPL:-wireguard-go}"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"
PYTHON="${PYTHON:-python3}"
TUN_NET4=192.168.241

# ---------------------------------------------------------------------------------------------
# Output and assertions

log() { printf '[%s %s] %s\n' "$LIB_NAME" "$(date +%H:%M:%S)" "$*"; }
section() { printf '\n== %s\n' "$*"; }

pass() {
  LIB_PASSED=$((LIB_PASSED + 1))
  printf '  ok    %s\n' "$*"
}

fail() {
  LIB_FAILED=$((LIB_FAILED + 1))
  printf '  FAIL  %s\n' "$*" >&2
}

# Fatal error in setup: the test cannot go on. The EXIT trap cleans up and prints the summary.
die() {
  printf '  FATAL %s\n' "$*" >&2
  LIB_FAILED=$((LIB_FAILED + 1))
  exit 1
}

# show_output TEXT: the last lines of a failed command's output, indented.
show_output() {
  if [ -n "$1" ]; then printf '%s\n' "$1" | tail -n 15 | sed 's/^/        | /' >&2; fi
  return 0
}

# check DESC CMD...: passes if CMD exits 0; otherwise prints its output.
check() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$desc"
  else
    fail "$desc"
    printf '        command: %s\n' "$*" >&2
    show_output "$out"
  fi
}

# check_not DESC CMD...: passes if CMD exits non-zero.
check_not() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then
    fail "$desc"
    printf '        command unexpectedly succeeded: %s\n' "$*" >&2
    show_output "$out"
  else
    pass "$desc"
  fi
}

assert_eq() { # DESC EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then
    pass "$1"
  else
    fail "$1"
    printf '        expected: %s\n        actual:   %s\n' "$2" "$3" >&2
  fi
}

assert_ne() { # DESC UNEXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    pass "$1"
  else
    fail "$1 (value stayed '$3')"
  fi
}

assert_gt() { # DESC ACTUAL MIN  (integers: ACTUAL > MIN)
  if [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -gt "$3" ]; then
    pass "$1 ($2 > $3)"
  else
    fail "$1: expected > $3, got '$2'"
  fi
}

assert_ge() { # DESC ACTUAL MIN
  if [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ]; then
    pass "$1 ($2 >= $3)"
  else
    fail "$1: expected >= $3, got '$2'"
  fi
}

assert_le() { # DESC ACTUAL MAX
  if [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -le "$3" ]; then
    pass "$1 ($2 <= $3)"
  else
    fail "$1: expected <= $3, got '$2'"
  fi
}

# diff two files; on mismatch show the first differing lines.
assert_same_file() { # DESC FILE_EXPECTED FILE_ACTUAL
  if cmp -s "$2" "$3"; then
    pass "$1"
  else
    fail "$1"
    # head closes the pipe early; ignore diff's SIGPIPE under pipefail.
    (diff -u "$2" "$3" | head -n 20 | sed 's/^/        | /' >&2) || true
  fi
}

# canonical_conf FILE: a `wg showconf` text with peers sorted by public key and each peer's
# AllowedIPs sorted, one per line, so two configurations compare by meaning (wireguard-go keeps
# peers in a Go map: its showconf order is random).
canonical_conf() {
  awk '
    /^\[Peer\]/ { peer = ""; next }
    /^PublicKey = / { peer = $3; next }
    /^\[Interface\]/ || /^$/ { next }
    {
      key = $1
      sub(/^[^=]*= /, "")
      if (key == "AllowedIPs") {
        n = split($0, a, ", ")
        for (i = 1; i <= n; i++) print (peer == "" ? "interface" : peer), key, a[i]
      } else print (peer == "" ? "interface" : peer), key, $0
    }' "$1" | LC_ALL=C sort
}

# Prints the summary and exits; the EXIT trap then cleans up.
finish() {
  LIB_FINISHED=1
  exit $((LIB_FAILED > 0 ? 1 : 0))
}

# ---------------------------------------------------------------------------------------------
# Setup and cleanup

# lib_init NAME [GATEHOUSE_BIN]: call first. Needs root and the tools below.
lib_init() {
  LIB_NAME=$1
  if [ $# -ge 2 ] && [ -n "$2" ]; then GATEHOUSE_BIN=$2; fi
  local short=${LIB_NAME//_/}
  # BASHPID, not $$: a benchmark runs each pair in a subshell, and each needs its own names.
  LIB_TAG="${short:0:4}$BASHPID"
  # set -E so the ERR trap also fires inside functions; -e stops at the first unexpected error.
  set -Eeuo pipefail
  trap 'lib_on_err $LINENO "$BASH_COMMAND"' ERR
  trap lib_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, TUN)"
  local c
  for c in ip wg ping "$PYTHON"; do
    command -v "$c" >/dev/null || die "missing tool '$c' (run tools/install-deps.sh)"
  done
  WORKDIR=$(mktemp -d "/tmp/gh-${LIB_NAME}.XXXXXX")
  write_pyhelper
  log "ours=$OURS theirs=$THEIRS gatehouse=${GATEHOUSE_BIN:-unset} tag=$LIB_TAG"
}

lib_on_err() {
  printf '  ERROR line %s: command failed: %s\n' "$1" "$2" >&2
}

# Kills every process we started, deletes our namespaces and stale sockets, prints the summary.
lib_cleanup() {
  local rc=$?
  trap - ERR
  set +e
  if [ "$LIB_FINISHED" -eq 0 ] && [ "$rc" -ne 0 ] && [ "$LIB_FAILED" -eq 0 ]; then
    LIB_FAILED=$((LIB_FAILED + 1))
    printf '  FAIL  aborted (exit %s)\n' "$rc" >&2
  fi
  local pid
  # TERM first so daemons print their exit statistics (drop counters), then KILL leftovers.
  for pid in "${LIB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${LIB_PIDS[@]}"; do wait_pid_exit "$pid" 30 || kill -KILL "$pid" 2>/dev/null; done
  # On failure the daemon logs are the first thing anyone wants to see.
  if [ "$LIB_FAILED" -gt 0 ]; then
    local ifn
    for ifn in "${LIB_IFACES[@]}"; do
      [ -s "${WG_LOG[$ifn]}" ] || continue
      printf -- '--- last lines of %s (%s in %s)\n' "$ifn" "${WG_IMPL[$ifn]}" "${WG_NS[$ifn]}" >&2
      grep -v '[│┌└─]' "${WG_LOG[$ifn]}" | tail -n 20 >&2
    done
  fi
  local ns ifn
  for ns in "${LIB_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  for ifn in "${LIB_IFACES[@]}"; do rm -f "/var/run/wireguard/$ifn.sock"; done
  [ -n "$WORKDIR" ] && rm -rf "$WORKDIR"
  if [ -n "$LIB_NAME" ] && [ "$LIB_QUIET_CLEANUP" -eq 0 ]; then
    printf '\n%s: %d passed, %d failed\n' "$LIB_NAME" "$LIB_PASSED" "$LIB_FAILED"
  fi
  [ "$LIB_FAILED" -gt 0 ] && exit 1
  exit "$rc"
}

# wait_for DESC TENTHS CMD...: passes once CMD succeeds within TENTHS × 0.1 s, fails otherwise.
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

# wait_pid_exit PID TENTHS: true once PID is gone (or not ours), false on timeout.
wait_pid_exit() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
    sleep 0.1
  done
  return 1
}

# spawn NS LOGFILE CMD...: runs CMD inside NS in the background; sets BG_PID; recorded for cleanup.
spawn() {
  local ns=$1 logf=$2
  shift 2
  ip netns exec "$ns" "$@" >"$logf" 2>&1 &
  BG_PID=$!
  LIB_PIDS+=("$BG_PID")
}

# ---------------------------------------------------------------------------------------------
# Topology

# ns_create NAME: a fresh namespace with lo up. NAME is used as given (callers add the tag).
ns_create() {
  ip netns add "$1"
  LIB_NETNS+=("$1")
  ip -n "$1" link set lo up
}

# nsx NS CMD...: run CMD in NS.
nsx() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# veth_link NS1 NS2 IDX: a veth pair created directly inside the two namespaces (the names never
# exist in the root namespace), with 10.231.IDX.{1,2}/24 and fd99:IDX::{1,2}/64.
veth_link() {
  local a=$1 b=$2 i=$3
  ip link add "veth$i" netns "$a" type veth peer name "veth$i" netns "$b"
  ip -n "$a" addr add "10.231.$i.1/24" dev "veth$i"
  ip -n "$b" addr add "10.231.$i.2/24" dev "veth$i"
  # nodad: duplicate address detection would delay the first v6 packets by a second or two.
  ip -n "$a" addr add "fd99:$i::1/64" dev "veth$i" nodad
  ip -n "$b" addr add "fd99:$i::2/64" dev "veth$i" nodad
  ip -n "$a" link set "veth$i" up
  ip -n "$b" link set "veth$i" up
}

# impl_cmd IMPL: prints the daemon command (without -f IFNAME) for an implementation.
impl_cmd() {
  case $1 in
    gatehouse)
      [ -n "$GATEHOUSE_BIN" ] || die "gatehouse binary not given (arg 1 or GATEHOUSE_BIN)"
      [ -x "$GATEHOUSE_BIN" ] || die "gatehouse binary '$GATEHOUSE_BIN' not executable (build first)"
      printf '%s wireguard' "$GATEHOUSE_BIN"
      ;;
    wireguard-go) printf 'wireguard-go' ;;
    *) die "unknown implementation '$1' (gatehouse | wireguard-go)" ;;
  esac
}

# start_wg NS IFNAME IMPL: starts the daemon in the foreground inside NS and waits for its socket.
start_wg() {
  local ns=$1 ifn=$2 impl=$3 cmd
  cmd=$(impl_cmd "$impl") || exit 1
  [ ${#ifn} -le 15 ] || die "interface name '$ifn' longer than 15 characters"
  [ -e "/var/run/wireguard/$ifn.sock" ] && die "socket for $ifn already exists (name collision)"
  WG_LOG[$ifn]="$WORKDIR/$ifn.log"
  WG_IMPL[$ifn]=$impl
  WG_NS[$ifn]=$ns
  LIB_IFACES+=("$ifn")
  # word splitting of $cmd is intended: "path wireguard" or "wireguard-go".
  # shellcheck disable=SC2086
  spawn "$ns" "${WG_LOG[$ifn]}" $cmd -f "$ifn"
  WG_PID[$ifn]=$BG_PID
  wait_socket "$ifn" 10 || die "$impl did not create /var/run/wireguard/$ifn.sock within 10 s"
}

# stop_wg IFNAME: SIGTERM, wait up to 5 s (the daemon should exit cleanly, U3), then SIGKILL.
# Returns the daemon's exit status (137 if it had to be killed).
stop_wg() {
  local ifn=$1 pid=${WG_PID[$1]} rc=0
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 137
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return $rc
}

# wait_socket IFNAME TIMEOUT_S: the UAPI socket exists and the daemon is still alive.
wait_socket() {
  local ifn=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "${WG_PID[$ifn]}" 2>/dev/null || return 1
    [ -S "/var/run/wireguard/$ifn.sock" ] && return 0
    sleep 0.1
  done
  return 1
}

wg_alive() { kill -0 "${WG_PID[$1]}" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Keys and configuration

# gen_keys NAME: $WORKDIR/NAME.key and NAME.pub; sets KEY_<NAME> and PUB_<NAME> variables.
gen_keys() {
  local k
  umask 077 # wg warns about world-readable key files otherwise
  k=$(wg genkey)
  printf '%s\n' "$k" >"$WORKDIR/$1.key"
  wg pubkey <"$WORKDIR/$1.key" >"$WORKDIR/$1.pub"
  printf -v "KEY_$1" '%s' "$k"
  printf -v "PUB_$1" '%s' "$(cat "$WORKDIR/$1.pub")"
}

# gen_psk NAME: $WORKDIR/NAME.psk
gen_psk() { wg genpsk >"$WORKDIR/$1.psk"; }

# tun_up NS IFNAME SIDE: tunnel addresses 192.168.241.SIDE/24 and fd00::SIDE/64, link up.
tun_up() {
  ip -n "$1" addr add "$TUN_NET4.$3/24" dev "$2"
  ip -n "$1" addr add "fd00::$3/64" dev "$2" nodad
  ip -n "$1" link set "$2" up
}

# wgn IFNAME ARGS...: `wg ARGS` for the device, run in the device's namespace.
wgn() {
  local ifn=$1
  shift
  ip netns exec "${WG_NS[$ifn]}" wg "$@"
}

# peer_field IFNAME PEER_PUB FIELD: one value from `wg show IFNAME FIELD` (e.g. latest-handshakes,
# endpoints, transfer -> "rx tx").
peer_field() {
  wgn "$1" show "$1" "$3" | awk -v k="$2" -F'\t' '$1 == k { $1 = ""; sub(/^ /, ""); print; f = 1 }
    END { if (!f) print "" }'
}

latest_handshake() { peer_field "$1" "$2" latest-handshakes; }

# wait_handshake IFNAME PEER_PUB TIMEOUT_S [NOT_EQUAL]: waits until the peer's latest handshake is
# non-zero (and differs from NOT_EQUAL if given).
wait_handshake() {
  local ifn=$1 pub=$2 t=$3 old=${4:-0} i v
  for ((i = 0; i < t * 5; i++)); do
    v=$(latest_handshake "$ifn" "$pub")
    if [ -n "$v" ] && [ "$v" != 0 ] && [ "$v" != "$old" ]; then return 0; fi
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# The usual two-device setup

# setup_pair IMPL1 IMPL2 [INITIATOR]: namespaces "$NS1" "$NS2" joined by link 1; device "$IF1"
# (IMPL1, 192.168.241.1, fd00::1, port 10001) in NS1 and "$IF2" (IMPL2, .2, ::2, port 10002) in
# NS2, each the other's peer with a preshared key. Only INITIATOR (1 or 2, default 1) is given the
# other's endpoint, so it must send the first initiation and the responder learns its endpoint by
# roaming. SUFFIX env (default empty) distinguishes several pairs in one test.
setup_pair() {
  local impl1=$1 impl2=$2 init=${3:-1} sfx=${SUFFIX:-}
  NS1="gh$LIB_TAG$sfx-1"
  NS2="gh$LIB_TAG$sfx-2"
  IF1="wg$LIB_TAG${sfx}a"
  IF2="wg$LIB_TAG${sfx}b"
  IMPL1=$impl1
  IMPL2=$impl2
  ns_create "$NS1"
  ns_create "$NS2"
  veth_link "$NS1" "$NS2" 1
  start_wg "$NS1" "$IF1" "$impl1"
  start_wg "$NS2" "$IF2" "$impl2"
  gen_keys "k1$sfx"
  gen_keys "k2$sfx"
  gen_psk "p$sfx"
  local k1="$WORKDIR/k1$sfx" k2="$WORKDIR/k2$sfx" psk="$WORKDIR/p$sfx.psk"
  PUB1=$(cat "$k1.pub")
  PUB2=$(cat "$k2.pub")
  PSK_FILE=$psk
  local ep1=() ep2=()
  if [ "$init" = 1 ]; then ep1=(endpoint "10.231.1.2:10002"); else ep2=(endpoint "10.231.1.1:10001"); fi
  wgn "$IF1" set "$IF1" private-key "$k1.key" listen-port 10001 \
    peer "$PUB2" preshared-key "$psk" allowed-ips "$TUN_NET4.2/32,fd00::2/128" "${ep1[@]}"
  wgn "$IF2" set "$IF2" private-key "$k2.key" listen-port 10002 \
    peer "$PUB1" preshared-key "$psk" allowed-ips "$TUN_NET4.1/32,fd00::1/128" "${ep2[@]}"
  tun_up "$NS1" "$IF1" 1
  tun_up "$NS2" "$IF2" 2
}

# ping_ok NS ADDR [COUNT]: COUNT pings, all must come back (2 s per reply at most).
ping_ok() {
  ip netns exec "$1" ping -q -n -c "${3:-3}" -i 0.2 -W 2 "$2"
}

# ping_first NS ADDR TIMEOUT_S: keeps pinging until one reply (the first packet may wait for the
# handshake; wireguard-go queues it, but a reply is what we want to see).
ping_first() {
  ip netns exec "$1" ping -q -n -c 1 -w "$3" "$2"
}

# wait_tcp_listen NS PORT TIMEOUT_S: something listens on TCP PORT inside NS.
wait_tcp_listen() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

# cpu_ticks PID...: utime + stime (fields 14 and 15 of /proc/PID/stat) summed, in clock ticks.
# The comm field may hold spaces, so fields are counted after its closing parenthesis.
cpu_ticks() {
  local pid total=0 rest
  for pid in "$@"; do
    rest=$(sed 's/^.*) //' "/proc/$pid/stat")
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# ---------------------------------------------------------------------------------------------
# python3 helper: TCP stream with sha256 on both ends, UDP counter, raw UAPI get.

PYHELPER=""
write_pyhelper() {
  PYHELPER="$WORKDIR/helper.py"
  cat >"$PYHELPER" <<'EOF'
"""Traffic helper for interop tests. Every mode is bounded in time; results are JSON files."""
import hashlib, json, os, socket, sys, time

def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET

def dump(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)

def recv(addr, port, out, accept_timeout, stall):
    """Accept one TCP connection, hash everything until EOF. A stall > `stall` s is an error."""
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(1); s.settimeout(accept_timeout)
    open(out + ".ready", "w").close()
    res = {"bytes": 0, "sha256": None, "error": None, "max_gap": 0.0}
    try:
        c, _ = s.accept(); c.settimeout(stall)
        h = hashlib.sha256(); last = time.monotonic()
        while True:
            b = c.recv(1 << 18)
            now = time.monotonic(); res["max_gap"] = max(res["max_gap"], now - last); last = now
            if not b: break
            h.update(b); res["bytes"] += len(b)
        res["sha256"] = h.hexdigest(); c.close()
    except Exception as e:
        res["error"] = repr(e)
    dump(out, res)
    return 0 if res["error"] is None else 1

def send(addr, port, out, total, rate, seconds, stall):
    """Send random bytes (total, or for `seconds` at `rate` B/s), hashing what was sent."""
    res = {"bytes": 0, "sha256": None, "error": None, "seconds": 0.0}
    h = hashlib.sha256(); t0 = time.monotonic()
    try:
        c = socket.create_connection((addr, port), timeout=stall)
        chunk = 1 << 16
        while total <= 0 or res["bytes"] < total:
            el = time.monotonic() - t0
            if seconds > 0 and el >= seconds: break
            if rate > 0 and res["bytes"] > rate * el:
                time.sleep(min(0.05, (res["bytes"] - rate * el) / rate)); continue
            n = chunk if total <= 0 else min(chunk, total - res["bytes"])
            b = os.urandom(n); c.sendall(b); h.update(b); res["bytes"] += n
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096): pass          # wait for the receiver to close: all bytes delivered
        c.close(); res["sha256"] = h.hexdigest()
    except Exception as e:
        res["error"] = repr(e)
    res["seconds"] = time.monotonic() - t0
    dump(out, res)
    return 0 if res["error"] is None else 1

def udprecv(addr, port, out, seconds):
    s = socket.socket(family(addr), socket.SOCK_DGRAM); s.bind((addr, port)); s.settimeout(0.2)
    open(out + ".ready", "w").close()
    n = 0; end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s.recv(2048); n += 1
        except socket.timeout:
            pass
    dump(out, {"datagrams": n})
    return 0

def udpsend(addr, port, count, interval):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    for i in range(count):
        try:
            s.sendto(b"x" * 100, (addr, port))
        except OSError:
            pass                           # no route / no key yet: the point is nothing arrives
        time.sleep(interval)
    return 0

def uapi_get(path):
    """Raw `get=1` reply, so keys `wg` ignores (e.g. drop counters) are visible."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5); s.connect(path)
    s.sendall(b"get=1\n\n"); buf = b""
    while not buf.endswith(b"\n\n"):
        b = s.recv(65536)
        if not b: break
        buf += b
    sys.stdout.write(buf.decode()); return 0

if __name__ == "__main__":
    m, a = sys.argv[1], sys.argv[2:]
    if m == "recv": sys.exit(recv(a[0], int(a[1]), a[2], float(a[3]), float(a[4])))
    if m == "send": sys.exit(send(a[0], int(a[1]), a[2], int(a[3]), float(a[4]), float(a[5]), float(a[6])))
    if m == "udprecv": sys.exit(udprecv(a[0], int(a[1]), a[2], float(a[3])))
    if m == "udpsend": sys.exit(udpsend(a[0], int(a[1]), int(a[2]), float(a[3])))
    if m == "uapi-get": sys.exit(uapi_get(a[0]))
    sys.exit("unknown mode " + m)
EOF
}

# json_field FILE KEY: prints one top-level field of a helper result file.
json_field() {
  "$PYTHON" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# wait_file FILE TIMEOUT_S
wait_file() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# stream_start SRC_NS DST_NS DST_ADDR PORT NAME BYTES [RATE_BPS SECONDS]: starts a receiver in
# DST_NS and a sender in SRC_NS (background). Results: $WORKDIR/NAME.{recv,send}.json.
# A gap of more than 20 s without data is reported as an error by both ends.
stream_start() {
  local src=$1 dst=$2 addr=$3 port=$4 name=$5 bytes=$6 rate=${7:-0} secs=${8:-0}
  local bind=0.0.0.0
  [[ "$addr" == *:* ]] && bind=::
  spawn "$dst" "$WORKDIR/$name.recv.log" "$PYTHON" "$PYHELPER" recv "$bind" "$port" \
    "$WORKDIR/$name.recv.json" 30 20
  STREAM_RECV_PID=$BG_PID
  wait_file "$WORKDIR/$name.recv.json.ready" 10 || die "stream receiver $name did not start"
  spawn "$src" "$WORKDIR/$name.send.log" "$PYTHON" "$PYHELPER" send "$addr" "$port" \
    "$WORKDIR/$name.send.json" "$bytes" "$rate" "$secs" 20
  STREAM_SEND_PID=$BG_PID
}

# stream_wait NAME TIMEOUT_S: waits for both ends; checks no error, equal byte counts and hashes.
stream_wait() {
  local name=$1 t=$2 r="$WORKDIR/$1.recv.json" s="$WORKDIR/$1.send.json"
  if ! wait_file "$r" "$t" || ! wait_file "$s" 25; then
    fail "$name: transfer did not finish within ${t}s"
    return
  fi
  local se re sb rb sh rh
  se=$(json_field "$s" error)
  re=$(json_field "$r" error)
  sb=$(json_field "$s" bytes)
  rb=$(json_field "$r" bytes)
  sh=$(json_field "$s" sha256)
  rh=$(json_field "$r" sha256)
  assert_eq "$name: sender finished without error" "" "$se"
  assert_eq "$name: receiver finished without error" "" "$re"
  if [ -n "$sh" ] && [ "$sh" == "$rh" ] && [ "$sb" == "$rb" ]; then
    pass "$name: $rb bytes delivered, sha256 matches (${sh:0:16}...)"
  else
    fail "$name: sent $sb bytes sha256=$sh, received $rb bytes sha256=$rh"
  fi
}

# uapi_get IFNAME: the raw UAPI get reply (including keys `wg` does not print).
uapi_get() { "$PYTHON" "$PYHELPER" uapi-get "/var/run/wireguard/$1.sock"; }

# setup_netstack_and_peer: the topology of the netstack tests. NS1 holds only the veth end where
# an embedded node (no TUN; key $WORKDIR/node.key, UDP 10001, tunnel $TUN_NET4.1 / fd00::1) will
# run; NS2 runs $THEIRS on IF2 (key $WORKDIR/peer.key, UDP 10002, tunnel .2) with the node as its
# peer. Sets NS1 NS2 IF2 PUB_node PUB_peer.
setup_netstack_and_peer() {
  NS1="gh$LIB_TAG-1"
  NS2="gh$LIB_TAG-2"
  IF2="wg${LIB_TAG}b"
  ns_create "$NS1"
  ns_create "$NS2"
  veth_link "$NS1" "$NS2" 1
  gen_keys node
  gen_keys peer
  start_wg "$NS2" "$IF2" "$THEIRS"
  wgn "$IF2" set "$IF2" private-key "$WORKDIR/peer.key" listen-port 10002 \
    peer "$PUB_node" allowed-ips "$TUN_NET4.1/32,fd00::1/128" endpoint 10.231.1.1:10001
  tun_up "$NS2" "$IF2" 2
}
