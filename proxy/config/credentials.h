// Which request headers the gateway removes, and the credential it adds, on the way upstream.
//
// The agent holds a placeholder key ("-"); the gateway knows the caller from the WireGuard peer.
// So before forwarding, the gateway strips
//   - every client credential header (isCredentialHeader): Authorization, Proxy-Authorization,
//     x-api-key, api-key (Azure), x-goog-api-key, and x-amz-* (SigV4): whatever the client sent
//     there never reaches a provider or a log;
//   - every identity header (isIdentityHeader): names starting with "x-gatehouse-",
//     "tailscale-" or "x-tailscale-", plus x-forwarded-user / x-forwarded-email / x-remote-user.
//     Identity is never taken from a header (DESIGN.md "Identity"); stripping them also keeps a
//     client from impersonating someone to a hook or an upstream that trusts such headers;
// and injects the provider's key in the header its API expects (upstreamCredential):
//   anthropic          → x-api-key: KEY
//   openai, compatible → Authorization: Bearer KEY
// Hop-by-hop headers are the HTTP layer's business; isHopByHopHeader is here so the config
// loader can refuse them in a provider's "headers".
//
// Header names are compared case-insensitively. Pure functions; any thread.
#pragma once

#include <optional>
#include <string_view>

#include "proxy/config/gateway_config.h"
#include "proxy/config/secrets.h"

namespace gatehouse::proxy {

// The prefix of the gateway's own headers (stripped inbound; free for the gateway to set on
// responses, e.g. a request id).
inline constexpr std::string_view kGatewayHeaderPrefix = "x-gatehouse-";

// ASCII case-insensitive equality, the rule for header names.
bool headerNameEquals(std::string_view a, std::string_view b);

bool isCredentialHeader(std::string_view name);
bool isIdentityHeader(std::string_view name);
// Strip from a client request before anything else looks at it.
inline bool isStrippedInbound(std::string_view name) {
  return isCredentialHeader(name) || isIdentityHeader(name);
}
// RFC 9110 §7.6.1 connection-specific headers, plus Keep-Alive and Proxy-Connection.
bool isHopByHopHeader(std::string_view name);
// RFC 9110 token: the characters a header name may hold.
bool validHeaderName(std::string_view name);

// "x-api-key" for Anthropic, "authorization" for the OpenAI kinds.
std::string_view credentialHeaderName(ProviderKind kind);

// The header to add upstream. The value is a Secret ("KEY" or "Bearer KEY"); nullopt when the
// provider has no key (a local provider without "key").
struct UpstreamCredential {
  std::string_view name;
  Secret value;
};
std::optional<UpstreamCredential> upstreamCredential(const ProviderConfig& provider);

}  // namespace gatehouse::proxy
