#!/usr/bin/env bash
# Interop 4: wrong keys. Three misconfigurations, each with Gatehouse as initiator and as
# responder:
#   pubkey: the initiator holds a wrong public key for the responder (responder: bad mac1);
#   stranger: the responder does not know the initiator's key (responder: unknown static key);
#   psk: the preshared keys differ (initiator: the response fails to decrypt).
# Expected: no handshake on either side (latest-handshakes stays 0), ping fails, no UDP datagram
# and no packet at all comes out of either TUN, and when Gatehouse is the side receiving the bad
# message its drop counters grow. Then the configuration is corrected and the handshake works,
# which proves the failure came from the keys and not from the setup.
# Usage: test_wrong_keys.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init wrong_keys "${1:-}"

tun_rx_packets() { nsx "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }

# uapi_drops IFNAME: the raw get reply's drop counters, "reason=N" per line. Gatehouse adds them
# to the device section as gatehouse_drop_<reason>=N, keys `wg` ignores (U9).
uapi_drops() { uapi_get "$1" | sed -n 's/^gatehouse_drop_//p'; }

# check_drops LABEL IFNAME REASON: Gatehouse counted the bad handshake messages it received under
# REASON (bad_mac1, handshake_failed; names from wg/device.cc dropReasonName).
check_drops() {
  local label=$1 ifn=$2 reason=$3 drops v
  if [ "${WG_IMPL[$ifn]}" != gatehouse ]; then
    log "$label: drop counters not checked (${WG_IMPL[$ifn]} does not expose them)"
    return
  fi
  drops=$(uapi_drops "$ifn" || true)
  v=$(sed -n "s/^$reason=//p" <<<"$drops")
  if [ -n "$v" ] && [ "$v" -gt 0 ]; then
    pass "$label: Gatehouse counted $v '$reason' drops (UAPI get)"
    return
  fi
  # Not in the get reply: the daemon also logs "drops: total N, reason N, ..." on exit.
  stop_wg "$ifn" || true
  v=$(grep -o "drops: total .*" "${WG_LOG[$ifn]}" | grep -o "$reason [0-9]*" | awk '{print $2}' |
    tail -n1 || true)
  if [ -n "$v" ] && [ "$v" -gt 0 ]; then
    pass "$label: Gatehouse counted $v '$reason' drops (exit log)"
  else
    fail "$label: no '$reason' drop counted by Gatehouse; UAPI: [$(tr "\n" " " <<<"$drops")]," \
      "exit log: [$(grep -o 'drops: total .*' "${WG_LOG[$ifn]}" || true)]"
  fi
}

run_case() { # CASE ROLE INITIATOR_IMPL RESPONDER_IMPL SUFFIX
  local kind=$1 label="$1/$2-initiates"
  shift
  local sfx=$4
  section "$label: $2 (initiator) -> $3 (responder)"
  SUFFIX=$sfx setup_pair "$2" "$3" 1
  gen_keys "w$sfx"
  local wrong_var="PUB_w$sfx" h1_peer=$PUB2 h2_peer=$PUB1 receiver=$IF2 reason
  # The side that receives the bad message, and why it must drop it.
  local wrong=${!wrong_var}
  case $kind in
    pubkey)
      wgn "$IF1" set "$IF1" peer "$PUB2" remove \
        peer "$wrong" allowed-ips "$TUN_NET4.2/32,fd00::2/128" endpoint 10.231.1.2:10002
      h1_peer=$wrong
      reason=bad_mac1 # mac1 is keyed by the responder's public key
      ;;
    stranger)
      wgn "$IF2" set "$IF2" peer "$PUB1" remove peer "$wrong" allowed-ips "$TUN_NET4.1/32"
      h2_peer=$wrong
      reason=handshake_failed # static key decrypts but belongs to no peer
      ;;
    psk)
      gen_psk "q$sfx"
      wgn "$IF2" set "$IF2" peer "$PUB1" preshared-key "$WORKDIR/q$sfx.psk"
      receiver=$IF1
      reason=handshake_failed # the response's empty payload fails to decrypt (psk in the key)
      ;;
  esac

  spawn "$NS2" "$WORKDIR/$sfx.udp.log" "$PYTHON" "$PYHELPER" udprecv "$TUN_NET4.2" 6000 \
    "$WORKDIR/$sfx.udp.json" 6
  wait_file "$WORKDIR/$sfx.udp.json.ready" 5 || die "udp receiver did not start"
  check_not "$label: ping initiator -> responder fails" \
    nsx "$NS1" ping -q -n -c 3 -i 0.5 -w 4 "$TUN_NET4.2"
  nsx "$NS1" "$PYTHON" "$PYHELPER" udpsend "$TUN_NET4.2" 6000 10 0.1
  wait_file "$WORKDIR/$sfx.udp.json" 10 || die "udp receiver did not finish"
  assert_eq "$label: no UDP datagram delivered" 0 "$(json_field "$WORKDIR/$sfx.udp.json" datagrams)"
  assert_eq "$label: responder TUN received no packet" 0 "$(tun_rx_packets "$NS2" "$IF2")"
  assert_eq "$label: initiator TUN received no packet" 0 "$(tun_rx_packets "$NS1" "$IF1")"
  assert_eq "$label: initiator has no handshake" 0 "$(latest_handshake "$IF1" "$h1_peer")"
  assert_eq "$label: responder has no handshake" 0 "$(latest_handshake "$IF2" "$h2_peer")"
  check "$label: initiator daemon survived" wg_alive "$IF1"
  check "$label: responder daemon survived" wg_alive "$IF2"

  # Control: fix the configuration; the same pair must now complete a handshake.
  case $kind in
    pubkey)
      wgn "$IF1" set "$IF1" peer "$wrong" remove \
        peer "$PUB2" allowed-ips "$TUN_NET4.2/32,fd00::2/128" endpoint 10.231.1.2:10002 \
        preshared-key "$PSK_FILE" ;;
    stranger)
      wgn "$IF2" set "$IF2" peer "$wrong" remove \
        peer "$PUB1" allowed-ips "$TUN_NET4.1/32,fd00::1/128" preshared-key "$PSK_FILE" ;;
    psk)
      wgn "$IF2" set "$IF2" peer "$PUB1" preshared-key "$PSK_FILE" ;;
  esac
  # wireguard-go retries the handshake every 5 s (REKEY_TIMEOUT); give it two rounds.
  check "$label: control: handshake works once the keys are right" \
    ping_first "$NS1" "$TUN_NET4.2" 15
  check_drops "$label" "$receiver" "$reason"
}

run_case pubkey ours "$OURS" "$THEIRS" a
run_case pubkey theirs "$THEIRS" "$OURS" b
run_case stranger ours "$OURS" "$THEIRS" c
run_case stranger theirs "$THEIRS" "$OURS" d
run_case psk ours "$OURS" "$THEIRS" e
run_case psk theirs "$THEIRS" "$OURS" f
finish
