// Provider-shaped errors: exact Anthropic and OpenAI bodies, the type table, the response helper
// (status, reason, content type, Retry-After, Allow), JSON validity with hostile text, and the
// guarantee that no message the gateway writes ever contains a provider key.
#include "proxy/config/errors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proxy/config/credentials.h"
#include "proxy/config/gateway_config.h"
#include "proxy/config/grants.h"
#include "proxy/config/routes.h"

namespace gatehouse::proxy {
namespace {

TEST(Errors, AnthropicBody) {
  EXPECT_EQ(errorBody(ApiShape::kAnthropic,
                      GatewayError::permission("alice@example.com has no grant for model "
                                               "\"anthropic/claude-opus-4-5\"")),
            R"({"type":"error","error":{"type":"permission_error","message":"alice@example.com )"
            R"(has no grant for model \"anthropic/claude-opus-4-5\""}})");
}

TEST(Errors, OpenAIBody) {
  EXPECT_EQ(errorBody(ApiShape::kOpenAI, GatewayError::permission("no grant")),
            R"({"error":{"message":"no grant","type":"permission_error","param":null,)"
            R"("code":"permission_denied"}})");
  EXPECT_EQ(errorBody(ApiShape::kOpenAI, GatewayError::notFound("no model", "model_not_found")),
            R"({"error":{"message":"no model","type":"invalid_request_error","param":null,)"
            R"("code":"model_not_found"}})");
}

TEST(Errors, TypesAndStatuses) {
  struct Case {
    GatewayError e;
    int status;
    const char* anthropic;
    const char* openai;
    const char* code;
  };
  const Case cases[] = {
      {GatewayError::invalidRequest("m"), 400, "invalid_request_error", "invalid_request_error",
       "invalid_request"},
      {GatewayError::permission("m"), 403, "permission_error", "permission_error",
       "permission_denied"},
      {GatewayError::notFound("m"), 404, "not_found_error", "invalid_request_error", "not_found"},
      {GatewayError::methodNotAllowed("POST", "m"), 405, "invalid_request_error",
       "invalid_request_error", "method_not_allowed"},
      {GatewayError::requestTooLarge("m"), 413, "request_too_large", "invalid_request_error",
       "request_too_large"},
      {GatewayError::upgradeRequired("m"), 426, "invalid_request_error", "invalid_request_error",
       "upgrade_required"},
      {GatewayError::rateLimited("m", 30), 429, "rate_limit_error", "rate_limit_exceeded",
       "rate_limit_exceeded"},
      {GatewayError::internal("m"), 500, "api_error", "server_error", "internal_error"},
      {GatewayError::badGateway("m"), 502, "api_error", "server_error", "bad_gateway"},
      {GatewayError::gatewayTimeout("m"), 504, "api_error", "server_error", "gateway_timeout"},
      {GatewayError::overloaded("m"), 529, "overloaded_error", "server_error", "overloaded"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.e.status, c.status);
    auto a = nlohmann::json::parse(errorBody(ApiShape::kAnthropic, c.e));
    EXPECT_EQ(a["type"], "error");
    EXPECT_EQ(a["error"]["type"], c.anthropic) << c.status;
    EXPECT_EQ(a["error"]["message"], "m");
    auto o = nlohmann::json::parse(errorBody(ApiShape::kOpenAI, c.e));
    EXPECT_EQ(o["error"]["type"], c.openai) << c.status;
    EXPECT_EQ(o["error"]["code"], c.code) << c.status;
    EXPECT_TRUE(o["error"]["param"].is_null());
    EXPECT_NE(statusReason(c.status), "Error") << c.status;
  }
  EXPECT_EQ(errorTypeName(ApiShape::kAnthropic, ErrorType::kAuthentication),
            "authentication_error");
  EXPECT_EQ(errorBody(ApiShape::kOpenAI, 401, ErrorType::kAuthentication, "x"),
            R"({"error":{"message":"x","type":"invalid_request_error","param":null,)"
            R"("code":"invalid_api_key"}})");
  EXPECT_EQ(apiShapeName(ApiShape::kAnthropic), "anthropic");
}

TEST(Errors, ResponseHelper) {
  ErrorResponse r =
      errorResponse(ApiShape::kAnthropic, GatewayError::rateLimited("daily budget used up", 3600));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.reason, "Too Many Requests");
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");
  EXPECT_EQ(r.headers[0].second, "3600");
  EXPECT_EQ(
      r.body,
      R"({"type":"error","error":{"type":"rate_limit_error","message":"daily budget used up"}})");

  r = errorResponse(ApiShape::kOpenAI, GatewayError::methodNotAllowed("GET", "use GET"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.reason, "Method Not Allowed");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Allow");
  EXPECT_EQ(r.headers[0].second, "GET");

  r = errorResponse(ApiShape::kOpenAI, GatewayError::gatewayTimeout(
                                           "provider \"openai\" did not answer within 600 s"));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.reason, "Gateway Timeout");
  EXPECT_TRUE(r.headers.empty());
  EXPECT_EQ(statusReason(418), "Error");
}

TEST(Errors, BodiesStayValidJsonWhateverTheMessage) {
  std::string hostile =
      "quote \" backslash \\ newline \n nul " + std::string(1, '\0') + " bad utf8 \xff\xfe end";
  for (ApiShape shape : {ApiShape::kAnthropic, ApiShape::kOpenAI}) {
    std::string body = errorBody(shape, GatewayError::invalidRequest(hostile));
    auto j = nlohmann::json::parse(body);  // throws if invalid
    std::string msg = shape == ApiShape::kAnthropic ? j["error"]["message"].get<std::string>()
                                                    : j["error"]["message"].get<std::string>();
    EXPECT_NE(msg.find("quote \" backslash \\ newline \n nul"), std::string::npos);
    EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD for the bad bytes
  }
}

