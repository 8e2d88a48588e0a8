// Gateway config parsing and validation. See gateway_config.h and CONFIG.md.
//
// Order: providers are read before grants so a grant's "anthropic/..." can be checked against
// the provider ids whatever order the file uses. Every problem is collected; only a document that
// is not HuJSON at all stops at the first error.
#include "proxy/config/gateway_config.h"

#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "control/policy.h"
#include "proxy/config/credentials.h"
#include "proxy/config/grants.h"
#include "proxy/config/quota_config.h"
#include "proxy/tools/guardrail.h"

namespace gatehouse::proxy {
namespace {

using control::Diagnostic;
using control::JsonDoc;
using nlohmann::json;

const std::vector<std::string> kTopKeys = {
    "version", "hostname", "listen", "loopback_listen", "loopback_identity", "providers",
    "grants",  "logging",  "prices", "quotas",          "guardrails",        "hooks"};
const std::vector<std::string> kProviderKeys = {"kind",   "base_url", "local",   "key",
                                                "models", "headers",  "ca_file", "timeouts"};
const std::vector<std::string> kKinds = {"anthropic", "openai", "openai_compatible"};
const std::vector<std::string> kTimeoutKeys = {"connect_ms", "read_ms"};
const std::vector<std::string> kLoggingKeys = {"database", "retention_days", "bodies", "queue_size",
                                               "tool_calls"};
const std::vector<std::string> kIdentityKeys = {"user", "groups", "tags"};

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool isLowerIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// "" when `path` names a readable regular file, else why not.
std::string checkReadable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::string("cannot open ") + path + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return path + " is not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return path + " is not readable by the gateway's user";
  return "";
}

std::string dirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Splits base_url into an UpstreamUrl; "" in *why when fine.
UpstreamUrl parseBaseUrl(std::string_view text, bool local, std::string* why) {
  UpstreamUrl u;
  std::string_view rest;
  auto lower = [](std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return out;
  };
  if (lower(text.substr(0, 8)) == "https://") {
    u.scheme = "https";
    u.port = 443;
    rest = text.substr(8);
  } else if (lower(text.substr(0, 7)) == "http://") {
    u.scheme = "http";
    u.port = 80;
    rest = text.substr(7);
    if (!local) {
      *why =
          "is plain http://: use https://, or set \"local\": true for a model server on "
          "this host or a trusted network";
      return u;
    }
  } else {
    *why = "must start with https:// (e.g. \"https://api.anthropic.com\")";
    return u;
  }
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? "" : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    *why = "must not hold credentials (user@host): the key goes in \"key\"";
    return u;
  }
  if (path.find_first_of("?#") != std::string_view::npos) {
    *why = "must not have a query or fragment";
    return u;
  }
  std::string_view host = authority;
  std::string_view port;
  bool bracketed = !host.empty() && host.front() == '[';
  if (bracketed) {
    size_t close = host.find(']');
    if (close == std::string_view::npos || !wg::IpAddr::parse(host.substr(1, close - 1))) {
      *why = "has a malformed IPv6 host: write it as [::1]";
      return u;
    }
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port.front() != ':') {
      *why = "has junk after the IPv6 host";
      return u;
    }
    if (!port.empty()) port.remove_prefix(1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty()) {
      *why = "has an empty port after ':'";
      return u;
    }
  }
  if (host.empty()) {
    *why = "has no host";
    return u;
  }
  for (char c : bracketed ? std::string_view() : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      *why = "has an invalid character in the host";
      return u;
    }
  }
  if (!port.empty()) {
    unsigned n = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || n > 65535) {
        n = 70000;
        break;
      }
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n == 0 || n > 65535) {
      *why = "has an invalid port (1-65535)";
      return u;
    }
    u.port = static_cast<uint16_t>(n);
  }
  u.host = lower(host);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.size() >= 3 && path.substr(path.size() - 3) == "/v1") {
    *why =
        "ends in /v1: drop it, the gateway appends the client's path, which already starts "
        "with /v1";
    return u;
  }
  u.path = std::string(path);
  return u;
}

