#!/usr/bin/env bash
# Interop 5: `wg` against our configuration socket. `wg show` reports what was configured (keys,
# port, peers, allowed IPs, endpoints v4/v6, keepalive, preshared key), then the handshake time
# and byte counters after traffic; `wg showconf` round-trips through `wg setconf` (on the live
# device and on a fresh one); big allowed-IPs lists (1 peer x 10 000 /32s, 40 peers x 52 v4/v6
# addresses, 1 peer x 197 /128s) go through setconf and come back exactly (U10: streamed replies).
# Usage: test_wg_show.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init wg_show "${1:-}"

section "configured values on our device ($OURS) with a $THEIRS peer"
SUFFIX=x setup_pair "$OURS" "$THEIRS" 1
OURKEY=$(cat "$WORKDIR/k1x.key")
gen_keys dummy
DUMMY=$(cat "$WORKDIR/dummy.pub")
wgn "$IF1" set "$IF1" peer "$DUMMY" endpoint "[fd99:1::99]:5555" allowed-ips 10.99.0.0/16,fd42::/48

# Before any traffic: no handshake, no bytes (persistent keepalive is set later on purpose: it
# sends a keepalive at once and would start a handshake).
assert_eq "latest handshake is 0 before traffic" 0 "$(latest_handshake "$IF1" "$PUB2")"
assert_eq "transfer is 0 0 before traffic" "0 0" "$(peer_field "$IF1" "$PUB2" transfer)"

assert_eq "public-key" "$PUB1" "$(wgn "$IF1" show "$IF1" public-key)"
assert_eq "private-key" "$OURKEY" "$(wgn "$IF1" show "$IF1" private-key)"
assert_eq "listen-port" 10001 "$(wgn "$IF1" show "$IF1" listen-port)"
assert_eq "peers" "$(printf '%s\n' "$PUB2" "$DUMMY" | sort)" "$(wgn "$IF1" show "$IF1" peers | sort)"
words_sorted() { tr ' ' '\n' | sort | tr '\n' ' '; }
assert_eq "allowed-ips of the real peer" "$(echo "$TUN_NET4.2/32 fd00::2/128" | words_sorted)" \
  "$(peer_field "$IF1" "$PUB2" allowed-ips | words_sorted)"
assert_eq "allowed-ips of the dummy peer" "$(echo "10.99.0.0/16 fd42::/48" | words_sorted)" \
  "$(peer_field "$IF1" "$DUMMY" allowed-ips | words_sorted)"
assert_eq "v4 endpoint" "10.231.1.2:10002" "$(peer_field "$IF1" "$PUB2" endpoints)"
assert_eq "v6 endpoint" "[fd99:1::99]:5555" "$(peer_field "$IF1" "$DUMMY" endpoints)"
assert_eq "preshared key" "$(cat "$PSK_FILE")" "$(peer_field "$IF1" "$PUB2" preshared-keys)"
assert_eq "no preshared key" "(none)" "$(peer_field "$IF1" "$DUMMY" preshared-keys)"
assert_eq "keepalive off" "off" "$(peer_field "$IF1" "$DUMMY" persistent-keepalive)"

section "handshake time and counters after traffic"
T0=$(date +%s)
check "10 pings through the tunnel" ping_ok "$NS1" "$TUN_NET4.2" 10
T1=$(date +%s)
wgn "$IF1" set "$IF1" peer "$PUB2" persistent-keepalive 25
assert_eq "persistent keepalive 25" 25 "$(peer_field "$IF1" "$PUB2" persistent-keepalive)"
HS=$(latest_handshake "$IF1" "$PUB2")
assert_ge "latest handshake not before the first ping" "$HS" "$T0"
assert_le "latest handshake not after the last ping" "$HS" "$T1"
read -r RX TX <<<"$(peer_field "$IF1" "$PUB2" transfer)"
read -r PRX PTX <<<"$(peer_field "$IF2" "$PUB1" transfer)"
log "ours rx=$RX tx=$TX, peer ($THEIRS) rx=$PRX tx=$PTX"
# 10 echo replies of 84 bytes padded to 96 plus a 32-byte header = 10 x 128 bytes each way.
assert_ge "rx counts the 10 replies" "$RX" 1280
assert_ge "tx counts the 10 requests" "$TX" 1280
assert_le "rx is not wildly over" "$RX" 5000
assert_le "tx is not wildly over" "$TX" 5000
stream_start "$NS1" "$NS2" "$TUN_NET4.2" 5001 mb 1048576
stream_wait mb 30
read -r RX2 TX2 <<<"$(peer_field "$IF1" "$PUB2" transfer)"
assert_ge "tx grew by at least 1 MiB after a 1 MiB stream" "$((TX2 - TX))" 1048576
assert_gt "rx grew (ACKs)" "$((RX2 - RX))" 0
SHOW=$(wgn "$IF1" show "$IF1")
check "wg show prints the latest handshake" grep -q 'latest handshake: ' <<<"$SHOW"
check "wg show prints the transfer line" grep -q 'transfer: .* received, .* sent' <<<"$SHOW"
check "wg show prints the keepalive" grep -q 'persistent keepalive: every 25 seconds' <<<"$SHOW"
assert_eq "wg show dump has 1 interface + 2 peer lines" 3 "$(wgn "$IF1" show "$IF1" dump | wc -l)"

