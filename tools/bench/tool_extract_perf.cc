// Tool-call extraction benchmark (run by tools/bench/tools_bench.sh; asserts nothing, prints
// figures). Sans-I/O part: throughput of the response tap on a long Anthropic SSE stream (text
// deltas with tool_use blocks between them) and a Responses stream, of the result reader on a
// 300 KB Claude-Code-sized request, and the tap's cost per text-delta event (what a streamed
// text frame waits for: p50/p99/max over every event). Gateway part: the built-in mock provider
// and an in-process gateway on loopback (grants, usage tap and the SQLite log with bodies on),
// sequential requests with the 300 KB body, JSON and SSE, tool-call extraction and the built-in
// guardrails on versus off (logging.tool_calls false and guardrails {"builtin": false}):
// latency p50/p99 and the difference.
//
// Usage: tool_extract_perf [REQUESTS_PER_MODE (300)]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config/gateway_config.h"
#include "proxy/gateway/gateway.h"
#include "proxy/logstore/log_store.h"
#include "proxy/logstore/log_writer.h"
#include "proxy/mock/mock_provider.h"
#include "proxy/tools/stream_guard.h"
#include "proxy/tools/tool_results.h"
#include "proxy/tools/tool_tap.h"
#include "tests/proxy/gateway_harness.h"

using namespace gatehouse;
using namespace gatehouse::proxy;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double usSince(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// A Claude Code conversation of about `bytes`: turns of Bash/Read tool_use and their results.
std::string claudeCodeRequest(size_t bytes, bool with_tools_decl) {
  json messages = json::array();
  messages.push_back({{"role", "user"}, {"content", "Fix the failing tests in this repository."}});
  std::string file(3000, 'x');
  for (size_t i = 0; i < file.size(); i += 61) file[i] = '\n';
  int n = 0;
  while (json(messages).dump().size() < bytes) {
    std::string id = "toolu_" + std::to_string(n);
    json input = n % 2 ? json{{"file_path", "/work/repo/src/file" + std::to_string(n) + ".rs"}}
                       : json{{"command", "cd /work/repo && cargo test -p crate" +
                                              std::to_string(n) + " 2>&1 | tail -40"}};
    messages.push_back({{"role", "assistant"},
                        {"content",
                         {{{"type", "text"}, {"text", "Let me look at that."}},
                          {{"type", "tool_use"},
                           {"id", id},
                           {"name", n % 2 ? "Read" : "Bash"},
                           {"input", input}}}}});
    messages.push_back({{"role", "user"},
                        {"content",
                         {{{"type", "tool_result"},
                           {"tool_use_id", id},
                           {"content", file},
                           {"is_error", n % 7 == 0}}}}});
    ++n;
  }
  messages.push_back({{"role", "user"}, {"content", "go on"}});
  json body = {{"model", "claude-sonnet-4-5"}, {"max_tokens", 32000}, {"messages", messages}};
  if (with_tools_decl) {
    body["tools"] = json::array(
        {{{"name", "Bash"}, {"description", "run"}, {"input_schema", {{"type", "object"}}}}});
  }
  return body.dump();
}

struct Event {
  std::string name, data;
};

std::vector<Event> anthropicStream(int text_events, int tool_every) {
  std::vector<Event> ev;
  ev.push_back({"message_start", R"({"type":"message_start","message":{"id":"m","usage":{}}})"});
  int index = 0;
  for (int i = 0; i < text_events; ++i) {
    if (i % tool_every == 0) {
      if (i > 0) ev.push_back({"content_block_stop", R"({"index":)" + std::to_string(index) + "}"});
      ++index;
      std::string idx = std::to_string(index);
      ev.push_back({"content_block_start", R"({"index":)" + idx +
                                               R"(,"content_block":{"type":"tool_use","id":"t)" +
                                               idx + R"(","name":"Bash","input":{}}})"});
      for (const char* frag : {R"({\"command\": \"cd /work/r)", R"(epo && git status --sh)",
                               R"(ort && grep -rn TODO src | head\"})"}) {
        ev.push_back(
            {"content_block_delta", R"({"index":)" + idx +
                                        R"(,"delta":{"type":"input_json_delta","partial_json":")" +
                                        frag + "\"}}"});
      }
      ev.push_back({"content_block_stop", R"({"index":)" + idx + "}"});
      ++index;
      ev.push_back({"content_block_start", R"({"index":)" + std::to_string(index) +
                                               R"(,"content_block":{"type":"text","text":""}})"});
    }
    ev.push_back(
        {"content_block_delta",
         R"({"type":"content_block_delta","index":)" + std::to_string(index) +
             R"(,"delta":{"type":"text_delta","text":"Some streamed text of a typical delta size."}})"});
  }
  ev.push_back({"content_block_stop", R"({"index":)" + std::to_string(index) + "}"});
  ev.push_back({"message_stop", R"({"type":"message_stop"})"});
  return ev;
}