class Loader {
 public:
  Loader(const JsonDoc& doc, const LoadOptions& options) : doc_(doc), opts_(options) {}

  Result<GatewayConfig> run() {
    cfg_.file = opts_.file_name;
    const json& root = doc_.root();
    if (!root.is_object()) {
      error("", "the gateway config must be a JSON object, e.g. {\"providers\": {...}}");
      return finish();
    }
    checkKeys(root, "", kTopKeys, "top-level key");
    if (root.contains("version")) {
      const json& v = root["version"];
      if (!v.is_number_integer() || v.get<int64_t>() != kGatewayConfigVersion) {
        error("/version", "unsupported version: this gateway reads version " +
                              std::to_string(kGatewayConfigVersion));
      }
    }
    if (root.contains("hostname")) parseHostname(root["hostname"]);
    if (root.contains("listen")) {
      uint32_t port = 0;
      if (number(root, "", "listen", 1, 65535, "listen", &port)) cfg_.listen = uint16_t(port);
    }
    parseLoopback(root);
    parseProviders(root);
    parseGrants(root);
    parseLogging(root);
    if (root.contains("prices") && string(root, "", "prices", "prices", &cfg_.prices)) {
      cfg_.prices = resolvePath(cfg_.prices);
      checkFile("/prices", "prices", cfg_.prices);
    }
    parseQuotas(root);
    parseGuardrails(root);
    parseHooks(root);
    return finish();
  }

 private:
  void error(const std::string& ptr, std::string message) {
    errors_.push_back(doc_.at(ptr, std::move(message)));
  }
  void errorKey(const std::string& ptr, std::string message) {
    errors_.push_back(doc_.atKey(ptr, std::move(message)));
  }

  Result<GatewayConfig> finish() {
    if (errors_.empty()) return std::move(cfg_);
    std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    std::string message;
    for (const Diagnostic& d : errors_) {
      message += (message.empty() ? "" : "\n") + d.format(opts_.file_name);
    }
    return Status(EINVAL, message);
  }

  void checkKeys(const json& obj, const std::string& ptr, const std::vector<std::string>& allowed,
                 const std::string& what, const std::string& ctx = "") {
    for (const auto& [key, v] : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string best = control::closestName(key, allowed);
      if (best.empty() && (key == "apikey" || key == "api_key")) best = "key";
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      errorKey(JsonDoc::child(ptr, key),
               ctx + "unknown " + what + " " + q(key) +
                   (best.empty() ? "" : " (did you mean " + q(best) + "?)") + "; allowed: " + list);
    }
  }

