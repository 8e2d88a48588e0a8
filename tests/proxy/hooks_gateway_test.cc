// Hooks through the real gateway, in process: the C++ mock provider as the upstream, loopback
// HttpReceivers as the pre_request hook and as webhook receivers, raw HTTP clients on the
// gateway's loopback listener. pre_request: allow, block (403 in the client's shape), modify (the
// provider answers the replacement body), timeout with fail_closed (503) and fail_open (200),
// garbage and unreachable hooks. Webhooks: every signature verified; request_complete, tool_call
// and guardrail_block arrive; a 500 is retried and the event delivered once; events pending when
// the gateway and its dispatcher stop are delivered once after a restart. Every wait is bounded.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "proxy/config/gateway_config.h"
#include "proxy/gateway/gateway.h"
#include "proxy/hooks/signature.h"
#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_writer.h"
#include "proxy/mock/mock_provider.h"
#include "tests/proxy/gateway_harness.h"
#include "tests/proxy/http_receiver.h"

namespace gatehouse::proxy {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kSecret = "test-webhook-secret";
const std::string kAnthropic = "anthropic-version: 2023-06-01\r\nx-api-key: -\r\n";

std::string claude(const std::string& text, const std::string& extra = "") {
  return post("/v1/messages",
              R"({"model":"claude-test","max_tokens":32,)" + extra +
                  R"("messages":[{"role":"user","content":")" + text + R"("}]})",
              kAnthropic);
}

std::string gpt(const std::string& text) {
  return post("/v1/chat/completions",
              R"({"model":"gpt-test","messages":[{"role":"user","content":")" + text + R"("}]})",
              "Authorization: Bearer -\r\n");
}

// Waits (bounded) until `pred` holds.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class HooksGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mock_.start({}).isOk());
    dir_ = std::filesystem::temp_directory_path() /
           ("gwhooks-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    stop();
    mock_.stop();
    std::filesystem::remove_all(dir_);
  }

  // A gateway with `hooks` as its "hooks" section, a request log, and (when the section has
  // webhooks) a WebhookDispatcher on the outbox in dir_.
  void start(const std::string& hooks) {
    std::string mock = "http://127.0.0.1:" + std::to_string(mock_.port());
    std::string text = R"({
      "loopback_listen": "127.0.0.1:0",
      "loopback_identity": {"user": "alice@example.com", "groups": ["group:eng"]},
      "providers": {
        "anthropic": {"kind": "anthropic", "local": true, "models": ["claude-*"],
                      "base_url": ")" +
                       mock + R"("},
        "openai": {"kind": "openai", "local": true, "models": ["gpt-*"], "base_url": ")" +
                       mock + R"("}},
      "grants": [{"src": ["*"], "models": ["*"], "role": "admin"}],
      "hooks": )" + hooks +
                       R"(
    })";
    LoadOptions lo;
    lo.base_dir = dir_.string();
    lo.env = [](const std::string& n) -> std::optional<std::string> {
      if (n == "HOOK_SECRET") return std::string(kSecret);
      return std::nullopt;
    };
    auto cfg = parseGatewayConfig(text, lo);
    ASSERT_TRUE(cfg) << cfg.status().message();
    config_ = std::make_shared<const GatewayConfig>(std::move(cfg.value()));
    std::string db = (dir_ / "log.db").string();
    if (!writer_) {
      auto store = LogStore::open(db);
      ASSERT_TRUE(store) << store.status().message();
      writer_ = std::make_unique<LogWriter>(std::move(store.value()), LogWriterOptions{});
      auto reader = LogReader::open(db);
      ASSERT_TRUE(reader) << reader.status().message();
      reader_ = std::move(reader.value());
    }
    GatewayOptions o;
    o.config = config_;
    o.log = writer_.get();
    o.reader = reader_.get();
    if (!config_->hooks.webhooks.empty()) {
      WebhookOptions wo = WebhookOptions::fromConfig(config_->hooks);
      wo.base_backoff_ms = backoff_ms_;
      wo.log = [](const std::string&) {};
      auto d = WebhookDispatcher::start(std::move(wo));
      ASSERT_TRUE(d) << d.status().message();
      webhooks_ = std::move(d.value());
      o.webhooks = webhooks_.get();
    }
    gw_ = std::make_unique<RunningGateway>(std::move(o));
    ASSERT_TRUE(gw_->status().isOk()) << gw_->status().message();
  }

  // Stops the gateway, then the dispatcher (which writes what is queued to the outbox).
  void stop() {
    gw_.reset();
    webhooks_.reset();
  }

  std::optional<Response> call(const std::string& request) {
    Client c(gw_->port());
    if (!c.send(request)) return std::nullopt;
    return c.read(10'000);
  }

  // The newest log record, once `n` are stored.
  RequestRecord lastRecord(size_t n = 1) {
    RequestRecord out;
    EXPECT_TRUE(eventually([&] {
      writer_->flush(5s);
      auto page = reader_->listRequests({.limit = 100});
      if (!page || page->records.size() < n) return false;
      out = page->records.front();
      return true;
    }));
    return out;
  }

  std::string preRequest(const HttpReceiver& hook, const std::string& extra = "") {
    return R"({"pre_request": {"url": ")" + hook.url("/check") + "\"" + extra + "}}";
  }

  mock::MockProviderThread mock_;
  std::filesystem::path dir_;
  std::shared_ptr<const GatewayConfig> config_;
  std::unique_ptr<LogWriter> writer_;
  std::unique_ptr<LogReader> reader_;
  std::unique_ptr<WebhookDispatcher> webhooks_;
  std::unique_ptr<RunningGateway> gw_;
  int64_t backoff_ms_ = 1000;
};

