// Fuzz target: the usage tap on arbitrary provider responses, the cost arithmetic on whatever it
// extracts, and the price-table parser on arbitrary files. On every body that is valid JSON the
// tap's skimming reader must give the same document as the full SAX reader
// (usage_document.h). Any crash, sanitizer report or escaped
// exception is a bug: provider bytes may only ever produce counters and "unknown".
//
// Input layout (so that seeds stay readable):
//   byte 0   bits 0-1 API kind, bit 2 SSE (else JSON), bit 3 small bound (256 bytes);
//            0xF0 and above: the rest is a price file for PriceTable::parse
//   byte 1   JSON: chunk size for onBody (1-64); SSE: ignored
//   rest     JSON: the body. SSE: one event per '\n'-terminated line, "name<TAB>data"
//            (no TAB: unnamed event)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/usage/pricing.h"
#include "proxy/usage/usage.h"
#include "proxy/usage/usage_document.h"
#include "tests/fuzz/fuzz_events.h"

namespace {

using namespace gatehouse::proxy;

const PriceTable& fuzzTable() {
  static const std::shared_ptr<const PriceTable> table = [] {
    PriceSource src{"fuzz.json", R"({
      "providers": {
        "anthropic": {
          "cache_multipliers": {"cache_read": "0.1", "cache_write_5m": "1.25", "cache_write_1h": "2"},
          "models": {"*": {"input": "3", "output": "15", "web_search_per_request": "0.01",
                           "long_context": {"above_input_tokens": 200000, "input": "6",
                                            "output": "22.5"}}}},
        "openai": {"models": {"*": {"input": "1.25", "output": "10", "cache_read": "0.125",
                                    "service_tiers": {"priority": {"input": "2.5",
                                                                   "output": "20"}}}}}}})"};
    auto t = PriceTable::parse(src, nullptr);
    if (!t.isOk()) __builtin_trap();
    return t.value();
  }();
  return *table;
}

void checkUsage(const Usage& u) {
  for (int64_t v : {u.input, u.output, u.cache_read, u.cache_write_5m, u.cache_write_1h,
                    u.reasoning, u.web_search_requests}) {
    if (v < 0 || v > kMaxTokens) __builtin_trap();
  }
}

void fuzzPriceFile(std::string_view text) {
  auto t = PriceTable::parse({"fuzz.json", std::string(text)}, nullptr);
  if (!t.isOk()) {
    if (t.status().message().empty()) __builtin_trap();
    return;
  }
  Usage u{.input = 250000,
          .output = 10,
          .cache_read = 5,
          .cache_write_5m = 7,
          .cache_write_1h = 9,
          .web_search_requests = 1,
          .service_tier = "priority",
          .present = true};
  for (const char* provider : {"anthropic", "openai", "p"}) {
    for (const char* model : {"claude-sonnet-4-5", "gpt-5", "m", ""}) {
      Cost c = t.value()->cost(provider, model, u);
      if (c.known && c.nanos < 0) __builtin_trap();
      (void)formatUsd(c.nanos);
    }
  }
}

// The skim may accept more than the full reader (it does not validate what it steps over), never
// less, and on valid JSON it reads the same document.
void compareReaders(std::string_view text) {
  if (!nlohmann::json::accept(text)) return;
  nlohmann::json skimmed, full;
  if (!readUsageDocument(text, skimmed) || !readUsageDocumentFull(text, full)) __builtin_trap();
  if (skimmed != full) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (data[0] >= 0xF0) {
    fuzzPriceFile(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
    return 0;
  }
  auto kind = static_cast<ApiKind>(data[0] & 3);
  bool sse = data[0] & 4;
  UsageTapOptions options;
  if (data[0] & 8) options.max_body_bytes = 256;
  UsageTap tap(kind, sse ? BodyMode::kSse : BodyMode::kJson, options);
  if (sse) {
    gatehouse::fuzz::forEachEventLine(rest, [&](std::string_view name, std::string_view payload) {
      tap.onSseEvent(name, payload);
      checkUsage(tap.result().usage);
    });
  } else {
    compareReaders(rest);
    size_t chunk = 1 + data[1] % 64;
    for (size_t at = 0; at < rest.size(); at += chunk) tap.onBody(rest.substr(at, chunk));
  }
  const TapResult& r = tap.finish();
  checkUsage(r.usage);
  if (r.model.size() > 256 || r.response_id.size() > 256 || r.stop_reason.size() > 256) {
    __builtin_trap();
  }
  Cost c = costOfResponse(fuzzTable(), providerOf(kind), "fallback-model", r);
  if (c.known && c.nanos < 0) __builtin_trap();
  return 0;
}
