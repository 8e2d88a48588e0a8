// Routing: paths and methods to routes, the API shape per route and per header, 404/405/426,
// reading "model" and "stream" from a body (with every error), and provider selection in config
// order with its hints.
#include "proxy/config/routes.h"

#include <gtest/gtest.h>

#include <vector>

namespace gatehouse::proxy {
namespace {

Route route(std::string_view method, std::string_view target, std::vector<HeaderRef> headers = {}) {
  return routeRequest(method, target, headers);
}

TEST(Routes, KnownEndpoints) {
  struct Case {
    const char* method;
    const char* target;
    RouteKind kind;
    ApiShape shape;
  };
  const Case cases[] = {
      {"POST", "/v1/messages", RouteKind::kAnthropicMessages, ApiShape::kAnthropic},
      {"POST", "/v1/messages?beta=true", RouteKind::kAnthropicMessages, ApiShape::kAnthropic},
      {"POST", "/v1/messages/count_tokens", RouteKind::kAnthropicCountTokens, ApiShape::kAnthropic},
      {"GET", "/v1/models", RouteKind::kModels, ApiShape::kOpenAI},
      {"POST", "/v1/chat/completions", RouteKind::kOpenAIChat, ApiShape::kOpenAI},
      {"POST", "/v1/responses", RouteKind::kOpenAIResponses, ApiShape::kOpenAI},
      {"GET", "/api/config", RouteKind::kAdmin, ApiShape::kOpenAI},
      {"PUT", "/api", RouteKind::kAdmin, ApiShape::kOpenAI},
      {"GET", "/", RouteKind::kNotFound, ApiShape::kOpenAI},
      {"POST", "/v1/messages/", RouteKind::kNotFound, ApiShape::kOpenAI},
      {"POST", "/v1/message", RouteKind::kNotFound, ApiShape::kOpenAI},
      {"GET", "/apix", RouteKind::kNotFound, ApiShape::kOpenAI},
      {"POST", "/v1/messages/batches", RouteKind::kNotFound, ApiShape::kOpenAI},
      {"GET", "/v1/messages", RouteKind::kMethodNotAllowed, ApiShape::kAnthropic},
      {"POST", "/v1/models", RouteKind::kMethodNotAllowed, ApiShape::kOpenAI},
      {"GET", "/v1/responses", RouteKind::kMethodNotAllowed, ApiShape::kOpenAI},
  };
  for (const Case& c : cases) {
    Route r = route(c.method, c.target);
    EXPECT_EQ(r.kind, c.kind) << c.method << " " << c.target << " → " << routeName(r.kind);
    EXPECT_EQ(r.shape, c.shape) << c.method << " " << c.target;
  }
}

TEST(Routes, QueryIsKeptVerbatim) {
  Route r = route("POST", "/v1/messages?beta=true&x=%20");
  EXPECT_EQ(r.path, "/v1/messages");
  EXPECT_EQ(r.query, "beta=true&x=%20");
  EXPECT_TRUE(r.forwardsToProvider());
  EXPECT_EQ(route("POST", "/v1/messages").query, "");
  Route abs = route("POST", "http://ai/v1/chat/completions?a=1");
  EXPECT_EQ(abs.kind, RouteKind::kOpenAIChat);
  EXPECT_EQ(abs.query, "a=1");
  EXPECT_EQ(route("GET", "http://ai").kind, RouteKind::kNotFound);
}

TEST(Routes, ModelsShapeFollowsTheHeaders) {
  EXPECT_EQ(route("GET", "/v1/models", {{"anthropic-version", "2023-06-01"}}).shape,
            ApiShape::kAnthropic);
  EXPECT_EQ(route("GET", "/v1/models", {{"X-Api-Key", "-"}}).shape, ApiShape::kAnthropic);
  EXPECT_EQ(route("GET", "/v1/models", {{"Authorization", "Bearer -"}}).shape, ApiShape::kOpenAI);
  // Errors for unknown paths follow the same rule.
  EXPECT_EQ(route("GET", "/nope", {{"Anthropic-Version", "2023-06-01"}}).shape,
            ApiShape::kAnthropic);
  // The endpoint decides for the model APIs, whatever the headers say.
  EXPECT_EQ(route("POST", "/v1/chat/completions", {{"x-api-key", "-"}}).shape, ApiShape::kOpenAI);
  EXPECT_EQ(route("POST", "/v1/messages", {{"authorization", "Bearer -"}}).shape,
            ApiShape::kAnthropic);
}

TEST(Routes, ResponsesWebSocketGets426) {
  Route r = route("GET", "/v1/responses?x=1",
                  {{"Connection", "Upgrade"},
                   {"Upgrade", "WebSocket"},
                   {"OpenAI-Beta", "responses_websockets=2026-02-06"}});
  EXPECT_EQ(r.kind, RouteKind::kResponsesWebSocket);
  auto e = routeError(r, "GET");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 426);
  ErrorResponse resp = errorResponse(r.shape, *e);
  EXPECT_EQ(resp.reason, "Upgrade Required");
  ASSERT_EQ(resp.headers.size(), 1u);
  EXPECT_EQ(resp.headers[0], (std::pair<std::string, std::string>{"Connection", "close"}));
  EXPECT_NE(resp.body.find("supports_websockets = false"), std::string::npos);
  EXPECT_EQ(route("GET", "/v1/chat/completions", {{"Upgrade", "websocket"}}).kind,
            RouteKind::kMethodNotAllowed);
}

TEST(Routes, RouteErrors) {
  auto nf = routeError(route("GET", "/v2/x?q=1"), "GET");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_EQ(nf->message,
            "no such endpoint: GET /v2/x (the gateway serves POST /v1/messages, POST "
            "/v1/chat/completions, POST /v1/responses and GET /v1/models)");
  auto na = routeError(route("DELETE", "/v1/messages"), "DELETE");
  ASSERT_TRUE(na);
  EXPECT_EQ(na->status, 405);
  EXPECT_EQ(na->allow, "POST");
  EXPECT_EQ(na->message, "/v1/messages takes POST, not DELETE");
  EXPECT_FALSE(routeError(route("POST", "/v1/messages"), "POST"));
  EXPECT_FALSE(routeError(route("GET", "/api/x"), "GET"));
}

TEST(ModelRequest, ReadsModelAndStream) {
  ModelRequest m;
  ASSERT_FALSE(parseModelRequest(R"({"model": "claude-sonnet-4-5", "max_tokens": 10,
      "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
      "model": "nested-ignored", "stream": "nested-ignored"}]}], "stream": true})",
                                 &m));
  EXPECT_EQ(m.model, "claude-sonnet-4-5");
  EXPECT_TRUE(m.stream);
  ASSERT_FALSE(parseModelRequest(R"({"stream": null, "model": "gpt-4o"})", &m));
  EXPECT_EQ(m.model, "gpt-4o");
  EXPECT_FALSE(m.stream);
  ASSERT_FALSE(parseModelRequest(R"({"model": "o3"})", &m));
  EXPECT_FALSE(m.stream);
  ASSERT_FALSE(parseModelRequest(R"({"model": "caf\u00e9", "metadata": {"model": 1}})", &m));
  EXPECT_EQ(m.model, "café");
}