  bool string(const json& obj, const std::string& ptr, const char* key, const std::string& ctx,
              std::string* out) {
    const json& v = obj[key];
    if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
      error(JsonDoc::child(ptr, key), ctx + ": \"" + key + "\" must be a non-empty string");
      return false;
    }
    *out = v.get<std::string>();
    return true;
  }

  bool boolean(const json& obj, const std::string& ptr, const char* key, const std::string& ctx,
               bool* out) {
    const json& v = obj[key];
    if (!v.is_boolean()) {
      error(JsonDoc::child(ptr, key), ctx + ": \"" + key + "\" must be true or false");
      return false;
    }
    *out = v.get<bool>();
    return true;
  }

  bool number(const json& obj, const std::string& ptr, const char* key, int64_t min, int64_t max,
              const std::string& ctx, uint32_t* out) {
    const json& v = obj[key];
    if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > max ||
        (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max))) {
      error(JsonDoc::child(ptr, key), ctx + ": \"" + key + "\" must be a whole number from " +
                                          std::to_string(min) + " to " + std::to_string(max));
      return false;
    }
    *out = static_cast<uint32_t>(v.get<int64_t>());
    return true;
  }

  std::string resolvePath(const std::string& path) const {
    if (path.empty() || path[0] == '/' || opts_.base_dir.empty()) return path;
    return opts_.base_dir + "/" + path;
  }

  void checkFile(const std::string& ptr, const std::string& ctx, const std::string& path) {
    if (!opts_.resolve_files) return;
    std::string why = checkReadable(path);
    if (!why.empty()) error(ptr, ctx + ": " + why);
  }

  void parseHostname(const json& v) {
    bool ok = v.is_string() && !v.get_ref<const std::string&>().empty() &&
              v.get_ref<const std::string&>().size() <= 63;
    if (ok) {
      const std::string& s = v.get_ref<const std::string&>();
      ok = s.front() != '-' && s.back() != '-' &&
           std::all_of(s.begin(), s.end(), [](char c) { return isLowerIdChar(c) && c != '_'; });
    }
    if (!ok) {
      error("/hostname",
            "hostname must be one DNS label: lower-case letters, digits and '-', e.g. \"ai\"");
      return;
    }
    cfg_.hostname = v.get<std::string>();
  }

  void parseLoopback(const json& root) {
    if (root.contains("loopback_listen")) {
      const json& v = root["loopback_listen"];
      auto ep = v.is_string() ? wg::Endpoint::parse(v.get<std::string>()) : std::nullopt;
      bool loopback = ep && ((ep->addr.isV4() && ep->addr.bytes[0] == 127) ||
                             (ep->addr.isV6() && ep->addr == *wg::IpAddr::parse("::1")));
      if (!loopback) {
        error("/loopback_listen",
              "loopback_listen must be a loopback address and port, \"127.0.0.1:PORT\" or "
              "\"[::1]:PORT\": callers outside the tailnet have no identity");
      } else {
        cfg_.loopback_listen = *ep;
      }
    }
    if (!root.contains("loopback_identity")) {
      if (root.contains("loopback_listen")) {
        errorKey("/loopback_listen",
                 "loopback_listen needs \"loopback_identity\": the identity loopback callers are "
                 "treated as, e.g. {\"user\": \"bench@example.com\", \"groups\": [\"group:eng\"]}");
      }
      return;
    }
    const std::string ptr = "/loopback_identity";
    const json& v = root["loopback_identity"];
    if (!root.contains("loopback_listen")) {
      errorKey(ptr,
               "loopback_identity has no effect without \"loopback_listen\": add it or "
               "remove this");
    }
    if (!v.is_object()) {
      error(ptr, "loopback_identity must be an object, e.g. {\"user\": \"bench@example.com\"}");
      return;
    }
    checkKeys(v, ptr, kIdentityKeys, "loopback_identity key");
    wg::Identity id;
    id.name = "loopback";
    std::string ctx = "loopback_identity";
    if (v.contains("user") && string(v, ptr, "user", ctx, &id.user_login) &&
        id.user_login.find('@') == std::string::npos) {
      error(ptr + "/user", "loopback_identity: \"user\" must be a login (name@domain)");
    }
    auto list = [&](const char* key, const char* prefix, std::vector<std::string>* out) {
      if (!v.contains(key)) return;
      const json& l = v[key];
      for (size_t i = 0; l.is_array() && i < l.size(); ++i) {
        if (l[i].is_string() && l[i].get_ref<const std::string&>().rfind(prefix, 0) == 0 &&
            l[i].get_ref<const std::string&>().size() > std::string_view(prefix).size()) {
          out->push_back(l[i].get<std::string>());
        } else {
          error(JsonDoc::child(JsonDoc::child(ptr, key), i),
                ctx + ": \"" + key + "\" entries must look like \"" + prefix + "NAME\"");
        }
      }
      if (!l.is_array()) {
        error(JsonDoc::child(ptr, key), ctx + ": \"" + key + "\" must be a list of strings");
      }
    };
    list("groups", "group:", &id.groups);
    list("tags", "tag:", &id.tags);
    if (v.contains("user") == v.contains("tags")) {
      error(ptr,
            "loopback_identity needs exactly one of \"user\" (a person) and \"tags\" (a "
            "tagged node)");
    } else if (v.contains("tags") && v.contains("groups")) {
      errorKey(ptr + "/groups",
               "loopback_identity: a tagged identity has no groups; remove "
               "\"groups\" or use \"user\"");
    }
    cfg_.loopback_identity = std::move(id);
  }

  void parseProviders(const json& root) {
    if (!root.contains("providers")) {
      error("",
            "the config has no \"providers\": add at least one, e.g. \"providers\": "
            "{\"anthropic\": {\"kind\": \"anthropic\", \"key\": \"env:ANTHROPIC_API_KEY\", "
            "\"models\": [\"claude-*\"]}}");
      return;
    }
    const json& providers = root["providers"];
    if (!providers.is_object() || providers.empty()) {
      error("/providers", "\"providers\" must be a non-empty object: provider id → settings");
      return;
    }
    // nlohmann keeps object keys sorted; routing needs the order of the file.
    std::vector<std::string> ids;
    for (const auto& [id, v] : providers.items()) ids.push_back(id);
    std::stable_sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
      control::SourcePos pa = doc_.keyPos(JsonDoc::child("/providers", a));
      control::SourcePos pb = doc_.keyPos(JsonDoc::child("/providers", b));
      return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
    });
    for (const std::string& id : ids) parseProvider(id, providers[id]);
  }

  void parseProvider(const std::string& id, const json& v) {
    std::string ptr = JsonDoc::child("/providers", id);
    std::string ctx = "provider " + q(id);
    provider_ids_.push_back(id);
    if (!std::all_of(id.begin(), id.end(), isLowerIdChar) || id.empty() || id.size() > 64) {
      errorKey(ptr, ctx +
                        ": the id must be lower-case letters, digits, - and _ (it is the "
                        "PROVIDER in grant patterns such as \"anthropic/claude-*\")");
    }
    if (!v.is_object()) {
      error(ptr, ctx + " must be an object {\"kind\": ..., \"key\": ..., \"models\": [...]}");
      return;
    }
    checkKeys(v, ptr, kProviderKeys, "provider key", ctx + ": ");
    ProviderConfig p;
    p.id = id;
    p.pos = doc_.keyPos(ptr);
    bool kind_ok = false;
    std::string kind;
    if (!v.contains("kind")) {
      error(ptr, ctx +
                     " has no \"kind\": add \"kind\": one of anthropic, openai, "
                     "openai_compatible");
    } else if (string(v, ptr, "kind", ctx, &kind)) {
      auto it = std::find(kKinds.begin(), kKinds.end(), kind);
      if (it == kKinds.end()) {
        std::string best = control::closestName(kind, kKinds);
        error(ptr + "/kind", ctx + ": unknown kind " + q(kind) +
                                 (best.empty() ? "" : " (did you mean " + q(best) + "?)") +
                                 "; expected one of anthropic, openai, openai_compatible");
      } else {
        p.kind = static_cast<ProviderKind>(it - kKinds.begin());
        kind_ok = true;
      }
    }
    if (v.contains("local")) boolean(v, ptr, "local", ctx, &p.local);
    if (v.contains("base_url")) {
      if (string(v, ptr, "base_url", ctx, &p.base_url)) {
        std::string why;
        p.url = parseBaseUrl(p.base_url, p.local, &why);
        if (!why.empty()) error(ptr + "/base_url", ctx + ": base_url " + q(p.base_url) + " " + why);
        while (!p.base_url.empty() && p.base_url.back() == '/') p.base_url.pop_back();
      }
    } else if (kind_ok && p.kind == ProviderKind::kOpenAICompatible) {
      error(ptr, ctx +
                     ": an openai_compatible provider needs \"base_url\", e.g. "
                     "\"https://openrouter.ai/api\"");
    } else if (kind_ok) {
      std::string why;
      p.base_url = p.kind == ProviderKind::kAnthropic ? "https://api.anthropic.com"
                                                      : "https://api.openai.com";
      p.url = parseBaseUrl(p.base_url, false, &why);
    }
    parseKey(v, ptr, ctx, p);
    parseModels(v, ptr, ctx, p);
    if (v.contains("headers")) parseHeaders(v["headers"], ptr + "/headers", ctx, p);
    if (v.contains("ca_file") && string(v, ptr, "ca_file", ctx, &p.ca_file)) {
      p.ca_file = resolvePath(p.ca_file);
      checkFile(ptr + "/ca_file", ctx + ": ca_file", p.ca_file);
    }
    if (v.contains("timeouts")) {
      const json& t = v["timeouts"];
      std::string tp = ptr + "/timeouts";
      if (!t.is_object()) {
        error(tp, ctx + ": \"timeouts\" must be an object {\"connect_ms\": ..., \"read_ms\": ...}");
      } else {
        checkKeys(t, tp, kTimeoutKeys, "timeout", ctx + ": ");
        if (t.contains("connect_ms"))
          number(t, tp, "connect_ms", 1, 600'000, ctx, &p.connect_timeout_ms);
        if (t.contains("read_ms")) number(t, tp, "read_ms", 1, 3'600'000, ctx, &p.read_timeout_ms);
      }
    }
    p.target.tls = p.url.scheme == "https";
    p.target.host = p.url.host;
    p.target.port = p.url.port;
    p.target.tls_options.extra_ca_file = p.ca_file;
    cfg_.providers.push_back(std::move(p));
  }

  void parseKey(const json& v, const std::string& ptr, const std::string& ctx, ProviderConfig& p) {
    if (!v.contains("key")) {
      if (!p.local) {
        error(ptr, ctx + " has no \"key\": add \"key\": \"env:NAME\" or \"file:PATH\"");
      }
      return;
    }
    std::string kp = ptr + "/key";
    if (!v["key"].is_string()) {
      error(kp, ctx + ": \"key\" must be a string, \"env:NAME\" or \"file:PATH\"");
      return;
    }
    // Never copy the written value into a message: it may be a pasted key.
    std::string ref = v["key"].get<std::string>();
    std::string why = checkSecretRef(ref);
    if (!why.empty()) {
      error(kp, ctx + ": \"key\" " + why);
      return;
    }
    p.key_ref = ref;
    if (!opts_.resolve_files) return;
    Result<Secret> secret = resolveSecret(ref, opts_.env, opts_.base_dir);
    if (!secret) {
      error(kp, ctx + ": " + secret.status().message());
      return;
    }
    p.key = std::move(secret.value());
  }

  void parseModels(const json& v, const std::string& ptr, const std::string& ctx,
                   ProviderConfig& p) {
    std::string mp = ptr + "/models";
    if (!v.contains("models")) {
      error(ptr, ctx +
                     " has no \"models\": list the model names or globs it serves, e.g. "
                     "[\"claude-*\"]");
      return;
    }
    const json& m = v["models"];
    if (!m.is_array() || m.empty()) {
      error(mp, ctx +
                    ": \"models\" must be a non-empty list of names or globs, e.g. "
                    "[\"gpt-*\", \"o3\"]");
      return;
    }
    for (size_t i = 0; i < m.size(); ++i) {
      const std::string* s = m[i].is_string() ? &m[i].get_ref<const std::string&>() : nullptr;
      bool ok = s && !s->empty() && std::none_of(s->begin(), s->end(), [](char c) {
                  return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
                });
      if (!ok) {
        error(JsonDoc::child(mp, i), ctx +
                                         ": model entries must be non-empty strings without "
                                         "spaces");
        continue;
      }
      p.models.push_back(*s);
    }
  }

  void parseHeaders(const json& h, const std::string& ptr, const std::string& ctx,
                    ProviderConfig& p) {
    if (!h.is_object()) {
      error(ptr, ctx + ": \"headers\" must be an object, e.g. {\"OpenAI-Project\": \"proj_1\"}");
      return;
    }
    for (const auto& [name, value] : h.items()) {
      std::string hp = JsonDoc::child(ptr, name);
      if (!validHeaderName(name)) {
        errorKey(hp, ctx + ": " + q(name) + " is not a valid header name");
      } else if (isCredentialHeader(name)) {
        errorKey(hp, ctx + ": header " + q(name) +
                         " carries a credential: put the key in "
                         "\"key\" (env:/file:), never in the config");
      } else if (isIdentityHeader(name) || isHopByHopHeader(name) ||
                 ::strcasecmp(name.c_str(), "host") == 0 ||
                 ::strcasecmp(name.c_str(), "content-length") == 0) {
        errorKey(hp, ctx + ": header " + q(name) + " is set by the gateway itself");
      } else if (!value.is_string() || !validHeaderValue(value.get_ref<const std::string&>())) {
        error(hp, ctx + ": header " + q(name) + " must be a string without control characters");
      } else {
        p.headers.emplace_back(name, value.get<std::string>());
      }
    }
  }

  void parseGrants(const json& root) {
    if (!root.contains("grants")) return;
    const json& grants = root["grants"];
    if (!grants.is_array()) {
      error("/grants",
            "\"grants\" must be a list, e.g. [{\"src\": [\"*\"], \"models\": "
            "[\"anthropic/*\"], \"role\": \"user\"}]");
      return;
    }
    for (size_t i = 0; i < grants.size(); ++i) {
      std::string ptr = JsonDoc::child("/grants", i);
      Grant g = parseGrantFields(grants[i], ptr, true, provider_ids_,
                                 [&](const std::string& p, std::string message, bool at_key) {
                                   at_key ? errorKey(p, std::move(message))
                                          : error(p, std::move(message));
                                 });
      control::SourcePos pos = doc_.valuePos(ptr);
      g.origin =
          opts_.file_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
      cfg_.grants.push_back(std::move(g));
    }
  }

  // Absent: the built-in rule set. Present: a rule set in proxy/tools/guardrail.h's format.
  void parseGuardrails(const json& root) {
    cfg_.guardrails = tools::Guardrails::builtin();
    if (!root.contains("guardrails")) return;
    const json& v = root["guardrails"];
    if (!v.is_object()) {
      error("/guardrails",
            "\"guardrails\" must be an object, e.g. {\"builtin\": true, \"rules\": []}");
      return;
    }
    auto g = tools::Guardrails::parse(v.dump());
    if (!g) {
      error("/guardrails", g.status().message());
      return;
    }
    cfg_.guardrails = g.value();
  }

  void parseLogging(const json& root) {
    LoggingConfig& l = cfg_.logging;
    l.database = resolvePath("gateway-logs.db");
    if (!root.contains("logging")) return;
    const json& v = root["logging"];
    const std::string ptr = "/logging";
    if (!v.is_object()) {
      error(ptr,
            "\"logging\" must be an object, e.g. {\"database\": \"logs.db\", "
            "\"retention_days\": 30}");
      return;
    }
    const std::string ctx = "logging";
    checkKeys(v, ptr, kLoggingKeys, "logging key");
    if (v.contains("database") && string(v, ptr, "database", ctx, &l.database)) {
      l.database = resolvePath(l.database);
      struct stat st {};
      std::string dir = dirOf(l.database);
      if (opts_.resolve_files && (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
        error(ptr + "/database", "logging: the directory " + dir +
                                     " of the database does not "
                                     "exist: create it or change the path");
      }
    }
    if (v.contains("retention_days"))
      number(v, ptr, "retention_days", 1, 3650, ctx, &l.retention_days);
    if (v.contains("bodies")) boolean(v, ptr, "bodies", ctx, &l.bodies);
    if (v.contains("queue_size")) number(v, ptr, "queue_size", 1, 1'000'000, ctx, &l.queue_size);
    if (v.contains("tool_calls")) boolean(v, ptr, "tool_calls", ctx, &l.tool_calls);
  }

  void parseQuotas(const json& root) {
    QuotaParseContext ctx;
    ctx.problem = [&](const std::string& p, std::string message, bool at_key) {
      at_key ? errorKey(p, std::move(message)) : error(p, std::move(message));
    };
    ctx.resolve_path = [&](const std::string& p) { return resolvePath(p); };
    ctx.origin = [&](const std::string& p) {
      control::SourcePos pos = doc_.valuePos(p);
      return opts_.file_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    };
    ctx.resolve_files = opts_.resolve_files;
    if (!root.contains("quotas")) {
      cfg_.quotas.store.database = resolvePath("gateway-quotas.db");
      return;
    }
    parseQuotaSection(root["quotas"], "/quotas", ctx, &cfg_.quotas);
  }

  void parseHooks(const json& root) {
    cfg_.hooks.outbox = dirOf(cfg_.logging.database) + "/gateway-outbox.db";
    if (!root.contains("hooks")) return;
    HooksParseContext ctx;
    ctx.problem = [&](const std::string& p, std::string message, bool at_key) {
      at_key ? errorKey(p, std::move(message)) : error(p, std::move(message));
    };
    ctx.resolve_path = [&](const std::string& p) { return resolvePath(p); };
    ctx.env = opts_.env;
    ctx.base_dir = opts_.base_dir;
    ctx.resolve_files = opts_.resolve_files;
    parseHooksSection(root["hooks"], "/hooks", ctx, &cfg_.hooks);
  }

  const JsonDoc& doc_;
  const LoadOptions& opts_;
  GatewayConfig cfg_;
  std::vector<std::string> provider_ids_;
  std::vector<Diagnostic> errors_;
};

}  // namespace

