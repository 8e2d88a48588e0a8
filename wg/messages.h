// WireGuard wire constants: message types, exact sizes and field offsets (reference §3), and the
// protocol timer constants (reference §8.1). Shared by the noise core, the device and the
// transports; no code here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wg/env.h"

namespace gatehouse::wg {

inline constexpr uint32_t kMsgInitiation = 1;
inline constexpr uint32_t kMsgResponse = 2;
inline constexpr uint32_t kMsgCookieReply = 3;
inline constexpr uint32_t kMsgTransport = 4;

inline constexpr size_t kInitiationSize = 148;
inline constexpr size_t kResponseSize = 92;
inline constexpr size_t kCookieReplySize = 64;
inline constexpr size_t kTransportHeaderSize = 16;
inline constexpr size_t kTransportMinSize = 32;  // header + tag: a keepalive
inline constexpr size_t kMacSize = 16;

// Offsets inside an initiation (M1).
inline constexpr size_t kInitSenderOff = 4;
inline constexpr size_t kInitEphemeralOff = 8;
inline constexpr size_t kInitStaticOff = 40;
inline constexpr size_t kInitTimestampOff = 88;
inline constexpr size_t kInitMac1Off = 116;
inline constexpr size_t kInitMac2Off = 132;
// Offsets inside a response (M2).
inline constexpr size_t kRespSenderOff = 4;
inline constexpr size_t kRespReceiverOff = 8;
inline constexpr size_t kRespEphemeralOff = 12;
inline constexpr size_t kRespEmptyOff = 44;
inline constexpr size_t kRespMac1Off = 60;
inline constexpr size_t kRespMac2Off = 76;
// Cookie reply (M3).
inline constexpr size_t kCookieReceiverOff = 4;
inline constexpr size_t kCookieNonceOff = 8;
inline constexpr size_t kCookieEncOff = 32;
// Transport (M4).
inline constexpr size_t kTransportReceiverOff = 4;
inline constexpr size_t kTransportCounterOff = 8;

// Timers (T1-T12), in nanoseconds.
inline constexpr uint64_t kRekeyAfterMessages = uint64_t{1} << 60;
inline constexpr int64_t kRekeyAfterTime = 120 * kSec;
inline constexpr int64_t kRejectAfterTime = 180 * kSec;
inline constexpr int64_t kRekeyAttemptTime = 90 * kSec;
inline constexpr int64_t kRekeyTimeout = 5 * kSec;
inline constexpr int64_t kRekeyTimeoutJitterMax = 334 * kMs;  // exclusive
inline constexpr int64_t kKeepaliveTimeout = 10 * kSec;
inline constexpr int64_t kCookieRefreshTime = 120 * kSec;
inline constexpr int64_t kHandshakeInitiationRate = 20 * kMs;
inline constexpr int kMaxTimerHandshakes = static_cast<int>(kRekeyAttemptTime / kRekeyTimeout);
inline constexpr size_t kMaxStagedPackets = 128;
inline constexpr int64_t kUnderLoadAfterTime = 1 * kSec;

inline uint32_t loadLe32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t loadLe64(const uint8_t* p) {
  return uint64_t(loadLe32(p)) | uint64_t(loadLe32(p + 4)) << 32;
}
inline void storeLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void storeLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace gatehouse::wg
