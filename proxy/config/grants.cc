// Grant parsing (shared by the config file and capability values) and evaluation. See grants.h.
#include "proxy/config/grants.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include "control/policy.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

const std::vector<std::string> kConfigGrantKeys = {"src", "models", "role"};
const std::vector<std::string> kCapabilityKeys = {"models", "role"};

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool validSelectorName(std::string_view name) {
  constexpr std::string_view kAllowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
  return !name.empty() && name.find_first_not_of(kAllowed) == std::string_view::npos;
}

// "" when `src` is a selector the gateway understands, else why not.
std::string checkSrc(const std::string& src) {
  if (src == "*" || src == "autogroup:member" || src == "autogroup:tagged") return "";
  if (src.rfind("group:", 0) == 0 || src.rfind("tag:", 0) == 0) {
    std::string_view name = std::string_view(src).substr(src.find(':') + 1);
    if (validSelectorName(name)) return "";
    return "src " + q(src) + ": the name after ':' must be letters, digits, - _ or .";
  }
  if (src.rfind("autogroup:", 0) == 0) {
    return "src " + q(src) + ": only autogroup:member and autogroup:tagged name callers";
  }
  size_t at = src.find('@');
  if (at != std::string::npos && at > 0 && at + 1 < src.size()) return "";
  return "src " + q(src) +
         " is not a caller: expected a login (name@domain), group:NAME, tag:NAME, "
         "autogroup:member, autogroup:tagged or \"*\"";
}

// "" when `pattern` is a usable provider/model glob, else why not.
std::string checkModelPattern(const std::string& pattern,
                              const std::vector<std::string>& provider_ids) {
  if (pattern == "*") return "";
  size_t slash = pattern.find('/');
  if (slash == std::string::npos) {
    return "model pattern " + q(pattern) +
           " must name the provider: write \"PROVIDER/MODEL\", e.g. \"anthropic/" + pattern +
           "\" (or \"*\" for every model)";
  }
  std::string provider = pattern.substr(0, slash);
  if (provider.empty() || slash + 1 == pattern.size()) {
    return "model pattern " + q(pattern) + " needs both parts: \"PROVIDER/MODEL\", e.g. " +
           "\"openai/*\"";
  }
  if (provider.find('*') == std::string::npos && !provider_ids.empty() &&
      !contains(provider_ids, provider)) {
    std::string best = control::closestName(provider, provider_ids);
    return "model pattern " + q(pattern) + " names unknown provider " + q(provider) +
           (best.empty() ? "" : " (did you mean " + q(best) + "?)") + "; providers: " + [&] {
             std::string list;
             for (const auto& id : provider_ids) list += (list.empty() ? "" : ", ") + id;
             return list;
           }();
  }
  return "";
}

std::string joinGroups(const std::vector<std::string>& groups) {
  std::string out;
  for (const auto& g : groups) out += (out.empty() ? "" : ", ") + g;
  return out;
}

}  // namespace