std::string_view providerKindName(ProviderKind kind) { return kKinds[static_cast<size_t>(kind)]; }

std::string_view roleName(Role role) {
  return role == Role::kAdmin ? "admin" : role == Role::kUser ? "user" : "none";
}

std::string UpstreamUrl::hostHeader() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  uint16_t default_port = scheme == "http" ? 80 : 443;
  if (port != default_port) h += ":" + std::to_string(port);
  return h;
}

bool ProviderConfig::serves(std::string_view model) const {
  return std::any_of(models.begin(), models.end(),
                     [&](const std::string& pattern) { return globMatch(pattern, model); });
}

const ProviderConfig* GatewayConfig::provider(std::string_view id) const {
  for (const ProviderConfig& p : providers) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::string GatewayConfig::redact(std::string_view text) const {
  std::string out(text);
  for (const ProviderConfig& p : providers) {
    std::string_view key = p.key.reveal();
    // Very short keys (test fixtures) would mangle ordinary text; real keys are long.
    if (key.size() < 4) continue;
    constexpr std::string_view kMark = "[redacted]";
    // Resume after the mark: a key may occur inside it ("dact").
    for (size_t at = out.find(key); at != std::string::npos;
         at = out.find(key, at + kMark.size())) {
      out.replace(at, key.size(), kMark);
    }
  }
  return out;
}

bool globMatch(std::string_view pattern, std::string_view text) {
  // Greedy match with one backtrack point: the last '*' seen absorbs one more character.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Result<GatewayConfig> parseGatewayConfig(std::string_view text, const LoadOptions& options) {
  control::Result<JsonDoc> doc = control::parseHuJson(text);
  if (!doc) {
    std::string message;
    for (const Diagnostic& d : doc.errors()) {
      message += (message.empty() ? "" : "\n") + d.format(options.file_name);
    }
    return Status(EINVAL, message);
  }
  return Loader(doc.value(), options).run();
}

Result<GatewayConfig> loadGatewayConfig(const std::string& path, LoadOptions options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(errno ? errno : ENOENT, path + ": cannot read the gateway config: " +
                                              std::strerror(errno ? errno : ENOENT));
  }
  std::ostringstream text;
  text << in.rdbuf();
  options.file_name = path;
  options.base_dir = dirOf(path);
  return parseGatewayConfig(text.str(), options);
}

}  // namespace gatehouse::proxy
