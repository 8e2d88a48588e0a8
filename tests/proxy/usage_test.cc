// UsageTap: golden extraction from JSON bodies and SSE streams built from the documented wire
// formats (tests/proxy/fixtures/usage/), any split of the input, partial streams, hostile input,
// and the streaming cost pitfalls end to end (tap → price table).
#include "proxy/usage/usage.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "proxy/usage/pricing.h"
#include "proxy/usage/usage_document.h"

namespace gatehouse::proxy {

// Readable failures for whole-Usage comparisons.
void PrintTo(const Usage& u, std::ostream* os) {
  *os << "{input " << u.input << ", output " << u.output << ", cache_read " << u.cache_read
      << ", 5m " << u.cache_write_5m << ", 1h " << u.cache_write_1h << ", reasoning " << u.reasoning
      << ", web_search " << u.web_search_requests << ", tier '" << u.service_tier << "', present "
      << u.present << "}";
}

namespace {

const std::string kFixtures = std::string(GATEHOUSE_SOURCE_DIR) + "/tests/proxy/fixtures/usage/";

std::string fixture(const std::string& name) {
  std::ifstream in(kFixtures + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Event {
  std::string name;
  std::string data;
};

// A small SSE framer for the tests only (the gateway's parser is proxy/http's): bytes split
// anywhere in, events out. LF or CRLF line ends, multi-line data, comments.
class TestSse {
 public:
  void feed(std::string_view bytes, std::vector<Event>& out) {
    for (char c : bytes) {
      if (c != '\n') {
        line_ += c;
        continue;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      takeLine(out);
      line_.clear();
    }
  }

 private:
  void takeLine(std::vector<Event>& out) {
    if (line_.empty()) {
      if (has_data_) out.push_back({name_, data_});
      name_.clear();
      data_.clear();
      has_data_ = false;
      return;
    }
    if (line_[0] == ':') return;
    size_t colon = line_.find(':');
    std::string field = line_.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line_.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "event") name_ = value;
    if (field == "data") {
      data_ += (has_data_ ? "\n" : "") + value;
      has_data_ = true;
    }
  }

  std::string line_, name_, data_;
  bool has_data_ = false;
};

std::vector<Event> events(const std::string& text) {
  std::vector<Event> out;
  TestSse().feed(text, out);
  return out;
}

// Feeds `text` in random pieces (seed 0: all at once) through the framer into a tap.
TapResult runSse(ApiKind kind, const std::string& text, unsigned seed = 0) {
  UsageTap tap(kind, BodyMode::kSse);
  TestSse sse;
  std::mt19937 rng(seed);
  for (size_t at = 0; at < text.size();) {
    size_t n = seed == 0 ? text.size() : 1 + rng() % 40;
    std::vector<Event> out;
    sse.feed(std::string_view(text).substr(at, n), out);
    for (const Event& e : out) tap.onSseEvent(e.name, e.data);
    at += n;
  }
  return tap.finish();
}

TapResult runJson(ApiKind kind, const std::string& body, size_t piece = 0,
                  UsageTapOptions options = {}) {
  UsageTap tap(kind, BodyMode::kJson, options);
  if (piece == 0) piece = body.size() + 1;
  for (size_t at = 0; at < body.size(); at += piece)
    tap.onBody(std::string_view(body).substr(at, piece));
  return tap.finish();
}

// The identity fields every golden test checks.
void expectIdentity(const TapResult& r, TapEnd end, std::string_view model, std::string_view id,
                    std::string_view stop_reason) {
  EXPECT_EQ(r.end, end);
  EXPECT_EQ(r.model, model);
  EXPECT_EQ(r.response_id, id);
  EXPECT_EQ(r.stop_reason, stop_reason);
}

// ---- JSON bodies ----

TEST(UsageTapJson, AnthropicMessageEveryField) {
  TapResult r = runJson(ApiKind::kAnthropicMessages, fixture("anthropic_message.json"));
  expectIdentity(r, TapEnd::kCompleted, "claude-sonnet-4-5-20250929",
                 "msg_01XFDUDYJgAACzvnptvVoYEL", "end_turn");
  EXPECT_TRUE(r.billable);
  // input is uncached only: cache tokens are not in input_tokens.
  EXPECT_EQ(r.usage, (Usage{.input = 2095,
                            .output = 503,
                            .cache_read = 10000,
                            .cache_write_5m = 2000,
                            .cache_write_1h = 1000,
                            .reasoning = 321,
                            .web_search_requests = 2,
                            .service_tier = "standard",
                            .present = true}));
  EXPECT_EQ(r.usage.totalInput(), 2095 + 10000 + 3000);
}

TEST(UsageTapJson, AnthropicTotalWithoutSplitIsFiveMinuteWrite) {
  TapResult r = runJson(ApiKind::kAnthropicMessages, fixture("anthropic_message_total_only.json"));
  EXPECT_EQ(r.stop_reason, "tool_use");
  EXPECT_EQ(r.usage, (Usage{.input = 50, .output = 70, .cache_write_5m = 4000, .present = true}));
}

TEST(UsageTapJson, AnthropicSplitDisagreeingWithTotal) {
  // The total wins; the 1h bucket is kept and 5m absorbs the difference.
  TapResult r = runJson(ApiKind::kAnthropicMessages,
                        R"({"usage":{"input_tokens":1,"cache_creation_input_tokens":900,)"
                        R"("cache_creation":{"ephemeral_5m_input_tokens":100,)"
                        R"("ephemeral_1h_input_tokens":300},"output_tokens":2}})");
  EXPECT_EQ(r.usage.cache_write_1h, 300);
  EXPECT_EQ(r.usage.cache_write_5m, 600);
  r = runJson(ApiKind::kAnthropicMessages,
              R"({"usage":{"cache_creation_input_tokens":200,)"
              R"("cache_creation":{"ephemeral_1h_input_tokens":300}}})");
  EXPECT_EQ(r.usage.cache_write_1h, 200);
  EXPECT_EQ(r.usage.cache_write_5m, 0);
}

TEST(UsageTapJson, ErrorBodies) {
  TapResult a = runJson(ApiKind::kAnthropicMessages, fixture("anthropic_error.json"));
  EXPECT_EQ(a.end, TapEnd::kError);
  EXPECT_EQ(a.error_type, "overloaded_error");
  EXPECT_FALSE(a.usage.present);
  for (ApiKind kind : {ApiKind::kOpenAiChat, ApiKind::kOpenAiResponses}) {
    TapResult o = runJson(kind, fixture("openai_error.json"));
    EXPECT_EQ(o.end, TapEnd::kError);
    EXPECT_EQ(o.error_type, "invalid_request_error");
  }
}

TEST(UsageTapJson, CountTokensIsNotBilled) {
  TapResult r = runJson(ApiKind::kAnthropicCountTokens, fixture("anthropic_count_tokens.json"));
  EXPECT_FALSE(r.billable);
  EXPECT_FALSE(r.usage.present);
  EXPECT_EQ(r.end, TapEnd::kCompleted);
}

TEST(UsageTapJson, OpenAiChatSubtractsCachedTokensOnce) {
  TapResult r = runJson(ApiKind::kOpenAiChat, fixture("openai_chat.json"));
  expectIdentity(r, TapEnd::kCompleted, "gpt-5-2025-08-07",
                 "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "stop");
  // Output includes the 192 reasoning tokens.
  EXPECT_EQ(r.usage, (Usage{.input = 2006 - 1920,
                            .output = 300,
                            .cache_read = 1920,
                            .reasoning = 192,
                            .service_tier = "default",
                            .present = true}));
  EXPECT_EQ(r.usage.totalInput(), 2006);
}

TEST(UsageTapJson, ResponsesBody) {
  TapResult r = runJson(ApiKind::kOpenAiResponses, fixture("openai_responses.json"));
  expectIdentity(r, TapEnd::kCompleted, "gpt-5-mini-2025-08-07",
                 "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41", "completed");
  EXPECT_EQ(r.error_type, "");
  EXPECT_EQ(r.usage, (Usage{.input = 904,
                            .output = 1200,
                            .cache_read = 4096,
                            .reasoning = 1024,
                            .web_search_requests = 1,
                            .service_tier = "default",
                            .present = true}));
}

// The tap materializes only what it reads (usage_tap.cc UsageDom); what it skips must still
// behave as in the full document: a skipped value still occupies its key, and the last of
// duplicate keys wins whatever their types.
TEST(UsageTapJson, SkippedPartsKeepTheDocumentsMeaning) {
  // A later "usage" that is not an object replaces the earlier one: no usage.
  TapResult r = runJson(ApiKind::kAnthropicMessages,
                        R"({"id":"m1","model":"claude-x","usage":{"input_tokens":5},)"
                        R"("content":[{"type":"text","text":"hi"}],"usage":[1]})");
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_FALSE(r.usage.present);
  // A container where a string was: the later value wins, so no model.
  r = runJson(ApiKind::kAnthropicMessages,
              R"({"id":"m2","model":"claude-x","model":{"name":"y"},"stop_reason":"end_turn"})");
  EXPECT_EQ(r.model, "");
  EXPECT_EQ(r.stop_reason, "end_turn");
  // ... and the other way round.
  r = runJson(ApiKind::kAnthropicMessages, R"({"id":"m3","model":["y"],"model":"claude-z"})");
  EXPECT_EQ(r.model, "claude-z");
  // Responses: "output" replaced by an object counts no web search; nested content is skipped
  // but each item's type is read.
  std::string search = R"({"type":"web_search_call","action":{"query":"q"}})";
  std::string msg = R"({"type":"message","content":[{"type":"output_text","text":"x"}]})";
  r = runJson(ApiKind::kOpenAiResponses,
              R"({"id":"r1","status":"completed","model":"gpt-5","output":[)" + search + "," +
                  search + "," + msg + R"(],"usage":{"input_tokens":10,"output_tokens":2}})");
  EXPECT_EQ(r.usage.web_search_requests, 2);
  EXPECT_EQ(r.usage.input, 10);
  r = runJson(ApiKind::kOpenAiResponses, R"({"id":"r2","status":"completed","output":[)" + search +
                                             R"(],"output":{"a":[1]}})");
  EXPECT_EQ(r.usage.web_search_requests, 0);
  // Chat: a large message is skipped, finish_reason read from its choice.
  r = runJson(ApiKind::kOpenAiChat,
              R"({"id":"c1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant",)"
              R"("content":")" +
                  std::string(100'000, 'a') +
                  R"("},"finish_reason":"length"}],"usage":{"prompt_tokens":7,)"
                  R"("completion_tokens":3}})");
  EXPECT_EQ(r.stop_reason, "length");
  EXPECT_EQ(r.usage.input, 7);
  EXPECT_EQ(r.usage.output, 3);
  // A top-level array or scalar parses (the body is JSON) and reads nothing.
  r = runJson(ApiKind::kOpenAiChat, R"([{"usage":{"prompt_tokens":1}}])");
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_FALSE(r.usage.present);
}

TEST(UsageTapJson, ResponsesStillRunningIsPartial) {
  // background: true answers with status "in_progress" and no usage yet.
  TapResult r = runJson(ApiKind::kOpenAiResponses,
                        R"({"id":"resp_bg","object":"response","status":"in_progress",)"
                        R"("error":null,"model":"gpt-5","usage":null})");
  EXPECT_EQ(r.end, TapEnd::kPartial);
  EXPECT_EQ(r.response_id, "resp_bg");
  EXPECT_FALSE(r.usage.present);
}

TEST(UsageTapJson, AnySplitGivesTheSameResult) {
  const std::pair<ApiKind, const char*> cases[] = {
      {ApiKind::kAnthropicMessages, "anthropic_message.json"},
      {ApiKind::kAnthropicMessages, "anthropic_error.json"},
      {ApiKind::kOpenAiChat, "openai_chat.json"},
      {ApiKind::kOpenAiResponses, "openai_responses.json"},
  };
  for (const auto& [kind, name] : cases) {
    std::string body = fixture(name);
    TapResult whole = runJson(kind, body);
    EXPECT_EQ(runJson(kind, body, 1), whole) << name;
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      UsageTap tap(kind, BodyMode::kJson);
      tap.onBody(std::string_view(body).substr(0, cut));
      tap.onBody(std::string_view(body).substr(cut));
      ASSERT_EQ(tap.finish(), whole) << name << " cut at " << cut;
    }
  }
}

TEST(UsageTapJson, OverBoundBodyMakesUsageUnknown) {
  std::string body = fixture("anthropic_message.json");
  TapResult fits = runJson(ApiKind::kAnthropicMessages, body, 7, {.max_body_bytes = body.size()});
  EXPECT_TRUE(fits.usage.present);
  EXPECT_FALSE(fits.overflow);

  UsageTap tap(ApiKind::kAnthropicMessages, BodyMode::kJson, {.max_body_bytes = body.size() - 1});
  for (char c : body) tap.onBody(std::string_view(&c, 1));
  const TapResult& r = tap.finish();
  EXPECT_TRUE(r.overflow);
  EXPECT_FALSE(r.usage.present);
  EXPECT_EQ(r.end, TapEnd::kPartial);
  EXPECT_EQ(tap.stats().oversized, 1u);
}

TEST(UsageTapJson, CutOrGarbageBodyIsPartial) {
  std::string body = fixture("openai_chat.json");
  UsageTap tap(ApiKind::kOpenAiChat, BodyMode::kJson);
  tap.onBody(std::string_view(body).substr(0, body.size() / 2));
  EXPECT_EQ(tap.finish().end, TapEnd::kPartial);
  EXPECT_FALSE(tap.result().usage.present);
  EXPECT_EQ(tap.stats().parse_errors, 1u);
  EXPECT_EQ(runJson(ApiKind::kAnthropicMessages, "\xff\xfe not json").end, TapEnd::kPartial);
  EXPECT_EQ(runJson(ApiKind::kAnthropicMessages, "").end, TapEnd::kPartial);
}

TEST(UsageTapJson, HostileValuesAreIgnoredNotTrusted) {
  TapResult r =
      runJson(ApiKind::kAnthropicMessages,
              R"({"id":["x"],"model":7,"stop_reason":{},"usage":{"input_tokens":-5,)"
              R"("cache_read_input_tokens":"100","output_tokens":1.5,"cache_creation":[],)"
              R"("cache_creation_input_tokens":1e30,"output_tokens_details":null,)"
              R"("server_tool_use":{"web_search_requests":18446744073709551615}}})");
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_TRUE(r.usage.present);
  EXPECT_EQ(r.usage, (Usage{.present = true}));
  EXPECT_EQ(r.model, "");
  // Over-long identifiers are cut.
  std::string long_model(10000, 'm');
  r = runJson(ApiKind::kOpenAiChat, R"({"model":")" + long_model +
                                        R"(","usage":{"prompt_tokens":)"
                                        R"(5,"prompt_tokens_details":{"cached_tokens":9}}})");
  EXPECT_EQ(r.model.size(), 256u);
  EXPECT_EQ(r.usage.input, 0);  // cached clamped to the prompt
  EXPECT_EQ(r.usage.cache_read, 5);
}

