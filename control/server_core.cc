#include "control/server_core.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "control/policy_check.h"
#include "proto/control.pb.h"
#include "wg/crypto/aead.h"

namespace gatehouse::control {
namespace {

int64_t monoSec(wg::Now now) { return now.mono_ns / wg::kSec; }
int64_t wallSec(wg::Now now) { return now.wall_ns / wg::kSec; }

std::string keyString(const Key32& k) { return std::string(k.begin(), k.end()); }

std::string sanitizeHostname(const std::string& in) {
  std::string out;
  for (char ch : in) {
    unsigned char c = static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(ch)));
    bool ok = std::isalnum(c) || c == '-';
    if (!ok && (out.empty() || out.back() == '-')) continue;
    out.push_back(ok ? static_cast<char>(c) : '-');
    if (out.size() == 63) break;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "node" : out;
}

// "name-<digits>" with the given base.
bool isSuffixedForm(const std::string& name, const std::string& base) {
  if (name.size() <= base.size() + 1 || name.compare(0, base.size(), base) != 0 ||
      name[base.size()] != '-') {
    return false;
  }
  return std::all_of(name.begin() + base.size() + 1, name.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

struct ServerCore::Conn {
  ConnId id = 0;
  std::string peer;
  Channel channel;
  int64_t opened_mono = 0;
  int64_t last_frame_mono = 0;
  int64_t last_sent_mono = 0;
  int64_t node_id = 0;
  bool streaming = false;
  bool want_map = false;
  bool closed = false;
  SentState sent;
};

ServerCore::ServerCore(Store& store, const wg::noise::LocalStatic& server_key, wg::Random& random,
                       ServerOptions options, LogFn log, wg::Now now)
    : store_(store),
      key_(server_key),
      random_(random),
      options_(std::move(options)),
      log_(std::move(log)) {
  uint8_t r[6];
  random_.fill(r);
  ula_ = store_.ulaPrefix(r);
  for (const UserRecord& u : store_.listUsers()) display_names_[u.id] = u.display_name;
  for (NodeRecord& r : store_.listNodes()) {
    NodeState n;
    n.record = std::move(r);
    n.expired = isExpired(n.record, now);
    // An ephemeral node gets one timeout to reconnect after a server restart.
    if (n.record.ephemeral) n.ephemeral_gc_mono = monoSec(now) + options_.ephemeral_timeout_sec;
    by_machine_[keyString(n.record.machine_key)] = n.record.id;
    nodes_.emplace(n.record.id, std::move(n));
  }
}

ServerCore::~ServerCore() { wg::crypto::wipe(key_); }

void ServerCore::log(const std::string& line) const {
  if (log_) log_(line);
}

bool ServerCore::isExpired(const NodeRecord& r, wg::Now now) const {
  return r.key_expiry != 0 && wallSec(now) >= r.key_expiry;
}

wg::IpAddr ServerCore::ipv6For(uint32_t ipv4) const {
  std::array<uint8_t, 16> b = ula_.addr.bytes;
  b[12] = uint8_t(ipv4 >> 24);
  b[13] = uint8_t(ipv4 >> 16);
  b[14] = uint8_t(ipv4 >> 8);
  b[15] = uint8_t(ipv4);
  return wg::IpAddr::v6(b.data());
}

std::vector<Diagnostic> ServerCore::setPolicy(const std::string& text) {
  auto parsed = parsePolicy(text);
  if (!parsed) return parsed.errors();
  PolicyTestReport report = runPolicyTests(parsed.value());
  if (!report.failures.empty()) return report.failures;
  if (persist_policy_) {
    std::string error;
    if (!persist_policy_(text, &error)) return {Diagnostic{0, 0, error}};
  }
  policy_ = std::make_shared<const Policy>(std::move(parsed.value()));
  policy_text_ = text;
  dirty_ = true;
  log("control: policy applied (" + std::to_string(policy_->grants.size()) + " grants)");
  return {};
}

ServerCore::ConnId ServerCore::accept(wg::Now now, std::string peer) {
  now_sec_ = monoSec(now);
  auto c = std::make_unique<Conn>();
  c->id = next_conn_++;
  c->peer = std::move(peer);
  c->channel = Channel::server(key_, random_);
  c->opened_mono = c->last_frame_mono = c->last_sent_mono = monoSec(now);
  ConnId id = c->id;
  conns_.emplace(id, std::move(c));
  return id;
}

void ServerCore::receive(ConnId id, std::span<const uint8_t> bytes, wg::Now now) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second->closed) return;
  now_sec_ = monoSec(now);
  Conn& c = *it->second;
  std::vector<std::string> messages;
  bool was_open = c.channel.open();
  bool ok = c.channel.receive(bytes, messages);
  if (!was_open && c.channel.open()) {
    c.last_frame_mono = monoSec(now);
    outputs_.push_back({c.id, c.channel.takeOutput(), false});
  }
  if (!ok) return cutOff(c, c.channel.error());
  for (const std::string& m : messages) {
    c.last_frame_mono = monoSec(now);
    handleMessage(c, m, now);
    if (c.closed) return;
  }
}

void ServerCore::handleMessage(Conn& c, const std::string& bytes, wg::Now now) {
  v1::ClientMessage msg;
  if (!msg.ParseFromString(bytes)) return cutOff(c, "malformed ClientMessage");
  switch (msg.msg_case()) {
    case v1::ClientMessage::kRegister:
      return handleRegister(c, msg.register_(), now);
    case v1::ClientMessage::kMap:
      return handleMap(c, msg.map(), now);
    case v1::ClientMessage::kKeepAlive:
      return;
    default:
      return cutOff(c, "ClientMessage without a known message");
  }
}

void ServerCore::handleRegister(Conn& c, const v1::RegisterRequest& req, wg::Now now) {
  using E = v1::Error;
  if (req.node_key().size() != 32) {
    return sendError(c, E::BAD_REQUEST, "node_key must be 32 bytes", true);
  }
  if (req.auth_case() == v1::RegisterRequest::kIdToken) {
    return sendError(c, E::UNSUPPORTED,
                     "OIDC ID tokens are not supported by this server yet; use an auth key", false);
  }
  if (!policy_) return sendError(c, E::INTERNAL, "the server has no policy loaded", false);
  std::string machine = keyString(c.channel.remoteStatic());
  auto known = by_machine_.find(machine);
  NodeState* existing = known == by_machine_.end() ? nullptr : nodeById(known->second);
  NodeRecord rec;
  if (existing) rec = existing->record;
  std::copy(req.node_key().begin(), req.node_key().end(), rec.node_key.begin());

  if (req.auth_key().empty()) {
    // Node key rotation by a registered machine whose key is still valid.
    if (!existing) {
      return sendError(c, E::AUTH_FAILED, "an auth key is required to register this machine",
                       false);
    }
    if (isExpired(existing->record, now)) {
      return sendError(c, E::NODE_KEY_EXPIRED, "node key expired: register again with an auth key",
                       false);
    }
  } else {
    auto key = store_.authKeyBySecret(req.auth_key());
    if (!key) {
      log("control: registration refused from " + c.peer + ": unknown auth key");
      return sendError(c, E::AUTH_FAILED,
                       "auth key not found: check the key or create one with `gatehouse admin "
                       "keys create`",
                       false);
    }
    std::string why;
    if (key->revoked) {
      why = "auth key " + std::to_string(key->id) + " was revoked; create a new key";
    } else if (key->expires != 0 && wallSec(now) >= key->expires) {
      why = "auth key " + std::to_string(key->id) + " expired; create a new key";
    } else if (!key->reusable && key->uses > 0) {
      why = "auth key " + std::to_string(key->id) +
            " was already used (single-use); create a new key, or a reusable one with --reusable";
    }
    std::vector<std::string> tags = key->tags;
    for (const std::string& t : req.requested_tags()) {
      if (!why.empty()) break;
      if (std::find(tags.begin(), tags.end(), t) != tags.end()) continue;
      if (!mayApplyTag(*policy_, key->user_login, false, t)) {
        why = t +
              " is not permitted: the auth key does not pre-assign it and tagOwners does not "
              "let " +
              key->user_login + " apply it";
      } else {
        tags.push_back(t);
      }
    }
    if (!why.empty()) {
      log("control: registration refused from " + c.peer + ": " + why);
      return sendError(c, E::AUTH_FAILED, why, false);
    }
    std::sort(tags.begin(), tags.end());
    rec.tags = std::move(tags);
    rec.user_id = key->user_id;
    rec.user_login = key->user_login;
    rec.auth_key_id = key->id;
    rec.ephemeral = key->ephemeral || req.ephemeral();
    rec.key_expiry = rec.tags.empty() && options_.key_expiry_sec > 0
                         ? wallSec(now) + options_.key_expiry_sec
                         : 0;
    store_.markAuthKeyUsed(key->id);
  }

  std::string wanted = sanitizeHostname(req.hostname());
  if (!existing || (wanted != rec.hostname && !isSuffixedForm(rec.hostname, wanted))) {
    rec.hostname = uniqueHostname(wanted, rec.id);
  }
  if (!existing) {
    std::copy(c.channel.remoteStatic().begin(), c.channel.remoteStatic().end(),
              rec.machine_key.begin());
    rec.ipv4 = store_.nextFreeIpv4();
    if (rec.ipv4 == 0) return sendError(c, E::INTERNAL, "the 100.64.0.0/10 pool is full", false);
    rec.ipv6 = ipv6For(rec.ipv4);
    rec.created = wallSec(now);
  }
  rec.last_seen = wallSec(now);
  std::string error;
  int64_t id = store_.saveNode(rec, &error);
  if (id == 0) {
    log("control: cannot save node " + rec.hostname + ": " + error);
    return sendError(c, E::INTERNAL, "cannot save the node", false);
  }
  rec.id = id;
  NodeState& n = nodes_[id];
  n.record = rec;
  n.expired = false;
  by_machine_[machine] = id;
  if (!display_names_.count(rec.user_id)) {
    if (auto u = store_.userById(rec.user_id)) display_names_[u->id] = u->display_name;
  }
  dirty_ = true;
  log("control: registered node " + std::to_string(id) + " " + rec.hostname + " (" +
      (rec.tags.empty() ? rec.user_login : "tagged") + ") from " + c.peer);

  v1::ServerMessage out;
  auto* r = out.mutable_register_();
  r->set_node_id(static_cast<uint64_t>(id));
  r->set_name(rec.hostname);
  r->add_addresses(rec.ipv4Addr().toString() + "/32");
  r->add_addresses(rec.ipv6.toString() + "/128");
  r->set_key_expiry_unix(rec.key_expiry);
  for (const auto& t : rec.tags) r->add_tags(t);
  r->set_user_login(rec.user_login);
  sendMessage(c, out);
}

void ServerCore::handleMap(Conn& c, const v1::MapRequest& req, wg::Now now) {
  using E = v1::Error;
  auto known = by_machine_.find(keyString(c.channel.remoteStatic()));
  NodeState* n = known == by_machine_.end() ? nullptr : nodeById(known->second);
  if (!n) {
    return sendError(c, E::NOT_REGISTERED,
                     "this machine is not registered: register with an auth key", false);
  }
  if (req.node_key() != keyString(n->record.node_key)) {
    return sendError(c, E::NOT_REGISTERED,
                     "the node key does not match the registered one: register again", false);
  }
  if (isExpired(n->record, now)) {
    return sendError(c, E::NODE_KEY_EXPIRED, "node key expired: register again with an auth key",
                     false);
  }
  std::vector<std::string> endpoints(req.endpoints().begin(), req.endpoints().end());
  if (endpoints.size() > 64) endpoints.resize(64);
  if (endpoints != n->endpoints) {
    n->endpoints = std::move(endpoints);
    dirty_ = true;
  }
  if (n->stream != 0 && n->stream != c.id) {
    auto old = conns_.find(n->stream);
    if (old != conns_.end() && !old->second->closed) {
      log("control: node " + std::to_string(n->record.id) +
          " opened a new stream; closing the old");
      old->second->closed = true;
      outputs_.push_back({old->first, "", true});
    }
  }
  c.node_id = n->record.id;
  c.streaming = req.stream();
  c.want_map = true;
  c.sent = SentState{};
  if (c.streaming) {
    n->stream = c.id;
    n->ephemeral_gc_mono = 0;
  }
  store_.touchNode(n->record.id, wallSec(now));
  if (!dirty_ && have_snapshot_) sendMapTo(c);
}

void ServerCore::sendMapTo(Conn& c) {
  auto it = snapshot_.nodes.find(static_cast<uint64_t>(c.node_id));
  if (it == snapshot_.nodes.end()) return;
  for (const std::string& f : mapFrames(snapshot_, it->second, c.sent, options_.max_frame)) {
    sendFrame(c, f);
  }
  c.want_map = false;
}

void ServerCore::sendMessage(Conn& c, const v1::ServerMessage& msg) {
  sendFrame(c, msg.SerializeAsString());
}

void ServerCore::sendFrame(Conn& c, std::string_view serialized) {
  if (c.closed) return;
  if (!c.channel.send(serialized)) {
    log("control: dropping an oversized frame for conn " + std::to_string(c.id));
    return;
  }
  ++stats_.frames_sent;
  c.last_sent_mono = now_sec_;
  if (!outputs_.empty() && outputs_.back().conn == c.id && !outputs_.back().close) {
    outputs_.back().bytes += c.channel.takeOutput();
  } else {
    outputs_.push_back({c.id, c.channel.takeOutput(), false});
  }
}

void ServerCore::sendError(Conn& c, int code, const std::string& message, bool close) {
  v1::ServerMessage out;
  out.mutable_error()->set_code(static_cast<v1::Error::Code>(code));
  out.mutable_error()->set_message(message);
  sendMessage(c, out);
  if (close) {
    c.closed = true;
    outputs_.push_back({c.id, "", true});
  }
}

void ServerCore::cutOff(Conn& c, const std::string& why) {
  if (c.closed) return;
  log("control: cut off conn " + std::to_string(c.id) + (c.peer.empty() ? "" : " " + c.peer) +
      ": " + why);
  ++stats_.cut_off;
  c.closed = true;
  outputs_.push_back({c.id, "", true});
}

void ServerCore::disconnected(ConnId id, wg::Now now) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  if (NodeState* n = nodeById(it->second->node_id); n && n->stream == id) {
    n->stream = 0;
    store_.touchNode(n->record.id, wallSec(now));
    if (n->record.ephemeral) n->ephemeral_gc_mono = monoSec(now) + options_.ephemeral_timeout_sec;
  }
  conns_.erase(it);
}

