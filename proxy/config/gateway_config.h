// The gateway's configuration file (proxy/config/CONFIG.md is the spec): providers with their
// keys, grants, listeners, logging and prices, parsed from HuJSON and validated at load.
//
// parseGatewayConfig turns text into a validated GatewayConfig or an error whose message holds
// one line per problem, "FILE:LINE:COLUMN: what is wrong; the fix". Every problem in the file is
// reported at once. Loading resolves provider keys (env:/file:) and checks that the files the
// config names exist, so a config that loads is a config that can serve; nothing is left to fail
// on the first request.
//
// A GatewayConfig is an immutable value once loaded; share it across threads freely (reload =
// load a new one and swap a shared_ptr). Its keys are Secrets (secrets.h) and never print.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/hujson.h"
#include "proxy/config/hooks_config.h"
#include "proxy/config/secrets.h"
#include "proxy/quota/ledger.h"
#include "proxy/upstream/target.h"
#include "wg/node.h"
#include "wg/status.h"

namespace gatehouse::proxy::tools {
class Guardrails;
}  // namespace gatehouse::proxy::tools

namespace gatehouse::proxy {

// Gateway config format version described by CONFIG.md.
inline constexpr int kGatewayConfigVersion = 1;

enum class ProviderKind : uint8_t {
  kAnthropic,         // Anthropic Messages API; key sent as x-api-key
  kOpenAI,            // OpenAI Chat Completions and Responses; key sent as a Bearer token
  kOpenAICompatible,  // any server speaking the OpenAI API (vLLM, Ollama, OpenRouter, ...)
};
std::string_view providerKindName(ProviderKind kind);  // "anthropic", "openai", ...

// A base_url split into parts. The client's request path (/v1/...) is appended to `path`.
struct UpstreamUrl {
  std::string scheme;  // "https" or "http"
  std::string host;    // "api.anthropic.com", "127.0.0.1", "::1" (no brackets)
  uint16_t port = 0;   // explicit or the scheme's default
  std::string path;    // "" or "/api" (no trailing slash)
  // The request target to send upstream: path + client_target ("/v1/messages?beta=true").
  std::string target(std::string_view client_target) const {
    return path + std::string(client_target);
  }
  // "host" or "host:port" when the port is not the scheme's default ("[::1]:8080" for IPv6).
  std::string hostHeader() const;
};

struct ProviderConfig {
  std::string id;  // the key in "providers": lower-case letters, digits, - and _
  ProviderKind kind = ProviderKind::kAnthropic;
  std::string base_url;  // as written, minus a trailing slash
  UpstreamUrl url;
  bool local = false;   // allows http:// and a missing key (a model server on this host)
  std::string key_ref;  // "env:NAME" / "file:PATH" as written: safe to print
  Secret key;           // empty only for a local provider without "key"
  std::vector<std::string> models;  // names or globs ("claude-*"), matched in order
  std::vector<std::pair<std::string, std::string>> headers;  // set on every upstream request
  std::string ca_file;    // extra trusted CA (PEM), absolute; "" = system roots only
  UpstreamTarget target;  // where the pool connects: url's scheme/host/port and the CA files
  uint32_t connect_timeout_ms = 10'000;
  uint32_t read_timeout_ms = 600'000;  // longest silence between bytes from the upstream
  control::SourcePos pos;

  // Whether `model` (the body's "model" field, verbatim) matches one of `models`.
  bool serves(std::string_view model) const;
};

enum class Role : uint8_t { kNone, kUser, kAdmin };
std::string_view roleName(Role role);  // "none", "user", "admin"

// One grant: who (src), which models (provider/model globs) and which role. Grants only allow;
// a caller's access is the union of every grant that names it.
struct Grant {
  std::vector<std::string> src;     // "*", login, "group:x", "tag:x", "autogroup:member|tagged";
                                    // empty for grants that arrive as a capability
  std::vector<std::string> models;  // "anthropic/claude-*", "openai/*", "*"
  Role role = Role::kUser;
  std::string origin;  // "gateway.hujson:14:5" or "capability gatehouse.dev/cap/ai"
};

struct LoggingConfig {
  std::string database;  // absolute path of the SQLite log database
  uint32_t retention_days = 30;
  bool bodies = true;            // store request and response bodies (zstd), not just metadata
  uint32_t queue_size = 10'000;  // records waiting for the writer before new ones are dropped
  bool tool_calls = true;        // extract tool calls from responses and results from requests
};

struct GatewayConfig {
  std::string file;  // where it was loaded from, for messages
  std::string hostname = "ai";
  uint16_t listen = 80;
  // Extra plain-TCP listener on this host ("127.0.0.1:PORT", "[::1]:PORT"; port 0 = any free).
  std::optional<wg::Endpoint> loopback_listen;
  // Identity assumed for every loopback connection (operator/test option; set iff loopback_listen).
  std::optional<wg::Identity> loopback_identity;
  std::vector<ProviderConfig> providers;  // in file order: the first match wins in routing
  std::vector<Grant> grants;
  LoggingConfig logging;
  std::string prices;  // absolute path of a price override file, "" = built-in table
  QuotaConfig quotas;  // "quotas": buckets, rules, store (off when it has no rules)
  // Guardrail rules (proxy/tools/guardrail.h): the built-in set unless "guardrails" says
  // otherwise. Enforced in streamed Anthropic responses; matches are recorded on tool calls.
  std::shared_ptr<const tools::Guardrails> guardrails;
  // "hooks": the pre_request hook and the webhooks (CONFIG.md "Hooks").
  HooksConfig hooks;

  const ProviderConfig* provider(std::string_view id) const;
  // `text` with every provider key replaced by "[redacted]": a last guard for text the gateway
  // did not write itself (an upstream error body, an exception message) before it is logged.
  std::string redact(std::string_view text) const;
};

struct LoadOptions {
  std::string file_name = "gateway.hujson";  // how messages name the file
  std::string base_dir;  // relative paths resolve here ("" = the working directory)
  EnvLookup env;         // null = the process environment
  // false: check the syntax only; keys stay empty and named files are not opened (for the
  // fuzzer and for linting a config away from the gateway host).
  bool resolve_files = true;
};

// Parses and validates. On failure the Status (EINVAL) message holds one line per problem,
// sorted by position: "gateway.hujson:12:5: provider \"x\": unknown kind ...".
Result<GatewayConfig> parseGatewayConfig(std::string_view text, const LoadOptions& options = {});

// Reads `path` and parses it with file_name = path and base_dir = its directory (the other
// option fields are kept).
Result<GatewayConfig> loadGatewayConfig(const std::string& path, LoadOptions options = {});

// Glob match for model names: '*' matches any run of characters (including none and '/'),
// everything else matches itself. "claude-*" matches "claude-sonnet-4-5".
bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace gatehouse::proxy
