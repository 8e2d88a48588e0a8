// The gateway config's "hooks" section (CONFIG.md "Hooks"): the pre_request hook the gateway
// asks before forwarding a model call, and the webhooks it posts events to from a durable outbox
// (proxy/hooks/HOOKS.md is the wire format of both). Called by the config loader; every problem
// is reported through `problem` at a JSON pointer, and parsing goes on to find the next one.
//
// Thread safety: plain values and a pure function over its arguments (resolving a webhook secret
// reads the environment or one file, at load time only).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/config/secrets.h"
#include "proxy/upstream/target.h"

namespace gatehouse::proxy {

// Where a hook or webhook request goes: http:// (loopback or a mesh address) or https:// (the
// upstream TLS client, system roots).
struct HookEndpoint {
  std::string url;         // as written
  UpstreamTarget target;   // scheme, host, port
  std::string path = "/";  // request target
  std::string host;        // Host header value
};

struct PreRequestHookConfig {
  HookEndpoint endpoint;
  uint32_t timeout_ms = 5000;  // connect + request + answer, end to end
  bool full_body = false;      // "body": "full" sends the request body, "summary" a summary
  bool fail_open = false;      // "failure": "fail_open" forwards when the hook fails
  std::vector<std::pair<std::string, std::string>> headers;  // added to every hook request
};

// The event kinds a webhook may subscribe to.
inline const std::vector<std::string>& webhookEventKinds() {
  static const std::vector<std::string> kinds = {"request_complete", "tool_call", "guardrail_block",
                                                 "quota"};
  return kinds;
}

struct WebhookConfig {
  HookEndpoint endpoint;
  std::string secret_ref;  // "env:NAME" / "file:PATH": safe to print
  Secret secret;           // the signing key; empty when the config was only syntax-checked
  std::vector<std::string> events;
  uint32_t timeout_ms = 10'000;  // per delivery attempt

  bool wants(std::string_view kind) const {
    for (const std::string& e : events) {
      if (e == kind) return true;
    }
    return false;
  }
};

struct HooksConfig {
  std::optional<PreRequestHookConfig> pre_request;
  std::vector<WebhookConfig> webhooks;
  std::string outbox;          // SQLite file of pending webhook events (absolute)
  uint32_t max_attempts = 12;  // per event and webhook, then given up (kept, marked dead)
  uint32_t max_backoff_ms = 300'000;
  uint32_t queue_size = 10'000;  // events waiting for the outbox thread before new ones drop
};

struct HooksParseContext {
  // A problem at a JSON pointer (at_key: point at the key rather than the value).
  std::function<void(const std::string& pointer, std::string message, bool at_key)> problem;
  std::function<std::string(const std::string&)> resolve_path;  // relative → absolute
  EnvLookup env;
  std::string base_dir;
  bool resolve_files = true;
};

// `value` is the "hooks" member at `ptr`. out->outbox is set by the caller when absent.
void parseHooksSection(const nlohmann::json& value, const std::string& ptr,
                       const HooksParseContext& ctx, HooksConfig* out);

}  // namespace gatehouse::proxy
