#include "wg/noise.h"

#include <cstring>

#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::wg::noise {
namespace {

constexpr char kConstruction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr char kIdentifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

Bytes view(const Key32& k) { return {k.data(), k.size()}; }
Bytes view(const uint8_t* p, size_t n) { return {p, n}; }

void mixHash(Key32& h, Bytes data) { h = crypto::hash2(view(h), data); }
void mixKey(Key32& ck, Bytes data) { crypto::kdf1(ck, ck, data); }

// (ck, k) = KDF2(ck, DH(sk, pk)); false on a zero DH result (reference C8).
bool mixDh(Key32& ck, Key32& k, const Key32& sk, const Key32& pk) {
  Key32 ss;
  bool ok = crypto::x25519(ss, sk, pk);
  if (ok) crypto::kdf2(ck, k, ck, view(ss));
  crypto::wipe(ss);
  return ok;
}

// Message 2's key schedule up to its payload key, shared by both roles (reference §4):
// e (mix hash and key), ee, se, psk. `ee_sk`/`ee_pk` and `se_sk`/`se_pk` are the two DH inputs as
// seen from the caller's side. False on a zero DH result.
bool mixMessage2(Key32& ck, Key32& h, Key32& k, const Key32& e_pub, const Key32& ee_sk,
                 const Key32& ee_pk, const Key32& se_sk, const Key32& se_pk, const Key32& psk) {
  Key32 ss, tau;
  mixHash(h, view(e_pub));
  mixKey(ck, view(e_pub));
  bool ok = crypto::x25519(ss, ee_sk, ee_pk);
  if (ok) mixKey(ck, view(ss));
  ok = ok && crypto::x25519(ss, se_sk, se_pk);
  if (ok) {
    mixKey(ck, view(ss));
    crypto::kdf3(ck, tau, k, ck, view(psk));
    mixHash(h, view(tau));
  }
  crypto::wipe(ss);
  crypto::wipe(tau);
  return ok;
}

}  // namespace

const Key32& initialChainKey() {
  static const Key32 c0 =
      crypto::hash({reinterpret_cast<const uint8_t*>(kConstruction), sizeof kConstruction - 1});
  return c0;
}

const Key32& initialHash() {
  static const Key32 h0 =
      initialHashFor({reinterpret_cast<const uint8_t*>(kIdentifier), sizeof kIdentifier - 1});
  return h0;
}

Key32 initialHashFor(Bytes prologue) { return crypto::hash2(view(initialChainKey()), prologue); }

void Handshake::clearState() {
  crypto::wipe(hash);
  crypto::wipe(chain_key);
  crypto::wipe(local_ephemeral);
  crypto::wipe(remote_ephemeral);
  state = State::kZeroed;
}

Message1Read::~Message1Read() {
  crypto::wipe(chain_key);
  crypto::wipe(hash);
}

bool configure(Handshake& hs, const LocalStatic& local, const Key32& remote_static) {
  hs.remote_static = remote_static;
  hs.static_static_valid = crypto::x25519(hs.precomputed_static_static, local.priv, remote_static);
  return hs.static_static_valid;
}

bool writeMessage1(Handshake& hs, const LocalStatic& local, const Key32& ephemeral_priv,
                   Bytes payload, uint8_t* body, const Key32& initial_hash) {
  if (!hs.static_static_valid) return false;
  Key32 ck = initialChainKey(), h = initial_hash, k;
  mixHash(h, view(hs.remote_static));

  Key32 e_pub = crypto::publicKey(ephemeral_priv);
  std::memcpy(body, e_pub.data(), 32);
  mixKey(ck, view(e_pub));
  mixHash(h, view(e_pub));

  bool ok = mixDh(ck, k, ephemeral_priv, hs.remote_static);
  if (ok) {
    uint8_t* enc_static = body + 32;
    crypto::aeadSeal(enc_static, k, 0, view(local.pub), view(h));
    mixHash(h, view(enc_static, 48));

    crypto::kdf2(ck, k, ck, view(hs.precomputed_static_static));
    uint8_t* enc_payload = body + 80;
    crypto::aeadSeal(enc_payload, k, 0, payload, view(h));
    mixHash(h, view(enc_payload, payload.size() + 16));

    hs.chain_key = ck;
    hs.hash = h;
    hs.local_ephemeral = ephemeral_priv;
    hs.state = Handshake::State::kInitiationCreated;
  }
  crypto::wipe(ck);
  crypto::wipe(k);
  return ok;
}

