// Hooks without a gateway: the webhook signature against known vectors (checked with the openssl
// CLI, below), the pre_request payload and answer parser, event ids, the outbox across
// close/reopen, the backoff schedule, and the "hooks" config section's errors at line:column.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "proxy/config/gateway_config.h"
#include "proxy/hooks/events.h"
#include "proxy/hooks/hook_payload.h"
#include "proxy/hooks/outbox.h"
#include "proxy/hooks/signature.h"
#include "proxy/hooks/webhooks.h"

namespace gatehouse::proxy {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Standard Webhooks' published example, and a raw (non-whsec_) secret. Both verified with:
//   key=$(echo -n MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256)
//   printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//     openssl dgst -sha256 -mac HMAC -macopt hexkey:$key -binary | base64
//   printf '%s' 'evt_0123.1700000000.{"a":1}' | openssl dgst -sha256 -hmac plain-secret -binary |
//     base64
TEST(WebhookSignature, MatchesKnownVectors) {
  EXPECT_EQ(webhookSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                             "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_EQ(webhookSignature("plain-secret", "evt_0123", 1700000000, R"({"a":1})"),
            "v1,9A+/oTJ4wfcys+Ys8Y2pRO2LJ5IOTsc3IZjC6XjatDY=");
  // Any change to id, timestamp or body changes the signature.
  EXPECT_NE(webhookSignature("plain-secret", "evt_0124", 1700000000, R"({"a":1})"),
            webhookSignature("plain-secret", "evt_0123", 1700000000, R"({"a":1})"));
  EXPECT_NE(webhookSignature("plain-secret", "evt_0123", 1700000001, R"({"a":1})"),
            webhookSignature("plain-secret", "evt_0123", 1700000000, R"({"a":1})"));
}

TEST(HookAnswer, ParsesTheThreeActions) {
  auto allow = parseHookAnswer(R"({"action":"allow"})");
  ASSERT_TRUE(allow);
  EXPECT_EQ(allow->action, HookAnswer::Action::kAllow);
  auto block = parseHookAnswer(R"({"action":"block","message":"no secrets"})");
  ASSERT_TRUE(block);
  EXPECT_EQ(block->action, HookAnswer::Action::kBlock);
  EXPECT_EQ(block->message, "no secrets");
  auto modify = parseHookAnswer(R"({"action":"modify","body":{"model":"m","messages":[]}})");
  ASSERT_TRUE(modify);
  EXPECT_EQ(modify->action, HookAnswer::Action::kModify);
  EXPECT_EQ(json::parse(modify->body), json::parse(R"({"model":"m","messages":[]})"));
}

TEST(HookAnswer, RefusesGarbageWithAReason) {
  for (const char* bad : {"", "not json", "[1]", "{}", R"({"action":1})", R"({"action":"maybe"})",
                          R"({"action":"modify"})", R"({"action":"modify","body":"x"})",
                          R"({"action":"block","message":7})", "{\"action\":\"allow\""}) {
    auto r = parseHookAnswer(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.status().code(), EINVAL);
    }
  }
  EXPECT_NE(parseHookAnswer(R"({"action":"maybe"})").status().message().find("maybe"),
            std::string::npos);
}

