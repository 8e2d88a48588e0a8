// Provider-shaped error responses: what the gateway sends when it answers a request itself
// (denied by a grant, unknown route or model, malformed body, quota, upstream failure).
//
// A client SDK only understands its own provider's error shape, so a denial to an Anthropic
// client is an Anthropic error body and a denial to an OpenAI client is an OpenAI one:
//
//   Anthropic: {"type":"error","error":{"type":"permission_error","message":"..."}}
//   OpenAI:    {"error":{"message":"...","type":"permission_error","param":null,"code":"..."}}
//
// The SDKs pick their exception class from the HTTP status, so the status is what matters most;
// the type strings follow each provider's documented set (table in errors.cc).
//
// Messages are written by the gateway from config names, identities and model names; they never
// carry a provider key (GatewayConfig::redact is the safety net for text that came from
// elsewhere, e.g. an upstream's error).
//
// Thread safety: pure functions over plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::proxy {

// Which provider API the client speaks, hence the shape of every error it is sent.
enum class ApiShape : uint8_t { kAnthropic, kOpenAI };

std::string_view apiShapeName(ApiShape shape);  // "anthropic" | "openai"

// The error classes the gateway can produce. Each has a default status (in parentheses).
enum class ErrorType : uint8_t {
  kInvalidRequest,   // 400, also 405 and 426
  kAuthentication,   // 401
  kPermission,       // 403: no grant
  kNotFound,         // 404: unknown route or model
  kRequestTooLarge,  // 413
  kRateLimit,        // 429: quota; carries Retry-After
  kApi,              // 500, 502, 504: the gateway or the upstream failed
  kOverloaded,       // 529
};

// The provider's name for `type` in `shape` ("permission_error", "server_error", ...).
std::string_view errorTypeName(ApiShape shape, ErrorType type);

// One error the gateway answers with. Build it with the named constructors.
struct GatewayError {
  int status = 500;
  ErrorType type = ErrorType::kApi;
  std::string message;
  // OpenAI's machine-readable `code` ("model_not_found"); empty = derived from the status.
  std::string code;
  std::optional<uint32_t> retry_after_s;  // 429: whole seconds until a retry can succeed
  std::string allow;                      // 405: the methods the path accepts ("POST")

  static GatewayError invalidRequest(std::string message);
  static GatewayError permission(std::string message);
  static GatewayError notFound(std::string message, std::string code = {});
  static GatewayError methodNotAllowed(std::string allow, std::string message);
  static GatewayError requestTooLarge(std::string message);
  // Codex falls back from WebSocket to HTTP+SSE at once on 426 (llm-wire-formats.md §4.4).
  static GatewayError upgradeRequired(std::string message);
  static GatewayError rateLimited(std::string message, uint32_t retry_after_s);
  static GatewayError internal(std::string message);
  static GatewayError badGateway(std::string message);      // 502
  static GatewayError gatewayTimeout(std::string message);  // 504
  static GatewayError overloaded(std::string message);      // 529
};

// The JSON error body in the client's shape. `code` is OpenAI's `code` (ignored for Anthropic);
// empty means one derived from `status`.
std::string errorBody(ApiShape shape, int status, ErrorType type, std::string_view message,
                      std::string_view code = {});
std::string errorBody(ApiShape shape, const GatewayError& error);

// A complete response for the HTTP layer to serialize.
struct ErrorResponse {
  int status = 500;
  std::string_view reason;  // "Forbidden"; static storage
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // Retry-After, Allow, Connection
  std::string body;
};
ErrorResponse errorResponse(ApiShape shape, const GatewayError& error);

// Reason phrase for the statuses the gateway sends ("Bad Gateway"); "Error" for others.
std::string_view statusReason(int status);

}  // namespace gatehouse::proxy
