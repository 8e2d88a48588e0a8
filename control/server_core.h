// The control server's core: connections (Noise channel + protobuf), registration, map streaming
// and the admin API, with no sockets, clock or threads (STYLE habit 1). The I/O shell
// (control/server.h) feeds it bytes and time and writes out what takeOutputs() returns.
//
// Thread: one (the server loop). Ownership: borrows the Store, Random and the server's static
// key (all must outlive the core). Callbacks: `log` is called synchronously; `persist_policy`
// (optional) is called by setPolicy after validation and before the policy takes effect, so a
// policy that cannot be saved is not applied.
//
// Time: every entry point takes wg::Now; mono_ns drives deadlines, wall_ns key expiry.
// Maps: changes mark the maps dirty; tick() recomputes them (all nodes, one compilePolicy) and
// sends each stream only what changed. Calling tick() every few tens of milliseconds coalesces a
// burst of changes (a join storm, a retag script) into one recomputation.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/channel.h"
#include "control/diagnostic.h"
#include "control/netmap.h"
#include "control/policy.h"
#include "control/store.h"
#include "wg/env.h"

namespace gatehouse::control {

namespace v1 {
class ClientMessage;
class ServerMessage;
class RegisterRequest;
class MapRequest;
}  // namespace v1

struct ServerOptions {
  int64_t key_expiry_sec = 180 * 86400;  // node keys of user-owned nodes; 0 = never
  int64_t keepalive_sec = 30;            // send a KeepAlive after this much silence
  int64_t idle_timeout_sec = 90;         // close after this long without a complete frame
  int64_t handshake_timeout_sec = 10;    // close when the Noise handshake is not done by then
  int64_t ephemeral_timeout_sec = 30;    // delete an ephemeral node this long after disconnect
  int64_t default_auth_key_ttl_sec = 86400;
  std::string dns_suffix;
  size_t max_frame = kMaxFramePlaintext;
};

using LogFn = std::function<void(const std::string&)>;
using PersistPolicyFn = std::function<bool(const std::string& text, std::string* error)>;

class ServerCore {
 public:
  using ConnId = uint64_t;

  ServerCore(Store& store, const wg::noise::LocalStatic& server_key, wg::Random& random,
             ServerOptions options, LogFn log, wg::Now now);
  ~ServerCore();

  // Parses, validates and applies a policy. On error returns the diagnostics and keeps the old
  // policy. Affected maps go out at the next tick().
  std::vector<Diagnostic> setPolicy(const std::string& text);
  void setPersistPolicy(PersistPolicyFn fn) { persist_policy_ = std::move(fn); }
  const std::string& policyText() const { return policy_text_; }
  bool hasPolicy() const { return policy_ != nullptr; }

  // Connections.
  // `peer` labels the connection in logs (e.g. "127.0.0.1:5555").
  ConnId accept(wg::Now now, std::string peer = {});
  void receive(ConnId conn, std::span<const uint8_t> bytes, wg::Now now);
  void disconnected(ConnId conn, wg::Now now);  // the socket is gone (no output for it after)
  // Deadlines, keepalives, expiry, ephemeral GC and map deltas.
  void tick(wg::Now now);

  struct Output {
    ConnId conn = 0;
    std::string bytes;   // write these, in order
    bool close = false;  // then close the connection
  };
  std::vector<Output> takeOutputs();

  // The admin API (control/admin_api.cc; the protocol is in proto/PROTOCOL.md "Admin socket").
  nlohmann::json admin(const nlohmann::json& request, wg::Now now);

  struct Stats {
    size_t connections = 0;
    size_t streams = 0;
    size_t nodes = 0;
    uint64_t map_builds = 0;
    uint64_t frames_sent = 0;
    uint64_t cut_off = 0;  // connections closed for bad input or deadlines
  };
  Stats stats() const;

 private:
  struct Conn;
  struct NodeState {
    NodeRecord record;
    std::vector<std::string> endpoints;
    ConnId stream = 0;              // the live map stream, 0 when offline
    int64_t ephemeral_gc_mono = 0;  // delete at this time (ephemeral, offline)
    bool expired = false;
  };

  void handleMessage(Conn& c, const std::string& bytes, wg::Now now);
  void handleRegister(Conn& c, const v1::RegisterRequest& req, wg::Now now);
  void handleMap(Conn& c, const v1::MapRequest& req, wg::Now now);
  void sendMessage(Conn& c, const v1::ServerMessage& msg);
  void sendFrame(Conn& c, std::string_view serialized);
  void sendError(Conn& c, int code, const std::string& message, bool close);
  void cutOff(Conn& c, const std::string& why);
  void flushMaps(wg::Now now);
  void sendMapTo(Conn& c);
  void checkExpiry(wg::Now now);
  void removeNode(int64_t id, const std::string& why);
  std::string uniqueHostname(const std::string& wanted, int64_t self_id) const;
  NodeState* nodeById(int64_t id);
  NodeState* nodeByRef(const nlohmann::json& ref);
  bool isExpired(const NodeRecord& r, wg::Now now) const;
  wg::IpAddr ipv6For(uint32_t ipv4) const;
  void log(const std::string& line) const;

  // Admin handlers (admin_api.cc).
  nlohmann::json adminUsers(const std::string& verb, const nlohmann::json& req, wg::Now now);
  nlohmann::json adminKeys(const std::string& verb, const nlohmann::json& req, wg::Now now);
  nlohmann::json adminNodes(const std::string& verb, const nlohmann::json& req, wg::Now now);
  nlohmann::json adminPolicy(const std::string& verb, const nlohmann::json& req);
  nlohmann::json nodeJson(const NodeState& n, wg::Now now) const;

  Store& store_;
  wg::noise::LocalStatic key_;
  wg::Random& random_;
  ServerOptions options_;
  LogFn log_;
  PersistPolicyFn persist_policy_;
  std::shared_ptr<const Policy> policy_;
  std::string policy_text_;
  wg::IpPrefix ula_;
  std::map<int64_t, NodeState> nodes_;
  std::unordered_map<std::string, int64_t> by_machine_;  // machine key bytes → node id
  std::unordered_map<int64_t, std::string> display_names_;
  std::map<ConnId, std::unique_ptr<Conn>> conns_;
  std::vector<Output> outputs_;
  ConnId next_conn_ = 1;
  bool dirty_ = true;
  MapSnapshot snapshot_;
  bool have_snapshot_ = false;
  int64_t next_expiry_check_mono_ = 0;
  int64_t now_sec_ = 0;  // monotonic seconds of the current entry point
  Stats stats_;
};

}  // namespace gatehouse::control