# same_conf DESC A B: same configuration; for Gatehouse also the same text ("identical showconf"),
# which wireguard-go cannot promise (random peer order).
same_conf() {
  canonical_conf "$2" >"$2.canon"
  canonical_conf "$3" >"$3.canon"
  assert_same_file "$1" "$2.canon" "$3.canon"
  if [ "$OURS" = gatehouse ]; then assert_same_file "$1 (byte-identical)" "$2" "$3"; fi
}

section "showconf -> setconf round trip"
wgn "$IF1" showconf "$IF1" >"$WORKDIR/c1.conf"
check "setconf of our own showconf" wgn "$IF1" setconf "$IF1" "$WORKDIR/c1.conf"
wgn "$IF1" showconf "$IF1" >"$WORKDIR/c2.conf"
same_conf "showconf identical after setconf on the live device" "$WORKDIR/c1.conf" "$WORKDIR/c2.conf"
# A fresh device in a third namespace (the listen port is taken in NS1).
NS3="gh$LIB_TAG-3"
IF3="wg${LIB_TAG}c"
ns_create "$NS3"
start_wg "$NS3" "$IF3" "$OURS"
check "setconf onto a fresh device" wgn "$IF3" setconf "$IF3" "$WORKDIR/c1.conf"
wgn "$IF3" showconf "$IF3" >"$WORKDIR/c3.conf"
same_conf "fresh device's showconf equals the source's" "$WORKDIR/c1.conf" "$WORKDIR/c3.conf"

section "big allowed-ips lists"
IF4="wg${LIB_TAG}d"
start_wg "$NS3" "$IF4" "$OURS"
# Random 32-byte public keys are fine for configuration; canonical address text comes from
# python's ipaddress, which matches inet_ntop as printed by wg.
"$PYTHON" - "$(wg genkey)" "$WORKDIR/big.conf" "$WORKDIR/big.expected" <<'PY'
import base64, ipaddress, os, sys
priv, conf, exp = sys.argv[1:4]
peers = []
peers.append([f"10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}/32" for i in range(10000)])
for p in range(40):
    peers.append([f"172.16.{p}.{j}/32" if j < 26 else
                  f"{ipaddress.IPv6Address(f'fd10:{p:x}::{j:x}')}/128" for j in range(52)])
peers.append([f"{ipaddress.IPv6Address(f'fd20::{i:x}')}/128" for i in range(197)])
with open(conf, "w") as c, open(exp, "w") as e:
    c.write(f"[Interface]\nPrivateKey = {priv}\nListenPort = 10004\n")
    for ips in peers:
        pub = base64.b64encode(os.urandom(32)).decode()
        c.write(f"\n[Peer]\nPublicKey = {pub}\n")
        for k in range(0, len(ips), 100):
            c.write("AllowedIPs = " + ", ".join(ips[k:k + 100]) + "\n")
        for ip in ips:
            e.write(f"{pub} {ip}\n")
PY
sort -o "$WORKDIR/big.expected" "$WORKDIR/big.expected"
check "setconf with 12 277 allowed IPs over 42 peers" wgn "$IF4" setconf "$IF4" "$WORKDIR/big.conf"
wgn "$IF4" show "$IF4" allowed-ips |
  awk -F'\t' '{ n = split($2, a, " "); for (i = 1; i <= n; i++) print $1, a[i] }' |
  sort >"$WORKDIR/big.actual"
assert_eq "allowed-ips count" "$(wc -l <"$WORKDIR/big.expected")" "$(wc -l <"$WORKDIR/big.actual")"
assert_same_file "every allowed IP comes back exactly" "$WORKDIR/big.expected" "$WORKDIR/big.actual"
assert_eq "42 peers" 42 "$(wgn "$IF4" show "$IF4" peers | wc -l)"
wgn "$IF4" showconf "$IF4" >"$WORKDIR/b1.conf"
check "setconf of the big showconf" wgn "$IF4" setconf "$IF4" "$WORKDIR/b1.conf"
wgn "$IF4" showconf "$IF4" >"$WORKDIR/b2.conf"
same_conf "big showconf round-trips" "$WORKDIR/b1.conf" "$WORKDIR/b2.conf"
for ifn in "$IF1" "$IF3" "$IF4"; do check "$ifn still running" wg_alive "$ifn"; done
finish