void ServerCore::tick(wg::Now now) {
  int64_t t = now_sec_ = monoSec(now);
  for (auto& [id, cp] : conns_) {
    Conn& c = *cp;
    if (c.closed) continue;
    if (!c.channel.open()) {
      if (t - c.opened_mono >= options_.handshake_timeout_sec) {
        cutOff(c, "no Noise handshake within " + std::to_string(options_.handshake_timeout_sec) +
                      " s");
      }
      continue;
    }
    if (t - c.last_frame_mono >= options_.idle_timeout_sec) {
      cutOff(c, "no complete frame for " + std::to_string(options_.idle_timeout_sec) +
                    " s (idle or slowloris)");
      continue;
    }
    if (c.streaming && t - c.last_sent_mono >= options_.keepalive_sec) {
      v1::ServerMessage ka;
      ka.mutable_keep_alive();
      sendMessage(c, ka);
    }
  }
  if (now.mono_ns >= next_expiry_check_mono_) {
    next_expiry_check_mono_ = now.mono_ns + wg::kSec;
    checkExpiry(now);
  }
  if (dirty_ && policy_) flushMaps(now);
}

void ServerCore::checkExpiry(wg::Now now) {
  std::vector<int64_t> gone;
  for (auto& [id, n] : nodes_) {
    bool e = isExpired(n.record, now);
    if (e != n.expired) {
      n.expired = e;
      dirty_ = true;
      if (e) log("control: node " + std::to_string(id) + " " + n.record.hostname + " key expired");
    }
    if (e && n.stream != 0) {
      auto c = conns_.find(n.stream);
      if (c != conns_.end()) {
        sendError(*c->second, v1::Error::NODE_KEY_EXPIRED,
                  "node key expired: register again with an auth key", true);
      }
      n.stream = 0;
    }
    if (n.record.ephemeral && n.stream == 0 && n.ephemeral_gc_mono != 0 &&
        monoSec(now) >= n.ephemeral_gc_mono) {
      gone.push_back(id);
    }
  }
  for (int64_t id : gone) removeNode(id, "ephemeral node disconnected");
}

