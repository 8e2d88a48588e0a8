// Usage tap: per-provider extraction and normalization. See usage.h for the contract and the
// normalization table.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "proxy/usage/usage.h"
#include "proxy/usage/usage_document.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

// Strings copied out of a response are identifiers; a longer value is a malformed or hostile
// response and is cut so that log rows stay small.
constexpr size_t kMaxFieldBytes = 256;

bool parseJson(std::string_view text, json& out, TapStats& stats) {
  if (!readUsageDocument(text, out)) {
    ++stats.parse_errors;
    return false;
  }
  ++stats.parsed;
  return true;
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const json* objectAt(const json& obj, const char* key) {
  const json* v = member(obj, key);
  return v && v->is_object() ? v : nullptr;
}

// A token count: a non-negative integer up to kMaxTokens. Anything else (null, negative, text,
// fractions, absurd sizes) is treated as absent rather than trusted.
std::optional<int64_t> tokens(const json& obj, const char* key) {
  const json* v = member(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) {
    uint64_t n = v->get<uint64_t>();
    if (n > static_cast<uint64_t>(kMaxTokens)) return std::nullopt;
    return static_cast<int64_t>(n);
  }
  if (v->is_number_integer()) {
    int64_t n = v->get<int64_t>();
    if (n < 0 || n > kMaxTokens) return std::nullopt;
    return n;
  }
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (!(d >= 0 && d <= static_cast<double>(kMaxTokens)) || d != std::floor(d)) {
      return std::nullopt;
    }
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string text(const json& obj, const char* key) {
  const json* v = member(obj, key);
  if (!v || !v->is_string()) return {};
  const std::string& s = v->get_ref<const std::string&>();
  return s.size() <= kMaxFieldBytes ? s : s.substr(0, kMaxFieldBytes);
}

void setIfEmpty(std::string& field, std::string value) {
  if (field.empty()) field = std::move(value);
}

void setIfPresent(std::string& field, std::string value) {
  if (!value.empty()) field = std::move(value);
}

// Anthropic cache writes. `total` is cache_creation_input_tokens, `w5`/`w1` the per-TTL split;
// each may be absent. Fields not mentioned keep their earlier value (message_delta semantics).
void applyCacheWrites(std::optional<int64_t> total, std::optional<int64_t> w5,
                      std::optional<int64_t> w1, Usage& u) {
  if (w5) u.cache_write_5m = *w5;
  if (w1) u.cache_write_1h = *w1;
  if (total && *total != u.cacheWrite()) {
    // The total is the older, always-sent field; 5m is the default TTL, so it absorbs the rest.
    u.cache_write_1h = std::min(u.cache_write_1h, *total);
    u.cache_write_5m = *total - u.cache_write_1h;
  }
}

// An Anthropic `usage` object, from a body, message_start or message_delta. Present fields
// replace earlier values; delta values are cumulative, never added.
void applyAnthropicUsage(const json& obj, Usage& u) {
  if (!obj.is_object()) return;
  u.present = true;
  if (auto v = tokens(obj, "input_tokens")) u.input = *v;
  if (auto v = tokens(obj, "cache_read_input_tokens")) u.cache_read = *v;
  std::optional<int64_t> w5, w1;
  if (const json* split = objectAt(obj, "cache_creation")) {
    w5 = tokens(*split, "ephemeral_5m_input_tokens");
    w1 = tokens(*split, "ephemeral_1h_input_tokens");
  }
  applyCacheWrites(tokens(obj, "cache_creation_input_tokens"), w5, w1, u);
  if (auto v = tokens(obj, "output_tokens")) u.output = *v;
  if (const json* details = objectAt(obj, "output_tokens_details")) {
    if (auto v = tokens(*details, "thinking_tokens")) u.reasoning = *v;
  }
  if (const json* server = objectAt(obj, "server_tool_use")) {
    if (auto v = tokens(*server, "web_search_requests")) u.web_search_requests = *v;
  }
  setIfPresent(u.service_tier, text(obj, "service_tier"));
}

// Chat and Responses name the same quantities differently.
struct OpenAiUsageNames {
  const char* input;
  const char* input_details;
  const char* output;
  const char* output_details;
};
constexpr OpenAiUsageNames kChatNames{"prompt_tokens", "prompt_tokens_details", "completion_tokens",
                                      "completion_tokens_details"};
constexpr OpenAiUsageNames kResponsesNames{"input_tokens", "input_tokens_details", "output_tokens",
                                           "output_tokens_details"};

// An OpenAI `usage` object. It arrives once and complete, so it replaces every token field.
// The input count includes cached tokens: subtract them once here, never again in pricing.
void applyOpenAiUsage(const json& obj, const OpenAiUsageNames& names, Usage& u) {
  if (!obj.is_object()) return;  // "usage": null on every Chat chunk but the last
  int64_t prompt = tokens(obj, names.input).value_or(0);
  int64_t cached = 0;
  if (const json* details = objectAt(obj, names.input_details)) {
    cached = std::min(tokens(*details, "cached_tokens").value_or(0), prompt);
  }
  int64_t reasoning = 0;
  if (const json* details = objectAt(obj, names.output_details)) {
    reasoning = tokens(*details, "reasoning_tokens").value_or(0);
  }
  int64_t web_searches = u.web_search_requests;
  std::string tier = std::move(u.service_tier);
  u = Usage{};
  u.present = true;
  u.input = prompt - cached;
  u.cache_read = cached;
  u.output = tokens(obj, names.output).value_or(0);
  u.reasoning = reasoning;
  u.web_search_requests = web_searches;
  u.service_tier = std::move(tier);
}

// Whether `quoted_key` occurs in `data` with a value other than null. A cheap test that lets the
// Chat tap skip parsing the many content chunks that carry `"usage": null, "finish_reason":
// null`. It can only err towards parsing (a key inside a string), which costs time, not accuracy.
bool hasNonNull(std::string_view data, std::string_view quoted_key) {
  auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  for (size_t at = data.find(quoted_key); at != std::string_view::npos;
       at = data.find(quoted_key, at + 1)) {
    size_t i = at + quoted_key.size();
    while (i < data.size() && isSpace(data[i])) ++i;
    if (i >= data.size() || data[i] != ':') continue;
    ++i;
    while (i < data.size() && isSpace(data[i])) ++i;
    if (data.substr(i, 4) != "null") return true;
  }
  return false;
}

// The event's type: the SSE event name when it has a useful one, else the data's "type" field
// (Chat chunks, and Anthropic events carried without SSE names as in Bedrock InvokeModel).
std::string_view eventType(std::string_view name, const json* doc) {
  if (!name.empty() && name != "message") return name;
  if (doc) {
    const json* type = member(*doc, "type");
    if (type && type->is_string()) return type->get_ref<const std::string&>();
  }
  return {};
}

}  // namespace

std::string_view providerOf(ApiKind kind) {
  switch (kind) {
    case ApiKind::kAnthropicMessages:
    case ApiKind::kAnthropicCountTokens:
      return "anthropic";
    case ApiKind::kOpenAiChat:
    case ApiKind::kOpenAiResponses:
      return "openai";
  }
  return "unknown";
}

std::string_view tapEndName(TapEnd end) {
  switch (end) {
    case TapEnd::kPartial:
      return "partial";
    case TapEnd::kCompleted:
      return "completed";
    case TapEnd::kIncomplete:
      return "incomplete";
    case TapEnd::kFailed:
      return "failed";
    case TapEnd::kError:
      return "error";
  }
  return "unknown";
}

UsageTap::UsageTap(ApiKind kind, BodyMode mode, UsageTapOptions options)
    : kind_(kind), mode_(mode), options_(options) {
  result_.billable = kind != ApiKind::kAnthropicCountTokens;
}

void UsageTap::onBody(std::string_view bytes) {
  if (finished_) return;
  if (mode_ != BodyMode::kJson) {
    ++stats_.wrong_mode;
    return;
  }
  if (result_.overflow || kind_ == ApiKind::kAnthropicCountTokens) return;
  if (bytes.size() > options_.max_body_bytes - body_.size()) {
    // Past the bound the body is never parsed: release what is held and report usage unknown.
    result_.overflow = true;
    ++stats_.oversized;
    std::string().swap(body_);
    return;
  }
  body_.append(bytes);
}

const TapResult& UsageTap::finish() {
  if (finished_) return result_;
  finished_ = true;
  if (mode_ == BodyMode::kJson) {
    if (kind_ == ApiKind::kAnthropicCountTokens) {
      result_.end = TapEnd::kCompleted;
    } else if (!result_.overflow) {
      parseBody();
    }
    std::string().swap(body_);
  }
  return result_;
}

// Handlers shared by JSON bodies and stream events.
namespace {

void anthropicMessage(const json& msg, TapResult& r) {
  setIfEmpty(r.response_id, text(msg, "id"));
  setIfEmpty(r.model, text(msg, "model"));
  setIfPresent(r.stop_reason, text(msg, "stop_reason"));
  if (const json* usage = member(msg, "usage")) applyAnthropicUsage(*usage, r.usage);
}

// {"type":"error","error":{"type":"overloaded_error",...}} (Anthropic) or {"error":{...}}
// (OpenAI). Returns whether `doc` was an error.
bool errorDocument(const json& doc, TapResult& r) {
  const json* err = objectAt(doc, "error");
  if (!err) return false;
  std::string type = text(*err, "type");
  if (type.empty()) type = text(*err, "code");
  r.error_type = type.empty() ? "error" : type;
  r.end = TapEnd::kError;
  return true;
}

void chatChunk(const json& doc, TapResult& r) {
  setIfEmpty(r.response_id, text(doc, "id"));
  setIfEmpty(r.model, text(doc, "model"));
  setIfPresent(r.usage.service_tier, text(doc, "service_tier"));
  if (const json* choices = member(doc, "choices"); choices && choices->is_array()) {
    for (const json& choice : *choices) {
      std::string reason = text(choice, "finish_reason");
      if (!reason.empty()) {
        r.stop_reason = std::move(reason);
        break;
      }
    }
  }
  if (const json* usage = member(doc, "usage")) applyOpenAiUsage(*usage, kChatNames, r.usage);
}

// Responses statuses (and response.* event suffixes) that end a response.
TapEnd endOfStatus(std::string_view status) {
  if (status == "completed") return TapEnd::kCompleted;
  if (status == "incomplete") return TapEnd::kIncomplete;
  if (status == "failed") return TapEnd::kFailed;
  return TapEnd::kPartial;
}

// A Responses `response` object (JSON body or the payload of a response.* event). Its status
// decides how it ended; only terminal statuses carry usage.
void responseObject(const json& resp, TapEnd end, TapResult& r) {
  setIfEmpty(r.response_id, text(resp, "id"));
  setIfEmpty(r.model, text(resp, "model"));
  setIfPresent(r.usage.service_tier, text(resp, "service_tier"));
  r.end = end;
  if (end == TapEnd::kPartial) return;  // created / queued / in_progress: nothing to account yet
  std::string status = text(resp, "status");
  if (const json* err = objectAt(resp, "error"); err && end == TapEnd::kFailed) {
    r.error_type = text(*err, "code");
    if (r.error_type.empty()) r.error_type = text(*err, "type");
  }
  std::string reason;
  if (const json* details = objectAt(resp, "incomplete_details")) reason = text(*details, "reason");
  if (reason.empty()) reason = status.empty() ? std::string(tapEndName(end)) : status;
  r.stop_reason = std::move(reason);
  // Hosted web searches are billed per call; each appears as an output item.
  if (const json* output = member(resp, "output"); output && output->is_array()) {
    int64_t searches = 0;
    for (const json& item : *output) searches += text(item, "type") == "web_search_call";
    r.usage.web_search_requests = searches;
  }
  if (const json* usage = member(resp, "usage")) applyOpenAiUsage(*usage, kResponsesNames, r.usage);
}

}  // namespace

void UsageTap::parseBody() {
  json doc;
  if (!parseJson(body_, doc, stats_)) return;  // cut short or not JSON: end stays partial
  if (errorDocument(doc, result_) && kind_ != ApiKind::kOpenAiResponses) return;
  switch (kind_) {
    case ApiKind::kAnthropicMessages:
      anthropicMessage(doc, result_);
      result_.end = TapEnd::kCompleted;
      break;
    case ApiKind::kOpenAiChat:
      chatChunk(doc, result_);
      result_.end = TapEnd::kCompleted;
      break;
    case ApiKind::kOpenAiResponses:
      // A response object has "error": null, or an error object when it failed; a bare
      // {"error": {...}} without a status is an HTTP error body.
      if (member(doc, "status")) {
        result_.error_type.clear();
        responseObject(doc, endOfStatus(text(doc, "status")), result_);
      }
      break;
    case ApiKind::kAnthropicCountTokens:
      break;
  }
}

void UsageTap::onSseEvent(std::string_view event_name, std::string_view data) {
  if (finished_) return;
  if (mode_ != BodyMode::kSse) {
    ++stats_.wrong_mode;
    return;
  }
  ++stats_.events;
  if (kind_ == ApiKind::kAnthropicCountTokens) return;
  if (result_.end != TapEnd::kPartial) {
    ++stats_.after_end;
    return;
  }
  if (data.size() > options_.max_body_bytes) {
    result_.overflow = true;
    ++stats_.oversized;
    return;
  }
  switch (kind_) {
    case ApiKind::kAnthropicMessages:
      anthropicEvent(event_name, data);
      break;
    case ApiKind::kOpenAiChat:
      chatEvent(data);
      break;
    case ApiKind::kOpenAiResponses:
      responsesEvent(event_name, data);
      break;
    case ApiKind::kAnthropicCountTokens:
      break;
  }
}

void UsageTap::anthropicEvent(std::string_view name, std::string_view data) {
  // Content deltas are most of a stream and carry nothing to account: skip them unparsed.
  if (name == "content_block_delta" || name == "content_block_start" ||
      name == "content_block_stop" || name == "ping") {
    return;
  }
  if (name == "message_stop") {
    result_.end = TapEnd::kCompleted;
    return;
  }
  json doc;
  if (!parseJson(data, doc, stats_)) return;
  std::string_view type = eventType(name, &doc);
  if (type == "message_start") {
    if (const json* msg = objectAt(doc, "message")) anthropicMessage(*msg, result_);
  } else if (type == "message_delta") {
    if (const json* delta = objectAt(doc, "delta")) {
      setIfPresent(result_.stop_reason, text(*delta, "stop_reason"));
    }
    if (const json* usage = member(doc, "usage")) applyAnthropicUsage(*usage, result_.usage);
  } else if (type == "message_stop") {
    result_.end = TapEnd::kCompleted;
  } else if (type == "error") {
    errorDocument(doc, result_);
  }
}

void UsageTap::chatEvent(std::string_view data) {
  std::string_view trimmed = data;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\r')) {
    trimmed.remove_suffix(1);
  }
  if (trimmed == "[DONE]") {
    result_.end = TapEnd::kCompleted;
    return;
  }
  bool need_ids = result_.model.empty() || result_.response_id.empty();
  if (!need_ids && !hasNonNull(data, "\"usage\"") && !hasNonNull(data, "\"finish_reason\"") &&
      !hasNonNull(data, "\"error\"")) {
    return;
  }
  json doc;
  if (!parseJson(data, doc, stats_)) return;
  if (errorDocument(doc, result_)) return;
  chatChunk(doc, result_);
}

