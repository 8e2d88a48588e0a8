// Robustness tests for the gateway's HTTP front end: a real proxy::Gateway on a libuv loop thread,
// a canned upstream on 127.0.0.1 (plain sockets, one thread per connection), raw client sockets,
// and the request log on a temp SQLite file. Timeouts are shrunk so every case stays well under a
// second or two; every wait is bounded.
#include "proxy/gateway/gateway.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config/gateway_config.h"
#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_store.h"
#include "proxy/logstore/log_writer.h"
#include "tests/proxy/gateway_client.h"

namespace gatehouse::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string chunk(std::string_view data) {
  char size[32];
  snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

int64_t msSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// ---------------------------------------------------------------------------------------------
// The canned upstream. The request's model picks the behaviour:
//   claude-hang   accept, read, never answer
//   claude-die    SSE head and one event, then close mid-stream
//   claude-slow   SSE head and one event, then wait for the gateway to close (EOF time recorded)
//   claude-stream a complete chunked SSE stream
//   claude-*      Anthropic message JSON;  gpt-*  OpenAI chat completion JSON
// Every request (head + body as received) is kept for the assertions.

struct Upstream {
  int lfd = -1;
  uint16_t port = 0;
  std::atomic<bool> stop{false};
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  std::vector<std::string> requests;           // guarded by mu
  std::optional<Clock::time_point> slow_eof;   // guarded by mu
  std::optional<Clock::time_point> slow_sent;  // guarded by mu

  Upstream() {
    lfd = listenLocal();
    port = boundPort(lfd);
    acceptor = std::thread([this] { acceptLoop(); });
  }
  ~Upstream() {
    stop = true;
    acceptor.join();
    std::lock_guard<std::mutex> lock(mu);
    for (auto& t : workers) t.join();
    ::close(lfd);
  }

  std::vector<std::string> seen() {
    std::lock_guard<std::mutex> lock(mu);
    return requests;
  }

  void acceptLoop() {
    while (!stop) {
      pollfd p{lfd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu);
      workers.emplace_back([this, fd] {
        serve(fd);
        ::close(fd);
      });
    }
  }

  // Reads until `pred` holds on `buf`; false on EOF or stop.
  bool readUntil(int fd, std::string* buf, const std::function<bool()>& pred) {
    while (!pred()) {
      if (stop) return false;
      int n = readSome(fd, buf, 20);
      if (n == 0) return false;
    }
    return true;
  }

  void serve(int fd) {
    std::string buf;
    while (!stop) {
      size_t end = 0;
      if (!readUntil(fd, &buf, [&] { return (end = buf.find("\r\n\r\n")) != std::string::npos; }))
        return;
      std::string head = buf.substr(0, end + 4);
      size_t length = 0;
      std::string lh = lower(head);
      if (size_t at = lh.find("\r\ncontent-length:"); at != std::string::npos) {
        length = std::strtoul(lh.c_str() + at + 17, nullptr, 10);
      }
      if (!readUntil(fd, &buf, [&] { return buf.size() >= head.size() + length; })) return;
      std::string body = buf.substr(head.size(), length);
      buf.erase(0, head.size() + length);
      {
        std::lock_guard<std::mutex> lock(mu);
        requests.push_back(head + body);
      }
      std::string model = nlohmann::json::parse(body, nullptr, false).value("model", "");
      if (!answer(fd, model)) return;
    }
  }

  static std::string sseEvent(std::string_view type, std::string_view data) {
    return "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
  }

