// Built-in mock LLM provider: a small HTTP/1.1 server (keep-alive, pipelining) that answers the
// Anthropic and OpenAI wire formats the gateway forwards, with deterministic replies. It is the
// upstream of `gatehouse dev` and `gatehouse mock-provider`, and of benchmarks, so it is fast:
// one pass over the request, a reused read buffer per connection, no logging per request.
//
// Routes (anything else: 404 in the provider's error shape; bad JSON: 400):
//   POST /v1/messages               Anthropic Messages; JSON, or SSE when "stream": true
//                                   (message_start with usage, content_block_start, ping,
//                                   content_block_delta text_delta…, content_block_stop,
//                                   message_delta with stop_reason "end_turn" and usage,
//                                   message_stop)
//   POST /v1/messages/count_tokens  {"input_tokens": INPUT}
//   POST /v1/chat/completions       OpenAI Chat; JSON, or SSE chunks (role, content pieces,
//                                   finish_reason "stop", then the usage chunk with "choices": []
//                                   when stream_options.include_usage is true, then
//                                   `data: [DONE]`)
//   POST /v1/responses              OpenAI Responses; JSON, or SSE response.created …
//                                   response.completed (with usage)
//   GET  /v1/models                 Anthropic list when the request has anthropic-version or
//                                   x-api-key, else the OpenAI list
//
// Reply text: "mock: " + the text of the last user message, cut to 200 bytes (on a UTF-8
// boundary). Streams send it in pieces of at most 16 bytes.
// Tool use (Anthropic only): when the request declares a tool named "Bash" and the last user
// text is "bash: COMMAND", the reply is a text block "mock: running" then a tool_use block
// {id "toolu_mock_N", name "Bash", input {"command": COMMAND}} with stop_reason "tool_use"
// (streamed: the input as input_json_delta pieces of at most 16 bytes). Token counts as above,
// from the reply text "mock: " + the user text.
// Token formula (deterministic, documented for tests):
//   INPUT  = max(1, ceil(request body bytes / 4))
//   OUTPUT = max(1, ceil(reply text bytes / 4))
// Anthropic reports input_tokens = INPUT, output_tokens = OUTPUT (message_start says output 1),
// no cache tokens; OpenAI reports prompt/input_tokens = INPUT, completion/output_tokens = OUTPUT,
// cached 0, reasoning 0. Provider keys are not checked (the gateway's own tests use the Node.js
// mock for that). Ids are "msg_mock_N", "chatcmpl-mock-N", "resp_mock_N" with N the request
// number on this server; "created" is a fixed timestamp.
//
// Threads: a MockProvider lives on one libuv loop and is used only from that loop's thread.
// MockProviderThread runs one on its own loop thread for callers that have no loop.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/http/http1.h"
#include "wg/status.h"

namespace gatehouse::proxy::mock {

// Sans-I/O core: the complete response (head and body) to one request. `seq` numbers the ids.
// `keepAlive` false adds "Connection: close".
std::string respond(const http::RequestHead& head, std::string_view body, uint64_t seq,
                    bool keepAlive);

// Token counts by the formula above.
int64_t inputTokens(std::string_view body);
int64_t outputTokens(std::string_view reply);

class MockProvider {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 0;  // 0: any free port (see port())
  };

  // Binds and listens on `loop`; call on the loop's thread (or before the loop runs).
  static Result<std::unique_ptr<MockProvider>> start(uv_loop_t* loop, const Options& options);
  ~MockProvider();
  MockProvider(const MockProvider&) = delete;
  MockProvider& operator=(const MockProvider&) = delete;

  uint16_t port() const;
  uint64_t requests() const;
  // Closes the listener and every connection; the handles finish closing on the next loop turn.
  void close();

  struct State;

 private:
  explicit MockProvider(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A MockProvider on its own loop thread. stop() (or the destructor) closes it and joins.
class MockProviderThread {
 public:
  MockProviderThread() = default;
  ~MockProviderThread();
  MockProviderThread(const MockProviderThread&) = delete;
  MockProviderThread& operator=(const MockProviderThread&) = delete;

  Status start(const MockProvider::Options& options);
  uint16_t port() const { return port_; }
  void stop();

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<MockProvider> provider_;
  std::thread thread_;
  uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace gatehouse::proxy::mock
