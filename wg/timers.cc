// The five per-peer timers and the hooks that drive them (reference §8.2), as deadlines on the
// monotonic clock instead of OS timers, so the whole state machine runs under a fake clock.
// Hook names follow wireguard-go device/timers.go.
#include "wg/device_impl.h"

namespace gatehouse::wg {

int64_t Device::Impl::jitter() {
  return static_cast<int64_t>(random.u32() % static_cast<uint32_t>(kRekeyTimeoutJitterMax));
}

void Device::Impl::arm(int64_t& timer, int64_t deadline) {
  timer = deadline;
  if (deadline < next_deadline) next_deadline = deadline;
}

void Device::Impl::timersDataSent(Peer& p, const Now& now) {
  if (p.t_new_handshake == kNever) {
    arm(p.t_new_handshake, now.mono_ns + kKeepaliveTimeout + kRekeyTimeout + jitter());
  }
}

void Device::Impl::timersDataReceived(Peer& p, const Now& now) {
  if (p.t_send_keepalive == kNever) {
    arm(p.t_send_keepalive, now.mono_ns + kKeepaliveTimeout);
  } else {
    p.need_another_keepalive = true;
  }
}

void Device::Impl::timersAnyAuthenticatedPacketSent(Peer& p) { p.t_send_keepalive = kNever; }

void Device::Impl::timersAnyAuthenticatedPacketReceived(Peer& p) { p.t_new_handshake = kNever; }

void Device::Impl::timersAnyAuthenticatedPacketTraversal(Peer& p, const Now& now) {
  if (p.persistent_keepalive > 0) {
    arm(p.t_persistent_keepalive, now.mono_ns + int64_t{p.persistent_keepalive} * kSec);
  }
}

void Device::Impl::timersHandshakeInitiated(Peer& p, const Now& now) {
  arm(p.t_retransmit_handshake, now.mono_ns + kRekeyTimeout + jitter());
}

void Device::Impl::timersHandshakeComplete(Peer& p, const Now& now) {
  p.t_retransmit_handshake = kNever;
  p.handshake_attempts = 0;
  p.sent_last_minute_handshake = false;
  p.stats.last_handshake_wall_ns = now.wall_ns;
}

void Device::Impl::timersSessionDerived(Peer& p, const Now& now) {
  arm(p.t_zero_key_material, now.mono_ns + 3 * kRejectAfterTime);
}

void Device::Impl::runTimers(Peer& p, const Now& now, DeviceOutput& out) {
  const int64_t t = now.mono_ns;
  if (p.t_retransmit_handshake <= t) {
    p.t_retransmit_handshake = kNever;
    if (p.handshake_attempts > kMaxTimerHandshakes) {
      // Give up (reference T6): drop what waited for this handshake, and forget keys later.
      p.t_send_keepalive = kNever;
      p.staged.clear();
      if (p.t_zero_key_material == kNever) {
        arm(p.t_zero_key_material, t + 3 * kRejectAfterTime);
      }
    } else {
      ++p.handshake_attempts;
      if (p.endpoint) out.clearSource(*p.endpoint);
      sendHandshakeInitiation(p, true, now, out);
    }
  }
  if (p.t_send_keepalive <= t) {
    p.t_send_keepalive = kNever;
    sendKeepalive(p, now, out);
    if (p.need_another_keepalive) {
      p.need_another_keepalive = false;
      arm(p.t_send_keepalive, t + kKeepaliveTimeout);
    }
  }
  if (p.t_new_handshake <= t) {
    p.t_new_handshake = kNever;
    if (p.endpoint) out.clearSource(*p.endpoint);
    sendHandshakeInitiation(p, false, now, out);
  }
  if (p.t_zero_key_material <= t) {
    p.t_zero_key_material = kNever;
    zeroAndFlushAll(p);
  }
  if (p.t_persistent_keepalive <= t) {
    p.t_persistent_keepalive = kNever;
    if (p.persistent_keepalive > 0) sendKeepalive(p, now, out);
  }
  for (int64_t d : {p.t_retransmit_handshake, p.t_send_keepalive, p.t_new_handshake,
                    p.t_zero_key_material, p.t_persistent_keepalive}) {
    if (d < next_deadline) next_deadline = d;
  }
}

}  // namespace gatehouse::wg
