// Request routing, sans-I/O: which endpoint a request is for, which API shape the client speaks,
// and which provider serves the model it names.
//
//   POST /v1/messages[?...]               Anthropic Messages (query kept: Claude Code sends
//                                         ?beta=true)
//   POST /v1/messages/count_tokens        Anthropic token counting
//   GET  /v1/models                       model list, in the client's shape: Anthropic when the
//                                         request has anthropic-version or x-api-key, else OpenAI
//   POST /v1/chat/completions             OpenAI Chat Completions
//   POST /v1/responses                    OpenAI Responses
//   *    /v1/responses + Upgrade: websocket   426: Codex falls back to HTTP + SSE at once
//   *    /api, /api/...                   the admin API (role admin)
//   a known path with another method      405 with Allow
//   anything else                         404
//
// Provider selection: a provider serves a request when its kind speaks the route's API
// (anthropic for the Anthropic routes; openai and openai_compatible for the OpenAI ones) and one
// of its "models" patterns matches the body's "model" verbatim. The first such provider in config
// order wins. The body is forwarded byte for byte, so a "provider/model" prefix in the body
// cannot be stripped and is not a way to pick a provider: configure disjoint model patterns
// instead.
//
// The model is read from a copy of the body with a streaming (SAX) parse that keeps only the
// top-level "model" and "stream". A top-level key given twice is rejected: the gateway must check
// the grant for the same model the provider will read.
//
// Thread safety: pure functions; the returned views point into the caller's strings.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/config/errors.h"
#include "proxy/config/gateway_config.h"

namespace gatehouse::proxy {

enum class RouteKind : uint8_t {
  kAnthropicMessages,
  kAnthropicCountTokens,
  kModels,
  kOpenAIChat,
  kOpenAIResponses,
  kResponsesWebSocket,  // answer routeError(): 426
  kAdmin,
  kMethodNotAllowed,  // answer routeError(): 405
  kNotFound,          // answer routeError(): 404
};
std::string_view routeName(RouteKind kind);  // "anthropic_messages", "not_found", ...

// One request header as the HTTP layer parsed it (views; not owned).
struct HeaderRef {
  std::string_view name;
  std::string_view value;
};

struct Route {
  RouteKind kind = RouteKind::kNotFound;
  ApiShape shape = ApiShape::kOpenAI;  // the client's API: errors are sent in this shape
  std::string_view path;               // the target without its query
  std::string_view query;              // after '?', verbatim; "" when none
  std::string_view allow;              // kMethodNotAllowed: the methods the path takes

  // A model API call forwarded to a provider (needs a body with "model").
  bool forwardsToProvider() const {
    return kind == RouteKind::kAnthropicMessages || kind == RouteKind::kAnthropicCountTokens ||
           kind == RouteKind::kOpenAIChat || kind == RouteKind::kOpenAIResponses;
  }
};

// Classifies a request. `target` is the request-target (origin-form "/v1/messages?x=1"; an
// absolute-form "http://ai/v1/messages" is reduced to its path).
Route routeRequest(std::string_view method, std::string_view target,
                   std::span<const HeaderRef> headers);

// Anthropic if the headers carry anthropic-version or x-api-key, else OpenAI.
ApiShape shapeFromHeaders(std::span<const HeaderRef> headers);

// The error to answer with for kNotFound, kMethodNotAllowed and kResponsesWebSocket.
std::optional<GatewayError> routeError(const Route& route, std::string_view method);

// Whether a provider of `kind` speaks the API of `route`.
bool kindServesRoute(ProviderKind kind, RouteKind route);

// What the gateway reads from a request body.
struct ModelRequest {
  std::string model;
  bool stream = false;  // "stream": true (absent or null = false)
  // max_tokens (Anthropic, Chat) / max_output_tokens (Responses) / max_completion_tokens (Chat):
  // the largest of those present as non-negative integers; for the quota reservation.
  std::optional<int64_t> max_output_tokens;
};

// Reads the top-level "model", "stream" and output-token limits of a JSON body. Errors (400):
// malformed JSON, not an object, no "model", "model" not a non-empty string, "stream" not a
// boolean, a repeated key.
std::optional<GatewayError> parseModelRequest(std::string_view body, ModelRequest* out);

// The provider for `model` on `route` (first match in config order). Errors (404, OpenAI code
// "model_not_found"): no provider serves the model on this API, with a hint when a provider of
// the other API does, or when the model carries a "provider/" prefix.
std::optional<GatewayError> selectProvider(const GatewayConfig& config, RouteKind route,
                                           std::string_view model, const ProviderConfig** out);

}  // namespace gatehouse::proxy