TEST(HookPayload, SummaryHasCountsToolsAndTheLastUserMessageCut) {
  std::string long_text(3000, 'x');
  std::string body = R"({"model":"claude-x","max_tokens":64,"stream":true,
    "tools":[{"name":"Bash"},{"type":"function","function":{"name":"lookup"}},{"type":"web_search"}],
    "messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},
                {"role":"user","content":[{"type":"text","text":")" +
                     long_text + R"("}]}]})";
  PreRequestInfo info;
  info.request_id = "r1";
  info.caller.node_id = "n1";
  info.caller.node_name = "laptop";
  info.caller.user_login = "alice@example.com";
  info.caller.groups = {"group:eng"};
  info.provider = "anthropic";
  info.api = "anthropic.messages";
  info.model = "claude-x";
  info.path = "/v1/messages";
  json j = json::parse(preRequestPayload(info, body, false));
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["event"], "pre_request");
  EXPECT_EQ(j["request_id"], "r1");
  EXPECT_EQ(j["identity"]["user"], "alice@example.com");
  EXPECT_EQ(j["identity"]["groups"], json::array({"group:eng"}));
  EXPECT_EQ(j["model"], "claude-x");
  EXPECT_FALSE(j.contains("body"));
  const json& s = j["summary"];
  EXPECT_EQ(s["message_count"], 3);
  EXPECT_EQ(s["max_tokens"], 64);
  EXPECT_EQ(s["stream"], true);
  EXPECT_EQ(s["tools"], json::array({"Bash", "lookup", "web_search"}));
  EXPECT_EQ(s["last_user_message"].get<std::string>().size(), kSummaryTextBytes);

  json full = json::parse(preRequestPayload(info, body, true));
  EXPECT_FALSE(full.contains("summary"));
  EXPECT_EQ(full["body"], json::parse(body));
  // OpenAI Responses: "input" as one string.
  json r = json::parse(requestSummaryJson(R"({"model":"gpt","input":"hi","max_output_tokens":9})"));
  EXPECT_EQ(r["message_count"], 1);
  EXPECT_EQ(r["last_user_message"], "hi");
  EXPECT_EQ(r["max_tokens"], 9);
}

TEST(WebhookEvents, IdsAreStableAndDistinct) {
  EXPECT_EQ(webhookEventId("r1", "tool_call", 0), webhookEventId("r1", "tool_call", 0));
  EXPECT_NE(webhookEventId("r1", "tool_call", 0), webhookEventId("r1", "tool_call", 1));
  EXPECT_NE(webhookEventId("r1", "tool_call", 0), webhookEventId("r2", "tool_call", 0));
  EXPECT_EQ(webhookEventId("r1", "tool_call", 0).rfind("evt_", 0), 0u);
  EXPECT_EQ(webhookEventId("r1", "tool_call", 0).size(), 4u + 32u);
  EXPECT_EQ(rfc3339Ms(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
}

TEST(WebhookEvents, RecordBecomesCompleteToolAndGuardrailEvents) {
  RequestRecord r;
  r.id = "req1";
  r.model = "claude-x";
  r.status = 200;
  r.tokens.input = 10;
  r.identity.user_login = "alice@example.com";
  ToolCallRecord a;
  a.call_id = "c1";
  a.name = "Bash";
  a.command = "rm -rf /";
  a.guardrail = R"([{"rule":"rm-rf-root","action":"block","enforced":true}])";
  ToolCallRecord b;
  b.call_id = "c2";
  b.name = "Read";
  r.tool_calls = {a, b};
  auto all = recordEvents(
      r, [](std::string_view) { return true; }, 1'700'000'000'000);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].kind, "request_complete");
  EXPECT_EQ(all[1].kind, "tool_call");
  EXPECT_EQ(all[2].kind, "guardrail_block");
  EXPECT_EQ(all[3].kind, "tool_call");
  json g = json::parse(all[2].payload);
  EXPECT_EQ(g["id"], all[2].id);
  EXPECT_EQ(g["type"], "guardrail_block");
  EXPECT_EQ(g["data"]["rule"], "rm-rf-root");
  EXPECT_EQ(g["data"]["command"], "rm -rf /");
  EXPECT_EQ(json::parse(all[0].payload)["data"]["usage"]["input_tokens"], 10);
  auto only = recordEvents(
      r, [](std::string_view k) { return k == "tool_call"; }, 0);
  EXPECT_EQ(only.size(), 2u);
}

TEST(WebhookBackoff, DoublesFromOneSecondUpToTheCap) {
  std::vector<int64_t> got;
  for (int n = 1; n <= 11; ++n) got.push_back(backoffMs(n));
  EXPECT_EQ(got, (std::vector<int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000,
                                       300000, 300000}));
  EXPECT_EQ(backoffMs(1000), 300000);
  EXPECT_EQ(backoffMs(3, 50, 150), 150);
}

