// Fuzz target: the pre_request hook's answer parser (proxy/hooks/hook_payload.h) on arbitrary
// bytes, and the request summary on the same bytes taken as a request body. Any crash, sanitizer
// report or escaped exception is a bug; so is a failure without a reason, a modify whose body is
// not a JSON object, or a summary that is not a JSON object.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "proxy/hooks/hook_payload.h"

using namespace gatehouse::proxy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = parseHookAnswer(text);
  if (!a) {
    if (a.status().message().empty()) __builtin_trap();
  } else if (a->action == HookAnswer::Action::kModify) {
    auto body = nlohmann::json::parse(a->body, nullptr, false);
    if (!body.is_object()) __builtin_trap();
  }
  auto summary = nlohmann::json::parse(requestSummaryJson(text), nullptr, false);
  if (!summary.is_object()) __builtin_trap();
  PreRequestInfo info;
  info.model = std::string(text.substr(0, 64));
  (void)preRequestPayload(info, text, size % 2 == 0);
  return 0;
}
