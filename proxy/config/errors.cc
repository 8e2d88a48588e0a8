// Provider-shaped error bodies. See errors.h.
//
// Type strings: Anthropic's are its documented set (invalid_request_error, authentication_error,
// permission_error, not_found_error, request_too_large, rate_limit_error, api_error,
// overloaded_error). OpenAI's follow what api.openai.com sends: most client errors are
// invalid_request_error told apart by `code` (invalid_api_key, model_not_found), server-side
// failures are server_error.
#include "proxy/config/errors.h"

#include <nlohmann/json.hpp>

namespace gatehouse::proxy {
namespace {

int defaultStatus(ErrorType type) {
  switch (type) {
    case ErrorType::kInvalidRequest:
      return 400;
    case ErrorType::kAuthentication:
      return 401;
    case ErrorType::kPermission:
      return 403;
    case ErrorType::kNotFound:
      return 404;
    case ErrorType::kRequestTooLarge:
      return 413;
    case ErrorType::kRateLimit:
      return 429;
    case ErrorType::kApi:
      return 500;
    case ErrorType::kOverloaded:
      return 529;
  }
  return 500;
}

std::string_view codeForStatus(int status) {
  switch (status) {
    case 400:
      return "invalid_request";
    case 401:
      return "invalid_api_key";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "request_too_large";
    case 426:
      return "upgrade_required";
    case 429:
      return "rate_limit_exceeded";
    case 500:
      return "internal_error";
    case 502:
      return "bad_gateway";
    case 503:
      return "service_unavailable";
    case 504:
      return "gateway_timeout";
    case 529:
      return "overloaded";
    default:
      return "error";
  }
}

GatewayError make(ErrorType type, int status, std::string message) {
  GatewayError e;
  e.type = type;
  e.status = status;
  e.message = std::move(message);
  return e;
}

// Model names and paths come from the client and may hold invalid UTF-8; the body must still be
// valid JSON, so bad bytes become U+FFFD instead of throwing.
std::string dumpJson(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

std::string_view apiShapeName(ApiShape shape) {
  return shape == ApiShape::kAnthropic ? "anthropic" : "openai";
}

std::string_view errorTypeName(ApiShape shape, ErrorType type) {
  bool a = shape == ApiShape::kAnthropic;
  switch (type) {
    case ErrorType::kInvalidRequest:
      return "invalid_request_error";
    case ErrorType::kAuthentication:
      return a ? "authentication_error" : "invalid_request_error";
    case ErrorType::kPermission:
      return "permission_error";
    case ErrorType::kNotFound:
      return a ? "not_found_error" : "invalid_request_error";
    case ErrorType::kRequestTooLarge:
      return a ? "request_too_large" : "invalid_request_error";
    case ErrorType::kRateLimit:
      return a ? "rate_limit_error" : "rate_limit_exceeded";
    case ErrorType::kApi:
      return a ? "api_error" : "server_error";
    case ErrorType::kOverloaded:
      return a ? "overloaded_error" : "server_error";
  }
  return a ? "api_error" : "server_error";
}

GatewayError GatewayError::invalidRequest(std::string message) {
  return make(ErrorType::kInvalidRequest, 400, std::move(message));
}
GatewayError GatewayError::permission(std::string message) {
  return make(ErrorType::kPermission, 403, std::move(message));
}
GatewayError GatewayError::notFound(std::string message, std::string code) {
  GatewayError e = make(ErrorType::kNotFound, 404, std::move(message));
  e.code = std::move(code);
  return e;
}
GatewayError GatewayError::methodNotAllowed(std::string allow, std::string message) {
  GatewayError e = make(ErrorType::kInvalidRequest, 405, std::move(message));
  e.allow = std::move(allow);
  return e;
}
GatewayError GatewayError::requestTooLarge(std::string message) {
  return make(ErrorType::kRequestTooLarge, 413, std::move(message));
}
GatewayError GatewayError::upgradeRequired(std::string message) {
  return make(ErrorType::kInvalidRequest, 426, std::move(message));
}
GatewayError GatewayError::rateLimited(std::string message, uint32_t retry_after_s) {
  GatewayError e = make(ErrorType::kRateLimit, 429, std::move(message));
  e.retry_after_s = retry_after_s;
  return e;
}
GatewayError GatewayError::internal(std::string message) {
  return make(ErrorType::kApi, 500, std::move(message));
}
GatewayError GatewayError::badGateway(std::string message) {
  return make(ErrorType::kApi, 502, std::move(message));
}
GatewayError GatewayError::gatewayTimeout(std::string message) {
  return make(ErrorType::kApi, 504, std::move(message));
}
GatewayError GatewayError::overloaded(std::string message) {
  return make(ErrorType::kOverloaded, defaultStatus(ErrorType::kOverloaded), std::move(message));
}

std::string errorBody(ApiShape shape, int status, ErrorType type, std::string_view message,
                      std::string_view code) {
  nlohmann::ordered_json body;
  std::string_view type_name = errorTypeName(shape, type);
  if (shape == ApiShape::kAnthropic) {
    body["type"] = "error";
    body["error"] = {{"type", type_name}, {"message", message}};
  } else {
    if (code.empty()) code = codeForStatus(status);
    body["error"] = {{"message", message}, {"type", type_name}, {"param", nullptr}, {"code", code}};
  }
  return dumpJson(body);
}

std::string errorBody(ApiShape shape, const GatewayError& error) {
  return errorBody(shape, error.status, error.type, error.message, error.code);
}

ErrorResponse errorResponse(ApiShape shape, const GatewayError& error) {
  ErrorResponse r;
  r.status = error.status;
  r.reason = statusReason(error.status);
  r.body = errorBody(shape, error);
  if (error.retry_after_s)
    r.headers.emplace_back("Retry-After", std::to_string(*error.retry_after_s));
  if (!error.allow.empty()) r.headers.emplace_back("Allow", error.allow);
  // A client that asked to upgrade must not keep the connection in an undefined state.
  if (error.status == 426) r.headers.emplace_back("Connection", "close");
  return r;
}

std::string_view statusReason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 529:
      return "Site Overloaded";
    default:
      return "Error";
  }
}

}  // namespace gatehouse::proxy