struct OutboxFile {
  OutboxFile() {
    char tmpl[] = "/tmp/gatehouse-outbox-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/outbox.db";
  }
  ~OutboxFile() { fs::remove_all(dir); }
  std::string dir, path;
};

OutboxRow row(const std::string& id, const std::string& url, int64_t due) {
  return {0, id, url, "tool_call", 5, R"({"x":1})", 0, due, "", false};
}

TEST(WebhookOutbox, PersistsAcrossCloseAndReopen) {
  OutboxFile f;
  const std::vector<std::string> urls = {"http://a/", "http://b/"};
  {
    auto box = Outbox::open(f.path);
    ASSERT_TRUE(box) << box.status().message();
    ASSERT_TRUE((*box)->add(
        {row("e1", "http://a/", 100), row("e2", "http://a/", 200), row("e1", "http://b/", 100)}));
    // The same (event, url) again is ignored.
    ASSERT_TRUE((*box)->add({row("e1", "http://a/", 100)}));
    auto due = (*box)->due(150, urls, 10);
    ASSERT_TRUE(due);
    ASSERT_EQ(due->size(), 2u);
    ASSERT_TRUE((*box)->failed((*due)[0].seq, 1, 1100, "HTTP 500", false));
    ASSERT_TRUE((*box)->delivered((*due)[1].seq));
  }
  EXPECT_EQ(::access(f.path.c_str(), F_OK), 0);
  auto box = Outbox::open(f.path);
  ASSERT_TRUE(box) << box.status().message();
  auto all = (*box)->all();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].event_id, "e1");
  EXPECT_EQ((*all)[0].url, "http://a/");
  EXPECT_EQ((*all)[0].attempts, 1);
  EXPECT_EQ((*all)[0].next_attempt_ms, 1100);
  EXPECT_EQ((*all)[0].last_error, "HTTP 500");
  EXPECT_EQ((*all)[0].payload, R"({"x":1})");
  EXPECT_EQ((*all)[1].event_id, "e2");
  auto next = (*box)->nextDue(urls);
  ASSERT_TRUE(next);
  EXPECT_EQ(next.value(), std::optional<int64_t>(200));
  // Only configured URLs are served; leased rows are not due; dead rows never are.
  EXPECT_EQ((*box)->due(5000, {"http://c/"}, 10)->size(), 0u);
  ASSERT_TRUE((*box)->lease((*all)[1].seq, 9000));
  EXPECT_EQ((*box)->due(5000, urls, 10)->size(), 1u);
  ASSERT_TRUE((*box)->failed((*all)[0].seq, 12, 0, "gave up", true));
  EXPECT_EQ((*box)->due(5000, urls, 10)->size(), 0u);
  EXPECT_EQ((*box)->nextDue(urls).value(), std::optional<int64_t>(9000));
}

