// The "hooks" section of the gateway config. See hooks_config.h and CONFIG.md "Hooks".
#include "proxy/config/hooks_config.h"

#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/hujson.h"
#include "control/policy.h"
#include "proxy/config/credentials.h"
#include "proxy/config/section_checks.h"

namespace gatehouse::proxy {
namespace {

using control::JsonDoc;
using nlohmann::json;

const std::vector<std::string> kHooksKeys = {"pre_request",  "webhooks",       "outbox",
                                             "max_attempts", "max_backoff_ms", "queue_size"};
const std::vector<std::string> kPreRequestKeys = {"url",     "timeout_ms", "body",
                                                  "failure", "headers",    "ca_file"};
const std::vector<std::string> kWebhookKeys = {"url", "secret", "events", "timeout_ms", "ca_file"};

class HooksLoader : SectionChecks {
 public:
  HooksLoader(const HooksParseContext& ctx, HooksConfig* out)
      : SectionChecks(ctx.problem, "hooks: "), ctx_(ctx), out_(out) {}

  void run(const json& v, const std::string& ptr) {
    if (!v.is_object()) {
      error(ptr,
            "\"hooks\" must be an object, e.g. {\"pre_request\": {\"url\": "
            "\"http://127.0.0.1:9000/check\"}, \"webhooks\": [...]}");
      return;
    }
    checkKeys(v, ptr, kHooksKeys, "hooks key");
    if (v.contains("pre_request")) parsePreRequest(v["pre_request"], ptr + "/pre_request");
    if (v.contains("webhooks")) parseWebhooks(v["webhooks"], ptr + "/webhooks");
    if (v.contains("outbox")) {
      std::string path;
      if (string(v, ptr, "outbox", &path)) out_->outbox = ctx_.resolve_path(path);
    }
    if (v.contains("max_attempts")) number(v, ptr, "max_attempts", 1, 1000, &out_->max_attempts);
    if (v.contains("max_backoff_ms")) {
      number(v, ptr, "max_backoff_ms", 1000, 86'400'000, &out_->max_backoff_ms);
    }
    if (v.contains("queue_size")) number(v, ptr, "queue_size", 1, 1'000'000, &out_->queue_size);
  }

 private:
  // One of `choices`; the index, or -1 after reporting.
  int choice(const json& obj, const std::string& ptr, const char* key,
             const std::vector<std::string>& choices) {
    std::string s;
    if (!string(obj, ptr, key, &s)) return -1;
    auto it = std::find(choices.begin(), choices.end(), s);
    if (it != choices.end()) return static_cast<int>(it - choices.begin());
    error(JsonDoc::child(ptr, key), quoted(key) + " must be one of " + joined(choices));
    return -1;
  }

  bool endpoint(const json& obj, const std::string& ptr, const std::string& what,
                HookEndpoint* out) {
    if (!obj.contains("url")) {
      error(ptr, what + " has no \"url\": add e.g. \"url\": \"http://127.0.0.1:9000/hook\"", true);
      return false;
    }
    if (!string(obj, ptr, "url", &out->url)) return false;
    // Hooks may be plain http: they run on loopback or over the WireGuard mesh.
    auto parsed = parseUpstreamUrl(out->url, /*local=*/true);
    if (!parsed) {
      std::string why = parsed.status().message();
      if (why.rfind("base URL ", 0) == 0) why.erase(0, 9);
      error(ptr + "/url", what + ": url " + why);
      return false;
    }
    out->target = parsed->target;
    // An extra CA for an https endpoint on a private PKI (a mesh service's own CA).
    std::string ca;
    if (obj.contains("ca_file") && string(obj, ptr, "ca_file", &ca)) {
      ca = ctx_.resolve_path(ca);
      if (ctx_.resolve_files && ::access(ca.c_str(), R_OK) != 0) {
        error(ptr + "/ca_file", what + ": cannot read ca_file " + ca + ": " + std::strerror(errno));
      }
      out->target.tls_options.extra_ca_file = ca;
    }
    out->path = parsed->path_prefix.empty() ? "/" : parsed->path_prefix;
    uint16_t default_port = out->target.tls ? 443 : 80;
    const std::string& h = out->target.host;
    out->host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
    if (out->target.port != default_port) out->host += ":" + std::to_string(out->target.port);
    return true;
  }

