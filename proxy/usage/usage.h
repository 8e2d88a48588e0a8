// Usage tap: reads what the gateway must account for from a copy of an LLM provider's response
// (token usage, the model the provider reports, the response id, the stop reason, and whether the
// response ended properly), and normalizes usage to one shape for every provider.
//
// Normalized usage (llm-wire-formats.md §8). The same meaning for every API kind:
//
//   field           Anthropic Messages                  OpenAI Chat / Responses
//   input           input_tokens (already uncached)     prompt|input_tokens − cached_tokens
//   cache_read      cache_read_input_tokens             *_tokens_details.cached_tokens
//   cache_write_5m  cache_creation.ephemeral_5m_…       0 (no cache writes)
//   cache_write_1h  cache_creation.ephemeral_1h_…       0
//   output          output_tokens (includes thinking)   completion|output_tokens (incl. reasoning)
//   reasoning       output_tokens_details.thinking_…    *_tokens_details.reasoning_tokens
//
//   * `input` never includes cache tokens, so every bucket is priced exactly once and
//     totalInput() = input + cache_read + cache writes is the prompt size for either provider.
//   * `reasoning` is a subset of `output`, for display only: pricing never adds it again.
//   * Anthropic cache writes: the per-TTL split wins when present; if only the total
//     cache_creation_input_tokens is known, it is a 5-minute write (the default TTL). When total
//     and split disagree the total wins, the 1h bucket is kept (clamped) and 5m takes the rest.
//   * OpenAI cached_tokens larger than the prompt (malformed) are clamped to the prompt.
//
// Where usage comes from:
//   JSON bodies   the top-level `usage` (Responses: the response object's `usage`).
//   Anthropic SSE `message_start` (message.usage) then every `message_delta` (usage). Delta values
//                 are cumulative: a field present in a later event replaces the earlier value,
//                 absent fields keep what message_start said (input and cache counts).
//   Chat SSE      the extra final chunk with `usage` (only sent with stream_options.include_usage;
//                 without it usage stays absent, never zero). Stream ends at `data: [DONE]`.
//   Responses SSE the terminal response.completed / response.incomplete / response.failed event.
//
// Feeding: the caller picks BodyMode from the response Content-Type (a streaming request answered
// with a JSON error is a JSON body). JSON bodies arrive through onBody() in any split and are
// parsed at finish(); past UsageTapOptions::max_body_bytes the body is dropped and usage is
// unknown. SSE arrives as already-framed events (name, data) through onSseEvent(); the tap does
// no SSE framing of its own. Documents are read by skimming (usage_document.h): content the tap
// does not use is stepped over, not lexed. Unknown events, fields and item types are ignored;
// malformed input is counted in stats(), never asserted. Events after a terminal event are
// ignored.
//
// Thread safety: one tap per response, used from one thread. Sans-I/O: no sockets, clock or
// threads. The tap copies what it keeps; views passed in need only live for the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::proxy {

// Which provider API produced the response. count_tokens is forwarded but not billed
// (reference §2.4), so its tap extracts nothing and reports billable = false.
enum class ApiKind : uint8_t {
  kAnthropicMessages,
  kAnthropicCountTokens,
  kOpenAiChat,
  kOpenAiResponses,
};

enum class BodyMode : uint8_t { kJson, kSse };

// Provider name used by the price table and in cost bases ("anthropic", "openai").
std::string_view providerOf(ApiKind kind);

// Token counts are capped here on input so that any sum or product in pricing stays exact.
inline constexpr int64_t kMaxTokens = 1'000'000'000'000'000;  // 1e15

struct Usage {
  int64_t input = 0;                // uncached input tokens
  int64_t output = 0;               // billable output tokens, reasoning included
  int64_t cache_read = 0;           // input tokens served from the prompt cache
  int64_t cache_write_5m = 0;       // input tokens written to the cache with a 5-minute TTL
  int64_t cache_write_1h = 0;       // ... with a 1-hour TTL
  int64_t reasoning = 0;            // subset of output (thinking / reasoning tokens)
  int64_t web_search_requests = 0;  // server-tool calls billed per request
  std::string service_tier = {};    // as reported ("standard", "default", "priority", "batch"…)
  bool present = false;             // the response reported usage at all

  int64_t cacheWrite() const { return cache_write_5m + cache_write_1h; }
  // The prompt size: uncached input plus every cache bucket. Long-context tiers key on this.
  int64_t totalInput() const { return input + cache_read + cacheWrite(); }
  bool operator==(const Usage&) const = default;
};

// How the response ended, as far as the tap saw.
enum class TapEnd : uint8_t {
  kPartial,     // no terminal event yet (or the body did not parse): usage is what was seen
  kCompleted,   // message_stop, [DONE], response.completed, or a complete JSON body
  kIncomplete,  // Responses: response.incomplete / status "incomplete" (e.g. max_output_tokens)
  kFailed,      // Responses: response.failed / status "failed"
  kError,       // an error event mid-stream or an error body
};
std::string_view tapEndName(TapEnd end);

struct TapResult {
  Usage usage;
  std::string model;        // as reported by the response (may differ from the request's)
  std::string response_id;  // msg_…, chatcmpl-…, resp_…
  std::string stop_reason;  // stop_reason / finish_reason / incomplete reason or status
  std::string error_type;   // error.type or error.code when end == kError or kFailed
  TapEnd end = TapEnd::kPartial;
  bool billable = true;   // false for count_tokens
  bool overflow = false;  // a body or event was larger than the bound and was dropped
  bool operator==(const TapResult&) const = default;
};

// Counters for the log; malformed provider input is dropped and counted.
struct TapStats {
  uint64_t events = 0;        // SSE events received
  uint64_t parsed = 0;        // JSON documents parsed (bodies and event data)
  uint64_t parse_errors = 0;  // JSON that did not parse
  uint64_t oversized = 0;     // bodies or events over max_body_bytes
  uint64_t after_end = 0;     // events ignored after a terminal event
  uint64_t wrong_mode = 0;    // onBody on an SSE tap or onSseEvent on a JSON tap
};

struct UsageTapOptions {
  // Largest JSON body, and largest single SSE event data, the tap will buffer and parse.
  size_t max_body_bytes = size_t{32} << 20;
};

class UsageTap {
 public:
  UsageTap(ApiKind kind, BodyMode mode, UsageTapOptions options = {});

  // JSON mode: the next bytes of the response body, split anywhere.
  void onBody(std::string_view bytes);
  // SSE mode: one event. `event_name` may be empty (Chat streams have none; the data's "type"
  // field is used instead when it has one). Chat's terminator is data "[DONE]".
  void onSseEvent(std::string_view event_name, std::string_view data);
  // End of the response body (normal or cut short). Idempotent; later input is ignored.
  const TapResult& finish();

  // What has been seen so far; valid at any time (for logging a stream cut short).
  const TapResult& result() const { return result_; }
  const TapStats& stats() const { return stats_; }
  ApiKind kind() const { return kind_; }
  BodyMode mode() const { return mode_; }

 private:
  void parseBody();
  void anthropicEvent(std::string_view name, std::string_view data);
  void chatEvent(std::string_view data);
  void responsesEvent(std::string_view name, std::string_view data);

  ApiKind kind_;
  BodyMode mode_;
  UsageTapOptions options_;
  TapResult result_;
  TapStats stats_;
  std::string body_;  // JSON mode only
  bool finished_ = false;
};

}  // namespace gatehouse::proxy
