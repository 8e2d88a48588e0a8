// Inbound header stripping and upstream credential injection. See credentials.h.
#include "proxy/config/credentials.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <string>

#include "proxy/http/headers.h"

namespace gatehouse::proxy {
namespace {

bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && headerNameEquals(s.substr(0, prefix.size()), prefix);
}

template <size_t N>
bool inList(std::string_view name, const std::array<std::string_view, N>& list) {
  return std::any_of(list.begin(), list.end(),
                     [&](std::string_view s) { return headerNameEquals(s, name); });
}

constexpr std::array<std::string_view, 5> kCredentialHeaders = {
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"};
constexpr std::array<std::string_view, 3> kIdentityPrefixes = {"x-gatehouse-", "tailscale-",
                                                               "x-tailscale-"};
constexpr std::array<std::string_view, 3> kIdentityHeaders = {"x-forwarded-user",
                                                              "x-forwarded-email", "x-remote-user"};
constexpr std::array<std::string_view, 8> kHopByHop = {
    "connection", "keep-alive", "proxy-connection",  "te",
    "trailer",    "upgrade",    "transfer-encoding", "proxy-authenticate"};

}  // namespace

bool headerNameEquals(std::string_view a, std::string_view b) {
  return http::equalsIgnoreCase(a, b);
}

bool isCredentialHeader(std::string_view name) {
  // SigV4 signs with x-amz-date, x-amz-security-token, x-amz-content-sha256: all client-side.
  return inList(name, kCredentialHeaders) || istartsWith(name, "x-amz-");
}

bool isIdentityHeader(std::string_view name) {
  return inList(name, kIdentityHeaders) ||
         std::any_of(kIdentityPrefixes.begin(), kIdentityPrefixes.end(),
                     [&](std::string_view p) { return istartsWith(name, p); });
}

bool isHopByHopHeader(std::string_view name) { return inList(name, kHopByHop); }

bool validHeaderName(std::string_view name) { return http::isValidHeaderName(name); }

std::string_view credentialHeaderName(ProviderKind kind) {
  return kind == ProviderKind::kAnthropic ? "x-api-key" : "authorization";
}

std::optional<UpstreamCredential> upstreamCredential(const ProviderConfig& provider) {
  if (provider.key.empty()) return std::nullopt;
  UpstreamCredential c;
  c.name = credentialHeaderName(provider.kind);
  if (provider.kind == ProviderKind::kAnthropic) {
    c.value = provider.key;
    return c;
  }
  std::string bearer = "Bearer ";
  bearer += provider.key.reveal();
  c.value = Secret(bearer);
  sodium_memzero(bearer.data(), bearer.size());
  return c;
}

}  // namespace gatehouse::proxy
