#include "proxy/upstream/target.h"

#include <cctype>
#include <cerrno>
#include <charconv>

namespace gatehouse::proxy {
namespace {

Status badUrl(std::string_view url, const std::string& why) {
  return {EINVAL, "base URL " + std::string(url) + " " + why};
}

}  // namespace

std::string UpstreamTarget::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string UpstreamTarget::poolKey() const {
  std::string key = (tls ? "https://" : "http://") + authority();
  // The trust configuration is part of the identity: a connection verified against one CA set
  // must not serve a provider configured with another.
  if (tls) key += "|ca=" + tls_options.ca_bundle_file + "|extra=" + tls_options.extra_ca_file;
  return key;
}

Result<ParsedBaseUrl> parseUpstreamUrl(std::string_view url, bool local,
                                       const TlsOptions& tls_options) {
  ParsedBaseUrl out;
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    if (!local) {
      return badUrl(url,
                    "uses plain http: only providers marked local may; use https:// or mark the "
                    "provider local");
    }
    out.target.tls = false;
    rest = url.substr(7);
  } else {
    return badUrl(url, "must start with https:// (or http:// for a provider marked local)");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return badUrl(url, "must not carry a query or fragment");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos) {
    return badUrl(url, "must not contain credentials; put keys in the provider's key setting");
  }

  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return badUrl(url, "has an unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return badUrl(url, "has junk after the IPv6 literal");
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return badUrl(url, "has no host");

  out.target.port = out.target.tls ? 443 : 80;
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return badUrl(url, "has an invalid port '" + std::string(port) + "'");
    }
    out.target.port = static_cast<uint16_t>(value);
  }
  out.target.host = std::string(host);
  // DNS names compare case-insensitively; one spelling keeps one pool and one verified name.
  for (char& c : out.target.host)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out.target.tls) out.target.tls_options = tls_options;
  out.path_prefix = std::string(path);
  return out;
}

}  // namespace gatehouse::proxy