TEST(UsageTapJson, WrongModeIsCountedAndIgnored) {
  UsageTap json_tap(ApiKind::kOpenAiChat, BodyMode::kJson);
  json_tap.onSseEvent("", "data");
  EXPECT_EQ(json_tap.stats().wrong_mode, 1u);
  UsageTap sse_tap(ApiKind::kOpenAiChat, BodyMode::kSse);
  sse_tap.onBody("{}");
  EXPECT_EQ(sse_tap.stats().wrong_mode, 1u);
  EXPECT_EQ(sse_tap.finish().end, TapEnd::kPartial);
}

// ---- SSE streams ----

TEST(UsageTapSse, AnthropicStream) {
  UsageTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse);
  for (const Event& e : events(fixture("anthropic_stream.sse"))) tap.onSseEvent(e.name, e.data);
  const TapResult& r = tap.finish();
  expectIdentity(r, TapEnd::kCompleted, "claude-sonnet-4-5-20250929",
                 "msg_014p7gG3wDgGV9EUtLvnow3U", "end_turn");
  // Output is the last cumulative value, not 2 + 40 + 89.
  EXPECT_EQ(r.usage, (Usage{.input = 472,
                            .output = 89,
                            .cache_read = 18000,
                            .cache_write_5m = 1500,
                            .service_tier = "standard",
                            .present = true}));
  // Only message_start and the two message_delta events are parsed; deltas are skipped.
  EXPECT_EQ(tap.stats().events, 9u);
  EXPECT_EQ(tap.stats().parsed, 3u);
}