void UsageTap::responsesEvent(std::string_view name, std::string_view data) {
  // Only lifecycle and terminal events carry the response object; deltas are skipped unparsed.
  bool lifecycle =
      name == "response.created" || name == "response.in_progress" || name == "response.queued";
  bool terminal =
      name == "response.completed" || name == "response.incomplete" || name == "response.failed";
  bool unnamed = name.empty() || name == "message";
  if (!lifecycle && !terminal && !unnamed && name != "error") return;
  if (lifecycle && !result_.model.empty() && !result_.response_id.empty()) return;
  json doc;
  if (!parseJson(data, doc, stats_)) return;
  std::string_view type = eventType(name, &doc);
  if (type == "error") {
    // {"type":"error","code":"…","message":"…"}; older shapes nest it under "error".
    if (!errorDocument(doc, result_)) {
      std::string code = text(doc, "code");
      result_.error_type = code.empty() ? "error" : code;
      result_.end = TapEnd::kError;
    }
    return;
  }
  if (type.substr(0, 9) != "response.") return;
  const json* resp = objectAt(doc, "response");
  if (!resp) return;
  // The event type decides, not the embedded status: a lifecycle event is never terminal.
  responseObject(*resp, endOfStatus(type.substr(9)), result_);
}

}  // namespace gatehouse::proxy
