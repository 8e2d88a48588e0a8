#include "control/channel.h"

#include <cstring>

#include "proto/control.pb.h"
#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::control {
namespace {

namespace noise = wg::noise;
namespace crypto = wg::crypto;

const Key32& prologueHash() {
  static const Key32 h =
      noise::initialHashFor({reinterpret_cast<const uint8_t*>(kPrologue.data()), kPrologue.size()});
  return h;
}

std::string helloPayload() {
  v1::Hello hello;
  hello.set_capability_version(kCapabilityVersion);
  return hello.SerializeAsString();
}

crypto::Bytes asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Key32 freshEphemeral(wg::Random& random) {
  Key32 r;
  random.fill(r);
  Key32 k = crypto::privateKeyFromRandom(r);
  crypto::wipe(r);
  return k;
}

uint32_t readBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

Channel Channel::client(const noise::LocalStatic& machine, const Key32& server_public,
                        wg::Random& random) {
  Channel c;
  c.state_ = State::kHandshake;
  c.is_client_ = true;
  c.local_ = machine;
  c.random_ = &random;
  c.remote_static_ = server_public;
  if (!noise::configure(c.hs_, machine, server_public)) {
    c.fail("handshake: the server key is not a valid X25519 public key");
    return c;
  }
  std::string payload = helloPayload();
  std::string body(noise::kMsg1BodyBase + payload.size() + crypto::kAeadTagBytes, '\0');
  Key32 eph = freshEphemeral(random);
  bool ok = noise::writeMessage1(c.hs_, machine, eph, asBytes(payload),
                                 reinterpret_cast<uint8_t*>(body.data()), prologueHash());
  crypto::wipe(eph);
  if (!ok) {
    c.fail("handshake: cannot write message 1");
    return c;
  }
  c.appendFrame(asBytes(body));
  return c;
}

Channel Channel::server(const noise::LocalStatic& server_static, wg::Random& random) {
  Channel c;
  c.state_ = State::kHandshake;
  c.local_ = server_static;
  c.random_ = &random;
  return c;
}

Channel::Channel(Channel&& o) noexcept { *this = std::move(o); }

Channel& Channel::operator=(Channel&& o) noexcept {
  if (this == &o) return *this;
  is_client_ = o.is_client_;
  state_ = o.state_;
  local_ = o.local_;
  hs_ = o.hs_;
  random_ = o.random_;
  send_key_ = o.send_key_;
  recv_key_ = o.recv_key_;
  send_counter_ = o.send_counter_;
  recv_counter_ = o.recv_counter_;
  remote_static_ = o.remote_static_;
  peer_version_ = o.peer_version_;
  in_ = std::move(o.in_);
  in_pos_ = o.in_pos_;
  out_ = std::move(o.out_);
  error_ = std::move(o.error_);
  o.wipe();
  return *this;
}

Channel::~Channel() { wipe(); }

void Channel::wipe() {
  crypto::wipe(local_);
  hs_.clearState();
  crypto::wipe(hs_.precomputed_static_static);
  crypto::wipe(send_key_);
  crypto::wipe(recv_key_);
}

bool Channel::fail(std::string why) {
  if (state_ != State::kFailed) error_ = std::move(why);
  state_ = State::kFailed;
  wipe();
  in_.clear();
  in_pos_ = 0;
  return false;
}

void Channel::appendFrame(crypto::Bytes body) {
  uint32_t n = static_cast<uint32_t>(body.size());
  char header[4] = {char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  out_.append(header, 4);
  out_.append(reinterpret_cast<const char*>(body.data()), body.size());
}

bool Channel::send(std::string_view message) {
  if (state_ != State::kOpen || message.size() > kMaxFramePlaintext) return false;
  uint32_t n = static_cast<uint32_t>(message.size() + crypto::kAeadTagBytes);
  uint8_t header[4] = {uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
  size_t at = out_.size();
  out_.append(reinterpret_cast<const char*>(header), 4);
  out_.resize(at + 4 + n);
  crypto::aeadSeal(reinterpret_cast<uint8_t*>(out_.data() + at + 4), send_key_, send_counter_++,
                   asBytes(message), {header, 4});
  return true;
}

std::string Channel::takeOutput() {
  std::string out;
  out.swap(out_);
  return out;
}

bool Channel::receive(std::span<const uint8_t> bytes, std::vector<std::string>& messages) {
  if (state_ == State::kFailed) return false;
  in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (state_ != State::kFailed) {
    size_t avail = in_.size() - in_pos_;
    if (avail < kFrameHeader) break;
    const auto* p = reinterpret_cast<const uint8_t*>(in_.data() + in_pos_);
    uint32_t n = readBe32(p);
    size_t limit = state_ == State::kHandshake ? kMaxHandshakeFrame
                                               : kMaxFramePlaintext + crypto::kAeadTagBytes;
    if (n > limit) {
      return fail("frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                  std::to_string(limit));
    }
    if (avail < kFrameHeader + n) break;
    in_pos_ += kFrameHeader + n;
    if (!handleFrame({p, kFrameHeader}, {p + kFrameHeader, n}, messages)) return false;
  }
  if (state_ == State::kFailed) return false;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > 64 * 1024) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  return true;
}

bool Channel::handleFrame(std::span<const uint8_t> header, std::span<const uint8_t> body,
                          std::vector<std::string>& messages) {
  if (state_ == State::kHandshake) {
    return is_client_ ? clientReadMessage2(body) : serverReadMessage1(body);
  }
  if (body.size() < crypto::kAeadTagBytes) return fail("frame shorter than its tag");
  if (recv_counter_ == UINT64_MAX) return fail("receive counter exhausted");
  std::string plain(body.size() - crypto::kAeadTagBytes, '\0');
  if (!crypto::aeadOpen(reinterpret_cast<uint8_t*>(plain.data()), recv_key_, recv_counter_, body,
                        header)) {
    return fail("frame failed authentication (tampered or out of order)");
  }
  ++recv_counter_;
  messages.push_back(std::move(plain));
  return true;
}

bool Channel::serverReadMessage1(std::span<const uint8_t> body) {
  if (body.size() < noise::kMsg1BodyBase + crypto::kAeadTagBytes) {
    return fail("handshake: message 1 too short");
  }
  noise::Message1Read m;
  if (!noise::readMessage1Static(local_, body.data(), m, prologueHash())) {
    return fail("handshake: cannot decrypt message 1 (the client pinned another server key?)");
  }
  if (!noise::configure(hs_, local_, m.remote_static)) {
    return fail("handshake: the client's static key is a low-order point");
  }
  size_t payload_len = body.size() - noise::kMsg1BodyBase - crypto::kAeadTagBytes;
  std::string payload(payload_len, '\0');
  if (!noise::readMessage1Payload(m, hs_.precomputed_static_static, body.data(), payload_len,
                                  reinterpret_cast<uint8_t*>(payload.data()))) {
    return fail("handshake: message 1 payload failed authentication");
  }
  v1::Hello hello;
  if (!hello.ParseFromString(payload) || hello.capability_version() == 0) {
    return fail("handshake: message 1 carries no valid Hello");
  }
  noise::acceptMessage1(hs_, m);
  remote_static_ = m.remote_static;
  peer_version_ = hello.capability_version();

  std::string reply = helloPayload();
  std::string msg2(noise::kMsg2BodyBase + reply.size() + crypto::kAeadTagBytes, '\0');
  Key32 eph = freshEphemeral(*random_);
  bool ok = noise::writeMessage2(hs_, eph, asBytes(reply), reinterpret_cast<uint8_t*>(msg2.data()));
  crypto::wipe(eph);
  if (!ok) return fail("handshake: cannot write message 2");
  appendFrame(asBytes(msg2));
  noise::deriveTransportKeys(hs_, send_key_, recv_key_);
  state_ = State::kOpen;
  return true;
}

bool Channel::clientReadMessage2(std::span<const uint8_t> body) {
  if (body.size() < noise::kMsg2BodyBase + crypto::kAeadTagBytes) {
    return fail("handshake: message 2 too short");
  }
  size_t payload_len = body.size() - noise::kMsg2BodyBase - crypto::kAeadTagBytes;
  std::string payload(payload_len, '\0');
  if (!noise::readMessage2(hs_, local_, body.data(), payload_len,
                           reinterpret_cast<uint8_t*>(payload.data()))) {
    return fail("handshake: message 2 failed authentication (wrong server key?)");
  }
  v1::Hello hello;
  if (!hello.ParseFromString(payload) || hello.capability_version() == 0) {
    return fail("handshake: message 2 carries no valid Hello");
  }
  peer_version_ = hello.capability_version();
  noise::deriveTransportKeys(hs_, send_key_, recv_key_);
  state_ = State::kOpen;
  return true;
}

}  // namespace gatehouse::control