TEST(UsageTapSse, AnthropicDeltaCarriesCumulativeInputAndCache) {
  TapResult r = runSse(ApiKind::kAnthropicMessages, fixture("anthropic_stream_cumulative.sse"));
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_EQ(r.stop_reason, "pause_turn");
  // The unknown event's "usage" was ignored.
  EXPECT_EQ(r.usage, (Usage{.input = 10,
                            .output = 700,
                            .cache_write_5m = 250000,
                            .reasoning = 512,
                            .web_search_requests = 1,
                            .present = true}));
}

TEST(UsageTapSse, AnthropicPartialStreamKeepsWhatWasSeen) {
  TapResult r = runSse(ApiKind::kAnthropicMessages, fixture("anthropic_stream_partial.sse"));
  EXPECT_EQ(r.end, TapEnd::kPartial);
  EXPECT_EQ(r.response_id, "msg_cut");
  // Output is message_start's initial count: all a cut stream reports.
  EXPECT_EQ(r.usage, (Usage{.input = 100, .output = 1, .cache_read = 5000, .present = true}));
}

TEST(UsageTapSse, AnthropicErrorEventEndsTheTurn) {
  UsageTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse);
  for (const Event& e : events(fixture("anthropic_stream_error.sse")))
    tap.onSseEvent(e.name, e.data);
  const TapResult& r = tap.finish();
  EXPECT_EQ(r.end, TapEnd::kError);
  EXPECT_EQ(r.error_type, "overloaded_error");
  EXPECT_EQ(r.usage.input, 30);
  EXPECT_EQ(tap.stats().after_end, 1u);  // the message_stop after the error
}

