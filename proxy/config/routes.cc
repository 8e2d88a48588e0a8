// Routing, body inspection and provider selection. See routes.h.
#include "proxy/config/routes.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "proxy/config/credentials.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (headerNameEquals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::optional<std::string_view> header(std::span<const HeaderRef> headers, std::string_view name) {
  for (const HeaderRef& h : headers) {
    if (headerNameEquals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Keeps only the top-level "model" and "stream" of a JSON document; builds no tree, so a large
// conversation costs one pass and no allocations beyond the model string.
class ModelSax : public nlohmann::json_sax<json> {
 public:
  std::optional<std::string> model;
  std::optional<bool> stream;
  std::optional<int64_t> max_output_tokens;
  std::string problem;  // set when a value is wrong; the parse then stops

  bool null() override { return scalar(Kind::kNull, nullptr, false); }
  bool boolean(bool v) override { return scalar(Kind::kBool, nullptr, v); }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) maxTokens(static_cast<uint64_t>(v));
    return scalar(Kind::kOther, nullptr, false);
  }
  bool number_unsigned(number_unsigned_t v) override {
    maxTokens(v);
    return scalar(Kind::kOther, nullptr, false);
  }
  bool number_float(number_float_t, const string_t&) override {
    return scalar(Kind::kOther, nullptr, false);
  }
  bool string(string_t& v) override { return scalar(Kind::kString, &v, false); }
  bool binary(binary_t&) override { return scalar(Kind::kOther, nullptr, false); }
  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    field_ = Field::kNone;
    if (depth_ != 1) return true;
    if (k == "model") field_ = Field::kModel;
    if (k == "stream") field_ = Field::kStream;
    if (k == "max_tokens" || k == "max_output_tokens" || k == "max_completion_tokens") {
      field_ = Field::kMaxTokens;
      return true;  // repeats are the provider's to judge
    }
    if (field_ != Field::kNone && !seen_.insert(k).second) {
      return fail(q(k) + " appears twice in the request body: send it once");
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..."
    size_t colon = what.find(": ", what.find("column"));
    std::string reason = colon == std::string::npos ? what : what.substr(colon + 2);
    if (size_t last = reason.find("; last read:"); last != std::string::npos) reason.resize(last);
    problem = "request body is not valid JSON (byte " + std::to_string(position) + "): " + reason;
    return false;
  }

 private:
  enum class Kind { kNull, kBool, kString, kOther };
  enum class Field { kNone, kModel, kStream, kMaxTokens };

  void maxTokens(uint64_t v) {
    if (depth_ != 1 || field_ != Field::kMaxTokens) return;
    int64_t n = static_cast<int64_t>(std::min<uint64_t>(v, uint64_t{1} << 50));
    if (!max_output_tokens || n > *max_output_tokens) max_output_tokens = n;
  }

  bool fail(std::string why) {
    problem = std::move(why);
    return false;
  }
  bool rootCheck() {
    if (depth_ == 0) return fail("request body must be a JSON object, e.g. {\"model\": ...}");
    return true;
  }
  bool scalar(Kind kind, string_t* s, bool b) {
    if (!rootCheck()) return false;
    Field f = depth_ == 1 ? field_ : Field::kNone;
    field_ = Field::kNone;
    if (f == Field::kModel) {
      if (kind != Kind::kString || s->empty()) {
        return fail("\"model\" must be a non-empty string, e.g. \"claude-sonnet-4-5\"");
      }
      model = std::move(*s);
    } else if (f == Field::kStream) {
      if (kind != Kind::kBool && kind != Kind::kNull)
        return fail("\"stream\" must be true or false");
      stream = b;
    }
    return true;
  }
  bool open(bool object) {
    if (depth_ == 0 && !object) return rootCheck();
    if (depth_ == 1 && field_ == Field::kModel) {
      return fail("\"model\" must be a non-empty string, e.g. \"claude-sonnet-4-5\"");
    }
    if (depth_ == 1 && field_ == Field::kStream) return fail("\"stream\" must be true or false");
    field_ = Field::kNone;
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  Field field_ = Field::kNone;
  std::set<std::string, std::less<>> seen_;
};

// One path the gateway answers, and the method it takes.
struct PathRule {
  std::string_view path;
  std::string_view method;
  RouteKind kind;
};
constexpr PathRule kRules[] = {
    {"/v1/messages", "POST", RouteKind::kAnthropicMessages},
    {"/v1/messages/count_tokens", "POST", RouteKind::kAnthropicCountTokens},
    {"/v1/models", "GET", RouteKind::kModels},
    {"/v1/chat/completions", "POST", RouteKind::kOpenAIChat},
    {"/v1/responses", "POST", RouteKind::kOpenAIResponses},
};

bool anthropicRoute(RouteKind kind) {
  return kind == RouteKind::kAnthropicMessages || kind == RouteKind::kAnthropicCountTokens;
}

std::string_view apiTitle(RouteKind kind) {
  return anthropicRoute(kind) ? "the Anthropic Messages API" : "the OpenAI API";
}

}  // namespace