TEST(WebhookDispatcherTest, AFullQueueDropsCountsAndLogsInsteadOfWaiting) {
  OutboxFile f;
  WebhookOptions o;
  WebhookConfig hook;
  hook.endpoint.url = "http://127.0.0.1:9/";  // discard: deliveries fail, which is fine here
  hook.endpoint.target = {false, "127.0.0.1", 9, {}};
  hook.endpoint.host = "127.0.0.1:9";
  hook.events = {"quota"};
  o.webhooks = {hook};
  o.database = f.path;
  o.queue_size = 1;
  o.max_attempts = 1;
  std::mutex mu;
  std::vector<std::string> lines;
  o.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(line);
  };
  constexpr int kEvents = 2000;
  uint64_t accepted = 0;
  {
    auto d = WebhookDispatcher::start(std::move(o));
    ASSERT_TRUE(d) << d.status().message();
    for (int i = 0; i < kEvents; ++i) {
      accepted += (*d)->publish(
          quotaWebhookEvent({"rejected", "b", "who", std::to_string(i), ""}, 1'700'000'000'000));
    }
    WebhookCounters c = (*d)->counters();
    EXPECT_EQ(c.published, accepted);
    EXPECT_EQ(c.published + c.dropped, uint64_t{kEvents});
    EXPECT_GT(c.dropped, 0u) << "a one-event queue cannot keep up with a tight loop";
  }
  // Every accepted event reached the outbox (the destructor writes what is queued).
  auto box = Outbox::open(f.path);
  ASSERT_TRUE(box);
  EXPECT_EQ((*box)->all()->size(), accepted);
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> drops;
  for (const std::string& l : lines) {
    if (l.find("queue full") != std::string::npos) drops.push_back(l);
  }
  ASSERT_FALSE(drops.empty());
  EXPECT_NE(drops[0].find("queue full (1 events): dropped event evt_"), std::string::npos)
      << drops[0];
  EXPECT_LE(drops.size(), 11u) << "drops are logged at 1, 2, 4, 8, ...";
}

// ---- config ----

std::string withHooks(const std::string& hooks) {
  return R"({
  "providers": {"anthropic": {"kind": "anthropic", "key": "env:K", "models": ["claude-*"]}},
  "hooks": )" +
         hooks + "\n}";
}

LoadOptions syntaxOnly() {
  LoadOptions o;
  o.file_name = "gw.hujson";
  o.resolve_files = false;
  return o;
}

std::string errorOf(const std::string& text, LoadOptions o = syntaxOnly()) {
  auto r = parseGatewayConfig(text, o);
  EXPECT_FALSE(r) << text;
  return r ? "" : r.status().message();
}

TEST(HooksConfig, ParsesPreRequestAndWebhooks) {
  LoadOptions o = syntaxOnly();
  o.resolve_files = true;
  o.base_dir = "/tmp";
  o.env = [](const std::string& n) -> std::optional<std::string> {
    if (n == "K") return std::string("sk-test-key-0123456789");
    if (n == "WH") return std::string("whsec_c2VjcmV0");
    return std::nullopt;
  };
  auto cfg = parseGatewayConfig(withHooks(R"({
    "pre_request": {"url": "http://127.0.0.1:9000/check", "timeout_ms": 250, "body": "full",
                    "failure": "fail_open", "headers": {"X-Hook-Token": "t"}},
    "webhooks": [{"url": "https://hooks.example.com:8443/in", "secret": "env:WH",
                  "events": ["request_complete", "quota"]}],
    "outbox": "box.db", "max_attempts": 3
  })"),
                                o);
  ASSERT_TRUE(cfg) << cfg.status().message();
  const HooksConfig& h = cfg->hooks;
  ASSERT_TRUE(h.pre_request);
  EXPECT_EQ(h.pre_request->endpoint.target.tls, false);
  EXPECT_EQ(h.pre_request->endpoint.target.port, 9000);
  EXPECT_EQ(h.pre_request->endpoint.path, "/check");
  EXPECT_EQ(h.pre_request->endpoint.host, "127.0.0.1:9000");
  EXPECT_EQ(h.pre_request->timeout_ms, 250u);
  EXPECT_TRUE(h.pre_request->full_body);
  EXPECT_TRUE(h.pre_request->fail_open);
  ASSERT_EQ(h.webhooks.size(), 1u);
  EXPECT_TRUE(h.webhooks[0].endpoint.target.tls);
  EXPECT_EQ(h.webhooks[0].endpoint.host, "hooks.example.com:8443");
  EXPECT_EQ(h.webhooks[0].secret.reveal(), "whsec_c2VjcmV0");
  EXPECT_TRUE(h.webhooks[0].wants("quota"));
  EXPECT_FALSE(h.webhooks[0].wants("tool_call"));
  EXPECT_EQ(h.outbox, "/tmp/box.db");
  EXPECT_EQ(h.max_attempts, 3u);
  // Defaults.
  auto plain = parseGatewayConfig(withHooks(R"({"pre_request": {"url": "http://10.0.0.1/"}})"),
                                  syntaxOnly());
  ASSERT_TRUE(plain) << plain.status().message();
  EXPECT_EQ(plain->hooks.pre_request->timeout_ms, 5000u);
  EXPECT_FALSE(plain->hooks.pre_request->full_body);
  EXPECT_FALSE(plain->hooks.pre_request->fail_open);
  EXPECT_EQ(plain->hooks.outbox, "./gateway-outbox.db");
}