void ServerCore::removeNode(int64_t id, const std::string& why) {
  NodeState* n = nodeById(id);
  if (!n) return;
  store_.deleteNode(id);
  if (n->stream != 0) {
    auto c = conns_.find(n->stream);
    if (c != conns_.end()) {
      sendError(*c->second, v1::Error::NOT_REGISTERED, "this node was deleted: " + why, true);
    }
  }
  log("control: deleted node " + std::to_string(id) + " " + n->record.hostname + ": " + why);
  by_machine_.erase(keyString(n->record.machine_key));
  nodes_.erase(id);
  dirty_ = true;
}

void ServerCore::flushMaps(wg::Now now) {
  std::vector<MapNodeInput> in;
  in.reserve(nodes_.size());
  for (const auto& [id, n] : nodes_) {
    if (n.expired) continue;
    auto d = display_names_.find(n.record.user_id);
    in.push_back({n.record, d == display_names_.end() ? "" : d->second, n.endpoints});
  }
  snapshot_ = buildSnapshot(*policy_, in, options_.dns_suffix);
  have_snapshot_ = true;
  dirty_ = false;
  ++stats_.map_builds;
  for (auto& [id, c] : conns_) {
    if (!c->closed && c->node_id != 0 && (c->streaming || c->want_map)) {
      sendMapTo(*c);
    }
  }
}

std::vector<ServerCore::Output> ServerCore::takeOutputs() {
  std::vector<Output> out;
  out.swap(outputs_);
  return out;
}

std::string ServerCore::uniqueHostname(const std::string& wanted, int64_t self_id) const {
  // One pass collects the names that could collide, so a thousand "ci-runner"s stay linear.
  std::unordered_set<std::string> taken;
  for (const auto& [id, n] : nodes_) {
    if (id != self_id && n.record.hostname.compare(0, wanted.size(), wanted) == 0) {
      taken.insert(n.record.hostname);
    }
  }
  if (!taken.count(wanted)) return wanted;
  for (int i = 2; i < 1000000; ++i) {
    std::string candidate = wanted + "-" + std::to_string(i);
    if (!taken.count(candidate)) return candidate;
  }
  return wanted + "-" + std::to_string(self_id);
}

ServerCore::NodeState* ServerCore::nodeById(int64_t id) {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

ServerCore::Stats ServerCore::stats() const {
  Stats s = stats_;
  s.connections = conns_.size();
  s.nodes = nodes_.size();
  for (const auto& [id, c] : conns_) s.streams += c->streaming && !c->closed;
  return s;
}

}  // namespace gatehouse::control
