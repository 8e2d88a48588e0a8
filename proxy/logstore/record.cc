#include "proxy/logstore/record.h"

#include <array>
#include <nlohmann/json.hpp>

#include "proxy/logstore/log_db.h"

namespace gatehouse::proxy {
namespace {

using logstore::base64Encode;
using logstore::isValidUtf8;
using logstore::toValidUtf8;

char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// x-amz-security-token is Bedrock's session credential (SigV4 puts the signature in
// authorization); the rest are the header names providers and browsers use for secrets.
constexpr std::array<std::string_view, 8> kCredentialHeaders = {
    "authorization", "x-api-key", "proxy-authorization", "cookie",
    "set-cookie",    "api-key",   "x-goog-api-key",      "x-amz-security-token",
};

nlohmann::json optionalInt(const std::optional<int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json headersToJson(const std::vector<RecordHeader>& headers) {
  auto out = nlohmann::json::array();
  for (const auto& h : headers) out.push_back({toValidUtf8(h.name), toValidUtf8(h.value)});
  return out;
}

void putBody(nlohmann::json& j, const char* key, const std::optional<std::string>& body) {
  if (!body) {
    j[key] = nullptr;
  } else if (isValidUtf8(*body)) {
    j[key] = *body;
  } else {
    j[std::string(key) + "_base64"] = base64Encode(*body);
  }
}

nlohmann::json tokensToJson(const RecordTokens& t) {
  return {{"input", optionalInt(t.input)},
          {"output", optionalInt(t.output)},
          {"cache_read", optionalInt(t.cache_read)},
          {"cache_write_5m", optionalInt(t.cache_write_5m)},
          {"cache_write_1h", optionalInt(t.cache_write_1h)},
          {"reasoning", optionalInt(t.reasoning)}};
}

}  // namespace

bool isRedactedHeader(std::string_view name) {
  for (auto candidate : kCredentialHeaders) {
    if (equalsIgnoreCase(name, candidate)) return true;
  }
  return false;
}

void redactHeaders(std::vector<RecordHeader>& headers) {
  for (auto& h : headers) {
    if (isRedactedHeader(h.name)) h.value = kRedacted;
  }
}

nlohmann::json toJson(const RequestRecord& r, bool detail) {
  const auto& who = r.identity;
  auto texts = [](const std::vector<std::string>& v) {
    std::vector<std::string> out;
    for (const auto& s : v) out.push_back(toValidUtf8(s));
    return out;
  };
  nlohmann::json j = {
      {"id", toValidUtf8(r.id)},
      {"start_ms", r.start_ms},
      {"identity",
       {{"node_id", toValidUtf8(who.node_id)},
        {"node_name", toValidUtf8(who.node_name)},
        {"user_login", toValidUtf8(who.user_login)},
        {"user_display_name", toValidUtf8(who.user_display_name)},
        {"groups", texts(who.groups)},
        {"tags", texts(who.tags)}}},
      {"session_id", toValidUtf8(r.session_id)},
      {"user_agent", toValidUtf8(r.user_agent)},
      {"provider", toValidUtf8(r.provider)},
      {"api_kind", toValidUtf8(r.api_kind)},
      {"model", toValidUtf8(r.model)},
      {"method", toValidUtf8(r.method)},
      {"path", toValidUtf8(r.path)},
      {"status", r.status},
      {"error", toValidUtf8(r.error)},
      {"hook", toValidUtf8(r.hook)},
      {"latency_ms", r.latency_ms},
      {"ttfb_ms", optionalInt(r.ttfb_ms)},
      {"streamed", r.streamed},
      {"partial", r.partial},
      {"tokens", tokensToJson(r.tokens)},
      {"cost_nanodollars", optionalInt(r.cost_nanodollars)},
      {"bodies_dropped", r.bodies_dropped},
  };
  if (detail) {
    j["request_headers"] = headersToJson(r.request_headers);
    j["response_headers"] = headersToJson(r.response_headers);
    putBody(j, "request_body", r.request_body);
    putBody(j, "response_body", r.response_body);
  }
  return j;
}

}  // namespace gatehouse::proxy