TEST(UsageTapSse, AnthropicEventsWithoutNamesUseTheDataType) {
  // Bedrock InvokeModel streams carry Anthropic events without SSE names.
  std::string text = fixture("anthropic_stream.sse");
  UsageTap named(ApiKind::kAnthropicMessages, BodyMode::kSse);
  UsageTap unnamed(ApiKind::kAnthropicMessages, BodyMode::kSse);
  for (const Event& e : events(text)) {
    named.onSseEvent(e.name, e.data);
    unnamed.onSseEvent("", e.data);
  }
  EXPECT_EQ(unnamed.finish(), named.finish());
}

TEST(UsageTapSse, ChatStreamWithIncludeUsage) {
  UsageTap tap(ApiKind::kOpenAiChat, BodyMode::kSse);
  for (const Event& e : events(fixture("openai_chat_stream.sse"))) tap.onSseEvent(e.name, e.data);
  const TapResult& r = tap.finish();
  expectIdentity(r, TapEnd::kCompleted, "gpt-5-2025-08-07", "chatcmpl-123", "stop");
  EXPECT_EQ(r.usage, (Usage{.input = 1200 - 1024,
                            .output = 450,
                            .cache_read = 1024,
                            .reasoning = 320,
                            .service_tier = "default",
                            .present = true}));
  // The content chunk ("usage": null, "finish_reason": null) is not parsed.
  EXPECT_EQ(tap.stats().parsed, 3u);
}

