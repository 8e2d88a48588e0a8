// ServerCore's admin API: JSON requests in, JSON replies out (proto/PROTOCOL.md "Admin socket").
// Every reply has "ok"; failures carry "error" (and "diagnostics" for policies).
#include <algorithm>

#include "control/policy_check.h"
#include "control/server_core.h"
#include "wg/crypto/aead.h"
#include "wg/uapi.h"

namespace gatehouse::control {
namespace {

using json = nlohmann::json;

int64_t wallSec(wg::Now now) { return now.wall_ns / wg::kSec; }

json fail(const std::string& why) { return {{"ok", false}, {"error", why}}; }

json diagnosticsJson(const std::vector<Diagnostic>& ds) {
  json out = json::array();
  for (const auto& d : ds) {
    out.push_back({{"line", d.line}, {"column", d.column}, {"message", d.message}});
  }
  return out;
}

json keyJson(const AuthKeyRecord& k, wg::Now now) {
  bool expired = k.expires != 0 && wallSec(now) >= k.expires;
  bool used = !k.reusable && k.uses > 0;
  return {{"id", k.id},
          {"prefix", k.prefix},
          {"user", k.user_login},
          {"reusable", k.reusable},
          {"ephemeral", k.ephemeral},
          {"tags", k.tags},
          {"expires", k.expires},
          {"uses", k.uses},
          {"revoked", k.revoked},
          {"state", k.revoked ? "revoked"
                    : expired ? "expired"
                    : used    ? "used"
                              : "valid"},
          {"created", k.created}};
}

std::vector<std::string> stringList(const json& j) {
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& v : j) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

}  // namespace

json ServerCore::admin(const json& req, wg::Now now) {
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
    return fail("request must be a JSON object with a \"cmd\" string");
  }
  std::string cmd = req["cmd"].get<std::string>();
  auto dot = cmd.find('.');
  std::string noun = cmd.substr(0, dot);
  std::string verb = dot == std::string::npos ? "" : cmd.substr(dot + 1);
  if (noun == "users") return adminUsers(verb, req, now);
  if (noun == "keys") return adminKeys(verb, req, now);
  if (noun == "nodes") return adminNodes(verb, req, now);
  if (noun == "policy") return adminPolicy(verb, req);
  if (cmd == "status") {
    Stats s = stats();
    return {{"ok", true},          {"connections", s.connections}, {"streams", s.streams},
            {"nodes", s.nodes},    {"map_builds", s.map_builds},   {"frames_sent", s.frames_sent},
            {"cut_off", s.cut_off}};
  }
  return fail("unknown command \"" + cmd + "\"");
}

json ServerCore::adminUsers(const std::string& verb, const json& req, wg::Now now) {
  if (verb == "create") {
    std::string login = req.value("login", "");
    if (login.empty()) return fail("users.create needs \"login\"");
    std::string error;
    auto u = store_.createUser(login, req.value("display_name", ""), wallSec(now), &error);
    if (!u) return fail(error);
    display_names_[u->id] = u->display_name;
    log("control: admin created user " + login);
    return {{"ok", true},
            {"user", {{"id", u->id}, {"login", u->login}, {"display_name", u->display_name}}}};
  }
  if (verb == "list") {
    json users = json::array();
    for (const auto& u : store_.listUsers()) {
      users.push_back({{"id", u.id},
                       {"login", u.login},
                       {"display_name", u.display_name},
                       {"created", u.created}});
    }
    return {{"ok", true}, {"users", users}};
  }
  return fail("unknown users command \"" + verb + "\" (create, list)");
}

json ServerCore::adminKeys(const std::string& verb, const json& req, wg::Now now) {
  if (verb == "create") {
    auto user = store_.userByLogin(req.value("user", ""));
    if (!user) {
      return fail("unknown user \"" + req.value("user", "") +
                  "\": create it with `gatehouse admin users create LOGIN`");
    }
    std::vector<std::string> tags = stringList(req.value("tags", json::array()));
    for (const auto& t : tags) {
      if (t.rfind("tag:", 0) != 0) return fail("\"" + t + "\" is not a tag (tag:NAME)");
      if (policy_ && !policy_->tag_owners.count(t)) {
        return fail(t + " is not defined in the policy's tagOwners");
      }
    }
    int64_t ttl = req.value("expiry_sec", options_.default_auth_key_ttl_sec);
    uint8_t raw[20];
    random_.fill(raw);
    std::string secret = "ghauth-" + hex(raw, sizeof raw);
    wg::crypto::wipe(raw);
    std::string error;
    auto k = store_.createAuthKey(secret, user->id, req.value("reusable", false),
                                  req.value("ephemeral", false), tags,
                                  ttl > 0 ? wallSec(now) + ttl : 0, wallSec(now), &error);
    if (!k) return fail(error);
    log("control: admin created auth key " + std::to_string(k->id) + " for " + user->login);
    return {{"ok", true}, {"secret", secret}, {"key", keyJson(*k, now)}};
  }
  if (verb == "list") {
    json keys = json::array();
    for (const auto& k : store_.listAuthKeys()) keys.push_back(keyJson(k, now));
    return {{"ok", true}, {"keys", keys}};
  }
  if (verb == "revoke") {
    int64_t id = req.value("id", int64_t{0});
    if (!store_.revokeAuthKey(id)) return fail("no auth key with id " + std::to_string(id));
    log("control: admin revoked auth key " + std::to_string(id));
    return {{"ok", true}};
  }
  return fail("unknown keys command \"" + verb + "\" (create, list, revoke)");
}

