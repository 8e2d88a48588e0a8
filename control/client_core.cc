#include "control/client_core.h"

#include <algorithm>

#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"

namespace gatehouse::control {
namespace {

std::string keyString(const Key32& k) { return std::string(k.begin(), k.end()); }

}  // namespace

int64_t backoffDelayMs(int attempt, uint32_t random, int64_t base_ms, int64_t max_ms) {
  int shift = std::clamp(attempt, 0, 30);
  int64_t d = base_ms;
  for (int i = 0; i < shift && d < max_ms; ++i) d *= 2;
  d = std::min(d, max_ms);
  int64_t half = d / 2;
  return half + static_cast<int64_t>(random % static_cast<uint64_t>(half + 1));
}

PacketFilter filterFromProto(const v1::PacketFilter& proto) {
  std::vector<FilterRule> rules;
  for (const v1::FilterRule& r : proto.rules()) {
    std::vector<wg::IpPrefix> prefixes;
    for (const auto& s : r.src_prefixes()) {
      if (auto p = wg::IpPrefix::parse(s)) prefixes.push_back(*p);
    }
    FilterRule rule;
    rule.srcs = std::make_shared<const PrefixSet>(std::move(prefixes));
    for (uint32_t p : r.protos()) rule.protos.push_back(static_cast<uint8_t>(p));
    for (const auto& pr : r.ports()) {
      rule.ports.push_back({static_cast<uint16_t>(std::min(pr.first(), 65535u)),
                            static_cast<uint16_t>(std::min(pr.last(), 65535u))});
    }
    rules.push_back(std::move(rule));
  }
  return PacketFilter(std::move(rules));
}

ClientCore::ClientCore(const wg::noise::LocalStatic& machine, const Key32& node_private,
                       ClientOptions options, wg::Random& random, uint64_t node_id)
    : machine_(machine),
      node_private_(node_private),
      options_(std::move(options)),
      random_(random),
      node_id_(node_id),
      need_register_(node_id == 0) {}

ClientCore::~ClientCore() {
  wg::crypto::wipe(machine_);
  wg::crypto::wipe(node_private_);
}

Key32 ClientCore::nodePublic() const { return wg::crypto::publicKey(node_private_); }

bool ClientCore::wantDial(wg::Now now) const {
  return state_ == State::kIdle && now.mono_ns >= next_dial_mono_;
}

void ClientCore::dialing(wg::Now now) { state_ = State::kDialing; }

void ClientCore::connected(wg::Now now) {
  channel_ = Channel::client(machine_, options_.server_public, random_);
  out_ += channel_.takeOutput();
  want_close_ = false;
  state_ = State::kHandshake;
  last_recv_mono_ = last_send_mono_ = now.mono_ns;
}

void ClientCore::received(std::span<const uint8_t> bytes, wg::Now now) {
  if (state_ < State::kHandshake || state_ == State::kFailed || want_close_) return;
  bool was_open = channel_.open();
  std::vector<std::string> messages;
  if (!channel_.receive(bytes, messages)) return dropConnection(now, channel_.error());
  last_recv_mono_ = now.mono_ns;
  if (!was_open && channel_.open()) {
    if (need_register_) {
      sendRegister(now);
    } else {
      sendMapRequest(now);
    }
  }
  for (const std::string& m : messages) {
    handle(m, now);
    if (want_close_ || state_ == State::kFailed) return;
  }
}

void ClientCore::send(const v1::ClientMessage& msg, wg::Now now) {
  if (channel_.send(msg.SerializeAsString())) out_ += channel_.takeOutput();
  last_send_mono_ = now.mono_ns;
}

void ClientCore::sendRegister(wg::Now now) {
  v1::ClientMessage msg;
  auto* r = msg.mutable_register_();
  Key32 pub = nodePublic();
  r->set_node_key(keyString(pub));
  if (!options_.auth_key.empty()) r->set_auth_key(options_.auth_key);
  r->set_hostname(options_.hostname);
  for (const auto& t : options_.tags) r->add_requested_tags(t);
  r->set_ephemeral(options_.ephemeral);
  state_ = State::kRegistering;
  send(msg, now);
}

void ClientCore::sendMapRequest(wg::Now now) {
  v1::ClientMessage msg;
  auto* m = msg.mutable_map();
  m->set_node_key(keyString(nodePublic()));
  for (const auto& e : options_.endpoints) m->add_endpoints(e);
  m->set_stream(true);
  state_ = State::kStreaming;
  map_.seq = 0;
  send(msg, now);
}

void ClientCore::handle(const std::string& bytes, wg::Now now) {
  v1::ServerMessage msg;
  if (!msg.ParseFromString(bytes)) return dropConnection(now, "malformed ServerMessage");
  switch (msg.msg_case()) {
    case v1::ServerMessage::kRegister:
      node_id_ = msg.register_().node_id();
      need_register_ = false;
      event(Event::Kind::kRegistered, msg.register_().name());
      sendMapRequest(now);
      return;
    case v1::ServerMessage::kMap: {
      const v1::MapResponse& m = msg.map();
      if (!m.full() && (!has_map_ && map_.seq == 0)) {
        return dropConnection(now, "delta before the full map");
      }
      if (m.seq() != map_.seq + 1) {
        return dropConnection(now, "map sequence gap: got " + std::to_string(m.seq()) + " after " +
                                       std::to_string(map_.seq));
      }
      applyMap(m);
      if (!m.partial()) {
        has_map_ = true;
        attempt_ = 0;
        event(Event::Kind::kMap, "");
      }
      return;
    }
    case v1::ServerMessage::kKeepAlive:
      return;
    case v1::ServerMessage::kError: {
      const v1::Error& e = msg.error();
      event(Event::Kind::kError, e.message());
      if (e.code() == v1::Error::NODE_KEY_EXPIRED) {
        Key32 r;
        random_.fill(r);
        node_private_ = wg::crypto::privateKeyFromRandom(r);
        wg::crypto::wipe(r);
        event(Event::Kind::kNodeKeyRotated, "");
      }
      if (e.code() == v1::Error::NODE_KEY_EXPIRED || e.code() == v1::Error::NOT_REGISTERED) {
        // Register again (on this connection if the server keeps it open, else the next one).
        need_register_ = true;
        if (options_.auth_key.empty()) {
          state_ = State::kFailed;
          want_close_ = true;
          return;
        }
        return sendRegister(now);
      }
      if (e.code() == v1::Error::AUTH_FAILED || e.code() == v1::Error::UNSUPPORTED) {
        state_ = State::kFailed;
        want_close_ = true;
        return;
      }
      return dropConnection(now, e.message());
    }
    default:
      return;  // a newer server's message: ignore
  }
}

void ClientCore::applyMap(const v1::MapResponse& m) {
  if (m.full()) {
    map_ = NetworkMap{};
    map_.dns_suffix = m.dns_suffix();
  }
  map_.seq = m.seq();
  if (m.has_self()) map_.self = m.self();
  for (uint64_t id : m.peers_removed()) map_.peers.erase(id);
  for (const v1::Node& p : m.peers_changed()) map_.peers[p.id()] = p;
  if (m.has_filter()) map_.filter = m.filter();
  if (m.has_caps()) map_.caps = m.caps();
}

void ClientCore::dropConnection(wg::Now now, const std::string& why) {
  if (want_close_) return;
  want_close_ = true;
  event(Event::Kind::kError, "control connection dropped: " + why);
}

void ClientCore::disconnected(wg::Now now) {
  channel_ = Channel();
  out_.clear();
  want_close_ = false;
  if (state_ == State::kFailed) return;
  state_ = State::kIdle;
  next_dial_mono_ =
      now.mono_ns +
      backoffDelayMs(attempt_++, random_.u32(), options_.backoff_base_ms, options_.backoff_max_ms) *
          wg::kMs;
}

void ClientCore::tick(wg::Now now) {
  if (state_ < State::kHandshake || state_ == State::kFailed || want_close_) return;
  if (now.mono_ns - last_recv_mono_ >= options_.idle_timeout_sec * wg::kSec) {
    return dropConnection(now,
                          "server silent for " + std::to_string(options_.idle_timeout_sec) + " s");
  }
  if (channel_.open() && now.mono_ns - last_send_mono_ >= options_.keepalive_sec * wg::kSec) {
    v1::ClientMessage ka;
    ka.mutable_keep_alive();
    send(ka, now);
  }
}

std::string ClientCore::takeOutput() {
  std::string out;
  out.swap(out_);
  return out;
}

std::vector<ClientCore::Event> ClientCore::takeEvents() {
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

}  // namespace gatehouse::control
