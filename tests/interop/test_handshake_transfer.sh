#!/usr/bin/env bash
# Interop 1: Gatehouse initiates and wireguard-go responds, then the reverse. For each: handshake,
# ping both ways over the v4 and v6 tunnel addresses, and a 100 MB TCP transfer in each direction
# (v4 one way, v6 the other) whose sha256 must match on both ends.
# Usage: test_handshake_transfer.sh GATEHOUSE_BIN   (GH_IMPL=wireguard-go validates the harness)
# Env: TRANSFER_MB (default 100).
source "$(dirname "$0")/lib.sh"
lib_init handshake_transfer "${1:-}"
MB=${TRANSFER_MB:-100}

run_direction() { # LABEL INITIATOR_IMPL RESPONDER_IMPL SUFFIX
  local label=$1
  section "$label: $2 (initiator) -> $3 (responder)"
  # Device 1 is always the initiator: only it knows the other's endpoint.
  SUFFIX=$4 setup_pair "$2" "$3" 1
  check "$label: first ping from initiator gets a reply (handshake)" ping_first "$NS1" "$TUN_NET4.2" 10
  check "$label: initiator reports a handshake" wait_handshake "$IF1" "$PUB2" 5
  check "$label: responder reports a handshake" wait_handshake "$IF2" "$PUB1" 5
  assert_eq "$label: responder learned the initiator's endpoint" "10.231.1.1:10001" \
    "$(peer_field "$IF2" "$PUB1" endpoints)"
  check "$label: ping v4 initiator -> responder" ping_ok "$NS1" "$TUN_NET4.2" 5
  check "$label: ping v4 responder -> initiator" ping_ok "$NS2" "$TUN_NET4.1" 5
  check "$label: ping v6 initiator -> responder" ping_ok "$NS1" fd00::2 5
  check "$label: ping v6 responder -> initiator" ping_ok "$NS2" fd00::1 5

  local bytes=$((MB * 1024 * 1024))
  stream_start "$NS1" "$NS2" "$TUN_NET4.2" 5001 "$4-fwd" "$bytes"
  stream_wait "$4-fwd" 120
  stream_start "$NS2" "$NS1" fd00::1 5002 "$4-rev" "$bytes"
  stream_wait "$4-rev" 120
  check "$label: initiator daemon still running" wg_alive "$IF1"
  check "$label: responder daemon still running" wg_alive "$IF2"
}

run_direction "ours-initiates" "$OURS" "$THEIRS" x
run_direction "theirs-initiates" "$THEIRS" "$OURS" y
finish