TEST(ModelRequest, Errors) {
  auto err = [](std::string_view body) {
    ModelRequest m;
    auto e = parseModelRequest(body, &m);
    EXPECT_TRUE(e) << body;
    if (e) EXPECT_EQ(e->status, 400) << body;
    return e ? e->message : "";
  };
  EXPECT_EQ(err(""),
            "request body is not valid JSON (byte 1): syntax error while parsing value "
            "- unexpected end of input; expected '[', '{', or a literal");
  EXPECT_EQ(err(R"({"model": "x",})"),
            "request body is not valid JSON (byte 15): syntax error while parsing object key - "
            "unexpected '}'; expected string literal");
  EXPECT_EQ(err("[1]"), "request body must be a JSON object, e.g. {\"model\": ...}");
  EXPECT_EQ(err("\"x\""), "request body must be a JSON object, e.g. {\"model\": ...}");
  EXPECT_EQ(err(R"({"messages": []})"),
            "request body has no \"model\": name the model to call, e.g. \"model\": "
            "\"claude-sonnet-4-5\"");
  EXPECT_EQ(err(R"({"model": 4})"),
            "\"model\" must be a non-empty string, e.g. \"claude-sonnet-4-5\"");
  EXPECT_EQ(err(R"({"model": ""})"),
            "\"model\" must be a non-empty string, e.g. \"claude-sonnet-4-5\"");
  EXPECT_EQ(err(R"({"model": {"id": "x"}})"),
            "\"model\" must be a non-empty string, e.g. \"claude-sonnet-4-5\"");
  EXPECT_EQ(err(R"({"model": "x", "stream": "yes"})"), "\"stream\" must be true or false");
  EXPECT_EQ(err(R"({"model": "x", "stream": [true]})"), "\"stream\" must be true or false");
  // The grant is checked for the model the provider will read: no ambiguity allowed.
  EXPECT_EQ(err(R"({"model": "claude-haiku-4-5", "model": "claude-opus-4-5"})"),
            "\"model\" appears twice in the request body: send it once");
  EXPECT_EQ(err(R"({"model": "x"} {"model": "y"})").rfind("request body is not valid JSON", 0), 0u);
}