bool readMessage1Static(const LocalStatic& local, const uint8_t* body, Message1Read& out,
                        const Key32& initial_hash) {
  Key32 ck = initialChainKey(), h = initial_hash, k;
  mixHash(h, view(local.pub));
  std::memcpy(out.remote_ephemeral.data(), body, 32);
  mixKey(ck, view(out.remote_ephemeral));
  mixHash(h, view(out.remote_ephemeral));
  bool ok = mixDh(ck, k, local.priv, out.remote_ephemeral) &&
            crypto::aeadOpen(out.remote_static.data(), k, 0, view(body + 32, 48), view(h));
  if (ok) {
    mixHash(h, view(body + 32, 48));
    out.chain_key = ck;
    out.hash = h;
  }
  crypto::wipe(ck);
  crypto::wipe(k);
  return ok;
}

bool readMessage1Payload(Message1Read& m, const Key32& static_static, const uint8_t* body,
                         size_t payload_len, uint8_t* payload_out) {
  Key32 ck = m.chain_key, k;
  crypto::kdf2(ck, k, ck, view(static_static));
  const uint8_t* enc_payload = body + 80;
  bool ok = crypto::aeadOpen(payload_out, k, 0, view(enc_payload, payload_len + 16), view(m.hash));
  if (ok) {
    mixHash(m.hash, view(enc_payload, payload_len + 16));
    m.chain_key = ck;
  }
  crypto::wipe(ck);
  crypto::wipe(k);
  return ok;
}

void acceptMessage1(Handshake& hs, const Message1Read& m) {
  hs.chain_key = m.chain_key;
  hs.hash = m.hash;
  hs.remote_ephemeral = m.remote_ephemeral;
  hs.state = Handshake::State::kInitiationConsumed;
}

bool writeMessage2(Handshake& hs, const Key32& ephemeral_priv, Bytes payload, uint8_t* body) {
  if (hs.state != Handshake::State::kInitiationConsumed) return false;
  Key32 ck = hs.chain_key, h = hs.hash, k;
  Key32 e_pub = crypto::publicKey(ephemeral_priv);
  std::memcpy(body, e_pub.data(), 32);
  bool ok = mixMessage2(ck, h, k, e_pub, ephemeral_priv, hs.remote_ephemeral, ephemeral_priv,
                        hs.remote_static, hs.preshared_key);
  if (ok) {
    uint8_t* enc = body + 32;
    crypto::aeadSeal(enc, k, 0, payload, view(h));
    mixHash(h, view(enc, payload.size() + 16));
    hs.chain_key = ck;
    hs.hash = h;
    hs.local_ephemeral = ephemeral_priv;
    hs.state = Handshake::State::kResponseCreated;
  }
  crypto::wipe(ck);
  crypto::wipe(k);
  return ok;
}

bool readMessage2(Handshake& hs, const LocalStatic& local, const uint8_t* body, size_t payload_len,
                  uint8_t* payload_out) {
  if (hs.state != Handshake::State::kInitiationCreated) return false;
  Key32 ck = hs.chain_key, h = hs.hash, k, e_remote;
  std::memcpy(e_remote.data(), body, 32);
  const uint8_t* enc = body + 32;
  bool ok = mixMessage2(ck, h, k, e_remote, hs.local_ephemeral, e_remote, local.priv, e_remote,
                        hs.preshared_key) &&
            crypto::aeadOpen(payload_out, k, 0, view(enc, payload_len + 16), view(h));
  if (ok) {
    mixHash(h, view(enc, payload_len + 16));
    hs.chain_key = ck;
    hs.hash = h;
    hs.remote_ephemeral = e_remote;
    hs.state = Handshake::State::kResponseConsumed;
  }
  crypto::wipe(ck);
  crypto::wipe(k);
  return ok;
}

void deriveTransportKeys(Handshake& hs, Key32& send_key, Key32& recv_key) {
  if (hs.state == Handshake::State::kResponseConsumed) {
    crypto::kdf2(send_key, recv_key, hs.chain_key, {});
  } else {
    crypto::kdf2(recv_key, send_key, hs.chain_key, {});
  }
  hs.clearState();
}

}  // namespace gatehouse::wg::noise
