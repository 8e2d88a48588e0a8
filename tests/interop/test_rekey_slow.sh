#!/usr/bin/env bash
# Interop 2 (slow, ~2.5 min): a continuous transfer crosses a real time-based rekey
# (REKEY_AFTER_TIME = 120 s). Two pairs run at the same time to keep the wall time down: one where
# Gatehouse initiated the session (so it must start the rekey), one where wireguard-go did (so
# Gatehouse must answer it). For each: the latest handshake changes on both sides, the TCP stream
# has no error and its sha256 matches, and a concurrent ping loses (almost) nothing.
# Usage: test_rekey_slow.sh GATEHOUSE_BIN   Env: REKEY_SECONDS (default 150, must exceed 120).
source "$(dirname "$0")/lib.sh"
lib_init rekey_slow "${1:-}"
SECS=${REKEY_SECONDS:-150}
RATE=$((1024 * 1024)) # 1 MiB/s: continuous traffic, cheap enough for two pairs on 2 cores

declare -A H1=() H2=() PAIR_NS1=() PAIR_NS2=() PAIR_IF1=() PAIR_IF2=() PAIR_P1=() PAIR_P2=()

start_pair() { # SUFFIX INITIATOR RESPONDER
  local s=$1
  section "pair $s: $2 (initiator) <-> $3 (responder)"
  SUFFIX=$s setup_pair "$2" "$3" 1
  PAIR_NS1[$s]=$NS1 PAIR_NS2[$s]=$NS2 PAIR_IF1[$s]=$IF1 PAIR_IF2[$s]=$IF2
  PAIR_P1[$s]=$PUB1 PAIR_P2[$s]=$PUB2
  check "pair $s: first ping (handshake)" ping_first "$NS1" "$TUN_NET4.2" 10
  check "pair $s: initiator has a handshake" wait_handshake "$IF1" "$PUB2" 5
  check "pair $s: responder has a handshake" wait_handshake "$IF2" "$PUB1" 5
  H1[$s]=$(latest_handshake "$IF1" "$PUB2")
  H2[$s]=$(latest_handshake "$IF2" "$PUB1")
  # Data flows responder -> initiator so the initiator's sends are mostly ACKs: the rekey is then
  # triggered by the side holding the initiator keypair while the other side streams.
  stream_start "$NS2" "$NS1" "$TUN_NET4.1" 5001 "$s" 0 "$RATE" "$SECS"
  spawn "$NS1" "$WORKDIR/$s.ping" ping -n -q -i 0.5 -c $((SECS * 2)) -w $((SECS + 20)) fd00::2
  PING_PID[$s]=$BG_PID
}

declare -A PING_PID=()
start_pair x "$OURS" "$THEIRS"
start_pair y "$THEIRS" "$OURS"

section "streaming for ${SECS}s at $((RATE / 1024)) KiB/s per pair"
for s in x y; do
  stream_wait "$s" $((SECS + 60))
done
for s in x y; do
  wait "${PING_PID[$s]}" 2>/dev/null || true
  sent=$(awk '/packets transmitted/ {print $1}' "$WORKDIR/$s.ping")
  recv=$(awk '/packets transmitted/ {print $4}' "$WORKDIR/$s.ping")
  log "pair $s ping: $(grep 'packets transmitted' "$WORKDIR/$s.ping")"
  # Rotation must be lossless; allow 1% for scheduling hiccups on a loaded CI box.
  assert_ge "pair $s: pings answered across the rekey" "${recv:-0}" $(( ${sent:-1} * 99 / 100 ))
  n1=$(latest_handshake "${PAIR_IF1[$s]}" "${PAIR_P2[$s]}")
  n2=$(latest_handshake "${PAIR_IF2[$s]}" "${PAIR_P1[$s]}")
  assert_gt "pair $s: initiator's handshake renewed after $SECS s" "$n1" "$(( ${H1[$s]} + 100 ))"
  assert_gt "pair $s: responder's handshake renewed after $SECS s" "$n2" "$(( ${H2[$s]} + 100 ))"
  check "pair $s: initiator daemon still running" wg_alive "${PAIR_IF1[$s]}"
  check "pair $s: responder daemon still running" wg_alive "${PAIR_IF2[$s]}"
done
finish