Grant parseGrantFields(const json& value, const std::string& ptr, bool with_src,
                       const std::vector<std::string>& provider_ids,
                       const GrantProblemFn& problem) {
  Grant grant;
  const std::vector<std::string>& keys = with_src ? kConfigGrantKeys : kCapabilityKeys;
  if (!value.is_object()) {
    problem(ptr,
            with_src ? "a grant must be an object {\"src\": [...], \"models\": [...], "
                       "\"role\": \"user\"}"
                     : "a capability value must be an object {\"models\": [...], \"role\": "
                       "\"user\"}",
            false);
    return grant;
  }
  for (const auto& [key, v] : value.items()) {
    if (contains(keys, key)) continue;
    std::string best = control::closestName(key, keys);
    std::string hint = best.empty() ? "" : " (did you mean " + q(best) + "?)";
    if (!with_src && key == "src") {
      hint = ": a capability applies to the peer holding it, so it has no src";
    }
    problem(control::JsonDoc::child(ptr, key),
            "unknown grant key " + q(key) + hint + "; allowed: " + (with_src ? "src, " : "") +
                "models, role",
            true);
  }
  // Each string of the list `field`, with its pointer; non-strings and "" are reported.
  auto strings = [&](const char* field, const char* example,
                     const std::function<void(const std::string&, const std::string&)>& each) {
    std::string p = control::JsonDoc::child(ptr, field);
    const json& list = value[field];
    if (!list.is_array()) {
      problem(p, q(field) + " must be a list of strings, e.g. " + example, false);
      return;
    }
    for (size_t i = 0; i < list.size(); ++i) {
      std::string entry_ptr = control::JsonDoc::child(p, i);
      if (!list[i].is_string() || list[i].get_ref<const std::string&>().empty()) {
        problem(entry_ptr, q(field) + " entries must be non-empty strings", false);
        continue;
      }
      each(list[i].get<std::string>(), entry_ptr);
    }
  };
  if (with_src && !value.contains("src")) {
    problem(ptr, "grant has no \"src\": add \"src\": [\"group:eng\"] (\"*\" for everyone)", false);
  } else if (with_src) {
    strings("src", "[\"alice@example.com\", \"group:eng\", \"tag:ci\"]",
            [&](const std::string& src, const std::string& p) {
              std::string why = checkSrc(src);
              if (why.empty()) {
                grant.src.push_back(src);
              } else {
                problem(p, why, false);
              }
            });
    if (value["src"].is_array() && value["src"].empty()) {
      problem(control::JsonDoc::child(ptr, "src"),
              "\"src\" is empty, so the grant applies to no one: name a caller", false);
    }
  }
  if (value.contains("models")) {
    strings("models", "[\"anthropic/claude-*\", \"openai/*\"]",
            [&](const std::string& pattern, const std::string& p) {
              std::string why = checkModelPattern(pattern, provider_ids);
              if (why.empty()) {
                grant.models.push_back(pattern);
              } else {
                problem(p, why, false);
              }
            });
  }
  if (value.contains("role")) {
    std::string p = control::JsonDoc::child(ptr, "role");
    const json& r = value["role"];
    if (r == "user") {
      grant.role = Role::kUser;
    } else if (r == "admin") {
      grant.role = Role::kAdmin;
    } else {
      problem(p, "role must be \"user\" or \"admin\"", false);
    }
  }
  if (grant.role == Role::kUser && value.contains("models") && value["models"].is_array() &&
      value["models"].empty()) {
    problem(control::JsonDoc::child(ptr, "models"),
            "\"models\" is empty and the role is user, so the grant allows nothing: add "
            "patterns such as \"anthropic/*\"",
            false);
  } else if (grant.role == Role::kUser && !value.contains("models")) {
    problem(ptr,
            "grant has no \"models\" and the role is user, so it allows nothing: add "
            "\"models\": [\"anthropic/*\"] (or \"role\": \"admin\" for the admin API only)",
            false);
  }
  return grant;
}

bool srcMatches(std::string_view src, const wg::Identity& who) {
  if (src == "*") return true;
  bool tagged = !who.tags.empty();
  if (src.rfind("tag:", 0) == 0) return contains(who.tags, src);
  if (src == "autogroup:tagged") return tagged;
  // A tagged node's identity is its tags: its owner's login and groups do not reach it.
  if (tagged) return false;
  if (src == "autogroup:member") return !who.user_login.empty();
  if (src.rfind("group:", 0) == 0) return contains(who.groups, src);
  return !who.user_login.empty() && src == who.user_login;
}

std::string describeIdentity(const wg::Identity& who) {
  if (!who.tags.empty()) return joinGroups(who.tags);
  if (!who.user_login.empty()) {
    if (who.groups.empty()) return who.user_login;
    return who.user_login + " (" + joinGroups(who.groups) + ")";
  }
  return "node " + q(who.name.empty() ? "?" : who.name) + " (no user or tags)";
}

Result<Grant> parseCapabilityValue(std::string_view json_text) {
  json value = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Status(EINVAL, "not valid JSON");
  std::string first;
  Grant grant = parseGrantFields(value, "", false, {},
                                 [&](const std::string& ptr, std::string message, bool) {
                                   if (first.empty())
                                     first = (ptr.empty() ? "" : ptr + ": ") + message;
                                 });
  if (!first.empty()) return Status(EINVAL, first);
  grant.origin = "capability " + std::string(kAiCapability);
  return grant;
}

CapabilityGrants grantsFromCapabilities(const wg::Identity& who) {
  CapabilityGrants out;
  auto it = who.capabilities.find(std::string(kAiCapability));
  if (it == who.capabilities.end()) return out;
  for (size_t i = 0; i < it->second.size(); ++i) {
    Result<Grant> g = parseCapabilityValue(it->second[i]);
    if (g) {
      g->origin += "[" + std::to_string(i) + "]";
      out.grants.push_back(std::move(g.value()));
    } else {
      out.problems.push_back("ignored " + std::string(kAiCapability) + " value " +
                             std::to_string(i) + ": " + g.status().message());
    }
  }
  return out;
}