  // False: the connection is done.
  bool answer(int fd, const std::string& model) {
    const std::string sse_head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string start = sseEvent(
        "message_start",
        R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":")" +
            model + R"(","content":[],"usage":{"input_tokens":10,"output_tokens":1}}})");
    if (model == "claude-hang") {
      std::string sink;
      while (!stop && readSome(fd, &sink, 20) != 0) {
      }
      return false;
    }
    if (model == "claude-die") {
      sendAll(fd, sse_head + chunk(start));
      return false;
    }
    if (model == "claude-slow") {
      sendAll(fd, sse_head + chunk(start));
      {
        std::lock_guard<std::mutex> lock(mu);
        slow_sent = Clock::now();
      }
      std::string sink;
      while (!stop && readSome(fd, &sink, 5) != 0) {
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!stop) slow_eof = Clock::now();
      cv.notify_all();
      return false;
    }
    if (model == "claude-stream") {
      std::string out = sse_head + chunk(start);
      out += chunk(sseEvent(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}})"));
      out += chunk(sseEvent("message_stop", R"({"type":"message_stop"})"));
      out += "0\r\n\r\n";
      return sendAll(fd, out);
    }
    std::string body;
    if (model.rfind("gpt-", 0) == 0) {
      body =
          R"({"id":"chatcmpl-1","object":"chat.completion","model":")" + model +
          R"(","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})";
    } else {
      body =
          R"({"id":"msg_1","type":"message","role":"assistant","model":")" + model +
          R"(","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}})";
    }
    return sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body);
  }
};

const std::string kAnthropicHeaders = "anthropic-version: 2023-06-01\r\nx-api-key: -\r\n";

std::string anthropicCall(const std::string& model) {
  return post("/v1/messages", R"({"model":")" + model + R"(","max_tokens":16,"messages":[]})",
              kAnthropicHeaders);
}

std::string openaiCall(const std::string& model) {
  return post("/v1/chat/completions", R"({"model":")" + model + R"(","messages":[]})",
              "Authorization: Bearer -\r\n");
}

void expectAnthropicError(const Response& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("type", ""), "error") << r.body;
  ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.body;
  if (!type.empty()) {
    EXPECT_EQ(j["error"].value("type", ""), type) << r.body;
  }
  EXPECT_FALSE(j["error"].value("message", "").empty()) << r.body;
}

void expectOpenAIError(const Response& r, int status, const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_FALSE(j.contains("type")) << "OpenAI errors have no top-level type: " << r.body;
  ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.body;
  EXPECT_FALSE(j["error"].value("message", "").empty()) << r.body;
  if (!code.empty()) {
    EXPECT_EQ(j["error"].value("code", ""), code) << r.body;
  }
}

std::string errorMessage(const Response& r) {
  auto j = r.json();
  if (!j.is_object() || !j.contains("error")) return "";
  return j["error"].value("message", "");
}

// ---------------------------------------------------------------------------------------------

