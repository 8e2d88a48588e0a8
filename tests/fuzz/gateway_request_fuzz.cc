// Fuzz target: arbitrary bytes as a client connection into the gateway's request path, up to (not
// including) the upstream: the same steps as Gateway::Connection (proxy/gateway/connection.cc)
// without I/O. RequestParser with the gateway's limits, one request at a time (pipelining), the
// input split in two writes at a point the first byte picks; then routeRequest, the error shape,
// parseModelRequest, selectProvider and the grant check, and every GatewayError rendered with
// errorResponse. Any crash, sanitizer report or escaping exception is a bug: client bytes must
// only ever produce an error response or a forwarded request.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/errors.h"
#include "proxy/config/gateway_config.h"
#include "proxy/config/grants.h"
#include "proxy/config/routes.h"
#include "proxy/http/http1.h"

namespace {

using namespace gatehouse::proxy;

// Built once: parsing the config is not what this target explores.
struct Fixture {
  GatewayConfig config;
  std::optional<GrantSet> grants;
  gatehouse::wg::Identity alice;
  Fixture() {
    LoadOptions opts;
    opts.resolve_files = false;
    opts.env = [](const std::string&) { return std::optional<std::string>("fuzz-key"); };
    auto cfg = parseGatewayConfig(R"({
      "providers": {
        "anthropic": {"kind": "anthropic", "key": "env:K", "models": ["claude-*"]},
        "openai": {"kind": "openai", "key": "env:K", "models": ["gpt-*", "o3"]},
        "local": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9", "local": true,
                  "models": ["*"]},
      },
      "grants": [
        {"src": ["group:eng"], "models": ["anthropic/*", "openai/gpt-*"]},
        {"src": ["alice@example.com"], "models": ["*"], "role": "admin"},
      ],
    })",
                                  opts);
    if (!cfg.isOk()) __builtin_trap();
    config = std::move(cfg.value());
    grants.emplace(config);
    alice.user_login = "alice@example.com";
    alice.groups = {"group:eng"};
  }
};

void render(ApiShape shape, const GatewayError& e) {
  ErrorResponse r = errorResponse(shape, e);
  if (r.status < 400 || r.status > 599 || r.body.empty()) __builtin_trap();
}

// What Connection::handleRequest does with one complete request.
void handle(const Fixture& f, const http::RequestHead& head, const std::string& body) {
  std::vector<HeaderRef> refs;
  for (const http::Header& h : head.headers) refs.push_back({h.name, h.value});
  Route route = routeRequest(head.method, head.target, refs);
  if (auto err = routeError(route, head.method)) return render(route.shape, *err);
  if (route.kind == RouteKind::kModels || route.kind == RouteKind::kAdmin) {
    (void)f.grants->checkAdmin(f.alice);
    return;
  }
  ModelRequest model;
  if (auto err = parseModelRequest(body, &model)) return render(route.shape, *err);
  const ProviderConfig* provider = nullptr;
  if (auto err = selectProvider(f.config, route.kind, model.model, &provider)) {
    return render(route.shape, *err);
  }
  if (provider == nullptr) __builtin_trap();
  Decision d = f.grants->checkModel(f.alice, provider->id, model.model);
  if (!d.allowed) render(route.shape, GatewayError::permission(d.reason));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  if (size == 0) return 0;
  size_t split = data[0] % size;
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  split = std::min(split, all.size());
  http::RequestParser parser(http::RequestParser::Options{
      .maxHeaderBytes = 8 * 1024, .maxBodyBytes = 64 * 1024, .stopAfterMessage = true});
  std::string in;
  std::optional<http::RequestHead> head;
  std::string body;
  for (std::string_view write : {all.substr(0, split), all.substr(split)}) {
    in.append(write);
    while (!in.empty()) {
      auto r = parser.feed(std::span<const char>(in.data(), in.size()));
      if (r.consumed > in.size()) __builtin_trap();
      bool ended = false;
      for (auto& ev : r.events) {
        if (auto* h = std::get_if<http::RequestHead>(&ev)) {
          head = std::move(*h);
          body.clear();
        } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
          body.append(b->data);
        } else if (std::get_if<http::MessageEnd>(&ev)) {
          if (!head) __builtin_trap();  // an end without a head
          handle(f, *head, body);
          head.reset();
          ended = true;
        }
      }
      in.erase(0, r.consumed);
      if (r.stop == http::StopReason::Upgrade) {
        if (head) handle(f, *head, body);
        return 0;  // the connection closes after the 426
      }
      if (r.stop == http::StopReason::Error) {
        if (!r.error) __builtin_trap();
        int status = r.error->httpStatus();
        if (status != 400 && status != 413 && status != 431) __builtin_trap();
        render(ApiShape::kOpenAI, GatewayError::invalidRequest(r.error->message));
        return 0;  // the connection closes after the error
      }
      if (r.stop == http::StopReason::NeedMore || (!ended && r.consumed == 0)) break;
    }
  }
  return 0;
}
