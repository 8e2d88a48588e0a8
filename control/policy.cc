// Policy file parsing and validation. See policy.h and POLICY.md.
//
// Order: the defining sections (groups, tagOwners, hosts) are read first so grants and tests can
// be checked against them whatever order the file uses. Every problem is collected; nothing
// stops at the first error except a document that is not HuJSON at all.
#include "control/policy.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace gatehouse::control {
namespace {

using nlohmann::json;

const std::vector<std::string> kTopLevelKeys = {"groups", "tagOwners", "hosts", "grants", "tests"};
const std::vector<std::string> kTailscaleOnlyKeys = {
    "acls",    "ssh",      "autoApprovers", "nodeAttrs",           "postures",     "ipsets",
    "derpMap", "sshTests", "disableIPv4",   "randomizeClientPort", "OneCSNATRoute"};
const std::vector<std::string> kGrantKeys = {"src", "dst", "ip", "app"};
const std::vector<std::string> kTestKeys = {"src", "proto",   "accept",   "deny",
                                            "dst", "appCaps", "noAppCaps"};

bool validName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string didYouMean(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best = closestName(name, candidates);
  return best.empty() ? "" : " (did you mean " + q(best) + "?)";
}

template <typename Map>
std::vector<std::string> keysOf(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

// Where a selector appears; decides which kinds are allowed.
enum class Context { kGrant, kTagOwner, kTestSrc, kTestDst };

class Parser {
 public:
  explicit Parser(const JsonDoc& doc) : doc_(doc) {}

  Result<Policy> run() {
    const json& root = doc_.root();
    if (!root.is_object()) {
      error("", "the policy must be a JSON object, e.g. {\"grants\": [...]}");
      return std::move(errors_);
    }
    for (const auto& [key, value] : root.items()) {
      std::string ptr = JsonDoc::child("", key);
      if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key) != kTopLevelKeys.end()) {
        continue;
      }
      if (std::find(kTailscaleOnlyKeys.begin(), kTailscaleOnlyKeys.end(), key) !=
          kTailscaleOnlyKeys.end()) {
        errorKey(ptr, "unsupported top-level key " + q(key) +
                          ": Gatehouse policies have groups, tagOwners, hosts, grants and tests" +
                          (key == "acls" ? "; rewrite ACL rules as grants" : "; remove it"));
      } else {
        errorKey(ptr, "unknown top-level key " + q(key) + didYouMean(key, kTopLevelKeys) +
                          "; allowed: groups, tagOwners, hosts, grants, tests");
      }
    }
    parseGroups();
    parseTagOwners();
    parseHosts();
    parseGrants();
    parseTests();
    if (!errors_.empty()) {
      std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
        return std::tie(a.line, a.column) < std::tie(b.line, b.column);
      });
      return std::move(errors_);
    }
    return std::move(policy_);
  }

 private:
  void error(const std::string& ptr, std::string message) {
    errors_.push_back(doc_.at(ptr, std::move(message)));
  }
  void errorKey(const std::string& ptr, std::string message) {
    errors_.push_back(doc_.atKey(ptr, std::move(message)));
  }

  const json* section(const char* name, bool object) {
    const json& root = doc_.root();
    auto it = root.find(name);
    if (it == root.end()) return nullptr;
    if (object ? !it->is_object() : !it->is_array()) {
      error(JsonDoc::child("", name), q(name) + " must be " + (object ? "an object" : "an array") +
                                          ", e.g. " + (object ? "{...}" : "[...]"));
      return nullptr;
    }
    return &*it;
  }

  // Strings of a JSON array at ptr; reports non-strings. nullopt if not an array.
  std::optional<std::vector<std::pair<std::string, std::string>>> strings(const json& v,
                                                                          const std::string& ptr,
                                                                          const std::string& what,
                                                                          bool allow_single) {
    std::vector<std::pair<std::string, std::string>> out;  // (value, pointer)
    if (allow_single && v.is_string()) {
      out.emplace_back(v.get<std::string>(), ptr);
      return out;
    }
    if (!v.is_array()) {
      error(ptr, what + " must be a list of strings, e.g. [\"alice@example.com\"]");
      return std::nullopt;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      std::string p = JsonDoc::child(ptr, i);
      if (!v[i].is_string()) {
        error(p, what + " entries must be strings");
        continue;
      }
      out.emplace_back(v[i].get<std::string>(), p);
    }
    return out;
  }

  void parseGroups() {
    const json* groups = section("groups", true);
    if (!groups) return;
    for (const auto& [name, members] : groups->items()) {
      std::string ptr = JsonDoc::child("/groups", name);
      if (name.rfind("group:", 0) != 0 || !validName(name.substr(6))) {
        errorKey(ptr, "group name " + q(name) +
                          " must look like \"group:NAME\" (letters, digits, - _ .)");
        continue;
      }
      auto list = strings(members, ptr, "group members", false);
      std::vector<std::string>& logins = policy_.groups[name];
      if (!list) continue;
      for (const auto& [login, p] : *list) {
        if (login.rfind("group:", 0) == 0 || login.rfind("tag:", 0) == 0 ||
            login.rfind("autogroup:", 0) == 0) {
          error(p, "group members must be user logins, not " + q(login) +
                       ": list the logins directly");
        } else if (login.find('@') == std::string::npos) {
          error(p, "group member " + q(login) + " is not a user login: write it as name@domain");
        } else {
          logins.push_back(login);
        }
      }
    }
  }

  void parseTagOwners() {
    const json* owners = section("tagOwners", true);
    if (!owners) return;
    // Define every tag first: tags may own tags in any order.
    for (const auto& [tag, v] : owners->items()) {
      if (tag.rfind("tag:", 0) != 0 || !validName(tag.substr(4))) {
        errorKey(JsonDoc::child("/tagOwners", tag),
                 "tag name " + q(tag) + " must look like \"tag:NAME\" (letters, digits, - _ .)");
        continue;
      }
      policy_.tag_owners[tag];
    }
    for (const auto& [tag, v] : owners->items()) {
      if (!policy_.tag_owners.count(tag)) continue;
      std::string ptr = JsonDoc::child("/tagOwners", tag);
      auto list = strings(v, ptr, "tag owners", false);
      if (!list) continue;
      for (const auto& [text, p] : *list) {
        if (auto s = selector(text, p, Context::kTagOwner)) policy_.tag_owners[tag].push_back(*s);
      }
    }
  }

  void parseHosts() {
    const json* hosts = section("hosts", true);
    if (!hosts) return;
    for (const auto& [name, v] : hosts->items()) {
      std::string ptr = JsonDoc::child("/hosts", name);
      if (!validName(name) || name.find('@') != std::string::npos ||
          wg::IpAddr::parse(name).has_value()) {
        errorKey(ptr, "host alias " + q(name) +
                          " must be a plain name (letters, digits, - _ .), not an address");
        continue;
      }
      auto prefix = v.is_string() ? wg::IpPrefix::parse(v.get<std::string>()) : std::nullopt;
      if (!prefix) {
        error(ptr, "host " + q(name) +
                       " must map to an IP address or CIDR string, e.g. \"100.64.0.7\" or "
                       "\"10.0.0.0/8\"");
        continue;
      }
      policy_.hosts[name] = *prefix;
    }
  }

  std::optional<Selector> selector(const std::string& text, const std::string& ptr, Context ctx) {
    Selector s;
    s.text = text;
    s.name = text;
    s.pos = doc_.valuePos(ptr);
    const char* where = ctx == Context::kGrant      ? "in a grant"
                        : ctx == Context::kTagOwner ? "as a tag owner"
                        : ctx == Context::kTestSrc  ? "as a test src"
                                                    : "as a test destination";
    auto fail = [&](std::string message) -> std::optional<Selector> {
      errors_.push_back({s.pos.line, s.pos.column, std::move(message)});
      return std::nullopt;
    };
    if (text == "*") {
      if (ctx != Context::kGrant) return fail("\"*\" cannot be used " + std::string(where));
      s.kind = Selector::Kind::kAll;
    } else if (text.rfind("group:", 0) == 0) {
      if (ctx == Context::kTestSrc || ctx == Context::kTestDst) {
        return fail("a group cannot be used " + std::string(where) +
                    ": name one of its members' logins");
      }
      if (!policy_.groups.count(text)) {
        return fail("unknown group " + q(text) + didYouMean(text, keysOf(policy_.groups)) +
                    ": define it under \"groups\"");
      }
      s.kind = Selector::Kind::kGroup;
    } else if (text.rfind("tag:", 0) == 0) {
      if (!policy_.tag_owners.count(text)) {
        return fail("tag " + q(text) + " has no tagOwners entry" +
                    didYouMean(text, keysOf(policy_.tag_owners)) + ": add \"tagOwners\": {" +
                    q(text) + ": [\"autogroup:admin\"]} or fix the name");
      }
      s.kind = Selector::Kind::kTag;
    } else if (text.rfind("autogroup:", 0) == 0) {
      if (text == "autogroup:admin" && ctx == Context::kTagOwner) {
        s.kind = Selector::Kind::kAutogroupAdmin;
      } else if ((text == "autogroup:member" || text == "autogroup:tagged") &&
                 ctx == Context::kGrant) {
        s.kind = text == "autogroup:member" ? Selector::Kind::kAutogroupMember
                                            : Selector::Kind::kAutogroupTagged;
      } else {
        return fail(q(text) + " cannot be used " + std::string(where) +
                    ": grants accept autogroup:member and autogroup:tagged, tagOwners accept "
                    "autogroup:admin");
      }
    } else if (text.find('@') != std::string::npos) {
      s.kind = Selector::Kind::kUser;
    } else if (auto prefix = wg::IpPrefix::parse(text)) {
      if (ctx == Context::kTagOwner)
        return fail("an address cannot own a tag: name a user or group");
      s.kind = Selector::Kind::kPrefix;
      s.prefix = *prefix;
    } else if (auto it = policy_.hosts.find(text); it != policy_.hosts.end()) {
      if (ctx == Context::kTagOwner) return fail("a host cannot own a tag: name a user or group");
      s.kind = Selector::Kind::kPrefix;
      s.prefix = it->second;
    } else {
      return fail("unknown selector " + q(text) + didYouMean(text, keysOf(policy_.hosts)) +
                  ": expected a login (name@domain), group:NAME, tag:NAME, autogroup:member, "
                  "autogroup:tagged, \"*\", a host from \"hosts\", or an IP/CIDR");
    }
    return s;
  }

  std::vector<Selector> selectors(const json& grant, const std::string& ptr, const char* field) {
    std::vector<Selector> out;
    std::string p = JsonDoc::child(ptr, field);
    if (!grant.contains(field)) {
      error(ptr, std::string("grant has no \"") + field + "\": add \"" + field +
                     "\": [\"...\"] (a grant needs src and dst)");
      return out;
    }
    auto list = strings(grant[field], p, field, false);
    if (!list) return out;
    if (list->empty() && grant[field].empty()) {
      error(p, std::string("\"") + field + "\" is empty, so the grant matches nothing: add a " +
                   "selector (\"*\" for everyone)");
    }
    for (const auto& [text, sp] : *list) {
      if (auto s = selector(text, sp, Context::kGrant)) out.push_back(*s);
    }
    return out;
  }

  void parseGrants() {
    const json* grants = section("grants", false);
    if (!grants) return;
    for (size_t i = 0; i < grants->size(); ++i) {
      const json& g = (*grants)[i];
      std::string ptr = JsonDoc::child("/grants", i);
      if (!g.is_object()) {
        error(ptr, "a grant must be an object {\"src\": [...], \"dst\": [...], \"ip\": [...]}");
        continue;
      }
      Grant grant;
      grant.pos = doc_.valuePos(ptr);
      for (const auto& [key, v] : g.items()) {
        if (std::find(kGrantKeys.begin(), kGrantKeys.end(), key) == kGrantKeys.end()) {
          errorKey(JsonDoc::child(ptr, key), "unknown grant key " + q(key) +
                                                 didYouMean(key, kGrantKeys) +
                                                 "; allowed: src, dst, ip, app");
        }
      }
      grant.src = selectors(g, ptr, "src");
      grant.dst = selectors(g, ptr, "dst");
      if (!g.contains("ip") && !g.contains("app")) {
        error(ptr,
              "grant has neither \"ip\" nor \"app\", so it grants nothing: add \"ip\": "
              "[\"tcp:443\"] (or [\"*\"]) and/or an \"app\" capability map");
      }
      if (g.contains("ip")) {
        std::string ip_ptr = JsonDoc::child(ptr, "ip");
        if (auto list = strings(g["ip"], ip_ptr, "ip", false)) {
          for (const auto& [text, p] : *list) {
            std::string why;
            if (auto spec = parseIpSpec(text, &why)) {
              grant.ip.push_back(*spec);
            } else {
              error(p, "malformed ip entry " + q(text) + ": " + why);
            }
          }
        }
      }
      if (g.contains("app")) {
        std::string app_ptr = JsonDoc::child(ptr, "app");
        parseCapMap(g["app"], app_ptr, &grant.app, "app");
      }
      policy_.grants.push_back(std::move(grant));
    }
  }

  void parseCapMap(const json& v, const std::string& ptr,
                   std::map<std::string, std::vector<json>>* out, const char* what) {
    if (!v.is_object()) {
      error(ptr, std::string("\"") + what +
                     "\" must map capability names to lists of values, e.g. "
                     "{\"gatehouse.dev/cap/gateway\": [{\"role\": \"user\"}]}");
      return;
    }
    for (const auto& [cap, values] : v.items()) {
      std::string p = JsonDoc::child(ptr, cap);
      if (cap.empty() || cap.find('/') == std::string::npos) {
        errorKey(p, "capability name " + q(cap) +
                        " must be domain/path, e.g. \"gatehouse.dev/cap/gateway\"");
        continue;
      }
      if (!values.is_array()) {
        error(p, "capability " + q(cap) + " must map to a list of values, e.g. [{...}]");
        continue;
      }
      auto& list = (*out)[cap];
      for (const json& value : values) list.push_back(value);
    }
  }

  // "tag:ai:443", "alice@example.com:22", "100.64.0.1:80", "[fd7a::1]:80", "db:5432".
  std::optional<PolicyTest::Target> target(const std::string& text, const std::string& ptr) {
    PolicyTest::Target t;
    t.text = text;
    t.pos = doc_.valuePos(ptr);
    size_t colon = text.rfind(':');
    std::string host = colon == std::string::npos ? text : text.substr(0, colon);
    std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (colon == std::string::npos || port.empty() || ec != std::errc() ||
        end != port.data() + port.size() || n > 65535 || host.empty()) {
      errors_.push_back({t.pos.line, t.pos.column,
                         "test destination " + q(text) +
                             " must be DESTINATION:PORT, e.g. \"tag:ai:443\" or "
                             "\"[fd7a::1]:80\""});
      return std::nullopt;
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    auto s = selector(host, ptr, Context::kTestDst);
    if (!s) return std::nullopt;
    s->text = host;
    t.dst = *s;
    t.port = static_cast<uint16_t>(n);
    return t;
  }

  void parseTests() {
    const json* tests = section("tests", false);
    if (!tests) return;
    for (size_t i = 0; i < tests->size(); ++i) {
      const json& t = (*tests)[i];
      std::string ptr = JsonDoc::child("/tests", i);
      if (!t.is_object()) {
        error(ptr, "a test must be an object {\"src\": ..., \"accept\": [...], \"deny\": [...]}");
        continue;
      }
      PolicyTest test;
      test.pos = doc_.valuePos(ptr);
      bool ok = true;
      for (const auto& [key, v] : t.items()) {
        if (std::find(kTestKeys.begin(), kTestKeys.end(), key) == kTestKeys.end()) {
          errorKey(JsonDoc::child(ptr, key),
                   "unknown test key " + q(key) + didYouMean(key, kTestKeys) +
                       "; allowed: src, proto, accept, deny, dst, appCaps, noAppCaps");
        }
      }
      if (!t.contains("src") || !t["src"].is_string()) {
        error(t.contains("src") ? JsonDoc::child(ptr, "src") : ptr,
              "a test needs \"src\": one login, tag or address, e.g. \"alice@example.com\"");
        ok = false;
      } else if (auto s = selector(t["src"].get<std::string>(), JsonDoc::child(ptr, "src"),
                                   Context::kTestSrc)) {
        test.src = *s;
      } else {
        ok = false;
      }
      if (t.contains("proto")) {
        std::string p = JsonDoc::child(ptr, "proto");
        std::string why;
        auto spec = t["proto"].is_string() ? parseIpSpec(t["proto"].get<std::string>() + ":*", &why)
                                           : std::nullopt;
        if (!spec || spec->protos.empty()) {
          error(p, "test proto must be tcp, udp, sctp, icmp or a protocol number");
          ok = false;
        } else {
          test.proto = spec->protos[0];
        }
      }
      for (const char* field : {"accept", "deny"}) {
        if (!t.contains(field)) continue;
        std::string p = JsonDoc::child(ptr, field);
        auto list = strings(t[field], p, field, false);
        if (!list) continue;
        for (const auto& [text, tp] : *list) {
          auto target_or = target(text, tp);
          if (!target_or) continue;
          (std::string(field) == "accept" ? test.accept : test.deny).push_back(*target_or);
        }
      }
      bool caps = t.contains("appCaps") || t.contains("noAppCaps");
      if (t.contains("appCaps")) {
        parseCapMap(t["appCaps"], JsonDoc::child(ptr, "appCaps"), &test.app_caps, "appCaps");
      }
      if (t.contains("noAppCaps")) {
        std::string p = JsonDoc::child(ptr, "noAppCaps");
        if (auto list = strings(t["noAppCaps"], p, "noAppCaps", false)) {
          for (const auto& [cap, cp] : *list) test.no_app_caps.push_back(cap);
        }
      }
      if (t.contains("dst")) {
        std::string p = JsonDoc::child(ptr, "dst");
        if (!t["dst"].is_string()) {
          error(p, "test \"dst\" must be one login, tag or address (no port)");
        } else if (auto s = selector(t["dst"].get<std::string>(), p, Context::kTestDst)) {
          test.dst = *s;
        }
        if (!caps) {
          error(p,
                "test \"dst\" is only used with appCaps/noAppCaps: add one, or put "
                "\"DESTINATION:PORT\" in accept/deny");
        }
      } else if (caps) {
        error(ptr,
              "a test with appCaps or noAppCaps needs \"dst\": the node holding the "
              "capabilities, e.g. \"dst\": \"tag:ai\"");
      }
      if (!t.contains("accept") && !t.contains("deny") && !caps && ok) {
        error(ptr, "test checks nothing: add \"accept\", \"deny\", \"appCaps\" or \"noAppCaps\"");
      }
      policy_.tests.push_back(std::move(test));
    }
  }

  const JsonDoc& doc_;
  Policy policy_;
  std::vector<Diagnostic> errors_;
};

}  // namespace