ServerCore::NodeState* ServerCore::nodeByRef(const json& ref) {
  if (ref.is_number_integer()) return nodeById(ref.get<int64_t>());
  if (!ref.is_string()) return nullptr;
  std::string s = ref.get<std::string>();
  if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
    if (NodeState* n = nodeById(std::stoll(s))) return n;
  }
  for (auto& [id, n] : nodes_) {
    if (n.record.hostname == s) return &n;
  }
  return nullptr;
}

json ServerCore::nodeJson(const NodeState& n, wg::Now now) const {
  const NodeRecord& r = n.record;
  return {{"id", r.id},
          {"name", r.hostname},
          {"user", r.user_login},
          {"tags", r.tags},
          {"addresses", {r.ipv4Addr().toString(), r.ipv6.toString()}},
          {"node_key", wg::keyToBase64(r.node_key)},
          {"machine_key", wg::keyToBase64(r.machine_key)},
          {"key_expiry", r.key_expiry},
          {"expired", isExpired(r, now)},
          {"ephemeral", r.ephemeral},
          {"online", n.stream != 0},
          {"endpoints", n.endpoints},
          {"last_seen", r.last_seen}};
}

json ServerCore::adminNodes(const std::string& verb, const json& req, wg::Now now) {
  if (verb == "list") {
    json nodes = json::array();
    for (const auto& [id, n] : nodes_) nodes.push_back(nodeJson(n, now));
    return {{"ok", true}, {"nodes", nodes}};
  }
  NodeState* n = nodeByRef(req.value("node", json()));
  if (!n) return fail("no node " + req.value("node", json()).dump() + ": see `admin nodes list`");
  NodeRecord rec = n->record;
  if (verb == "delete") {
    removeNode(rec.id, "deleted by admin");
    return {{"ok", true}};
  }
  if (verb == "expire") {
    rec.key_expiry = wallSec(now);
  } else if (verb == "rename") {
    std::string name = req.value("name", "");
    if (name.empty()) return fail("nodes.rename needs \"name\"");
    for (const auto& [id, other] : nodes_) {
      if (id != rec.id && other.record.hostname == name) {
        return fail("hostname \"" + name + "\" is taken by node " + std::to_string(id));
      }
    }
    rec.hostname = name;
  } else if (verb == "retag") {
    std::vector<std::string> tags = stringList(req.value("tags", json::array()));
    for (const auto& t : tags) {
      if (!policy_ || !policy_->tag_owners.count(t)) {
        return fail(t + " is not defined in the policy's tagOwners");
      }
    }
    std::sort(tags.begin(), tags.end());
    bool was_tagged = !rec.tags.empty();
    rec.tags = tags;
    if (!tags.empty()) {
      rec.key_expiry = 0;
    } else if (was_tagged && options_.key_expiry_sec > 0) {
      rec.key_expiry = wallSec(now) + options_.key_expiry_sec;
    }
  } else {
    return fail("unknown nodes command \"" + verb + "\" (list, expire, delete, rename, retag)");
  }
  std::string error;
  if (store_.saveNode(rec, &error) == 0) return fail("cannot save node: " + error);
  n->record = rec;
  dirty_ = true;
  next_expiry_check_mono_ = 0;  // apply an expiry at the next tick
  log("control: admin " + verb + " node " + std::to_string(rec.id) + " " + rec.hostname);
  return {{"ok", true}, {"node", nodeJson(*n, now)}};
}

json ServerCore::adminPolicy(const std::string& verb, const json& req) {
  if (verb == "get") return {{"ok", true}, {"text", policy_text_}};
  if (verb == "set" || verb == "check") {
    if (!req.contains("text") || !req["text"].is_string()) {
      return fail("policy." + verb + " needs \"text\"");
    }
    std::string text = req["text"].get<std::string>();
    if (verb == "check") {
      auto parsed = parsePolicy(text);
      if (!parsed) {
        return {{"ok", false},
                {"error", "invalid policy"},
                {"diagnostics", diagnosticsJson(parsed.errors())}};
      }
      PolicyTestReport report = runPolicyTests(parsed.value());
      if (!report.failures.empty()) {
        return {{"ok", false},
                {"error", "policy tests failed"},
                {"diagnostics", diagnosticsJson(report.failures)}};
      }
      return {{"ok", true}, {"grants", parsed->grants.size()}, {"tests", report.tests}};
    }
    std::vector<Diagnostic> errors = setPolicy(text);
    if (!errors.empty()) {
      for (const auto& d : errors) log("control: policy rejected: " + d.format("policy"));
      return {{"ok", false},
              {"error", "policy rejected; the old policy stays"},
              {"diagnostics", diagnosticsJson(errors)}};
    }
    return {{"ok", true}};
  }
  return fail("unknown policy command \"" + verb + "\" (get, set, check)");
}

}  // namespace gatehouse::control
