// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard uses it (reference §4), as pure
// functions over a per-peer Handshake value. No I/O, no clock, no randomness: ephemeral private
// keys, payloads and the initial hash come in as arguments, so the same code reproduces both the
// generic Noise test vector (any prologue, any payload) and WireGuard's messages 1 and 2.
//
// A "body" is the Noise part of a message: for message 1 `e ‖ enc(s) ‖ enc(payload)`, for
// message 2 `e ‖ enc(payload)`. WireGuard puts message 1's body at offset 8 and message 2's at
// offset 12 (reference M1, M2); type, indices and MACs are the device's business.
#pragma once

#include "wg/crypto/blake2s.h"
#include "wg/tai64n.h"

namespace gatehouse::wg::noise {

using crypto::Bytes;
using crypto::Key32;

// C0 = HASH(construction) and H0 = HASH(C0 ‖ "WireGuard v1 zx2c4 Jason@zx2c4.com").
const Key32& initialChainKey();
const Key32& initialHash();
// HASH(C0 ‖ prologue): the initial hash for another prologue (Noise test vectors).
Key32 initialHashFor(Bytes prologue);

struct LocalStatic {
  Key32 priv{};
  Key32 pub{};
};

// Per-peer handshake state (wireguard-go's Handshake; reference H8).
struct Handshake {
  enum class State : uint8_t {
    kZeroed,
    kInitiationCreated,
    kInitiationConsumed,
    kResponseCreated,
    kResponseConsumed
  };
  State state = State::kZeroed;
  Key32 hash{};
  Key32 chain_key{};
  Key32 local_ephemeral{};  // private key
  Key32 remote_ephemeral{};
  Key32 remote_static{};
  Key32 preshared_key{};              // zeros when none
  Key32 precomputed_static_static{};  // DH(local static, remote static)
  bool static_static_valid = false;   // false for low-order peer keys (reference C9)
  uint32_t local_index = 0;
  uint32_t remote_index = 0;

  // Wipes the ephemeral and symmetric state (not the configuration: keys, psk, precomputed DH).
  void clearState();
};

// Sets remote_static and the precomputed static-static DH. Returns static_static_valid.
bool configure(Handshake& hs, const LocalStatic& local, const Key32& remote_static);

inline constexpr size_t kMsg1BodyBase = 32 + 32 + 16;  // plus payload + 16
inline constexpr size_t kMsg2BodyBase = 32;            // plus payload + 16

// Initiator writes message 1's body (kMsg1BodyBase + payload.size() + 16 bytes).
// On success state = kInitiationCreated.
bool writeMessage1(Handshake& hs, const LocalStatic& local, const Key32& ephemeral_priv,
                   Bytes payload, uint8_t* body, const Key32& initial_hash = initialHash());

// Responder, first half of reading message 1: decrypts the initiator's static key, which the
// caller uses to find the peer (and its precomputed static-static DH).
struct Message1Read {
  Key32 chain_key{};
  Key32 hash{};
  Key32 remote_ephemeral{};
  Key32 remote_static{};
  ~Message1Read();
};
bool readMessage1Static(const LocalStatic& local, const uint8_t* body, Message1Read& out,
                        const Key32& initial_hash = initialHash());
// Second half: decrypts the payload (payload_len bytes into payload_out) with the peer's
// precomputed DH. Does not touch any Handshake; the caller commits the state after its
// replay/flood checks with acceptMessage1().
bool readMessage1Payload(Message1Read& m, const Key32& static_static, const uint8_t* body,
                         size_t payload_len, uint8_t* payload_out);
void acceptMessage1(Handshake& hs, const Message1Read& m);  // state = kInitiationConsumed

// Responder writes message 2's body (kMsg2BodyBase + payload.size() + 16 bytes).
// Needs state kInitiationConsumed; on success state = kResponseCreated.
bool writeMessage2(Handshake& hs, const Key32& ephemeral_priv, Bytes payload, uint8_t* body);

// Initiator reads message 2's body. Needs state kInitiationCreated; on success state =
// kResponseConsumed. On failure the handshake is left unchanged (a forged response cannot
// break a pending handshake).
bool readMessage2(Handshake& hs, const LocalStatic& local, const uint8_t* body, size_t payload_len,
                  uint8_t* payload_out);

// Transport keys from a completed handshake; wipes chain key, hash and ephemeral and returns the
// state to kZeroed. `initiator` is true after readMessage2, false after writeMessage2.
void deriveTransportKeys(Handshake& hs, Key32& send_key, Key32& recv_key);

}  // namespace gatehouse::wg::noise
