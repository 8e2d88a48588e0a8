// The control channel: a Noise IK handshake over a byte stream (TCP), then length-prefixed AEAD
// frames (proto/PROTOCOL.md "Framing" and "Handshake").
//
// Sans-I/O: bytes in through receive(), bytes out through takeOutput(); no socket, no clock.
// One Channel per connection, used from one thread. The client pins the server's static X25519
// key; the server learns the client's static key (the machine key) from message 1 and accepts
// any key: who may do what is decided above the channel (registration).
//
// Wire format, both directions: u32 big-endian length N, then N bytes. The first frame each way
// is a Noise message body (wg/noise.h, prologue kPrologue) whose payload is a proto Hello; every
// later frame is ChaCha20-Poly1305(key, counter, plaintext, ad = the 4 length bytes) with a
// per-direction counter from 0. A length above the limit, a bad tag or a bad handshake fails the
// channel for good: the caller closes the connection.
//
// `random` (ephemeral keys) is borrowed and must outlive the Channel. Keys are wiped on
// destruction.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wg/env.h"
#include "wg/noise.h"

namespace gatehouse::control {

using wg::crypto::Key32;

inline constexpr uint32_t kCapabilityVersion = 1;
inline constexpr std::string_view kPrologue = "gatehouse control v1";
inline constexpr size_t kMaxFramePlaintext = 1 << 20;  // 1 MiB
inline constexpr size_t kMaxHandshakeFrame = 1024;
inline constexpr size_t kFrameHeader = 4;

class Channel {
 public:
  enum class State : uint8_t { kHandshake, kOpen, kFailed };

  // The client queues handshake message 1 at once (takeOutput()).
  static Channel client(const wg::noise::LocalStatic& machine, const Key32& server_public,
                        wg::Random& random);
  static Channel server(const wg::noise::LocalStatic& server_static, wg::Random& random);

  Channel() = default;  // a placeholder: failed until replaced by client() or server()
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  ~Channel();

  // Consumes received bytes; appends each decrypted message to `messages`. Returns false when
  // the channel has failed (now or before); error() says why.
  bool receive(std::span<const uint8_t> bytes, std::vector<std::string>& messages);
  bool receive(std::string_view bytes, std::vector<std::string>& messages) {
    return receive({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, messages);
  }
  // Seals one message into the output. False when the channel is not open or the message is
  // larger than kMaxFramePlaintext.
  bool send(std::string_view message);
  // Bytes for the socket, in order; the buffer is emptied.
  std::string takeOutput();

  State state() const { return state_; }
  bool open() const { return state_ == State::kOpen; }
  const std::string& error() const { return error_; }
  // Bytes of an incomplete frame waiting for more input (slowloris accounting).
  size_t bufferedInput() const { return in_.size() - in_pos_; }
  // After the handshake: the server's key (client side) or the client's machine key.
  const Key32& remoteStatic() const { return remote_static_; }
  uint32_t peerVersion() const { return peer_version_; }

 private:
  bool fail(std::string why);
  bool handleFrame(std::span<const uint8_t> header, std::span<const uint8_t> body,
                   std::vector<std::string>& messages);
  bool serverReadMessage1(std::span<const uint8_t> body);
  bool clientReadMessage2(std::span<const uint8_t> body);
  void appendFrame(std::span<const uint8_t> body);
  void wipe();

  bool is_client_ = false;
  State state_ = State::kFailed;
  wg::noise::LocalStatic local_{};
  wg::noise::Handshake hs_{};
  wg::Random* random_ = nullptr;
  Key32 send_key_{};
  Key32 recv_key_{};
  uint64_t send_counter_ = 0;
  uint64_t recv_counter_ = 0;
  Key32 remote_static_{};
  uint32_t peer_version_ = 0;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  std::string error_;
};

}  // namespace gatehouse::control