constexpr int64_t kIdleMs = 600;
constexpr int64_t kReadMs = 500;

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("gwtest-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);

    // A port nothing listens on: bound, then closed.
    int dead = listenLocal();
    uint16_t dead_port = boundPort(dead);
    ::close(dead);

    std::string up = "http://127.0.0.1:" + std::to_string(upstream_.port);
    std::string text = R"({
      "loopback_listen": "127.0.0.1:0",
      "loopback_identity": {"user": "alice@example.com", "groups": ["group:eng"]},
      "providers": {
        // Listed first so it wins for this one model: a short read timeout for the 504 case.
        "hang": {"kind": "anthropic", "base_url": ")" +
                       up + R"(", "local": true, "models": ["claude-hang"],
                 "timeouts": {"read_ms": 300}},
        "anthropic": {"kind": "anthropic", "base_url": ")" +
                       up + R"(", "local": true,
                      "key": "env:GW_TEST_ANTHROPIC_KEY", "models": ["claude-*"]},
        "openai": {"kind": "openai", "base_url": ")" +
                       up + R"(", "local": true,
                   "key": "env:GW_TEST_OPENAI_KEY", "models": ["gpt-*"]},
        "dead": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:)" +
                       std::to_string(dead_port) + R"(", "local": true, "models": ["dead-*"]},
      },
      "grants": [
        {"src": ["alice@example.com"], "models": ["hang/*", "anthropic/*", "openai/gpt-4o*", "dead/*"]},
      ],
    })";
    LoadOptions lo;
    lo.env = [](const std::string& name) -> std::optional<std::string> {
      if (name == "GW_TEST_ANTHROPIC_KEY") return "sk-ant-test-key";
      if (name == "GW_TEST_OPENAI_KEY") return "sk-oa-test-key";
      return std::nullopt;
    };
    auto cfg = parseGatewayConfig(text, lo);
    ASSERT_TRUE(cfg) << cfg.status().message();
    auto config = std::make_shared<const GatewayConfig>(std::move(cfg.value()));

    db_ = (dir_ / "log.db").string();
    auto store = LogStore::open(db_);
    ASSERT_TRUE(store) << store.status().message();
    writer_ = std::make_unique<LogWriter>(std::move(store.value()), LogWriterOptions{});

    GatewayOptions o;
    o.config = config;
    o.log = writer_.get();
    o.max_header_bytes = 8 * 1024;
    o.max_body_bytes = 64 * 1024;
    o.idle_timeout_ms = kIdleMs;
    o.request_read_timeout_ms = kReadMs;

    uv_loop_init(&loop_);
    gw_ = std::make_unique<Gateway>(&loop_, std::move(o));
    auto port = gw_->listenLoopback(*config->loopback_listen, *config->loopback_identity);
    ASSERT_TRUE(port) << port.status().message();
    port_ = port.value();
    stop_.data = this;
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      static_cast<GatewayTest*>(a->data)->gw_->close();
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    loop_thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  void TearDown() override {
    if (loop_thread_.joinable()) {
      uv_async_send(&stop_);
      loop_thread_.join();
      gw_.reset();
      EXPECT_EQ(uv_loop_close(&loop_), 0);
    }
    writer_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Every record in the log after a flush (newest first).
  std::vector<RequestRecord> records() {
    EXPECT_TRUE(writer_->flush(5s));
    auto reader = LogReader::open(db_);
    EXPECT_TRUE(reader) << reader.status().message();
    if (!reader) return {};
    ListRequestsQuery q;
    q.limit = 1000;
    auto page = reader.value()->listRequests(q);
    EXPECT_TRUE(page) << page.status().message();
    return page ? page.value().records : std::vector<RequestRecord>{};
  }

  // The one record with `id`; fails the test when there is not exactly one.
  std::optional<RequestRecord> recordFor(const std::string& id) {
    // The record is submitted on the loop thread around the time the response ends: poll.
    std::vector<RequestRecord> all;
    auto deadline = Clock::now() + 3s;
    for (;;) {
      all = records();
      bool any = std::any_of(all.begin(), all.end(), [&](auto& r) { return r.id == id; });
      if (any || Clock::now() > deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    std::optional<RequestRecord> found;
    int n = 0;
    for (auto& r : all) {
      if (r.id == id) {
        ++n;
        found = r;
      }
    }
    EXPECT_EQ(n, 1) << "records for request " << id;
    return found;
  }

  // Waits (bounded) until the log holds `n` records; they may still be in flight on the loop.
  std::vector<RequestRecord> waitRecords(size_t n) {
    auto deadline = Clock::now() + 3s;
    std::vector<RequestRecord> r;
    do {
      r = records();
      if (r.size() >= n) break;
      std::this_thread::sleep_for(20ms);
    } while (Clock::now() < deadline);
    return r;
  }

  Upstream upstream_;
  std::filesystem::path dir_;
  std::string db_;
  std::unique_ptr<LogWriter> writer_;
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<Gateway> gw_;
  std::thread loop_thread_;
  uint16_t port_ = 0;
};

TEST(RequestIdTest, UniqueHexAndInTimeOrder) {
  std::set<std::string> seen;
  std::string prev;
  for (int i = 0; i < 5000; ++i) {
    std::string id = newRequestId();
    ASSERT_EQ(id.size(), 32u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    ASSERT_TRUE(seen.insert(id).second) << "duplicate " << id;
    // The first 12 digits are Unix ms: never decreasing, and close to now.
    ASSERT_GE(id.substr(0, 12), prev.empty() ? "" : prev.substr(0, 12));
    prev = id;
  }
  int64_t ms = std::stoll(prev.substr(0, 12), nullptr, 16);
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  EXPECT_LE(std::abs(now - ms), 5000);
}

// ---- request errors the gateway answers itself ---------------------------------------------

TEST_F(GatewayTest, MalformedJsonIs400InTheClientsShape) {
  Client c(port_);
  c.send(post("/v1/messages", "{not json", kAnthropicHeaders));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 400, "invalid_request_error");
  c.send(post("/v1/chat/completions", "[1,", ""));
  r = c.read();  // the connection stays usable after a 400 on the body
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 400);
  EXPECT_TRUE(upstream_.seen().empty());
}

TEST_F(GatewayTest, MissingModelIs400) {
  Client c(port_);
  c.send(post("/v1/messages", R"({"max_tokens":1,"messages":[]})", kAnthropicHeaders));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 400, "invalid_request_error");
  EXPECT_NE(errorMessage(*r).find("model"), std::string::npos) << r->body;
}

