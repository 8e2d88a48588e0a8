// The node side of the control protocol as a sans-I/O state machine: register, then a map
// stream that applies the full map and the deltas into a NetworkMap value; keepalives both ways;
// reconnect with exponential backoff and jitter; re-register (with a fresh node key) when the
// server says the node key expired.
//
// Thread: one (the node loop). Ownership: borrows `random` (must outlive the core). No socket,
// no clock: the I/O shell (control/client.h, or the node facade) drives it:
//
//   if (core.wantDial(now)) { start a TCP connect; core.dialing(now); }
//   on connect:       core.connected(now)          then write core.takeOutput()
//   on bytes:         core.received(bytes, now)    then write core.takeOutput(), handle events
//   on close/failure: core.disconnected(now)
//   every ~100 ms:    core.tick(now)               then write output; close if wantClose()
//
// Events (takeEvents) say when the node registered, when a complete map is ready to apply (the
// map() value), and errors with the server's message. An auth failure is fatal: the core stops
// dialing (failed() is true) until restart() with new options.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/channel.h"
#include "control/filter.h"
#include "proto/control.pb.h"
#include "wg/env.h"
#include "wg/noise.h"

namespace gatehouse::control {

struct ClientOptions {
  Key32 server_public{};
  std::string auth_key;  // needed for the first registration and after key expiry
  std::string hostname;
  std::vector<std::string> tags;
  bool ephemeral = false;
  std::vector<std::string> endpoints;  // the node's WireGuard UDP endpoints
  int64_t keepalive_sec = 30;
  int64_t idle_timeout_sec = 90;  // no frame from the server this long → reconnect
  int64_t backoff_base_ms = 500;
  int64_t backoff_max_ms = 60000;
};

// What the node knows about its network: replaced by a full map, patched by deltas.
struct NetworkMap {
  uint64_t seq = 0;
  v1::Node self;
  std::map<uint64_t, v1::Node> peers;
  v1::PacketFilter filter;
  v1::CapabilityGrants caps;
  std::string dns_suffix;
};

// Backoff before reconnect attempt `attempt` (0-based): exponential from base, capped at max,
// with "equal jitter" (half fixed, half random) so a fleet does not reconnect in lockstep.
int64_t backoffDelayMs(int attempt, uint32_t random, int64_t base_ms, int64_t max_ms);

// The receive filter a node enforces, from its map (unparseable prefixes are skipped).
PacketFilter filterFromProto(const v1::PacketFilter& proto);

class ClientCore {
 public:
  enum class State : uint8_t { kIdle, kDialing, kHandshake, kRegistering, kStreaming, kFailed };
  struct Event {
    enum class Kind : uint8_t { kRegistered, kMap, kError, kNodeKeyRotated } kind;
    std::string message;
  };

  // `node_id` != 0 when a previous run registered (persisted by the shell): the core then asks
  // for a map first and registers only if the server does not know it.
  ClientCore(const wg::noise::LocalStatic& machine, const Key32& node_private,
             ClientOptions options, wg::Random& random, uint64_t node_id = 0);
  ~ClientCore();

  bool wantDial(wg::Now now) const;
  void dialing(wg::Now now);
  void connected(wg::Now now);
  void received(std::span<const uint8_t> bytes, wg::Now now);
  void disconnected(wg::Now now);
  void tick(wg::Now now);

  std::string takeOutput();
  bool wantClose() const { return want_close_; }
  std::vector<Event> takeEvents();

  State state() const { return state_; }
  bool failed() const { return state_ == State::kFailed; }
  uint64_t nodeId() const { return node_id_; }
  const Key32& nodePrivate() const { return node_private_; }
  Key32 nodePublic() const;
  const NetworkMap& map() const { return map_; }
  bool hasMap() const { return has_map_; }
  int attempt() const { return attempt_; }
  int64_t nextDialMono() const { return next_dial_mono_; }

 private:
  void send(const v1::ClientMessage& msg, wg::Now now);
  void sendRegister(wg::Now now);
  void sendMapRequest(wg::Now now);
  void handle(const std::string& bytes, wg::Now now);
  void applyMap(const v1::MapResponse& m);
  void dropConnection(wg::Now now, const std::string& why);
  void event(Event::Kind kind, std::string message) {
    events_.push_back({kind, std::move(message)});
  }

  wg::noise::LocalStatic machine_;
  Key32 node_private_{};
  ClientOptions options_;
  wg::Random& random_;
  uint64_t node_id_ = 0;
  bool need_register_ = false;
  State state_ = State::kIdle;
  Channel channel_;
  std::string out_;
  bool want_close_ = false;
  std::vector<Event> events_;
  NetworkMap map_;
  bool has_map_ = false;
  int attempt_ = 0;
  int64_t next_dial_mono_ = 0;
  int64_t last_recv_mono_ = 0;
  int64_t last_send_mono_ = 0;
};

}  // namespace gatehouse::control