std::string_view routeName(RouteKind kind) {
  switch (kind) {
    case RouteKind::kAnthropicMessages:
      return "anthropic_messages";
    case RouteKind::kAnthropicCountTokens:
      return "anthropic_count_tokens";
    case RouteKind::kModels:
      return "models";
    case RouteKind::kOpenAIChat:
      return "openai_chat";
    case RouteKind::kOpenAIResponses:
      return "openai_responses";
    case RouteKind::kResponsesWebSocket:
      return "responses_websocket";
    case RouteKind::kAdmin:
      return "admin";
    case RouteKind::kMethodNotAllowed:
      return "method_not_allowed";
    case RouteKind::kNotFound:
      return "not_found";
  }
  return "not_found";
}

ApiShape shapeFromHeaders(std::span<const HeaderRef> headers) {
  return header(headers, "anthropic-version") || header(headers, "x-api-key") ? ApiShape::kAnthropic
                                                                              : ApiShape::kOpenAI;
}

Route routeRequest(std::string_view method, std::string_view target,
                   std::span<const HeaderRef> headers) {
  Route r;
  // Absolute-form (a client configured with the gateway as an HTTP proxy): keep the path.
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
    size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t qmark = target.find('?');
  r.path = target.substr(0, qmark);
  if (qmark != std::string_view::npos) r.query = target.substr(qmark + 1);
  r.shape = shapeFromHeaders(headers);

  auto upgrade = header(headers, "upgrade");
  if (r.path == "/v1/responses" && upgrade && icontains(*upgrade, "websocket")) {
    r.kind = RouteKind::kResponsesWebSocket;
    r.shape = ApiShape::kOpenAI;
    return r;
  }
  if (r.path == "/api" || r.path.rfind("/api/", 0) == 0) {
    r.kind = RouteKind::kAdmin;
    return r;
  }
  for (const PathRule& rule : kRules) {
    if (r.path != rule.path) continue;
    if (rule.kind != RouteKind::kModels) {
      r.shape = anthropicRoute(rule.kind) ? ApiShape::kAnthropic : ApiShape::kOpenAI;
    }
    if (method == rule.method) {
      r.kind = rule.kind;
    } else {
      r.kind = RouteKind::kMethodNotAllowed;
      r.allow = rule.method;
    }
    return r;
  }
  r.kind = RouteKind::kNotFound;
  return r;
}

std::optional<GatewayError> routeError(const Route& route, std::string_view method) {
  switch (route.kind) {
    case RouteKind::kNotFound:
      return GatewayError::notFound(
          "no such endpoint: " + std::string(method) + " " + std::string(route.path) +
          " (the gateway serves POST /v1/messages, POST /v1/chat/completions, POST "
          "/v1/responses and GET /v1/models)");
    case RouteKind::kMethodNotAllowed:
      return GatewayError::methodNotAllowed(
          std::string(route.allow), std::string(route.path) + " takes " + std::string(route.allow) +
                                        ", not " + std::string(method));
    case RouteKind::kResponsesWebSocket:
      return GatewayError::upgradeRequired(
          "this gateway serves the Responses API over HTTP with SSE, not WebSocket; set "
          "supports_websockets = false for this provider in the client's config");
    default:
      return std::nullopt;
  }
}

bool kindServesRoute(ProviderKind kind, RouteKind route) {
  if (anthropicRoute(route)) return kind == ProviderKind::kAnthropic;
  if (route == RouteKind::kOpenAIChat || route == RouteKind::kOpenAIResponses) {
    return kind == ProviderKind::kOpenAI || kind == ProviderKind::kOpenAICompatible;
  }
  return false;
}

std::optional<GatewayError> parseModelRequest(std::string_view body, ModelRequest* out) {
  ModelSax sax;
  bool ok = json::sax_parse(body.begin(), body.end(), &sax, json::input_format_t::json, true);
  if (!ok || !sax.problem.empty()) {
    return GatewayError::invalidRequest(sax.problem.empty() ? "request body is not valid JSON"
                                                            : sax.problem);
  }
  if (!sax.model) {
    return GatewayError::invalidRequest(
        "request body has no \"model\": name the model to call, e.g. \"model\": "
        "\"claude-sonnet-4-5\"");
  }
  out->model = std::move(*sax.model);
  out->stream = sax.stream.value_or(false);
  out->max_output_tokens = sax.max_output_tokens;
  return std::nullopt;
}

std::optional<GatewayError> selectProvider(const GatewayConfig& config, RouteKind route,
                                           std::string_view model, const ProviderConfig** out) {
  *out = nullptr;
  for (const ProviderConfig& p : config.providers) {
    if (kindServesRoute(p.kind, route) && p.serves(model)) {
      *out = &p;
      return std::nullopt;
    }
  }
  std::string message = "model " + q(model) + " is not served through " +
                        std::string(apiTitle(route)) + " by this gateway";
  for (const ProviderConfig& p : config.providers) {
    if (p.serves(model)) {
      message +=
          "; provider " + q(p.id) + " serves it through " +
          (p.kind == ProviderKind::kAnthropic ? "POST /v1/messages"
                                              : "POST /v1/chat/completions or /v1/responses");
      return GatewayError::notFound(std::move(message), "model_not_found");
    }
  }
  if (size_t slash = model.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = model.substr(0, slash);
    if (config.provider(prefix)) {
      message +=
          "; the gateway forwards the body unchanged, so write the provider's own model "
          "name without the " +
          q(std::string(prefix) + "/") + " prefix";
    }
  }
  message += " (GET /v1/models lists the models you may use)";
  return GatewayError::notFound(std::move(message), "model_not_found");
}

}  // namespace gatehouse::proxy