TEST_F(GatewayTest, UnknownModelIs404ModelNotFound) {
  Client c(port_);
  c.send(openaiCall("nonexistent-model"));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 404, "model_not_found");
  c.send(anthropicCall("nonexistent-model"));
  r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 404, "not_found_error");
  EXPECT_TRUE(upstream_.seen().empty());
}

TEST_F(GatewayTest, ModelNotGrantedIs403NamingIdentityAndModel) {
  Client c(port_);
  c.send(openaiCall("gpt-5-secret"));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 403);
  std::string msg = errorMessage(*r);
  EXPECT_NE(msg.find("alice@example.com"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt-5-secret"), std::string::npos) << msg;
  EXPECT_TRUE(upstream_.seen().empty());
}

TEST_F(GatewayTest, NoIdentityIs403) {
  // A tailnet connection whose peer is not in the network map: adopted with no identity.
  int l = listenLocal();
  int client_fd = connectLocal(boundPort(l));
  int server_fd = ::accept(l, nullptr, nullptr);
  ::close(l);
  ASSERT_GE(server_fd, 0);
  gw_->adoptFromAnyThread(server_fd, std::nullopt, "100.64.0.9:40000");
  Client c(client_fd, true);
  c.send(anthropicCall("claude-ok"));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 403, "permission_error");
  EXPECT_NE(errorMessage(*r).find("100.64.0.9"), std::string::npos) << r->body;
  EXPECT_TRUE(upstream_.seen().empty());
}

// ---- limits and invalid HTTP ---------------------------------------------------------------

TEST_F(GatewayTest, HeaderSectionOverLimitIs431AndClose) {
  Client c(port_);
  c.send(
      "POST /v1/messages?beta=true HTTP/1.1\r\nHost: ai\r\nanthropic-version: "
      "2023-06-01\r\nX-Big: " +
      std::string(16 * 1024, 'a') + "\r\n\r\n");
  auto r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 431, "");  // shaped from the raw head: the parser refused it
  EXPECT_EQ(lower(r->header("connection")), "close");
  EXPECT_NE(errorMessage(*r).find("header"), std::string::npos) << r->body;
  EXPECT_TRUE(c.closedWithin(1000));
  // Logged from what there is of the head: its request line and the connection's identity.
  auto rec = recordFor(r->header("x-gatehouse-request-id"));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, 431);
  EXPECT_EQ(rec->method, "POST");
  EXPECT_EQ(rec->path, "/v1/messages?beta=true");
  EXPECT_EQ(rec->identity.user_login, "alice@example.com");
  EXPECT_NE(rec->error.find("header"), std::string::npos) << rec->error;
}

