// Fuzz target: the guardrail enforcers on arbitrary provider bytes. The stream guards (Anthropic,
// Chat, Responses) on raw SSE bytes, and the JSON guard on a whole body. Provider bytes may only
// ever be forwarded, replaced or passed through: any crash, sanitizer report, escaped exception
// or stall is a bug. Checked besides:
//   - how the bytes were cut does not change what leaves (unless the guard gave up, which
//     depends on where the SSE parser's limit fell);
//   - nothing blocked and nothing passed through: whole events only, so never more bytes leave
//     than came for Anthropic (the only guard that never re-serializes a harmless event);
//   - the JSON guard leaves a body alone unless it blocked something, and a rewrite is JSON.
//
// Input layout (seeds stay readable):
//   byte 0   bits 0-1 API kind (0 Anthropic Messages, 2 Chat, 3 Responses; 1: the JSON guard
//            with the kind in byte 1 bits 6-7), bit 2 small hold bound
//   byte 1   chunk size for feed() (1-64, low 6 bits)
//   rest     the raw SSE stream, or the JSON body
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "proxy/tools/json_guard.h"
#include "proxy/tools/stream_guard.h"

using namespace gatehouse::proxy;
using namespace gatehouse::proxy::tools;

namespace {

ApiKind kindOf(uint8_t bits) {
  switch (bits & 3) {
    case 2:
      return ApiKind::kOpenAiChat;
    case 3:
      return ApiKind::kOpenAiResponses;
    default:
      return ApiKind::kAnthropicMessages;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  static const auto rules = Guardrails::builtin();
  if ((data[0] & 3) == 1) {
    std::string body(rest);
    std::vector<BlockedCall> blocked = guardJsonBody(kindOf(data[1] >> 6), *rules, body);
    if (blocked.empty() && body != rest) __builtin_trap();
    if (!blocked.empty() && !nlohmann::json::accept(body)) __builtin_trap();
    return 0;
  }
  ApiKind kind = kindOf(data[0]);
  size_t bound = (data[0] & 4) ? 256 : size_t{4} << 20;
  auto run = [&](size_t chunk, bool& passthrough, size_t& blocked) {
    std::unique_ptr<StreamGuard> g = makeStreamGuard(kind, rules, bound);
    std::string out;
    for (size_t at = 0; at < rest.size(); at += chunk) out += g->feed(rest.substr(at, chunk));
    out += g->finish();
    passthrough = g->passthrough();
    blocked = g->blocked().size();
    return out;
  };
  bool p1 = false, p2 = false;
  size_t b1 = 0, b2 = 0;
  std::string cut = run(1 + data[1] % 64, p1, b1);
  std::string whole = run(rest.empty() ? 1 : rest.size(), p2, b2);
  if (!p1 && !p2 && (cut != whole || b1 != b2)) __builtin_trap();
  if (kind == ApiKind::kAnthropicMessages && b1 == 0 && !p1 && cut.size() > rest.size()) {
    __builtin_trap();
  }
  return 0;
}