TEST(UsageTapSse, ChatStreamWithoutIncludeUsageHasNoUsage) {
  TapResult r = runSse(ApiKind::kOpenAiChat, fixture("openai_chat_stream_no_usage.sse"));
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_EQ(r.stop_reason, "tool_calls");
  EXPECT_FALSE(r.usage.present);  // absent, not zero
}

TEST(UsageTapSse, ChatStreamCutBeforeDoneIsPartial) {
  std::vector<Event> all = events(fixture("openai_chat_stream.sse"));
  UsageTap tap(ApiKind::kOpenAiChat, BodyMode::kSse);
  for (size_t i = 0; i + 1 < all.size(); ++i) tap.onSseEvent(all[i].name, all[i].data);
  EXPECT_EQ(tap.finish().end, TapEnd::kPartial);
  EXPECT_EQ(tap.result().usage.output, 450);
}

TEST(UsageTapSse, ChatErrorChunk) {
  UsageTap tap(ApiKind::kOpenAiChat, BodyMode::kSse);
  tap.onSseEvent("", R"({"id":"chatcmpl-9","model":"gpt-5","choices":[]})");
  tap.onSseEvent("", R"({"error":{"message":"boom","type":"server_error"}})");
  EXPECT_EQ(tap.finish().end, TapEnd::kError);
  EXPECT_EQ(tap.result().error_type, "server_error");
}

TEST(UsageTapSse, ResponsesCompleted) {
  TapResult r = runSse(ApiKind::kOpenAiResponses, fixture("openai_responses_stream.sse"));
  expectIdentity(r, TapEnd::kCompleted, "gpt-5-2025-08-07", "resp_abc", "completed");
  EXPECT_EQ(r.usage,
            (Usage{.input = 37, .output = 11, .service_tier = "default", .present = true}));
}

