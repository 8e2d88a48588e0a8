// Fuzz target: gateway config (HuJSON → validated GatewayConfig) on arbitrary bytes, then grant
// evaluation and provider selection over whatever loaded; the same bytes also go through the
// request-body reader and the capability-value parser. Files are never opened
// (resolve_files = false). Any crash, sanitizer report or escaping exception is a bug: user input
// must only ever produce error messages.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/config/credentials.h"
#include "proxy/config/gateway_config.h"
#include "proxy/config/grants.h"
#include "proxy/config/routes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gatehouse::proxy;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  ModelRequest req;
  (void)parseModelRequest(text, &req);
  (void)parseCapabilityValue(text);

  LoadOptions opts;
  opts.file_name = "fuzz.hujson";
  opts.resolve_files = false;
  opts.env = [](const std::string&) { return std::optional<std::string>("fuzz-key"); };
  auto cfg = parseGatewayConfig(text, opts);
  if (!cfg.isOk()) {
    if (cfg.status().message().empty()) __builtin_trap();
    return 0;
  }
  GrantSet grants(cfg.value());
  gatehouse::wg::Identity alice;
  alice.user_login = "alice@example.com";
  alice.groups = {"group:eng"};
  gatehouse::wg::Identity bot;
  bot.tags = {"tag:ci"};
  bot.capabilities[std::string(kAiCapability)] = {std::string(text)};
  const char* models[] = {"claude-sonnet-4-5", "gpt-4o", "o3", "", "a/b", "*"};
  for (const char* model : models) {
    for (RouteKind route : {RouteKind::kAnthropicMessages, RouteKind::kOpenAIChat}) {
      const ProviderConfig* p = nullptr;
      if (auto e = selectProvider(cfg.value(), route, model, &p)) {
        (void)errorBody(ApiShape::kOpenAI, *e);
        continue;
      }
      if (!p) __builtin_trap();
      (void)grants.checkModel(alice, p->id, model);
      (void)grants.checkModel(bot, p->id, model);
      (void)upstreamCredential(*p);
      (void)p->url.target("/v1/messages");
      (void)p->url.hostHeader();
    }
  }
  (void)grants.checkAdmin(alice);
  (void)grants.grantedModels(alice, cfg->providers);
  (void)cfg->redact(text);
  return 0;
}
