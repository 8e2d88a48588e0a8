// Where an upstream connection goes: scheme, host, port and the TLS trust to verify it with.
// The gateway's provider config holds a base URL ("https://api.anthropic.com",
// "http://127.0.0.1:11434/v1" for a local model server); parseUpstreamUrl turns it into an
// UpstreamTarget and the path prefix the router prepends.
//
// Plain http:// is accepted only for a provider the config marks local: a provider key must never
// cross a network in the clear, and "local" is the operator saying the hop stays on this machine
// or its private network.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/upstream/tls.h"
#include "wg/status.h"

namespace gatehouse::proxy {

struct UpstreamTarget {
  bool tls = true;   // https (false only for providers marked local)
  std::string host;  // DNS name or IP literal, without IPv6 brackets
  uint16_t port = 443;
  TlsOptions tls_options;  // ignored when !tls

  // "host:port" ("[::1]:8443" for IPv6), for logs and error messages.
  std::string authority() const;
  // Identity for pooling: two targets with equal keys may share connections.
  std::string poolKey() const;
  bool operator==(const UpstreamTarget&) const = default;
};

struct ParsedBaseUrl {
  UpstreamTarget target;
  std::string path_prefix;  // "" or "/v1" (no trailing slash); query and fragment are rejected
};

// Parses "https://host[:port][/path]" (and "http://…" when `local`). Errors name the URL and the
// fix, e.g. "base URL http://api.example.com uses plain http: only providers marked local may".
Result<ParsedBaseUrl> parseUpstreamUrl(std::string_view base_url, bool local,
                                       const TlsOptions& tls_options = {});

}  // namespace gatehouse::proxy