  void parsePreRequest(const json& v, const std::string& ptr) {
    if (!v.is_object()) {
      error(ptr,
            "\"pre_request\" must be an object, e.g. {\"url\": \"http://127.0.0.1:9000/check\", "
            "\"failure\": \"fail_closed\"}");
      return;
    }
    checkKeys(v, ptr, kPreRequestKeys, "pre_request key");
    PreRequestHookConfig h;
    bool ok = endpoint(v, ptr, "pre_request", &h.endpoint);
    if (v.contains("timeout_ms")) number(v, ptr, "timeout_ms", 1, 600'000, &h.timeout_ms);
    if (v.contains("body")) h.full_body = choice(v, ptr, "body", {"summary", "full"}) == 1;
    if (v.contains("failure")) {
      h.fail_open = choice(v, ptr, "failure", {"fail_closed", "fail_open"}) == 1;
    }
    if (v.contains("headers")) parseHeaders(v["headers"], ptr + "/headers", &h);
    if (ok) out_->pre_request = std::move(h);
  }

  void parseHeaders(const json& h, const std::string& ptr, PreRequestHookConfig* out) {
    if (!h.is_object()) {
      error(ptr, "pre_request: \"headers\" must be an object, e.g. {\"X-Hook-Token\": \"...\"}");
      return;
    }
    for (const auto& [name, value] : h.items()) {
      std::string hp = JsonDoc::child(ptr, name);
      if (!validHeaderName(name)) {
        error(hp, "pre_request: " + quoted(name) + " is not a valid header name", true);
      } else if (isHopByHopHeader(name) || ::strcasecmp(name.c_str(), "host") == 0 ||
                 ::strcasecmp(name.c_str(), "content-length") == 0 ||
                 ::strcasecmp(name.c_str(), "content-type") == 0) {
        error(hp, "pre_request: header " + quoted(name) + " is set by the gateway itself", true);
      } else if (!value.is_string() || !validHeaderValue(value.get_ref<const std::string&>())) {
        error(hp, "pre_request: header " + quoted(name) +
                      " must be a string without control characters");
      } else {
        out->headers.emplace_back(name, value.get<std::string>());
      }
    }
  }

  void parseWebhooks(const json& v, const std::string& ptr) {
    if (!v.is_array()) {
      error(ptr,
            "\"webhooks\" must be a list, e.g. [{\"url\": \"http://127.0.0.1:9001/events\", "
            "\"secret\": \"env:WEBHOOK_SECRET\", \"events\": [\"request_complete\"]}]");
      return;
    }
    for (size_t i = 0; i < v.size(); ++i) parseWebhook(v[i], JsonDoc::child(ptr, i));
  }

  void parseWebhook(const json& v, const std::string& ptr) {
    if (!v.is_object()) {
      error(ptr, "a webhook must be an object {\"url\", \"secret\", \"events\"}");
      return;
    }
    checkKeys(v, ptr, kWebhookKeys, "webhook key");
    WebhookConfig w;
    bool ok = endpoint(v, ptr, "webhook", &w.endpoint);
    ok = parseSecret(v, ptr, &w) && ok;
    if (v.contains("timeout_ms")) number(v, ptr, "timeout_ms", 1, 600'000, &w.timeout_ms);
    const std::vector<std::string>& kinds = webhookEventKinds();
    const json* events = v.contains("events") ? &v["events"] : nullptr;
    if (events == nullptr || !events->is_array() || events->empty()) {
      error(events ? JsonDoc::child(ptr, "events") : ptr,
            "webhook: \"events\" must be a non-empty list of " + joined(kinds), events == nullptr);
      ok = false;
    } else {
      for (size_t i = 0; i < events->size(); ++i) {
        const json& e = (*events)[i];
        bool known = e.is_string() &&
                     std::find(kinds.begin(), kinds.end(), e.get<std::string>()) != kinds.end();
        if (!known) {
          std::string best = e.is_string() ? control::closestName(e.get<std::string>(), kinds) : "";
          error(JsonDoc::child(JsonDoc::child(ptr, "events"), i),
                "webhook: unknown event " +
                    (e.is_string() ? quoted(e.get<std::string>()) : e.dump()) +
                    (best.empty() ? "" : " (did you mean " + quoted(best) + "?)") +
                    "; expected one of " + joined(kinds));
          ok = false;
        } else if (!w.wants(e.get<std::string>())) {
          w.events.push_back(e.get<std::string>());
        }
      }
    }
    if (ok) out_->webhooks.push_back(std::move(w));
  }

  bool parseSecret(const json& v, const std::string& ptr, WebhookConfig* w) {
    if (!v.contains("secret")) {
      error(ptr, "webhook has no \"secret\": add \"secret\": \"env:NAME\" or \"file:PATH\"", true);
      return false;
    }
    std::string sp = ptr + "/secret";
    if (!v["secret"].is_string()) {
      error(sp, "webhook: \"secret\" must be a string, \"env:NAME\" or \"file:PATH\"");
      return false;
    }
    // Never copy the written value into a message: it may be a pasted secret.
    std::string ref = v["secret"].get<std::string>();
    std::string why = checkSecretRef(ref);
    if (!why.empty()) {
      error(sp, "webhook: \"secret\" " + why);
      return false;
    }
    w->secret_ref = ref;
    if (!ctx_.resolve_files) return true;
    Result<Secret> secret = resolveSecret(ref, ctx_.env, ctx_.base_dir);
    if (!secret) {
      error(sp, "webhook: " + secret.status().message());
      return false;
    }
    w->secret = std::move(secret.value());
    return true;
  }

  const HooksParseContext& ctx_;
  HooksConfig* out_;
};

}  // namespace

void parseHooksSection(const json& value, const std::string& ptr, const HooksParseContext& ctx,
                       HooksConfig* out) {
  HooksLoader(ctx, out).run(value, ptr);
}

}  // namespace gatehouse::proxy