std::vector<const Grant*> GrantSet::applicable(const wg::Identity& who, std::vector<Grant>& storage,
                                               std::vector<std::string>* problems) const {
  std::vector<const Grant*> out;
  for (const Grant& g : grants_) {
    if (std::any_of(g.src.begin(), g.src.end(),
                    [&](const std::string& s) { return srcMatches(s, who); })) {
      out.push_back(&g);
    }
  }
  CapabilityGrants caps = grantsFromCapabilities(who);
  storage = std::move(caps.grants);
  for (const Grant& g : storage) out.push_back(&g);
  if (problems) *problems = std::move(caps.problems);
  return out;
}

Decision GrantSet::checkModel(const wg::Identity& who, std::string_view provider_id,
                              std::string_view model) const {
  std::vector<Grant> storage;
  std::vector<std::string> problems;
  std::vector<const Grant*> mine = applicable(who, storage, &problems);
  std::string fqn = std::string(provider_id) + "/" + std::string(model);
  Decision d;
  for (const Grant* g : mine) d.role = std::max(d.role, g->role);
  for (const Grant* g : mine) {
    for (const std::string& pattern : g->models) {
      if (globMatch(pattern, fqn)) {
        d.allowed = true;
        d.grant = g->origin;
        d.reason = describeIdentity(who) + " may use " + q(fqn) + " (grant " + g->origin + ")";
        return d;
      }
    }
  }
  d.reason = describeIdentity(who) + " has no grant for model " + q(fqn);
  if (!problems.empty()) d.reason += " (" + problems.front() + ")";
  return d;
}

bool GrantSet::allows(const wg::Identity& who, std::string_view provider_id,
                      std::string_view model) const {
  return checkModel(who, provider_id, model).allowed;
}

Role GrantSet::role(const wg::Identity& who) const {
  std::vector<Grant> storage;
  Role r = Role::kNone;
  for (const Grant* g : applicable(who, storage, nullptr)) r = std::max(r, g->role);
  return r;
}

Decision GrantSet::checkAdmin(const wg::Identity& who) const {
  std::vector<Grant> storage;
  Decision d;
  for (const Grant* g : applicable(who, storage, nullptr)) {
    if (g->role > d.role) {
      d.role = g->role;
      if (g->role == Role::kAdmin) d.grant = g->origin;
    }
  }
  d.allowed = d.role == Role::kAdmin;
  d.reason = describeIdentity(who) +
             (d.allowed ? " is an admin (grant " + d.grant + ")"
                        : " has role " + std::string(roleName(d.role)) +
                              "; the admin API needs a grant with \"role\": \"admin\"");
  return d;
}

std::vector<std::string> GrantSet::grantedModels(
    const wg::Identity& who, const std::vector<ProviderConfig>& providers) const {
  std::vector<Grant> storage;
  std::vector<const Grant*> mine = applicable(who, storage, nullptr);
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto consider = [&](const ProviderConfig& p, const std::string& model) {
    std::string fqn = p.id + "/" + model;
    if (seen.count(fqn)) return;
    for (const Grant* g : mine) {
      for (const std::string& pattern : g->models) {
        if (globMatch(pattern, fqn)) {
          seen.insert(fqn);
          out.push_back(std::move(fqn));
          return;
        }
      }
    }
  };
  for (const ProviderConfig& p : providers) {
    for (const std::string& m : p.models) {
      if (m.find('*') == std::string::npos) consider(p, m);
    }
    // A grant may name a concrete model the provider only lists by a glob ("claude-*").
    std::string prefix = p.id + "/";
    for (const Grant* g : mine) {
      for (const std::string& pattern : g->models) {
        if (pattern.rfind(prefix, 0) != 0 || pattern.find('*') != std::string::npos) continue;
        std::string model = pattern.substr(prefix.size());
        if (p.serves(model)) consider(p, model);
      }
    }
  }
  return out;
}

std::vector<std::string> GrantSet::filterModels(const wg::Identity& who,
                                                std::string_view provider_id,
                                                const std::vector<std::string>& models) const {
  std::vector<Grant> storage;
  std::vector<const Grant*> mine = applicable(who, storage, nullptr);
  std::vector<std::string> out;
  for (const std::string& m : models) {
    std::string fqn = std::string(provider_id) + "/" + m;
    bool ok = std::any_of(mine.begin(), mine.end(), [&](const Grant* g) {
      return std::any_of(g->models.begin(), g->models.end(),
                         [&](const std::string& p) { return globMatch(p, fqn); });
    });
    if (ok) out.push_back(m);
  }
  return out;
}

}  // namespace gatehouse::proxy
