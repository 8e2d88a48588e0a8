// Fuzz target: the tool-call tap on arbitrary provider responses and the result reader on
// arbitrary request bodies. Provider and client bytes may only ever produce records and counters:
// any crash, sanitizer report or escaped exception is a bug, and so is a call reported twice or
// past the bound.
//
// Input layout (seeds stay readable, as in usage_tap_fuzz.cc):
//   byte 0   bits 0-1 API kind, bit 2 SSE (else JSON), bit 3 small bounds, bit 4 request body,
//            bit 5 raw SSE bytes through the Anthropic stream guard
//   byte 1   JSON: chunk size for onBody (1-64); SSE: ignored
//   rest     JSON: the body. SSE: one event per '\n'-terminated line, "name<TAB>data"
//            (no TAB: unnamed event). Request body: the text given to extractToolResults.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "proxy/tools/stream_guard.h"
#include "proxy/tools/tool_results.h"
#include "proxy/tools/tool_tap.h"
#include "tests/fuzz/fuzz_events.h"

using namespace gatehouse::proxy;
using namespace gatehouse::proxy::tools;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  auto kind = static_cast<ApiKind>(data[0] & 3);
  if (data[0] & 32) {
    // The stream guard on raw SSE bytes in chunks of 1-64: without a blocked call, a holding
    // guard or passthrough, what leaves is exactly what came in.
    AnthropicStreamGuard guard(Guardrails::builtin(), (data[0] & 8) ? 64 : size_t{4} << 20);
    std::string out;
    size_t chunk = 1 + data[1] % 64;
    for (size_t at = 0; at < rest.size(); at += chunk) out += guard.feed(rest.substr(at, chunk));
    out += guard.finish();
    if (guard.blocked().empty() && out.size() > rest.size()) __builtin_trap();
    return 0;
  }
  if (data[0] & 16) {
    std::set<std::string> ids;
    for (const ToolResult& r : extractToolResults(kind, rest)) {
      if (r.call_id.empty() || !ids.insert(r.call_id).second || r.size < 0) __builtin_trap();
    }
    return 0;
  }
  bool sse = data[0] & 4;
  ToolTapOptions options;
  if (data[0] & 8) {
    options.max_body_bytes = 256;
    options.max_argument_bytes = 32;
    options.max_calls = 3;
  }
  ToolTap tap(kind, sse ? BodyMode::kSse : BodyMode::kJson, options);
  if (sse) {
    gatehouse::fuzz::forEachEventLine(rest, [&](std::string_view name, std::string_view payload) {
      tap.onSseEvent(name, payload);
    });
  } else {
    size_t chunk = 1 + data[1] % 64;
    for (size_t at = 0; at < rest.size(); at += chunk) tap.onBody(rest.substr(at, chunk));
  }
  const auto& calls = tap.finish();
  if (calls.size() > options.max_calls) __builtin_trap();
  std::set<std::string> ids;
  for (const ToolCall& c : calls) {
    if (!c.call_id.empty() && !ids.insert(c.call_id).second) __builtin_trap();
    if (c.arguments.size() > options.max_argument_bytes) __builtin_trap();
    (void)toJson(c).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return 0;
}