TEST(UsageTapSse, ResponsesIncompleteAndFailed) {
  TapResult inc =
      runSse(ApiKind::kOpenAiResponses, fixture("openai_responses_stream_incomplete.sse"));
  EXPECT_EQ(inc.end, TapEnd::kIncomplete);
  EXPECT_EQ(inc.stop_reason, "max_output_tokens");
  EXPECT_EQ(inc.usage.output, 64);
  EXPECT_EQ(inc.usage.reasoning, 64);
  TapResult failed =
      runSse(ApiKind::kOpenAiResponses, fixture("openai_responses_stream_failed.sse"));
  EXPECT_EQ(failed.end, TapEnd::kFailed);
  EXPECT_EQ(failed.error_type, "server_error");
  EXPECT_FALSE(failed.usage.present);
  UsageTap tap(ApiKind::kOpenAiResponses, BodyMode::kSse);
  tap.onSseEvent("error", R"({"type":"error","code":"rate_limit_exceeded","message":"slow"})");
  EXPECT_EQ(tap.result().end, TapEnd::kError);
  EXPECT_EQ(tap.result().error_type, "rate_limit_exceeded");
}

const std::pair<ApiKind, const char*> kStreams[] = {
    {ApiKind::kAnthropicMessages, "anthropic_stream.sse"},
    {ApiKind::kAnthropicMessages, "anthropic_stream_cumulative.sse"},
    {ApiKind::kAnthropicMessages, "anthropic_stream_partial.sse"},
    {ApiKind::kAnthropicMessages, "anthropic_stream_error.sse"},
    {ApiKind::kOpenAiChat, "openai_chat_stream.sse"},
    {ApiKind::kOpenAiChat, "openai_chat_stream_no_usage.sse"},
    {ApiKind::kOpenAiResponses, "openai_responses_stream.sse"},
    {ApiKind::kOpenAiResponses, "openai_responses_stream_incomplete.sse"},
    {ApiKind::kOpenAiResponses, "openai_responses_stream_failed.sse"},
};

TEST(UsageTapSse, AnySplitOfTheStreamGivesTheSameResult) {
  for (const auto& [kind, name] : kStreams) {
    std::string text = fixture(name);
    TapResult whole = runSse(kind, text);
    for (unsigned seed = 1; seed <= 50; ++seed) {
      ASSERT_EQ(runSse(kind, text, seed), whole) << name << " seed " << seed;
    }
  }
}

TEST(UsageTapSse, EveryPrefixIsPartialUntilTheTerminalEvent) {
  for (const auto& [kind, name] : kStreams) {
    std::vector<Event> all = events(fixture(name));
    TapResult whole = runSse(kind, fixture(name));
    bool ended = false;
    for (size_t k = 0; k <= all.size(); ++k) {
      UsageTap tap(kind, BodyMode::kSse);
      for (size_t i = 0; i < k; ++i) tap.onSseEvent(all[i].name, all[i].data);
      const TapResult& r = tap.finish();
      // Once a terminal event is in, nothing after it changes the result.
      ended = ended || r.end != TapEnd::kPartial;
      if (ended || k == all.size()) {
        EXPECT_EQ(r, whole) << name << " prefix " << k;
      }
    }
  }
}

TEST(UsageTapSse, OversizedAndMalformedEventsAreCounted) {
  UsageTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse, {.max_body_bytes = 64});
  tap.onSseEvent("message_start", std::string(65, ' '));
  tap.onSseEvent("message_delta", "{not json");
  tap.onSseEvent("message_delta", R"({"usage":{"output_tokens":5}})");
  EXPECT_TRUE(tap.result().overflow);
  EXPECT_EQ(tap.stats().oversized, 1u);
  EXPECT_EQ(tap.stats().parse_errors, 1u);
  EXPECT_EQ(tap.finish().usage.output, 5);
  tap.onSseEvent("message_stop", "{}");  // after finish: ignored
  EXPECT_EQ(tap.result().end, TapEnd::kPartial);
}

// ---- Streaming cost pitfalls, tap to price (llm-wire-formats.md §9) ----

std::shared_ptr<const PriceTable> testPrices() {
  auto t =
      PriceTable::load(kFixtures + "defaults_minimal.json", kFixtures + "prices_override.json");
  EXPECT_TRUE(t.isOk()) << t.status().message();
  return t.isOk() ? t.value() : nullptr;
}

Cost streamCost(ApiKind kind, const char* name, unsigned seed = 7) {
  auto table = testPrices();
  return costOfResponse(*table, providerOf(kind), "requested-model",
                        runSse(kind, fixture(name), seed));
}