// ---- pre_request ----

TEST_F(HooksGatewayTest, AllowForwardsAndTheHookSeesWhoAndWhat) {
  HttpReceiver hook([](const HttpReceiver::Request&) {
    return HttpReceiver::Answer{200, R"({"action":"allow"})"};
  });
  start(preRequest(hook));
  auto r = call(claude("hello"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("mock: hello"), std::string::npos) << r->body;
  auto seen = hook.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/check");
  EXPECT_EQ(seen[0].header("content-type"), "application/json");
  json j = json::parse(seen[0].body);
  EXPECT_EQ(j["event"], "pre_request");
  EXPECT_EQ(j["identity"]["user"], "alice@example.com");
  EXPECT_EQ(j["identity"]["groups"], json::array({"group:eng"}));
  EXPECT_EQ(j["provider"], "anthropic");
  EXPECT_EQ(j["model"], "claude-test");
  EXPECT_EQ(j["path"], "/v1/messages");
  EXPECT_EQ(j["summary"]["last_user_message"], "hello");
  EXPECT_EQ(j["summary"]["max_tokens"], 32);
  EXPECT_EQ(j["request_id"], r->header("x-gatehouse-request-id"));
  EXPECT_EQ(gw_->gateway().counters().hook_allowed, 1u);
  EXPECT_EQ(lastRecord().hook, "allow");
}

TEST_F(HooksGatewayTest, BlockAnswers403InTheClientsShapeAndNeverCallsTheProvider) {
  HttpReceiver hook([](const HttpReceiver::Request&) {
    return HttpReceiver::Answer{200, R"({"action":"block","message":"no secrets please"})"};
  });
  start(preRequest(hook));
  auto a = call(claude("my password is hunter2"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 403);
  json ja = a->json();
  EXPECT_EQ(ja["type"], "error");
  EXPECT_EQ(ja["error"]["type"], "permission_error");
  EXPECT_NE(ja["error"]["message"].get<std::string>().find("no secrets please"), std::string::npos);
  auto o = call(gpt("my password is hunter2"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, 403);
  json jo = o->json();
  ASSERT_TRUE(jo["error"].is_object()) << o->body;
  EXPECT_NE(jo["error"]["message"].get<std::string>().find("no secrets please"), std::string::npos);
  EXPECT_EQ(gw_->gateway().counters().hook_blocked, 2u);
  RequestRecord rec = lastRecord(2);
  // The refusal names its request id, the one the log (and the hook) saw.
  EXPECT_EQ(o->header("x-gatehouse-request-id"), rec.id);
  EXPECT_EQ(rec.hook, "block");
  EXPECT_EQ(rec.status, 403);
  EXPECT_NE(rec.error.find("blocked by the pre_request hook"), std::string::npos);
  // Nothing came back from the provider: it was never called.
  EXPECT_FALSE(rec.ttfb_ms);
  EXPECT_FALSE(rec.tokens.input);
}

TEST_F(HooksGatewayTest, ModifyForwardsTheReplacementBody) {
  HttpReceiver hook([](const HttpReceiver::Request& req) {
    json body = json::parse(req.body)["body"];
    body["messages"] = json::array({{{"role", "user"}, {"content", "REPLACED by the hook"}}});
    return HttpReceiver::Answer{200, json({{"action", "modify"}, {"body", body}}).dump()};
  });
  start(preRequest(hook, R"(, "body": "full")"));
  auto r = call(claude("original text"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // The mock echoes the last user message: it received the hook's body.
  EXPECT_NE(r->body.find("mock: REPLACED by the hook"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("original text"), std::string::npos);
  EXPECT_EQ(gw_->gateway().counters().hook_modified, 1u);
  RequestRecord rec = lastRecord();
  EXPECT_EQ(rec.hook, "modify");
  auto detail = reader_->getRequest(rec.id, true);
  ASSERT_TRUE(detail) << detail.status().message();
  ASSERT_TRUE(detail->request_body);
  EXPECT_NE(detail->request_body->find("REPLACED"), std::string::npos);
}

TEST_F(HooksGatewayTest, ModifyThatChangesTheModelIsAHookFailure) {
  HttpReceiver hook([](const HttpReceiver::Request&) {
    return HttpReceiver::Answer{
        200, R"({"action":"modify","body":{"model":"claude-other","max_tokens":5,"messages":[]}})"};
  });
  start(preRequest(hook));
  auto r = call(claude("hi"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("changes the model"), std::string::npos) << r->body;
}

TEST_F(HooksGatewayTest, TimeoutFailClosedIs503) {
  HttpReceiver hook([](const HttpReceiver::Request&) {
    return HttpReceiver::Answer{200, R"({"action":"allow"})", 1500};
  });
  start(preRequest(hook, R"(, "timeout_ms": 200, "failure": "fail_closed")"));
  auto start_time = Clock::now();
  auto r = call(claude("hi"));
  ASSERT_TRUE(r);
  EXPECT_LT(Clock::now() - start_time, 1400ms) << "the hook's deadline, not its answer";
  EXPECT_EQ(r->status, 503);
  json j = r->json();
  EXPECT_EQ(j["type"], "error");
  std::string msg = j["error"]["message"];
  EXPECT_NE(msg.find("pre_request hook"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did not answer within 200 ms"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fail_closed"), std::string::npos) << msg;
  EXPECT_EQ(gw_->gateway().counters().hook_failed, 1u);
  EXPECT_EQ(lastRecord().hook.rfind("fail_closed: ", 0), 0u);
}

TEST_F(HooksGatewayTest, TimeoutFailOpenForwards) {
  HttpReceiver hook([](const HttpReceiver::Request&) {
    return HttpReceiver::Answer{200, R"({"action":"block"})", 1500};
  });
  start(preRequest(hook, R"(, "timeout_ms": 200, "failure": "fail_open")"));
  auto r = call(claude("still served"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("mock: still served"), std::string::npos);
  EXPECT_EQ(gw_->gateway().counters().hook_fail_open, 1u);
  RequestRecord rec = lastRecord();
  EXPECT_EQ(rec.hook.rfind("fail_open: ", 0), 0u) << rec.hook;
  EXPECT_EQ(rec.status, 200);
}

TEST_F(HooksGatewayTest, GarbageErrorAndUnreachableHooksFollowTheFailurePolicy) {
  std::atomic<int> mode{0};
  HttpReceiver hook([&](const HttpReceiver::Request&) {
    switch (mode.load()) {
      case 0:
        return HttpReceiver::Answer{200, "this is not json"};
      case 1:
        return HttpReceiver::Answer{200, R"({"action":"perhaps"})"};
      default:
        return HttpReceiver::Answer{500, R"({"action":"allow"})"};
    }
  });
  start(preRequest(hook));
  for (int m = 0; m < 3; ++m) {
    mode = m;
    auto r = call(m % 2 ? gpt("x") : claude("x"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503) << m << ": " << r->body;
  }
  EXPECT_EQ(gw_->gateway().counters().hook_failed, 3u);
  EXPECT_EQ(gw_->gateway().counters().forwarded, 3u);  // routed to an exchange, never sent upstream
  // A hook nobody listens on.
  int fd = listenLocal();
  uint16_t dead = boundPort(fd);
  ::close(fd);
  stop();
  start(R"({"pre_request": {"url": "http://127.0.0.1:)" + std::to_string(dead) +
        R"(/x", "failure": "fail_open"}})");
  auto r = call(claude("open"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(gw_->gateway().counters().hook_fail_open, 1u);
}

// ---- webhooks ----

// A webhook receiver that checks every signature and tallies what it answered per webhook-id.
struct WebhookSink {
  explicit WebhookSink(std::function<int(const std::string& id, int seen)> status =
                           [](const std::string&, int) { return 200; })
      : status_(std::move(status)),
        receiver([this](const HttpReceiver::Request& r) { return answer(r); }) {}

  HttpReceiver::Answer answer(const HttpReceiver::Request& r) {
    std::lock_guard<std::mutex> lock(mu);
    std::string id = r.header("webhook-id");
    int64_t ts = std::atoll(r.header("webhook-timestamp").c_str());
    if (r.header("webhook-signature") != webhookSignature(kSecret, id, ts, r.body) ||
        std::llabs(ts - std::time(nullptr)) > 300) {
      ++bad_signatures;
    }
    int status = status_(id, seen[id]++);
    if (status / 100 == 2) {
      ++delivered[id];
      json j = json::parse(r.body, nullptr, false);
      if (j.is_object() && j.value("id", "") == id) events.push_back(j);
    }
    return {status, "{}", delay_ms};
  }

  std::vector<json> eventsOf(const std::string& type) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<json> out;
    for (const json& e : events) {
      if (e["type"] == type) out.push_back(e);
    }
    return out;
  }
  size_t deliveredCount() {
    std::lock_guard<std::mutex> lock(mu);
    return delivered.size();
  }

  std::function<int(const std::string&, int)> status_;
  std::mutex mu;
  std::map<std::string, int> seen;       // attempts per id
  std::map<std::string, int> delivered;  // 2xx answers per id
  std::vector<json> events;
  int bad_signatures = 0;
  std::atomic<int> delay_ms{0};
  HttpReceiver receiver;  // last: it calls back into the members above
};

std::string webhookSection(const WebhookSink& sink, const std::string& events,
                           const std::string& outbox) {
  return R"({"outbox": ")" + outbox + R"(", "webhooks": [{"url": ")" + sink.receiver.url("/in") +
         R"(", "secret": "env:HOOK_SECRET", "events": )" + events + "}]}";
}

const std::string kBashTool =
    R"("tools":[{"name":"Bash","description":"Run","input_schema":{"type":"object"}}],)";

TEST_F(HooksGatewayTest, WebhooksCarrySignedCompleteToolAndGuardrailEvents) {
  WebhookSink sink;
  start(webhookSection(sink, R"(["request_complete", "tool_call", "guardrail_block"])",
                       (dir_ / "outbox.db").string()));
  auto admin = call("GET /api/requests HTTP/1.1\r\nHost: ai\r\n\r\n");
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->status, 200);
  auto r = call(claude("bash: rm -rf /", kBashTool));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(eventually([&] { return sink.deliveredCount() >= 3; }))
      << "delivered " << sink.deliveredCount();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(sink.deliveredCount(), 3u) << "admin API calls are not events";
  auto complete = sink.eventsOf("request_complete");
  ASSERT_EQ(complete.size(), 1u);
  EXPECT_EQ(complete[0]["data"]["request_id"], r->header("x-gatehouse-request-id"));
  EXPECT_EQ(complete[0]["data"]["identity"]["user"], "alice@example.com");
  EXPECT_EQ(complete[0]["data"]["status"], 200);
  EXPECT_TRUE(complete[0]["data"]["usage"]["input_tokens"].is_number());
  EXPECT_EQ(complete[0]["data"]["tool_calls"], 1);
  auto tools = sink.eventsOf("tool_call");
  ASSERT_EQ(tools.size(), 1u);
  EXPECT_EQ(tools[0]["data"]["name"], "Bash");
  EXPECT_EQ(tools[0]["data"]["command"], "rm -rf /");
  auto blocks = sink.eventsOf("guardrail_block");
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0]["data"]["rule"], "rm-rf-root");
  EXPECT_EQ(blocks[0]["data"]["action"], "block");
  EXPECT_EQ(blocks[0]["data"]["command"], "rm -rf /");
  std::lock_guard<std::mutex> lock(sink.mu);
  EXPECT_EQ(sink.bad_signatures, 0);
  for (const auto& [id, n] : sink.delivered) EXPECT_EQ(n, 1) << id;
}