void sansIo() {
  std::printf("== extraction, sans-I/O (one core) ==\n");
  // Result reader on a 300 KB request.
  std::string req = claudeCodeRequest(300 * 1024, false);
  size_t results = 0;
  int reps = 50;
  auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) {
    // The gateway does this on the log writer's thread, not on its loop.
    results = tools::extractToolResults(ApiKind::kAnthropicMessages, req).size();
  }
  double us = usSince(t0) / reps;
  std::printf(
      "%-52s %8.1f MB/s  %7.0f us per request (%zu results)\n",
      ("results from a " + std::to_string(req.size() / 1024) + " KB Claude Code request").c_str(),
      static_cast<double>(req.size()) / us, us, results);

  // Response tap on a long SSE stream: per-event cost and throughput.
  auto events = anthropicStream(20000, 200);
  size_t bytes = 0;
  for (const auto& e : events) bytes += e.data.size();
  std::vector<double> per_text;
  std::vector<double> per_event_all;
  size_t calls = 0;
  double total_us = 0;
  for (int rep = 0; rep < 5; ++rep) {
    tools::ToolTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse);
    auto t1 = Clock::now();
    for (const auto& e : events) {
      auto te = Clock::now();
      tap.onSseEvent(e.name, e.data);
      double d = usSince(te);
      if (rep == 4) {
        per_event_all.push_back(d);
        if (e.data.find("text_delta") != std::string::npos) per_text.push_back(d);
      }
    }
    calls = tap.finish().size();
    total_us += usSince(t1);
  }
  total_us /= 5;
  std::printf("%-52s %8.1f MB/s  %zu events, %zu calls\n",
              ("tap on an Anthropic SSE stream of " + std::to_string(bytes / 1024) + " KB").c_str(),
              static_cast<double>(bytes) / total_us, events.size(), calls);
  std::printf("%-52s p50 %.2f us  p99 %.2f us  max %.1f us\n", "tap cost per text_delta event",
              pct(per_text, 0.5), pct(per_text, 0.99), pct(per_text, 1.0));
  std::printf("%-52s p50 %.2f us  p99 %.2f us  max %.1f us\n", "tap cost per event (all)",
              pct(per_event_all, 0.5), pct(per_event_all, 0.99), pct(per_event_all, 1.0));

  // The stream guard on the same stream as raw SSE bytes, one event per feed: what a text
  // event waits for before it leaves (its own parse and the rule check of finished tool calls).
  std::vector<std::string> raw;
  for (const auto& e : events) raw.push_back("event: " + e.name + "\ndata: " + e.data + "\n\n");
  std::vector<double> guard_text;
  double guard_us = 0;
  size_t raw_bytes = 0;
  for (const auto& r : raw) raw_bytes += r.size();
  for (int rep = 0; rep < 5; ++rep) {
    tools::AnthropicStreamGuard guard(tools::Guardrails::builtin());
    auto t1 = Clock::now();
    for (size_t i = 0; i < raw.size(); ++i) {
      auto te = Clock::now();
      std::string out = guard.feed(raw[i]);
      double d = usSince(te);
      if (rep == 4 && events[i].data.find("text_delta") != std::string::npos) {
        guard_text.push_back(d);
      }
    }
    guard_us += usSince(t1);
  }
  guard_us /= 5;
  std::printf("%-52s %8.1f MB/s\n", "stream guard (built-in rules) on the same stream",
              static_cast<double>(raw_bytes) / guard_us);
  std::printf("%-52s p50 %.2f us  p99 %.2f us  max %.1f us\n", "guard delay per text_delta event",
              pct(guard_text, 0.5), pct(guard_text, 0.99), pct(guard_text, 1.0));
}