TEST(HooksConfig, ErrorsNameLineColumnAndFix) {
  EXPECT_EQ(errorOf(withHooks(R"({"pre_request": {"url": "ftp://x", "failure": "maybe"}})")),
            "gw.hujson:3:36: hooks: pre_request: url ftp://x must start with https:// (or "
            "http:// for a provider marked local)\n"
            "gw.hujson:3:58: hooks: \"failure\" must be one of fail_closed, fail_open");
  EXPECT_EQ(errorOf(withHooks(R"({"pre_reqest": {}})")),
            "gw.hujson:3:13: hooks: unknown hooks key \"pre_reqest\" (did you mean "
            "\"pre_request\"?); allowed: pre_request, webhooks, outbox, max_attempts, "
            "max_backoff_ms, queue_size");
  std::string e = errorOf(withHooks(
      R"({"webhooks": [{"url": "http://127.0.0.1:1/", "secret": "hunter2", "events": ["tool_calls"]}]})"));
  EXPECT_NE(e.find("gw.hujson:3:67: hooks: webhook: \"secret\" must be"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << "a pasted secret never appears: " << e;
  EXPECT_NE(e.find("gw.hujson:3:89: hooks: webhook: unknown event \"tool_calls\" (did you mean "
                   "\"tool_call\"?)"),
            std::string::npos)
      << e;
  std::string nosecret =
      errorOf(withHooks(R"({"webhooks": [{"url": "http://h/", "events": ["quota"]}]})"));
  EXPECT_NE(nosecret.find("gw.hujson:3:26: hooks: webhook has no \"secret\""), std::string::npos)
      << nosecret;
  LoadOptions files = syntaxOnly();
  files.resolve_files = true;
  files.env = [](const std::string&) {
    return std::optional<std::string>("sk-test-key-0123456789");
  };
  std::string ca = errorOf(
      withHooks(R"({"pre_request": {"url": "https://h/", "ca_file": "/nonexistent/ca.pem"}})"),
      files);
  EXPECT_NE(ca.find("gw.hujson:3:61: hooks: pre_request: cannot read ca_file /nonexistent/ca.pem"),
            std::string::npos)
      << ca;
  EXPECT_NE(errorOf(withHooks(R"({"pre_request": {"url": "http://h/", "timeout_ms": 0}})"))
                .find("\"timeout_ms\" must be a whole number from 1 to 600000"),
            std::string::npos);
  EXPECT_NE(errorOf(withHooks(R"({"pre_request": {"url": "http://h/", "headers": {"Host": "x"}}})"))
                .find("header \"Host\" is set by the gateway itself"),
            std::string::npos);
  // An env: secret that is not set fails at load, naming the reference, not a value.
  LoadOptions o = syntaxOnly();
  o.resolve_files = true;
  o.env = [](const std::string& n) -> std::optional<std::string> {
    if (n == "K") return std::string("sk-test-key-0123456789");
    return std::nullopt;
  };
  std::string unset = errorOf(
      withHooks(
          R"({"webhooks": [{"url": "http://h/", "secret": "env:NOPE", "events": ["quota"]}]})"),
      o);
  EXPECT_NE(unset.find("gw.hujson:3:57: hooks: webhook: "), std::string::npos) << unset;
  EXPECT_NE(unset.find("NOPE"), std::string::npos) << unset;
}

}  // namespace
}  // namespace gatehouse::proxy