std::string closestName(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;
  for (const std::string& c : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t sub = prev[j - 1] + (std::tolower(name[i - 1]) == std::tolower(c[j - 1]) ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = c;
    }
  }
  return best;
}

Result<Policy> parsePolicy(std::string_view text) {
  Result<JsonDoc> doc = parseHuJson(text);
  if (!doc) return doc.errors();
  return Parser(doc.value()).run();
}

bool mayApplyTag(const Policy& policy, std::string_view login, bool is_admin,
                 std::string_view tag) {
  std::set<std::string> seen;
  std::vector<std::string> todo{std::string(tag)};
  while (!todo.empty()) {
    std::string t = todo.back();
    todo.pop_back();
    if (!seen.insert(t).second) continue;
    auto it = policy.tag_owners.find(t);
    if (it == policy.tag_owners.end()) continue;
    for (const Selector& owner : it->second) {
      switch (owner.kind) {
        case Selector::Kind::kUser:
          if (owner.name == login) return true;
          break;
        case Selector::Kind::kGroup: {
          auto g = policy.groups.find(owner.name);
          if (g != policy.groups.end() &&
              std::find(g->second.begin(), g->second.end(), login) != g->second.end()) {
            return true;
          }
          break;
        }
        case Selector::Kind::kAutogroupAdmin:
          if (is_admin) return true;
          break;
        case Selector::Kind::kTag:
          todo.push_back(owner.name);
          break;
        default:
          break;
      }
    }
  }
  return false;
}

}  // namespace gatehouse::control