GatewayConfig routingConfig() {
  auto r = parseGatewayConfig(R"({"providers": {
    "anthropic": {"kind": "anthropic", "key": "env:K", "models": ["claude-*"]},
    "openai": {"kind": "openai", "key": "env:K", "models": ["gpt-*", "o3"]},
    "vllm": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:8000", "local": true,
             "models": ["gpt-oss-*", "llama-*"]},
    "bedrock-claude": {"kind": "anthropic", "base_url": "https://proxy.example.com",
                       "key": "env:K", "models": ["claude-*", "anthropic.claude-*"]},
  }})",
                              LoadOptions{"gw.hujson", "", nullptr, false});
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return r.value();
}

TEST(SelectProvider, FirstMatchInConfigOrderForTheRoutesApi) {
  GatewayConfig c = routingConfig();
  const ProviderConfig* p = nullptr;
  ASSERT_FALSE(selectProvider(c, RouteKind::kAnthropicMessages, "claude-sonnet-4-5", &p));
  EXPECT_EQ(p->id, "anthropic");  // bedrock-claude also matches; first wins
  ASSERT_FALSE(selectProvider(c, RouteKind::kAnthropicCountTokens, "anthropic.claude-v2", &p));
  EXPECT_EQ(p->id, "bedrock-claude");
  ASSERT_FALSE(selectProvider(c, RouteKind::kOpenAIChat, "gpt-oss-120b", &p));
  EXPECT_EQ(p->id, "openai");  // "gpt-*" comes first: config order decides
  ASSERT_FALSE(selectProvider(c, RouteKind::kOpenAIResponses, "llama-3", &p));
  EXPECT_EQ(p->id, "vllm");
  ASSERT_FALSE(selectProvider(c, RouteKind::kOpenAIChat, "o3", &p));
  EXPECT_EQ(p->id, "openai");
}

TEST(SelectProvider, UnknownModelsAndHints) {
  GatewayConfig c = routingConfig();
  const ProviderConfig* p = nullptr;
  auto e = selectProvider(c, RouteKind::kOpenAIChat, "claude-sonnet-4-5", &p);
  ASSERT_TRUE(e);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(e->status, 404);
  EXPECT_EQ(e->code, "model_not_found");
  EXPECT_EQ(e->message,
            "model \"claude-sonnet-4-5\" is not served through the OpenAI API by this gateway; "
            "provider \"anthropic\" serves it through POST /v1/messages");
  e = selectProvider(c, RouteKind::kAnthropicMessages, "anthropic/claude-sonnet-4-5", &p);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message,
            "model \"anthropic/claude-sonnet-4-5\" is not served through the Anthropic Messages "
            "API by this gateway; the gateway forwards the body unchanged, so write the "
            "provider's own model name without the \"anthropic/\" prefix (GET /v1/models lists "
            "the models you may use)");
  e = selectProvider(c, RouteKind::kOpenAIChat, "gemini-2.5-pro", &p);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message,
            "model \"gemini-2.5-pro\" is not served through the OpenAI API by this gateway (GET "
            "/v1/models lists the models you may use)");
  EXPECT_TRUE(selectProvider(c, RouteKind::kModels, "gpt-4o", &p));
  EXPECT_TRUE(kindServesRoute(ProviderKind::kOpenAICompatible, RouteKind::kOpenAIResponses));
  EXPECT_FALSE(kindServesRoute(ProviderKind::kAnthropic, RouteKind::kOpenAIChat));
}

}  // namespace
}  // namespace gatehouse::proxy