// ---- through an in-process gateway ----------------------------------------------------------

struct Run {
  double p50 = 0, p99 = 0;
  size_t failed = 0;
};

Run throughGateway(bool tool_calls, bool stream, uint16_t mock_port, int n,
                   const std::string& body) {
  auto dir = std::filesystem::temp_directory_path() /
             ("gh-toolbench-" + std::to_string(::getpid()) + (tool_calls ? "-on" : "-off"));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string text = R"({"loopback_listen": "127.0.0.1:0",
    "loopback_identity": {"user": "alice@example.com"},
    "providers": {"anthropic": {"kind": "anthropic", "local": true, "models": ["claude-*"],
                                "base_url": "http://127.0.0.1:)" +
                     std::to_string(mock_port) + R"("}},
    "grants": [{"src": ["alice@example.com"], "models": ["*"]}],
    "logging": {"tool_calls": )" +
                     std::string(tool_calls ? "true" : "false") + "}" +
                     (tool_calls ? "" : R"(, "guardrails": {"builtin": false})") + "}";
  auto cfg = parseGatewayConfig(text, LoadOptions{});
  if (!cfg) {
    std::fprintf(stderr, "config: %s\n", cfg.status().message().c_str());
    std::exit(1);
  }
  auto config = std::make_shared<const GatewayConfig>(std::move(cfg.value()));
  auto store = LogStore::open((dir / "log.db").string());
  if (!store) std::exit(1);
  auto writer = std::make_unique<LogWriter>(std::move(store.value()), LogWriterOptions{});
  GatewayOptions o;
  o.config = config;
  o.log = writer.get();
  auto gw = std::make_unique<RunningGateway>(std::move(o));
  if (!gw->status().isOk()) std::exit(1);

  json j = json::parse(body);
  j["stream"] = stream;
  std::string b = j.dump();
  std::string req =
      "POST /v1/messages HTTP/1.1\r\nHost: ai\r\nConnection: close\r\nContent-Type: "
      "application/json\r\nanthropic-version: 2023-06-01\r\nx-api-key: -\r\nContent-Length: " +
      std::to_string(b.size()) + "\r\n\r\n" + b;
  std::vector<double> lat;
  Run r;
  for (int i = 0; i < n + 20; ++i) {
    auto t0 = Clock::now();
    std::string resp = roundTrip(gw->port(), req);
    double us = usSince(t0);
    if (resp.rfind("HTTP/1.1 200", 0) != 0) ++r.failed;
    if (i >= 20) lat.push_back(us);  // the first 20 warm up
  }
  gw.reset();
  writer.reset();
  std::filesystem::remove_all(dir);
  r.p50 = pct(lat, 0.5);
  r.p99 = pct(lat, 0.99);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::max(20, std::atoi(argv[1])) : 300;
  sansIo();

  mock::MockProviderThread mock;
  if (!mock.start({}).isOk()) {
    std::fprintf(stderr, "mock provider did not start\n");
    return 1;
  }
  // The last turn asks for a Bash call, so every response carries one tool_use to extract.
  json body = json::parse(claudeCodeRequest(300 * 1024, true));
  body["messages"].back()["content"] = "bash: git status && grep -rn TODO src | head";
  std::string b = body.dump();
  std::printf("\n== through an in-process gateway: %d sequential requests of %zu KB per row ==\n",
              n, b.size() / 1024);
  std::printf("%-8s %-14s %10s %10s %8s\n", "mode", "tool_calls", "p50 us", "p99 us", "failed");
  for (bool stream : {false, true}) {
    Run off = throughGateway(false, stream, mock.port(), n, b);
    Run on = throughGateway(true, stream, mock.port(), n, b);
    const char* mode = stream ? "SSE" : "JSON";
    std::printf("%-8s %-14s %10.0f %10.0f %8zu\n", mode, "off", off.p50, off.p99, off.failed);
    std::printf("%-8s %-14s %10.0f %10.0f %8zu\n", mode, "on", on.p50, on.p99, on.failed);
    std::printf("%-8s %-14s %+10.0f %+10.0f   (%+.1f%% p99)\n", mode, "added", on.p50 - off.p50,
                on.p99 - off.p99, off.p99 > 0 ? 100.0 * (on.p99 - off.p99) / off.p99 : 0.0);
  }
  mock.stop();
  return 0;
}
