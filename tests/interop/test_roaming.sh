#!/usr/bin/env bash
# Interop 3: roaming. During a TCP transfer the roaming peer changes its underlay address and
# listen port (new source address and port, like a laptop changing networks), then moves to IPv6
# outer transport. The stationary peer must follow (endpoint = source of the latest authenticated
# packet, E1) and the transfer must finish intact. Run twice: wireguard-go roams while Gatehouse
# follows, and Gatehouse roams (sticky source must be dropped when its address vanishes, E2) while
# wireguard-go follows. Modelled on the kernel netns.sh "roaming" block.
# Usage: test_roaming.sh GATEHOUSE_BIN
source "$(dirname "$0")/lib.sh"
lib_init roaming "${1:-}"

# wait_endpoint IFNAME PEER_PUB EXPECTED TIMEOUT_S
wait_endpoint() {
  local i
  for ((i = 0; i < $4 * 5; i++)); do
    [ "$(peer_field "$1" "$2" endpoints)" == "$3" ] && return 0
    sleep 0.2
  done
  return 1
}

run_case() { # LABEL ROAMER_IMPL STATIONARY_IMPL SUFFIX
  local label=$1 sfx=$4
  section "$label: $2 roams, $3 follows"
  # Device 1 roams; it initiates, so device 2 learns its endpoint only from packets.
  SUFFIX=$sfx setup_pair "$2" "$3" 1
  check "$label: handshake" ping_first "$NS1" "$TUN_NET4.2" 10
  check "$label: stationary side sees 10.231.1.1:10001" \
    wait_endpoint "$IF2" "$PUB1" "10.231.1.1:10001" 5

  # The roamer streams to the stationary side: its data packets carry the new source address, and
  # the stationary side's ACKs only arrive if it followed. (A stream the other way would stall:
  # the roamer would have nothing to send, as a real roamer without persistent keepalive.)
  stream_start "$NS1" "$NS2" "$TUN_NET4.2" 5001 "$sfx" 0 $((2 * 1024 * 1024)) 16
  sleep 3

  log "$label: roamer moves 10.231.1.1:10001 -> 10.231.1.11:10011"
  # Delete first, then add: the old source address disappears from under a sticky socket.
  ip -n "$NS1" addr del 10.231.1.1/24 dev veth1
  ip -n "$NS1" addr add 10.231.1.11/24 dev veth1
  wgn "$IF1" set "$IF1" listen-port 10011
  check "$label: stationary side follows to 10.231.1.11:10011" \
    wait_endpoint "$IF2" "$PUB1" "10.231.1.11:10011" 8
  check "$label: ping stationary -> roamer after move" ping_ok "$NS2" "$TUN_NET4.1" 3
  sleep 3

  log "$label: roamer switches to IPv6 outer transport"
  # The v4 address goes first. The other order races: a v4 packet from the stationary side read
  # between the endpoint change and the delete is authenticated, so the roamer rightly roams back
  # to the v4 endpoint, which then has no route (ENETUNREACH for good, no keepalive to recover;
  # seen once in CI). Packets already queued on the roamer's socket drain during the pause.
  ip -n "$NS1" addr del 10.231.1.11/24 dev veth1
  sleep 0.5
  wgn "$IF1" set "$IF1" peer "$PUB2" endpoint "[fd99:1::2]:10002"
  check "$label: stationary side follows to [fd99:1::1]:10011" \
    wait_endpoint "$IF2" "$PUB1" "[fd99:1::1]:10011" 8
  check "$label: ping v6 stationary -> roamer over v6 outer" ping_ok "$NS2" fd00::1 3

  stream_wait "$sfx" 60
  check "$label: roamer daemon still running" wg_alive "$IF1"
  check "$label: stationary daemon still running" wg_alive "$IF2"
}

run_case "theirs-roams" "$THEIRS" "$OURS" x
run_case "ours-roams" "$OURS" "$THEIRS" y
finish