TEST(UsageCostStream, CacheReadsPricedAsCacheReadsWhenStreaming) {
  Cost c = streamCost(ApiKind::kAnthropicMessages, "anthropic_stream.sse");
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.basis, "anthropic/claude-sonnet-4*");
  // 472 × $3 + 18000 × $0.30 + 1500 × $3.75 + 89 × $15, per million tokens.
  EXPECT_EQ(c.nanos, 1'416'000 + 5'400'000 + 5'625'000 + 1'335'000);
}

TEST(UsageCostStream, LongContextTierFromCumulativeDelta) {
  Cost c = streamCost(ApiKind::kAnthropicMessages, "anthropic_stream_cumulative.sse");
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_TRUE(c.long_context);  // 10 + 250000 cache-write tokens > 200000
  // 10 × $6 + 250000 × $7.50 (1.25 × 6) + 700 × $22.50 + one search at $0.01.
  EXPECT_EQ(c.nanos, 60'000 + 1'875'000'000 + 15'750'000 + 10'000'000);
  EXPECT_EQ(formatUsd(c.nanos), "$1.900810000");
}

TEST(UsageCostStream, PartialStreamPricedOnWhatWasSeen) {
  Cost c = streamCost(ApiKind::kAnthropicMessages, "anthropic_stream_partial.sse");
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.nanos, 300'000 + 1'500'000 + 15'000);
}

TEST(UsageCostStream, OpenAiStreams) {
  Cost chat = streamCost(ApiKind::kOpenAiChat, "openai_chat_stream.sse");
  ASSERT_TRUE(chat.known) << chat.reason;
  EXPECT_EQ(chat.nanos, 176 * 1250 + 1024 * 125 + 450 * 10'000);
  Cost responses = streamCost(ApiKind::kOpenAiResponses, "openai_responses_stream.sse");
  ASSERT_TRUE(responses.known) << responses.reason;
  EXPECT_EQ(responses.nanos, 37 * 1250 + 11 * 10'000);
  Cost incomplete = streamCost(ApiKind::kOpenAiResponses, "openai_responses_stream_incomplete.sse");
  EXPECT_EQ(incomplete.nanos, 100 * 1250 + 64 * 10'000);
}

TEST(UsageCostStream, MissingUsageIsUnknownNotZero) {
  Cost c = streamCost(ApiKind::kOpenAiChat, "openai_chat_stream_no_usage.sse");
  EXPECT_FALSE(c.known);
  EXPECT_EQ(c.reason, "the response reported no usage");
  Cost failed = streamCost(ApiKind::kOpenAiResponses, "openai_responses_stream_failed.sse");
  EXPECT_TRUE(failed.known);  // failed without usage: not billed
  EXPECT_EQ(failed.nanos, 0);
}

// The tap's skimming reader (usage_document.h) against the full SAX reader: the same document on
// every valid input, failure on what is cut short or structurally wrong.
using nlohmann::json;

void expectSameDocument(const std::string& text, const std::string& what) {
  json skimmed, full;
  ASSERT_TRUE(readUsageDocumentFull(text, full)) << what;
  ASSERT_TRUE(readUsageDocument(text, skimmed)) << what;
  EXPECT_EQ(skimmed, full) << what << "\nskimmed " << skimmed.dump() << "\nfull    " << full.dump();
}

TEST(UsageDocument, ReadersAgreeOnEveryFixture) {
  for (const char* name : {"anthropic_message.json", "anthropic_message_total_only.json",
                           "anthropic_error.json", "anthropic_count_tokens.json",
                           "openai_chat.json", "openai_error.json", "openai_responses.json"}) {
    expectSameDocument(fixture(name), name);
  }
  for (const char* name :
       {"anthropic_stream.sse", "anthropic_stream_cumulative.sse", "anthropic_stream_error.sse",
        "openai_chat_stream.sse", "openai_responses_stream.sse",
        "openai_responses_stream_failed.sse", "openai_responses_stream_incomplete.sse"}) {
    for (const Event& e : events(fixture(name))) {
      if (e.data == "[DONE]") continue;
      expectSameDocument(e.data, std::string(name) + " " + e.name);
    }
  }
}

TEST(UsageDocument, StringsThatLookLikeStructureAreSteppedOver) {
  // Quotes, backslashes, brackets and a "usage" key inside skipped content; escaped and
  // non-ASCII kept strings; numbers of every kind in the usage object.
  std::string body =
      R"({"id":"msg_\u0041\"1","type":"message","model":"claude-é","content":[)"
      R"({"type":"text","text":"a \"quoted\" }] {\"usage\":{\"input_tokens\":999}} \\"},)"
      R"({"type":"tool_use","id":"t","name":"Bash","input":{"usage":{"input_tokens":7},)"
      R"("command":"echo \\\\\" ] }"}}],"stop_reason":"tool_use","stop_sequence":null,)"
      R"("usage":{"input_tokens":12,"output_tokens":0,"cache_read_input_tokens":-3,)"
      R"("x":1.5e3,"y":18446744073709551615,"z":123456789012345678901,"w":[true,false,null],)"
      R"("cache_creation":{"ephemeral_5m_input_tokens":4}},"\u0075sage2":{"a":1},)"
      "\"empty\":{} , \"e2\" : [ ] }";
  expectSameDocument(body, "tricky body");
  TapResult r = runJson(ApiKind::kAnthropicMessages, body);
  EXPECT_EQ(r.end, TapEnd::kCompleted);
  EXPECT_EQ(r.response_id, "msg_A\"1");
  EXPECT_EQ(r.model, "claude-é");
  EXPECT_EQ(r.usage.input, 12);
  EXPECT_EQ(r.usage.cache_write_5m, 4);
  // Byte order mark, surrounding space, top-level array and scalars.
  for (const char* text : {"\xEF\xBB\xBF {\"id\":\"x\"}\n", "[1,\"a\",{\"b\":2},[3]]", "17", "-1",
                           "\"s\"", "null", " true ", "{\"a\":[[[[{}]]]]}"}) {
    expectSameDocument(text, text);
  }
  // nlohmann/json stops at a NUL byte; so does the skim.
  expectSameDocument(std::string("{\"usage\":{\"input_tokens\":2}} \0{garbage", 38), "NUL");
  expectSameDocument(std::string("88\0 \xce\xa8\0(", 8), "NUL after a number");
}