TEST_F(GatewayTest, ContentLengthOverLimitIs413AndClose) {
  Client c(port_);
  c.send(
      "POST /v1/messages HTTP/1.1\r\nHost: ai\r\nanthropic-version: 2023-06-01\r\n"
      "Content-Length: 100000\r\n\r\n");
  auto r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 413, "request_too_large");
  EXPECT_EQ(lower(r->header("connection")), "close");
  EXPECT_TRUE(c.closedWithin(1000));
}

TEST_F(GatewayTest, ChunkedBodyOverLimitIs413AndClose) {
  Client c(port_);
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: ai\r\nTransfer-Encoding: chunked\r\n\r\n");
  // Stop sending as soon as the answer arrives, so no unread bytes make the close a reset.
  std::string piece = chunk(std::string(16 * 1024, 'x'));
  for (int i = 0; i < 8; ++i) {
    if (!c.send(piece)) break;
    pollfd p{c.fd, POLLIN, 0};
    if (::poll(&p, 1, 30) > 0) break;
  }
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 413);
  EXPECT_EQ(lower(r->header("connection")), "close");
  EXPECT_TRUE(c.closedWithin(1000));
  EXPECT_TRUE(upstream_.seen().empty());
}

TEST_F(GatewayTest, InvalidHttpIs400AndClose) {
  Client c(port_);
  c.send("GARBAGE\x01 / HTTP/1.1\r\n\r\n");
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 400);
  EXPECT_EQ(lower(r->header("connection")), "close");
  EXPECT_TRUE(c.closedWithin(1000));
}

// ---- timeouts ------------------------------------------------------------------------------

TEST_F(GatewayTest, SlowlorisGets408WhileOthersAreServed) {
  std::atomic<bool> done{false};
  std::optional<Response> slow;
  bool slow_closed = false;
  int64_t slow_ms = 0;
  std::thread loris([&] {
    Client c(port_);
    std::string req = anthropicCall("claude-ok");
    auto t0 = Clock::now();
    for (char ch : req) {
      if (!c.send(std::string_view(&ch, 1))) break;
      pollfd p{c.fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) break;  // answered (or closed): stop trickling
      if (msSince(t0) > 3000) break;
    }
    slow = c.read(1000);
    slow_closed = c.closedWithin(1000);
    slow_ms = msSince(t0);
    done = true;
  });
  // Meanwhile: a normal client is served promptly, several times.
  int served = 0;
  while (!done && served < 50) {
    Client c(port_);
    auto t0 = Clock::now();
    c.send(anthropicCall("claude-ok"));
    auto r = c.read(1000);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(msSince(t0), 1000);
    ++served;
    std::this_thread::sleep_for(50ms);
  }
  loris.join();
  EXPECT_GE(served, 3);
  ASSERT_TRUE(slow) << "no answer to the slow client";
  expectOpenAIError(*slow, 408);
  EXPECT_TRUE(slow_closed);
  EXPECT_GE(slow_ms, kReadMs - 50);  // the loop's cached clock may trail ours a little
  EXPECT_LT(slow_ms, kReadMs + 1500);
  // The served requests, and the 408 (refusals are logged too).
  auto recs = waitRecords(served + 1);
  EXPECT_EQ(recs.size(), static_cast<size_t>(served + 1));
  EXPECT_EQ(std::count_if(recs.begin(), recs.end(), [](auto& r) { return r.status == 408; }), 1);
}