// Every string the gateway builds from a config that holds real keys: load errors, routing and
// selection errors, grant decisions, error bodies, printed Secrets and credentials. None may
// contain a key.
TEST(Errors, NoMessageEverContainsAProviderKey) {
  const std::string anthropic_key = "sk-ant-api03-LEAKCHECK-aaaaaaaaaaaaaaaa";
  const std::string openai_key = "sk-proj-LEAKCHECK-bbbbbbbbbbbbbbbbbbbb";
  char tmpl[] = "/tmp/gatehouse-leak-test-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string key_file = dir + "/openai.key";
  std::ofstream(key_file) << openai_key << "\n";
  ::chmod(key_file.c_str(), 0600);

  LoadOptions opts;
  opts.file_name = "gw.hujson";
  opts.base_dir = dir;
  opts.env = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "ANTHROPIC_API_KEY") return anthropic_key;
    if (name == "NEWLINE_KEY") return anthropic_key + "\nX-Evil: 1";
    return std::nullopt;
  };
  const std::string good = R"({
  "providers": {
    "anthropic": {"kind": "anthropic", "key": "env:ANTHROPIC_API_KEY", "models": ["claude-*"]},
    "openai": {"kind": "openai", "key": "file:openai.key", "models": ["gpt-*"]},
  },
  "grants": [{"src": ["group:eng"], "models": ["anthropic/*"]}],
})";
  auto cfg = parseGatewayConfig(good, opts);
  ASSERT_TRUE(cfg.isOk()) << cfg.status().message();

  std::vector<std::string> texts;
  // Load errors: a pasted key, a key with a newline, a key file readable by others, and a config
  // with every key resolved but other mistakes.
  auto loadError = [&](const std::string& text) {
    auto r = parseGatewayConfig(text, opts);
    EXPECT_FALSE(r.isOk());
    if (!r.isOk()) texts.push_back(r.status().message());
  };
  loadError(R"({"providers": {"a": {"kind": "anthropic", "models": ["m"], "key": ")" +
            anthropic_key + "\"}}}");
  loadError(R"({"providers": {"a": {"kind": "anthropic", "models": ["m"],
      "key": "env:NEWLINE_KEY"}}})");
  loadError(R"({"providers": {"a": {"kind": "anthropic", "models": ["m"],
      "headers": {"x-api-key": ")" +
            anthropic_key + "\"}, \"key\": \"env:ANTHROPIC_API_KEY\"}}}");
  loadError(R"({"providers": {"a": {"kind": "anthropic", "models": ["m"],
      "headers": {"X-Custom": ")" +
            anthropic_key + "\n\"}, \"key\": \"env:ANTHROPIC_API_KEY\"}}}");
  ::chmod(key_file.c_str(), 0644);
  loadError(R"({"providers": {"o": {"kind": "openai", "models": ["m"], "key": "file:openai.key"}},
      "hostname": "Bad Name"})");
  ::chmod(key_file.c_str(), 0600);
  loadError(std::string(good).insert(1, "\"listen\": 0,"));

  // Request-time strings.
  GrantSet grants(cfg.value());
  wg::Identity alice;
  alice.user_login = "alice@example.com";
  alice.groups = {"group:eng"};
  alice.capabilities[std::string(kAiCapability)] = {R"({"models": ["*"], "key": "x"})"};
  texts.push_back(grants.checkModel(alice, "openai", "gpt-4o").reason);
  texts.push_back(grants.checkModel(alice, "anthropic", "claude-x").reason);
  texts.push_back(grants.checkAdmin(alice).reason);
  const ProviderConfig* p = nullptr;
  for (const char* model : {"gpt-4o", "claude-x", "anthropic/claude-x", "nope"}) {
    for (RouteKind rk : {RouteKind::kAnthropicMessages, RouteKind::kOpenAIChat}) {
      if (auto e = selectProvider(cfg.value(), rk, model, &p)) {
        for (ApiShape shape : {ApiShape::kAnthropic, ApiShape::kOpenAI}) {
          texts.push_back(errorBody(shape, *e));
        }
      }
    }
  }
  ModelRequest m;
  if (auto e = parseModelRequest("{\"model\": 1, \"x\": \"" + anthropic_key, &m)) {
    texts.push_back(e->message);
  }
  for (const char* target : {"/nope", "/v1/messages"}) {
    Route r = routeRequest("GET", target, {});
    if (auto e = routeError(r, "GET")) texts.push_back(errorResponse(r.shape, *e).body);
  }
  for (const ProviderConfig& pc : cfg->providers) {
    std::ostringstream os;
    os << pc.key << " " << pc.key_ref;
    texts.push_back(os.str());
    auto cred = upstreamCredential(pc);
    ASSERT_TRUE(cred);
    std::ostringstream cs;
    cs << cred->name << ": " << cred->value;
    texts.push_back(cs.str());
    EXPECT_NE(cred->value.reveal().find(pc.key.reveal()), std::string::npos);
  }
  texts.push_back(cfg->redact("echo " + anthropic_key + " and " + openai_key));

  ASSERT_GE(texts.size(), 20u);
  for (const std::string& t : texts) {
    EXPECT_EQ(t.find("LEAKCHECK"), std::string::npos) << t;
  }
  std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace gatehouse::proxy
