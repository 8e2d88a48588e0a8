// UAPI: the WireGuard cross-platform configuration protocol (reference section 11.2), as a
// sans-I/O codec. The control transport reads bytes from one client of the
// /run/wireguard/IFNAME.sock stream socket, hands them to that client's UapiConnection with
// `now`, and writes whatever reply text comes back. Compatible with wireguard-tools 1.0.20210914
// (`wg show/showconf/set/setconf/syncconf`) and with wireguard-go's device/uapi.go.
//
// Thread safety: none. Construct, feed and destroy on the device loop only: operations run
// synchronously against the Device inside feed(). The connection borrows the Device, the
// UapiHost and the DeviceOutput; they must outlive it.
//
// Wire format (one connection may carry several operations):
//   get=1\n\n                      → device keys, peer keys, then errno=0\n\n
//   set=1\n key=value\n ... \n     → errno=N\n\n (0, or a negative errno)
// Keys are 64 hex characters (lowercase out; either case accepted in, like wireguard-go).
//
// Divergences from wireguard-go, all on inputs real clients never send:
//   * after any error reply the connection asks to close (wireguard-go re-reads the unread rest
//     of the operation as operation lines, which in practice also ends in a close);
//   * a line longer than UapiOptions::max_line_bytes fails a set with errno=-5 (EIO, as
//     bufio.Scanner's ErrTooLong does at 64 KiB) and closes; an over-long operation line closes;
//   * an unknown operation line ("put=1") closes without a reply, exactly like wireguard-go;
//   * endpoints are numeric only and IPv6 zones ("%eth0") are rejected.
//
// The get reply adds device drop counters as `gatehouse_drop_<reason>=N` lines (non-zero ones
// only, in the device section). wg's get parser (src/ipc-uapi.h) and wgctrl-go ignore keys they do
// not know as long as the line has exactly one '='.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wg/device.h"
#include "wg/env.h"

namespace gatehouse::wg {

// 64 lowercase hex characters.
std::string keyToHex(const Key32& key);
// Exactly 64 hex characters, either case; nullopt otherwise.
std::optional<Key32> keyFromHex(std::string_view hex);
// 44 characters, standard alphabet with padding (libsodium sodium_base64_VARIANT_ORIGINAL), the
// form `wg genkey` prints. Decoding rejects non-canonical trailing bits.
std::string keyToBase64(const Key32& key);
std::optional<Key32> keyFromBase64(std::string_view b64);

// Device settings that live in the I/O layer rather than in the sans-I/O Device.
class UapiHost {
 public:
  virtual ~UapiHost() = default;
  // The bound UDP port (the chosen one when 0 was asked for); 0 while unbound.
  virtual uint16_t listenPort() const = 0;
  // Rebinds. Returns 0, or a positive errno (EADDRINUSE for a taken port, which is the code
  // wireguard-go always reports) that becomes the reply `errno=-N`.
  virtual int setListenPort(uint16_t port) = 0;
  virtual uint32_t fwmark() const = 0;
  // 0 clears. Returns 0 or a positive errno, as setListenPort.
  virtual int setFwmark(uint32_t mark) = 0;
};

struct UapiOptions {
  // Longest accepted line, '\n' excluded. Valid lines are under 200 bytes.
  size_t max_line_bytes = 4096;
  // wireguard-go's MaxPeers: creating one more fails with errno=-22.
  size_t max_peers = size_t{1} << 16;
};

// Negative errno values sent in `errno=` lines (wireguard-go ipc/uapi.go names).
inline constexpr int kUapiErrIo = -5;          // EIO: read failure, over-long line
inline constexpr int kUapiErrInvalid = -22;    // EINVAL: unknown key, bad value
inline constexpr int kUapiErrProtocol = -71;   // EPROTO: line without '='
inline constexpr int kUapiErrPortInUse = -98;  // EADDRINUSE: listen_port/fwmark rebind failed

// One client connection of the configuration socket.
class UapiConnection {
 public:
  UapiConnection(Device& device, UapiHost& host, DeviceOutput& output, UapiOptions options = {});
  UapiConnection(const UapiConnection&) = delete;
  UapiConnection& operator=(const UapiConnection&) = delete;

  // Consumes `bytes` (any split: a byte at a time is fine), runs every operation they complete
  // and appends the replies to `reply_out`. Set lines take effect as they arrive, like
  // wireguard-go; a peer section's keepalive goes out when the section ends. After wantsClose()
  // further bytes are ignored.
  void feed(std::span<const uint8_t> bytes, const Now& now, std::string& reply_out);
  void feed(std::string_view text, const Now& now, std::string& reply_out) {
    feed({reinterpret_cast<const uint8_t*>(text.data()), text.size()}, now, reply_out);
  }

  // True after a protocol error: flush the reply, then close the socket.
  bool wantsClose() const { return state_ == State::kClosed; }
  // Bytes buffered for an incomplete line (bounded by max_line_bytes).
  size_t bufferedBytes() const { return partial_.size(); }

 private:
  enum class State : uint8_t { kOperation, kGetTerminator, kSet, kClosed };

  // The peer section a set is in (wireguard-go ipcSetPeer).
  struct Section {
    bool open = false;
    bool dummy = false;    // own key, removed, or update_only on a missing peer: parse, no effect
    bool created = false;  // created by this section's public_key line
    Key32 public_key{};
    std::optional<uint16_t> keepalive;  // applied at section end, as wireguard-go sends then
  };

  void onLine(std::string_view line, const Now& now, std::string& out);
  void onOverlongLine(std::string& out);
  // Returns 0 or a negative errno.
  int onSetLine(std::string_view line, const Now& now);
  int onPublicKey(std::string_view value, const Now& now);
  int onDeviceKey(std::string_view key, std::string_view value, const Now& now);
  int onPeerKey(std::string_view key, std::string_view value);
  void endSection(const Now& now);
  void finishSet(int err, const Now& now, std::string& out);

  Device& device_;
  UapiHost& host_;
  DeviceOutput& output_;
  UapiOptions options_;
  State state_ = State::kOperation;
  std::string partial_;  // an incomplete line carried between feeds
  bool device_section_ = true;
  Section section_;
};

// Appends a complete get reply (ending "errno=0\n\n") for `device`. Used by UapiConnection;
// exposed for tests and diagnostics.
void appendUapiGetReply(const Device& device, const UapiHost& host, std::string& out);

}  // namespace gatehouse::wg