TEST_F(GatewayTest, IdleKeepAliveConnectionIsClosed) {
  Client c(port_);
  c.send(anthropicCall("claude-ok"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto t0 = Clock::now();
  EXPECT_TRUE(c.closedWithin(kIdleMs + 1500));
  EXPECT_GE(msSince(t0), kIdleMs / 2);
  EXPECT_TRUE(c.buf.empty()) << c.buf;  // closed without a response
}

TEST_F(GatewayTest, BlankLinesDoNotHoldAnIdleConnectionOpen) {
  // HTTP/1.1 lets a client send empty lines between requests; they must not reset the idle clock.
  Client c(port_);
  c.send(anthropicCall("claude-ok"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto t0 = Clock::now();
  bool closed = false;
  while (!closed && msSince(t0) < 4 * kIdleMs) {
    if (!c.send("\r\n")) {
      closed = true;
      break;
    }
    closed = c.closedWithin(static_cast<int>(kIdleMs / 6));
  }
  EXPECT_TRUE(closed) << "still open after " << msSince(t0) << " ms of blank lines";
  EXPECT_LT(msSince(t0), kIdleMs + 1500);
  EXPECT_TRUE(c.buf.empty()) << c.buf;
}

// ---- what the gateway answers itself is logged ------------------------------------------------

TEST_F(GatewayTest, RefusalsAndErrorsAreLoggedWithIdentity) {
  Client c(port_);
  c.send(openaiCall("gpt-5-secret"));  // not granted
  auto denied = c.read();
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  c.send(post("/v1/messages", "{not json",
              kAnthropicHeaders + "X-Claude-Code-Session-Id: sess-refused\r\n"
                                  "User-Agent: claude-cli/2.0.14 (external, cli)\r\n"));
  auto malformed = c.read();
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);
  c.send("GET /v2/nothing HTTP/1.1\r\nHost: ai\r\n\r\n");
  auto missing = c.read();
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  for (const Response* r : {&*denied, &*malformed, &*missing}) {
    EXPECT_EQ(r->header("x-gatehouse-request-id").size(), 32u) << r->status;
  }
  auto d = recordFor(denied->header("x-gatehouse-request-id"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 403);
  EXPECT_EQ(d->identity.user_login, "alice@example.com");
  EXPECT_EQ(d->identity.groups, std::vector<std::string>{"group:eng"});
  EXPECT_EQ(d->model, "gpt-5-secret");
  EXPECT_EQ(d->api_kind, "openai.chat");
  EXPECT_EQ(d->path, "/v1/chat/completions");
  EXPECT_NE(d->error.find("gpt-5-secret"), std::string::npos) << d->error;
  EXPECT_FALSE(d->tokens.input.has_value());
  EXPECT_FALSE(d->cost_nanodollars.has_value());

  auto m = recordFor(malformed->header("x-gatehouse-request-id"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 400);
  EXPECT_EQ(m->session_id, "sess-refused");
  EXPECT_EQ(m->user_agent, "claude-cli/2.0.14 (external, cli)");
  EXPECT_FALSE(m->error.empty());
  // Logged headers never carry the client's credential value.
  for (const RecordHeader& h : m->request_headers) {
    if (lower(h.name) == "x-api-key") {
      EXPECT_EQ(h.value, kRedacted);
    }
  }

  auto n = recordFor(missing->header("x-gatehouse-request-id"));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->status, 404);
  EXPECT_EQ(n->method, "GET");
  EXPECT_EQ(n->path, "/v2/nothing");
  EXPECT_TRUE(upstream_.seen().empty());
}

// ---- keep-alive, pipelining, framing -------------------------------------------------------

TEST_F(GatewayTest, KeepAliveServesSeveralRequests) {
  Client c(port_);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    c.send(i % 2 ? openaiCall("gpt-4o") : anthropicCall("claude-ok"));
    auto r = c.read();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("connection"), "");
    ids.push_back(r->header("x-gatehouse-request-id"));
  }
  c.send(anthropicCall("claude-stream"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->chunked);
  EXPECT_NE(r->body.find("message_stop"), std::string::npos);
  ids.push_back(r->header("x-gatehouse-request-id"));
  for (const std::string& id : ids) {
    auto rec = recordFor(id);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->status, 200);
    EXPECT_EQ(rec->error, "");
    EXPECT_FALSE(rec->partial);
  }
}

TEST_F(GatewayTest, PipelinedRequestsAnsweredInOrder) {
  Client c(port_);
  c.send(anthropicCall("claude-one") + openaiCall("gpt-4o-two") + anthropicCall("claude-three"));
  for (const char* model : {"claude-one", "gpt-4o-two", "claude-three"}) {
    auto r = c.read();
    ASSERT_TRUE(r) << model;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->json().value("model", ""), model);
  }
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NE(seen[0].find("claude-one"), std::string::npos);
  EXPECT_NE(seen[1].find("gpt-4o-two"), std::string::npos);
  EXPECT_NE(seen[2].find("claude-three"), std::string::npos);
  EXPECT_EQ(waitRecords(3).size(), 3u);
}

TEST_F(GatewayTest, ChunkedRequestBodyForwardedIntact) {
  std::string body =
      R"({"model":"claude-ok","max_tokens":16,"messages":[{"role":"user","content":"h\u00e9llo"}]})";
  Client c(port_);
  c.send("POST /v1/messages HTTP/1.1\r\nHost: ai\r\n" + kAnthropicHeaders +
         "Transfer-Encoding: chunked\r\n\r\n" + chunk(body.substr(0, 7)));
  std::this_thread::sleep_for(20ms);
  c.send(chunk(body.substr(7, 30)) + chunk(body.substr(37)) + "0\r\n\r\n");
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  std::string l = lower(seen[0]);
  EXPECT_NE(l.find("\r\ncontent-length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos)
      << seen[0];
  EXPECT_EQ(l.find("transfer-encoding"), std::string::npos) << seen[0];
  EXPECT_EQ(seen[0].substr(seen[0].find("\r\n\r\n") + 4), body);
}

TEST_F(GatewayTest, ExpectContinueGets100BeforeTheBody) {
  std::string body = R"({"model":"claude-ok","max_tokens":16,"messages":[]})";
  Client c(port_);
  c.send("POST /v1/messages HTTP/1.1\r\nHost: ai\r\n" + kAnthropicHeaders +
         "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  auto interim = c.read(2000);
  ASSERT_TRUE(interim) << "no 100 Continue before the body";
  EXPECT_EQ(interim->status, 100);
  c.send(body);
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(lower(seen[0]).find("expect:"), std::string::npos) << seen[0];
}

// ---- routing -------------------------------------------------------------------------------

TEST_F(GatewayTest, WebSocketUpgradeOnResponsesIs426) {
  Client c(port_);
  auto t0 = Clock::now();
  c.send(
      "GET /v1/responses HTTP/1.1\r\nHost: ai\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  auto r = c.read(1000);
  ASSERT_TRUE(r);
  EXPECT_LT(msSince(t0), 1000);
  expectOpenAIError(*r, 426);
  EXPECT_EQ(lower(r->header("connection")), "close");
  EXPECT_TRUE(c.closedWithin(1000));
}

TEST_F(GatewayTest, UnknownPathIs404WrongMethodIs405) {
  Client c(port_);
  c.send("GET /v2/nothing HTTP/1.1\r\nHost: ai\r\n\r\n");
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 404);
  c.send("GET /v1/messages HTTP/1.1\r\nHost: ai\r\nanthropic-version: 2023-06-01\r\n\r\n");
  r = c.read();
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 405, "");
  EXPECT_NE(r->header("allow").find("POST"), std::string::npos) << r->header("allow");
}

// ---- credentials and identity headers ------------------------------------------------------

TEST_F(GatewayTest, ClientCredentialsAndIdentityHeadersNeverReachUpstream) {
  Client c(port_);
  const std::string spoof =
      "x-gatehouse-user: mallory@example.com\r\ntailscale-user-login: mallory@example.com\r\n";
  c.send(
      post("/v1/messages", R"({"model":"claude-ok","max_tokens":1,"messages":[]})",
           kAnthropicHeaders + "Authorization: Bearer -\r\nAccept-Encoding: gzip, br\r\n" + spoof));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  c.send(post("/v1/chat/completions", R"({"model":"gpt-4o","messages":[]})",
              "Authorization: Bearer -\r\nx-api-key: -\r\n" + spoof));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 2u);
  std::string a = lower(seen[0].substr(0, seen[0].find("\r\n\r\n") + 2));
  std::string o = lower(seen[1].substr(0, seen[1].find("\r\n\r\n") + 2));
  EXPECT_NE(a.find("\r\nx-api-key: sk-ant-test-key\r\n"), std::string::npos) << a;
  EXPECT_NE(o.find("\r\nauthorization: bearer sk-oa-test-key\r\n"), std::string::npos) << o;
  for (const std::string& h : {a, o}) {
    EXPECT_EQ(h.find(": -\r\n"), std::string::npos) << h;
    EXPECT_EQ(h.find("bearer -"), std::string::npos) << h;
    EXPECT_EQ(h.find("mallory"), std::string::npos) << h;
    EXPECT_EQ(h.find("x-gatehouse-user"), std::string::npos) << h;
    EXPECT_EQ(h.find("tailscale-user-login"), std::string::npos) << h;
  }
  EXPECT_EQ(a.find("authorization"), std::string::npos) << a;
  EXPECT_EQ(o.find("x-api-key"), std::string::npos) << o;
  // Answers must come uncompressed (the taps and guardrails read them), whatever the client
  // accepts.
  for (const std::string& h : {a, o}) {
    EXPECT_NE(h.find("\r\naccept-encoding: identity\r\n"), std::string::npos) << h;
    EXPECT_EQ(h.find("gzip"), std::string::npos) << h;
  }
}

// ---- upstream failures ---------------------------------------------------------------------

TEST_F(GatewayTest, UnreachableUpstreamIs502InTheClientsShape) {
  Client c(port_);
  c.send(openaiCall("dead-1"));
  auto r = c.read();
  ASSERT_TRUE(r);
  expectOpenAIError(*r, 502);
  auto recs = waitRecords(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 502);
  EXPECT_FALSE(recs[0].error.empty());
  // The connection is still usable.
  c.send(openaiCall("gpt-4o"));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(GatewayTest, SilentUpstreamIs504) {
  Client c(port_);
  auto t0 = Clock::now();
  c.send(anthropicCall("claude-hang"));
  auto r = c.read(3000);
  ASSERT_TRUE(r);
  expectAnthropicError(*r, 504, "");
  EXPECT_LT(msSince(t0), 2000);
  auto recs = waitRecords(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 504);
}

TEST_F(GatewayTest, UpstreamDiesMidStream) {
  Client c(port_);
  c.send(anthropicCall("claude-die"));
  auto r = c.read();
  ASSERT_TRUE(r) << "the chunked response must be terminated";
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->chunked);
  EXPECT_NE(r->body.find("message_start"), std::string::npos);
  EXPECT_TRUE(c.closedWithin(1000));
  auto rec = recordFor(r->header("x-gatehouse-request-id"));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, 200);
  EXPECT_TRUE(rec->partial);
  EXPECT_NE(rec->error.find("mid-stream"), std::string::npos) << rec->error;
}

TEST_F(GatewayTest, ClientDisconnectClosesUpstreamPromptly) {
  std::string id;
  {
    Client c(port_);
    c.send(anthropicCall("claude-slow"));
    size_t end = 0;
    ASSERT_TRUE(c.fill(
        [&] {
          end = c.buf.find("\r\n\r\n");
          return end != std::string::npos && c.buf.find("message_start") != std::string::npos;
        },
        Clock::now() + 3s));
    std::string l = lower(c.buf);
    size_t at = l.find("x-gatehouse-request-id: ");
    ASSERT_NE(at, std::string::npos);
    id = c.buf.substr(at + 24, 32);
  }  // closed here
  auto t0 = Clock::now();
  {
    std::unique_lock<std::mutex> lock(upstream_.mu);
    ASSERT_TRUE(upstream_.cv.wait_for(lock, 1s, [&] { return upstream_.slow_eof.has_value(); }))
        << "the upstream connection stayed open after the client left";
  }
  EXPECT_LT(msSince(t0), 1000);
  auto rec = recordFor(id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->error, "client disconnected");
}

}  // namespace
}  // namespace gatehouse::proxy
