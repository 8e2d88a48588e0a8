// Cost model: exact decimal money, the price table (shipped defaults + override, globs, errors at
// file:line:column) and golden costs for every usage bucket, tier and pricing pitfall of
// llm-wire-formats.md §9.
#include "proxy/usage/pricing.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "proxy/usage/usage.h"

namespace gatehouse::proxy {
namespace {

const std::string kSource = GATEHOUSE_SOURCE_DIR;
// The tests price against a minimal defaults file (cache multipliers only) plus an override, so
// they do not move when the shipped list prices change; the shipped file has its own test.
const std::string kDefaults = kSource + "/tests/proxy/fixtures/usage/defaults_minimal.json";
const std::string kShipped = kSource + "/proxy/usage/default_prices.json";
const std::string kOverride = kSource + "/tests/proxy/fixtures/usage/prices_override.json";

std::shared_ptr<const PriceTable> table() {
  static auto t = PriceTable::load(kDefaults, kOverride);
  EXPECT_TRUE(t.isOk()) << t.status().message();
  return t.value();
}

TapResult tapFixture(ApiKind kind, const std::string& name) {
  std::ifstream in(kSource + "/tests/proxy/fixtures/usage/" + name, std::ios::binary);
  UsageTap tap(kind, BodyMode::kJson);
  tap.onBody(std::string(std::istreambuf_iterator<char>(in), {}));
  return tap.finish();
}

// The error text of parsing `text` as the default file named "bad.json".
std::string parseError(const std::string& text) {
  auto t = PriceTable::parse({"bad.json", text}, nullptr);
  EXPECT_FALSE(t.isOk());
  return t.isOk() ? "" : t.status().message();
}

Cost costOf(std::string_view provider, std::string_view model, Usage u) {
  u.present = true;
  return table()->cost(provider, model, u);
}

// ---- money (pricing.h) ----

TEST(Money, ParsesDecimalsExactly) {
  EXPECT_EQ(parseScaledDecimal("3"), 3'000'000'000);
  EXPECT_EQ(parseScaledDecimal("3.00"), 3'000'000'000);
  EXPECT_EQ(parseScaledDecimal("0.30"), 300'000'000);
  EXPECT_EQ(parseScaledDecimal("0.0375"), 37'500'000);
  EXPECT_EQ(parseScaledDecimal("22.50"), 22'500'000'000);
  EXPECT_EQ(parseScaledDecimal("0.000000001"), 1);
  EXPECT_EQ(parseScaledDecimal("007.5"), 7'500'000'000);
  EXPECT_EQ(parseScaledDecimal("1000000"), 1'000'000'000'000'000);
  EXPECT_EQ(parseScaledDecimal("0"), 0);
}

TEST(Money, RejectsWhatIsNotAPlainDecimal) {
  for (const char* bad : {"", ".5", "5.", "-1", "+1", "1e3", " 1", "1 ", "1,5", "$3", "0x10",
                          "1.2.3", "0.0000000001", "1000001", "99999999999999999999"}) {
    std::string why;
    EXPECT_FALSE(parseScaledDecimal(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(Money, FormatsAndRounds) {
  EXPECT_EQ(formatScaledDecimal(3'750'000'000), "3.75");
  EXPECT_EQ(formatScaledDecimal(37'500'000), "0.0375");
  EXPECT_EQ(formatScaledDecimal(7'000'000'000), "7");
  EXPECT_EQ(formatScaledDecimal(-1), "-0.000000001");
  EXPECT_EQ(formatUsd(50'330'000), "$0.050330000");
  EXPECT_EQ(formatUsd(-1'500'000'000), "-$1.500000000");
  EXPECT_EQ(formatUsd(INT64_MIN), "-$9223372036.854775808");
  EXPECT_EQ(mulDivRound(3, 1, 2), 2);  // 1.5 rounds up
  EXPECT_EQ(mulDivRound(1'499'999, 1, 1'000'000), 1);
  EXPECT_EQ(mulDivRound(INT64_MAX, INT64_MAX, 1), std::nullopt);
  EXPECT_EQ(mulDivRound(-1, 1, 1), std::nullopt);
}

// ---- the shipped table and the override ----

TEST(PriceTable, MinimalDefaultsPriceNothing) {
  auto t = PriceTable::load(kDefaults, "");
  ASSERT_TRUE(t.isOk()) << t.status().message();
  EXPECT_EQ(t.value()->size(), 0u);
  EXPECT_EQ(t.value()->snapshotId().substr(0, 11), "defaults-1@");
  Cost c = t.value()->cost("anthropic", "claude-sonnet-4-5", Usage{.input = 1, .present = true});
  EXPECT_FALSE(c.known);
  EXPECT_NE(c.reason.find("add the model to the price override file"), std::string::npos);
}

TEST(PriceTable, ShippedListPrices) {
  auto t = PriceTable::load(kShipped, "");
  ASSERT_TRUE(t.isOk()) << t.status().message();
  const PriceTable& p = *t.value();
  // Sonnet 4.5: $3 in / $15 out, 5m writes 1.25x, reads $0.30; above 200K input $6 / $22.50.
  Usage u{.input = 1'000'000,
          .output = 1'000'000,
          .cache_read = 1'000'000,
          .cache_write_5m = 1'000'000,
          .present = true};
  Cost c = p.cost("anthropic", "claude-sonnet-4-5-20250929", u);
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.basis, "anthropic/claude-sonnet-4-5*");
  EXPECT_TRUE(c.long_context);  // 3M prompt tokens > 200K
  EXPECT_EQ(c.nanos, (6'000'000'000 + 22'500'000'000 + 600'000'000 + 7'500'000'000));
  Cost small = p.cost("anthropic", "claude-sonnet-4-5",
                      Usage{.input = 1000, .output = 100, .present = true});
  EXPECT_EQ(small.nanos, 3'000'000 + 1'500'000);
  // Sonnet 4.6 has no long-context surcharge; Haiku 4.5 $1/$5; Opus 4.1 $15/$75.
  EXPECT_FALSE(p.cost("anthropic", "claude-sonnet-4-6", u).long_context);
  EXPECT_EQ(p.cost("anthropic", "claude-haiku-4-5",
                   Usage{.input = 1'000'000, .output = 1'000'000, .present = true})
                .nanos,
            6'000'000'000);
  EXPECT_EQ(p.cost("anthropic", "claude-opus-4-1",
                   Usage{.input = 1'000'000, .output = 0, .present = true})
                .nanos,
            15'000'000'000);
  // gpt-5: $1.25 in, $0.125 cached, $10 out.
  Cost g = p.cost("openai", "gpt-5",
                  Usage{.input = 1200, .output = 80, .cache_read = 1000, .present = true});
  EXPECT_EQ(g.nanos, 2'425'000);
  EXPECT_FALSE(p.cost("openai", "gpt-unknown-9", u).known);
}

// The quota path and the request record price with CostDetail::kNanosOnly: the same answer
// (known, nanos, long_context), only without the texts.
TEST(PriceTable, NanosOnlyGivesTheSameAmountWithoutTexts) {
  auto t = PriceTable::load(kShipped, "");
  ASSERT_TRUE(t.isOk()) << t.status().message();
  const std::pair<const char*, const char*> models[] = {{"anthropic", "claude-sonnet-4-5"},
                                                        {"anthropic", "claude-sonnet-4-5-20250929"},
                                                        {"anthropic", "claude-haiku-4-5"},
                                                        {"openai", "gpt-5"},
                                                        {"openai", "gpt-5-mini"},
                                                        {"openai", "gpt-unknown-9"},
                                                        {"nobody", "x"},
                                                        {"anthropic", ""}};
  const Usage usages[] = {
      {.input = 1000, .output = 100, .present = true},
      {.input = 300'000, .output = 10, .cache_read = 5, .cache_write_5m = 7, .present = true},
      {.input = 1, .cache_write_1h = 3, .present = true},
      {.input = 1, .service_tier = "priority", .present = true},
      {.input = 1, .service_tier = "flex", .present = true},
      {.input = 1, .web_search_requests = 2, .present = true},
      {.input = -1, .present = true},
      {.input = 1, .web_search_requests = -1, .present = true},
      {.input = 1},  // no usage reported
  };
  int known = 0, unknown = 0;
  for (const auto& [provider, model] : models) {
    for (const Usage& u : usages) {
      Cost full = t.value()->cost(provider, model, u);
      Cost bare = t.value()->cost(provider, model, u, CostDetail::kNanosOnly);
      SCOPED_TRACE(std::string(provider) + "/" + model + " " + full.reason);
      EXPECT_EQ(bare.known, full.known);
      EXPECT_EQ(bare.nanos, full.nanos);
      EXPECT_EQ(bare.long_context, full.long_context);
      EXPECT_TRUE(bare.reason.empty() && bare.basis.empty() && bare.service_tier.empty());
      EXPECT_EQ(full.known, full.reason.empty());
      (full.known ? known : unknown)++;
    }
  }
  EXPECT_GT(known, 10);
  EXPECT_GT(unknown, 10);
}

TEST(PriceTable, OverrideRowGetsTheDefaultCacheMultipliers) {
  const ModelPrice* row = table()->find("anthropic", "claude-sonnet-4-5-20250929");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->standard.rates.cache_write_5m, 3'750'000'000);  // 1.25 × 3
  EXPECT_EQ(row->standard.rates.cache_write_1h, 6'000'000'000);  // 2 × 3
  EXPECT_EQ(row->standard.rates.cache_read, 300'000'000);        // 0.1 × 3
  EXPECT_EQ(row->standard.long_context_above, 200'000);
  EXPECT_EQ(row->standard.long_context.cache_write_5m, 7'500'000'000);  // 1.25 × 6
  EXPECT_EQ(row->service_tiers.at("batch").rates.cache_read, 150'000'000);
  EXPECT_NE(row->origin.find("prices_override.json:"), std::string::npos);
  // Explicit cache prices win over derived ones; the unset 1h price is still derived.
  const ModelPrice* opus = table()->find("anthropic", "claude-opus-4-5-20251101");
  ASSERT_NE(opus, nullptr);
  EXPECT_EQ(opus->standard.rates.cache_write_5m, 6'200'000'000);
  EXPECT_EQ(opus->standard.rates.cache_write_1h, 10'000'000'000);
  // OpenAI has no documented multipliers: nothing is derived.
  EXPECT_EQ(table()->find("openai", "gpt-4o")->standard.rates.cache_read, std::nullopt);
  EXPECT_EQ(table()->snapshotId().substr(0, 27), "defaults-1+test-override-1@");
}

TEST(PriceTable, OverrideReplacesWholeRowsAndMultipliers) {
  std::string base = R"({"version":"b","providers":{"p":{
      "cache_multipliers":{"cache_read":"0.5"},
      "models":{"m":{"input":"2","output":"4","long_context":{"above_input_tokens":10,
                "input":"9","output":"9"}},
                "keep":{"input":"1","output":"1"}}}}})";
  std::string top = R"({"version":"o","providers":{"p":{
      "cache_multipliers":{"cache_read":"0.25"},
      "models":{"m":{"input":"8","output":"8"}}}}})";
  PriceSource override_src{"top.json", top};
  auto t = PriceTable::parse({"base.json", base}, &override_src);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  const ModelPrice* m = t.value()->find("p", "m");
  EXPECT_EQ(m->standard.rates.input, 8'000'000'000);
  EXPECT_EQ(m->standard.long_context_above, 0);            // the whole row was replaced
  EXPECT_EQ(m->standard.rates.cache_read, 2'000'000'000);  // 0.25 × 8: override multipliers
  EXPECT_EQ(t.value()->find("p", "keep")->standard.rates.cache_read, 250'000'000);
  EXPECT_EQ(m->origin, "top.json:3:17");
  auto again = PriceTable::parse({"base.json", base + " "}, &override_src);
  EXPECT_NE(again.value()->snapshotId(), t.value()->snapshotId());  // any byte changes the id
}

TEST(PriceTable, ExactNameThenMostSpecificGlob) {
  auto t = PriceTable::parse({"g.json", R"({"providers":{"x":{"models":{
      "*":{"input":"1","output":"1"},
      "gpt-5*":{"input":"2","output":"2"},
      "gpt-5-mini*":{"input":"3","output":"3"},
      "gpt-5-mini":{"input":"4","output":"4"},
      "claude-*-4-5*":{"input":"5","output":"5"}}}}})"},
                             nullptr);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  auto pattern = [&](std::string_view model) {
    const ModelPrice* row = t.value()->find("x", model);
    return row ? row->pattern : std::string("none");
  };
  EXPECT_EQ(pattern("gpt-5-mini"), "gpt-5-mini");
  EXPECT_EQ(pattern("gpt-5-mini-2025-08-07"), "gpt-5-mini*");
  EXPECT_EQ(pattern("gpt-5-2025-08-07"), "gpt-5*");
  EXPECT_EQ(pattern("gpt-5"), "gpt-5*");
  EXPECT_EQ(pattern("claude-opus-4-5-20251101"), "claude-*-4-5*");
  EXPECT_EQ(pattern("o3"), "*");
  EXPECT_EQ(pattern(""), "none");
  EXPECT_EQ(t.value()->find("y", "gpt-5"), nullptr);
  EXPECT_EQ(table()->find("openai", "gpt-4o-mini"), nullptr);  // "gpt-4o" is exact only
}

// ---- errors name file:line:column and the fix ----

TEST(PriceTableErrors, SyntaxErrorAtLineAndColumn) {
  std::string e = parseError("{\n  \"version\": \"x\"\n  \"providers\": {}\n}\n");
  // nlohmann reports the token where the missing ',' was noticed: the end of "providers".
  EXPECT_EQ(e.substr(0, 14), "bad.json:3:13:") << e;
  EXPECT_NE(e.find("expected '}'"), std::string::npos) << e;
}

TEST(PriceTableErrors, PricesMustBeDecimalStrings) {
  std::string e = parseError(
      "{\"providers\": {\"anthropic\": {\"models\": {\n"
      "  \"claude-x\": {\"input\": 3.0, \"output\": \"1,5\"}}}}}");
  EXPECT_NE(e.find("bad.json:2:25: \"input\" must be a decimal string"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.json:2:40: \"output\": not a plain decimal"), std::string::npos) << e;
}

TEST(PriceTableErrors, TyposAndMissingPricesAreNamed) {
  std::string e = parseError(
      "{\"providers\": {\"openai\": {\"models\": {\n"
      "  \"gpt-5\": {\"input\": \"1\", \"ouput\": \"2\"}}}},\n"
      " \"verison\": \"1\"}");
  EXPECT_NE(e.find("bad.json:2:27: unknown key \"ouput\" in model \"gpt-5\" (did you mean "
                   "\"output\"?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("bad.json:2:12: model \"gpt-5\" has no \"output\" price: add \"output\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("bad.json:3:2: unknown key \"verison\" in the top level (did you mean "
                   "\"version\"?)"),
            std::string::npos)
      << e;
}

TEST(PriceTableErrors, LongContextAndServiceTierMistakes) {
  std::string e = parseError(R"({"providers":{"p":{"models":{"m":{"input":"1","output":"1",
      "long_context":{"input":"2","output":"2"},
      "service_tiers":{"standard":{"input":"1","output":"1"},"flex":{"input":"1"}}}}}}})");
  EXPECT_NE(e.find("long_context needs \"above_input_tokens\""), std::string::npos) << e;
  EXPECT_NE(e.find("service tier \"standard\" is the row's own base price"), std::string::npos);
  EXPECT_NE(e.find("service tier \"flex\" of model \"m\" has no \"output\" price"),
            std::string::npos)
      << e;
  e = parseError(R"({"providers":{"p":{"models":{"m":{"input":"1","output":"1",
      "long_context":{"above_input_tokens":0,"input":"2","output":"2"}}}}}})");
  EXPECT_NE(e.find("must be a positive whole number of tokens"), std::string::npos) << e;
}

TEST(PriceTableErrors, BothFilesReportedWithTheirNames) {
  PriceSource top{"override.json", "{\"providers\": {\"p\": []}}"};
  auto t = PriceTable::parse({"base.json", "{\"providers\": {\"q\": {\"modles\": {}}}}"}, &top);
  ASSERT_FALSE(t.isOk());
  const std::string& e = t.status().message();
  EXPECT_NE(e.find("base.json:1:22: unknown key \"modles\""), std::string::npos) << e;
  EXPECT_NE(e.find("\noverride.json:1:21: provider \"p\" must be an object"), std::string::npos)
      << e;
}

TEST(PriceTableErrors, AbsurdNestingIsRefusedEarly) {
  std::string e = parseError("{\"providers\":\n" + std::string(100000, '[') + "}");
  EXPECT_EQ(e.substr(0, 13), "bad.json:2:32") << e.substr(0, 200);
  EXPECT_NE(e.find("nested more than 32 levels"), std::string::npos);
}

TEST(PriceTableErrors, MissingFileNamesThePath) {
  auto t = PriceTable::load(kDefaults, "/nonexistent/prices.json");
  ASSERT_FALSE(t.isOk());
  EXPECT_NE(t.status().message().find("/nonexistent/prices.json"), std::string::npos);
  EXPECT_NE(t.status().message().find("No such file"), std::string::npos);
  EXPECT_EQ(t.status().code(), ENOENT);
}

// ---- golden costs from the JSON fixtures ----

TEST(PricingGolden, AnthropicEveryBucketOnce) {
  TapResult r = tapFixture(ApiKind::kAnthropicMessages, "anthropic_message.json");
  Cost c = costOfResponse(*table(), "anthropic", "ignored", r);
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.basis, "anthropic/claude-sonnet-4*");
  EXPECT_FALSE(c.long_context);
  // input 2095 × 3, cache read 10000 × 0.30, 5m 2000 × 3.75, 1h 1000 × 6, output 503 × 15
  // (thinking inside), plus two web searches at $0.01.
  EXPECT_EQ(c.nanos, 6'285'000 + 3'000'000 + 7'500'000 + 6'000'000 + 7'545'000 + 20'000'000);
  EXPECT_EQ(formatUsd(c.nanos), "$0.050330000");
}

TEST(PricingGolden, AnthropicTotalOnlyCacheWriteAtExplicitPrice) {
  TapResult r = tapFixture(ApiKind::kAnthropicMessages, "anthropic_message_total_only.json");
  Cost c = costOfResponse(*table(), "anthropic", "", r);
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.nanos, 50 * 5'000 + 4000 * 6'200 + 70 * 25'000);
}

TEST(PricingGolden, OpenAiChatCachedTokensAtTheCachedRate) {
  TapResult r = tapFixture(ApiKind::kOpenAiChat, "openai_chat.json");
  Cost c = costOfResponse(*table(), "openai", "", r);
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.basis, "openai/gpt-5*");
  // (2006 − 1920) × 1.25 + 1920 × 0.125 + 300 × 10: cached subtracted once, reasoning inside.
  EXPECT_EQ(c.nanos, 107'500 + 240'000 + 3'000'000);
}

TEST(PricingGolden, OpenAiResponsesWithHostedSearch) {
  TapResult r = tapFixture(ApiKind::kOpenAiResponses, "openai_responses.json");
  Cost c = costOfResponse(*table(), "openai", "", r);
  ASSERT_TRUE(c.known) << c.reason;
  EXPECT_EQ(c.basis, "openai/gpt-5-mini*");
  EXPECT_EQ(c.nanos, 904 * 250 + 4096 * 25 + 1200 * 2'000 + 10'000'000);
}

TEST(PricingGolden, NotBilledResponsesCostAKnownZero) {
  TapResult count = tapFixture(ApiKind::kAnthropicCountTokens, "anthropic_count_tokens.json");
  Cost c = costOfResponse(*table(), "anthropic", "claude-sonnet-4-5", count);
  EXPECT_TRUE(c.known);
  EXPECT_EQ(c.nanos, 0);
  TapResult error = tapFixture(ApiKind::kAnthropicMessages, "anthropic_error.json");
  c = costOfResponse(*table(), "anthropic", "claude-sonnet-4-5", error);
  EXPECT_TRUE(c.known);
  EXPECT_EQ(c.reason, "error response without usage (overloaded_error)");
}

TEST(PricingGolden, RequestedModelWhenTheResponseNamesNone) {
  TapResult r;
  r.end = TapEnd::kCompleted;
  r.usage = Usage{.input = 1000, .present = true};
  EXPECT_EQ(costOfResponse(*table(), "openai", "gpt-5", r).nanos, 1'250'000);
}

// ---- pitfalls (llm-wire-formats.md §9) ----

TEST(PricingPitfalls, CacheWritesAreNotCountedTwice) {
  Cost c = costOf("anthropic", "claude-sonnet-4-5", {.input = 100, .cache_write_5m = 1000});
  EXPECT_EQ(c.nanos, 100 * 3'000 + 1000 * 3'750);  // not (100 + 1000) × 3 + 1000 × 3.75
}

TEST(PricingPitfalls, FiveMinuteAndOneHourWritesPricedApart) {
  EXPECT_EQ(costOf("anthropic", "claude-sonnet-4", {.cache_write_5m = 1000}).nanos, 3'750'000);
  EXPECT_EQ(costOf("anthropic", "claude-sonnet-4", {.cache_write_1h = 1000}).nanos, 6'000'000);
  EXPECT_EQ(costOf("anthropic", "claude-sonnet-4", {.cache_read = 1000}).nanos, 300'000);
}

TEST(PricingPitfalls, ReasoningIsInsideOutput) {
  Cost c = costOf("openai", "gpt-5", {.output = 300, .reasoning = 200});
  EXPECT_EQ(c.nanos, 300 * 10'000);
}

TEST(PricingPitfalls, LongContextTierSwitchesAboveTheThreshold) {
  Cost at = costOf("anthropic", "claude-sonnet-4-5", {.input = 200'000});
  EXPECT_FALSE(at.long_context);
  EXPECT_EQ(at.nanos, 600'000'000);
  Cost above = costOf("anthropic", "claude-sonnet-4-5", {.input = 200'001, .output = 10});
  EXPECT_TRUE(above.long_context);
  EXPECT_EQ(above.nanos, 200'001 * 6'000 + 10 * 22'500);  // every token at the tier price
  // Cache tokens count towards the threshold and take the tier's derived cache price.
  Cost cached = costOf("anthropic", "claude-sonnet-4-5", {.input = 100'000, .cache_read = 100'001});
  EXPECT_TRUE(cached.long_context);
  EXPECT_EQ(cached.nanos, 100'000 * 6'000 + 100'001 * 600);
}

TEST(PricingPitfalls, UnknownModelIsUnknownNotZero) {
  Cost c = costOf("anthropic", "claude-nonexistent-9", {.input = 10});
  EXPECT_FALSE(c.known);
  EXPECT_EQ(c.nanos, 0);
  EXPECT_NE(c.reason.find("no price for anthropic/claude-nonexistent-9"), std::string::npos);
  EXPECT_FALSE(costOf("gemini", "gemini-2.5-pro", {.input = 10}).known);
  EXPECT_FALSE(table()->cost("openai", "gpt-5", Usage{.input = 10}).known);  // no usage
}

TEST(PricingPitfalls, TokensWithoutAPriceMakeTheCostUnknown) {
  Cost c = costOf("openai", "gpt-4o", {.input = 10, .cache_read = 10});
  EXPECT_FALSE(c.known);
  EXPECT_NE(c.reason.find("10 cache_read tokens have no price"), std::string::npos) << c.reason;
  EXPECT_TRUE(costOf("openai", "gpt-4o", {.input = 10}).known);  // no cached tokens: fine
}

TEST(PricingPitfalls, ServiceTiersHaveTheirOwnPrices) {
  EXPECT_EQ(costOf("openai", "gpt-5-mini", {.input = 1000, .service_tier = "priority"}).nanos,
            450'000);
  EXPECT_EQ(costOf("openai", "gpt-5-mini", {.input = 1000, .service_tier = "default"}).nanos,
            250'000);
  Cost batch = costOf("anthropic", "claude-sonnet-4-5",
                      {.input = 1000, .cache_read = 1000, .service_tier = "batch"});
  EXPECT_EQ(batch.service_tier, "batch");
  EXPECT_EQ(batch.nanos, 1000 * 1'500 + 1000 * 150);
  Cost flex = costOf("openai", "gpt-5-mini", {.input = 1000, .service_tier = "flex"});
  EXPECT_FALSE(flex.known);
  EXPECT_NE(flex.reason.find("add service_tiers.flex"), std::string::npos) << flex.reason;
}

TEST(PricingPitfalls, ServerToolFeesArePriced) {
  Cost c = costOf("anthropic", "claude-sonnet-4-5", {.input = 1, .web_search_requests = 3});
  EXPECT_EQ(c.nanos, 3'000 + 30'000'000);
  EXPECT_FALSE(costOf("openai", "gpt-5", {.input = 1, .web_search_requests = 1}).known);
}

TEST(PricingPitfalls, RoundedOnceHalfUp) {
  auto t = PriceTable::parse({"r.json", R"({"providers":{"p":{"models":{
      "half":{"input":"0.0015","output":"0.001499999"}}}}})"},
                             nullptr);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  auto nanos = [&](Usage u) {
    u.present = true;
    return t.value()->cost("p", "half", u).nanos;
  };
  EXPECT_EQ(nanos({.input = 1}), 2);               // 1.5 nano-dollars → 2
  EXPECT_EQ(nanos({.output = 1}), 1);              // 1.499999 → 1
  EXPECT_EQ(nanos({.input = 1, .output = 1}), 3);  // summed exactly (2.999999), then rounded
  EXPECT_EQ(nanos({}), 0);
}

TEST(PricingPitfalls, ImpossibleCountsAreRejected) {
  EXPECT_FALSE(costOf("openai", "gpt-5", {.input = -1}).known);
  EXPECT_FALSE(costOf("openai", "gpt-5", {.output = kMaxTokens + 1}).known);
  // $10 per million × 1e15 tokens = 1e19 nano-dollars: beyond int64, so unknown, not wrapped.
  Cost huge = costOf("openai", "gpt-5", {.output = kMaxTokens});
  EXPECT_FALSE(huge.known);
  EXPECT_NE(huge.reason.find("overflows"), std::string::npos);
  EXPECT_EQ(costOf("openai", "gpt-5", {.output = kMaxTokens / 10}).nanos,
            1'000'000'000'000'000'000);
}

}  // namespace
}  // namespace gatehouse::proxy