TEST_F(HooksGatewayTest, WebhookAnswering500IsRetriedAndDeliveredOnce) {
  WebhookSink sink([](const std::string&, int seen) { return seen == 0 ? 500 : 200; });
  backoff_ms_ = 50;
  start(webhookSection(sink, R"(["request_complete", "quota"])", (dir_ / "outbox.db").string()));
  ASSERT_TRUE(call(claude("one")));
  ASSERT_TRUE(call(claude("two")));
  ASSERT_TRUE(eventually([&] { return sink.deliveredCount() >= 2; }));
  std::this_thread::sleep_for(300ms);  // room for a wrong extra delivery to show up
  std::lock_guard<std::mutex> lock(sink.mu);
  EXPECT_EQ(sink.delivered.size(), 2u);
  for (const auto& [id, n] : sink.delivered) {
    EXPECT_EQ(n, 1) << id;
    EXPECT_EQ(sink.seen[id], 2) << id << ": one 500, then one 200";
  }
  EXPECT_EQ(sink.bad_signatures, 0);
  WebhookCounters c = webhooks_->counters();
  EXPECT_EQ(c.delivered, 2u);
  EXPECT_EQ(c.failed_attempts, 2u);
}

TEST_F(HooksGatewayTest, PendingWebhooksAreDeliveredOnceAfterARestart) {
  // First run: the receiver holds each delivery, then refuses it; the gateway and its
  // dispatcher stop while deliveries are pending.
  std::atomic<bool> second_run{false};
  WebhookSink sink([&](const std::string&, int) { return second_run ? 200 : 503; });
  sink.delay_ms = 700;
  std::string outbox = (dir_ / "outbox.db").string();
  start(webhookSection(sink, R"(["request_complete", "tool_call"])", outbox));
  std::set<std::string> ids;
  for (const char* text : {"bash: ls", "bash: pwd"}) {
    auto r = call(claude(text, kBashTool));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
  }
  ASSERT_TRUE(eventually([&] { return !sink.receiver.requests().empty(); }));
  stop();
  EXPECT_EQ(sink.deliveredCount(), 0u);
  {
    auto box = Outbox::open(outbox);
    ASSERT_TRUE(box);
    auto rows = (*box)->all();
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->size(), 4u) << "2 request_complete + 2 tool_call events pending";
    for (const OutboxRow& row : *rows) ids.insert(row.event_id);
  }
  EXPECT_EQ(ids.size(), 4u);

  // Second run: same outbox, the receiver accepts.
  second_run = true;
  sink.delay_ms = 0;
  start(webhookSection(sink, R"(["request_complete", "tool_call"])", outbox));
  ASSERT_TRUE(eventually([&] { return sink.deliveredCount() >= 4; }))
      << sink.deliveredCount() << " delivered";
  std::this_thread::sleep_for(300ms);
  std::lock_guard<std::mutex> lock(sink.mu);
  EXPECT_EQ(sink.bad_signatures, 0);
  std::set<std::string> got;
  for (const auto& [id, n] : sink.delivered) {
    EXPECT_EQ(n, 1) << id << " delivered more than once";
    got.insert(id);
  }
  EXPECT_EQ(got, ids);
  auto box = Outbox::open(outbox);
  EXPECT_TRUE(box && (*box)->all()->empty());
}

// The gateway publishes each QuotaEvent (Gateway::quotaEvent) as a "quota" event; here the
// dispatcher's side: only subscribed kinds, delivered signed.
TEST_F(HooksGatewayTest, QuotaEventsAreDeliveredToSubscribers) {
  WebhookSink sink;
  start(webhookSection(sink, R"(["quota"])", (dir_ / "outbox.db").string()));
  ASSERT_TRUE(webhooks_->wants("quota"));
  EXPECT_FALSE(webhooks_->wants("tool_call"));
  webhooks_->publish(quotaWebhookEvent({"rejected", "daily", "alice@example.com", "r1", "over"},
                                       1'700'000'000'000));
  ASSERT_TRUE(call(claude("not a quota event")));
  ASSERT_TRUE(eventually([&] { return sink.deliveredCount() == 1; }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(sink.deliveredCount(), 1u) << "request_complete is not subscribed";
  auto q = sink.eventsOf("quota");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]["data"]["bucket"], "daily");
}

}  // namespace
}  // namespace gatehouse::proxy