TEST(UsageDocument, CutShortOrMismatchedFails) {
  std::string body = fixture("anthropic_message.json");
  json doc;
  for (size_t cut = 0; cut < body.size(); ++cut) {
    // Every proper prefix of an object is cut short (trailing space aside).
    std::string prefix = body.substr(0, cut);
    if (prefix.find_last_not_of(" \n") == body.find_last_not_of(" \n")) continue;
    EXPECT_FALSE(readUsageDocument(prefix, doc)) << "cut at " << cut;
  }
  for (const char* text :
       {R"({"content":[1,2}],"usage":{"input_tokens":1}})", R"({"content":{"a":[}})",
        R"({"usage":{"input_tokens":1}} x)", R"({"usage":{"input_tokens":1}}})",
        R"({"content":"unterminated)", R"({"a" 1})", R"({"a":1,})", R"({"a":})",
        R"({"usage":{"input_tokens":01}})", R"({"model":"bad \x"})", "{\"model\":\"a\x01\"}",
        R"({"usage":{"input_tokens":tru}})", "", "   ", "}", "]"}) {
    EXPECT_FALSE(readUsageDocument(text, doc)) << text;
    EXPECT_FALSE(readUsageDocumentFull(text, doc)) << text;
  }
  // What the skim steps over is not validated: a bad literal inside content still reads (the
  // full reader rejects it). Usage stays trustworthy because the kept parts are read exactly.
  const char* lenient = R"({"content":[tru, "\q"],"usage":{"input_tokens":5}})";
  ASSERT_TRUE(readUsageDocument(lenient, doc));
  EXPECT_EQ(doc["usage"]["input_tokens"], 5);
  EXPECT_FALSE(readUsageDocumentFull(lenient, doc));
}

TEST(UsageDocument, DeepDocumentsNeitherOverflowNorDiffer) {
  // Kept nesting beyond the skim's depth hands over to the full reader.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += R"({"message":)";
  deep += R"({"usage":{"input_tokens":3}})";
  deep += std::string(200, '}');
  expectSameDocument(deep, "200 nested messages");
  // Skipped nesting is walked without recursion.
  std::string skipped = R"({"content":)" + std::string(200'000, '[') + std::string(200'000, ']') +
                        R"(,"usage":{"output_tokens":2}})";
  json doc;
  ASSERT_TRUE(readUsageDocument(skipped, doc));
  EXPECT_EQ(doc["usage"]["output_tokens"], 2);
  EXPECT_TRUE(doc["content"].is_null());
}

}  // namespace
}  // namespace gatehouse::proxy
