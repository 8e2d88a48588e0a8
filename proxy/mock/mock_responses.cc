// The mock provider's sans-I/O core: one request in, the full response bytes out. The formats
// follow tests/gateway/mock_provider.mjs (the reference mock) without its scenarios.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/mock/mock_provider.h"

namespace gatehouse::proxy::mock {
namespace {

using nlohmann::json;

constexpr size_t kMaxReply = 200;
constexpr size_t kPiece = 16;
constexpr int64_t kCreated = 1767225600;  // 2026-01-01T00:00:00Z, fixed for determinism

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string jstr(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

// Cuts `s` to at most `n` bytes without splitting a UTF-8 sequence.
size_t utf8Cut(std::string_view s, size_t n) {
  if (s.size() <= n) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

std::vector<std::string_view> pieces(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t n = utf8Cut(s, kPiece);
    if (n == 0) n = s.size();
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

std::string textOf(const json& content, std::initializer_list<std::string_view> types) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const auto& p : content) {
    if (!p.is_object()) continue;
    auto t = p.find("type");
    auto x = p.find("text");
    if (t == p.end() || !t->is_string() || x == p.end() || !x->is_string()) continue;
    for (auto want : types) {
      if (t->get_ref<const std::string&>() == want) {
        if (!out.empty()) out += '\n';
        out += x->get_ref<const std::string&>();
        break;
      }
    }
  }
  return out;
}

std::string lastUserText(const json& body, bool responses) {
  if (responses) {
    auto in = body.find("input");
    if (in == body.end()) return {};
    if (in->is_string()) return in->get<std::string>();
    if (!in->is_array() || in->empty()) return {};
    const json& last = in->back();
    if (!last.is_object() || last.value("role", "") != "user") return {};
    auto c = last.find("content");
    return c == last.end() ? std::string() : textOf(*c, {"input_text", "text"});
  }
  auto msgs = body.find("messages");
  if (msgs == body.end() || !msgs->is_array() || msgs->empty()) return {};
  const json& last = msgs->back();
  if (!last.is_object() || last.value("role", "") != "user") return {};
  auto c = last.find("content");
  return c == last.end() ? std::string() : textOf(*c, {"text"});
}

struct Reply {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;              // JSON body
  std::vector<std::string> sse;  // SSE frames (one chunk each) when streaming
};

std::string frame(std::string_view event, const std::string& data) {
  std::string f;
  f.reserve(event.size() + data.size() + 16);
  if (!event.empty()) {
    f += "event: ";
    f += event;
    f += '\n';
  }
  f += "data: ";
  f += data;
  f += "\n\n";
  return f;
}

Reply anthropicError(int status, std::string_view type, std::string_view message) {
  Reply r;
  r.status = status;
  r.body =
      R"({"type":"error","error":{"type":)" + jstr(type) + R"(,"message":)" + jstr(message) + "}}";
  return r;
}

Reply openaiError(int status, std::string_view type, std::string_view message) {
  Reply r;
  r.status = status;
  r.body = R"({"error":{"message":)" + jstr(message) + R"(,"type":)" + jstr(type) +
           R"(,"param":null,"code":null}})";
  return r;
}

struct Plan {
  std::string model;
  std::string text;
  int64_t in = 1;
  int64_t out = 1;
  std::string id;
};

Plan makePlan(const json& body, std::string_view raw, bool responses, std::string id) {
  Plan p;
  auto m = body.find("model");
  p.model = (m != body.end() && m->is_string()) ? m->get<std::string>() : "mock";
  std::string user = lastUserText(body, responses);
  p.text = "mock: " + user;
  p.text.resize(utf8Cut(p.text, kMaxReply));
  p.in = inputTokens(raw);
  p.out = outputTokens(p.text);
  p.id = std::move(id);
  return p;
}

std::string anthropicUsage(const Plan& p, int64_t out, bool tier) {
  std::string u =
      R"({"input_tokens":)" + std::to_string(p.in) +
      R"(,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":)" +
      std::to_string(out);
  if (tier) u += R"(,"service_tier":"standard")";
  return u + "}";
}

// A non-streamed Anthropic message with these content blocks (JSON, comma-separated).
std::string anthropicMessage(const Plan& p, const std::string& blocks,
                             std::string_view stop_reason) {
  return R"({"id":)" + jstr(p.id) + R"(,"type":"message","role":"assistant","model":)" +
         jstr(p.model) + R"(,"content":[)" + blocks + R"(],"stop_reason":)" + jstr(stop_reason) +
         R"(,"stop_sequence":null,"usage":)" + anthropicUsage(p, p.out, true) + "}";
}

// The first and last events of an Anthropic stream.
std::string anthropicStart(const Plan& p) {
  return frame("message_start",
               R"({"type":"message_start","message":{"id":)" + jstr(p.id) +
                   R"(,"type":"message","role":"assistant","model":)" + jstr(p.model) +
                   R"(,"content":[],"stop_reason":null,"stop_sequence":null,"usage":)" +
                   anthropicUsage(p, 1, true) + "}}");
}

void anthropicEnd(Reply& r, const Plan& p, std::string_view stop_reason) {
  r.sse.push_back(frame("message_delta", R"({"type":"message_delta","delta":{"stop_reason":)" +
                                             jstr(stop_reason) +
                                             R"(,"stop_sequence":null},"usage":)" +
                                             anthropicUsage(p, p.out, false) + "}"));
  r.sse.push_back(frame("message_stop", R"({"type":"message_stop"})"));
}

// The command of a "bash: <command>" turn when the request declares a Bash tool, else "".
std::string bashCommand(const json& body) {
  constexpr std::string_view kPrefix = "bash: ";
  auto tools = body.find("tools");
  if (tools == body.end() || !tools->is_array()) return "";
  bool has_bash = false;
  for (const auto& t : *tools) has_bash |= t.is_object() && t.value("name", "") == "Bash";
  std::string user = lastUserText(body, false);
  if (!has_bash || !user.starts_with(kPrefix) || user.size() == kPrefix.size()) return "";
  return user.substr(kPrefix.size());
}

// The tool_use turn: a text block, then Bash with {"command": ...}, stop_reason tool_use.
Reply anthropicToolUse(const json& body, const Plan& p, const std::string& command, uint64_t seq) {
  std::string tool_id = "toolu_mock_" + std::to_string(seq);
  std::string input = R"({"command":)" + jstr(command) + "}";
  Reply r;
  if (body.value("stream", false) != true) {
    r.body = anthropicMessage(p,
                              R"({"type":"text","text":"mock: running"},{"type":"tool_use","id":)" +
                                  jstr(tool_id) + R"(,"name":"Bash","input":)" + input + "}",
                              "tool_use");
    return r;
  }
  r.contentType = "text/event-stream; charset=utf-8";
  r.sse.push_back(anthropicStart(p));
  r.sse.push_back(frame(
      "content_block_start",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  r.sse.push_back(frame(
      "content_block_delta",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"mock: running"}})"));
  r.sse.push_back(frame("content_block_stop", R"({"type":"content_block_stop","index":0})"));
  r.sse.push_back(
      frame("content_block_start",
            R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":)" +
                jstr(tool_id) + R"(,"name":"Bash","input":{}}})"));
  for (auto piece : pieces(input)) {
    r.sse.push_back(frame(
        "content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":)" +
            jstr(piece) + "}}"));
  }
  r.sse.push_back(frame("content_block_stop", R"({"type":"content_block_stop","index":1})"));
  anthropicEnd(r, p, "tool_use");
  return r;
}

Reply anthropicMessages(const json& body, std::string_view raw, uint64_t seq) {
  Plan p = makePlan(body, raw, false, "msg_mock_" + std::to_string(seq));
  if (std::string command = bashCommand(body); !command.empty()) {
    return anthropicToolUse(body, p, command, seq);
  }
  Reply r;
  if (body.value("stream", false) != true) {
    r.body = anthropicMessage(p, R"({"type":"text","text":)" + jstr(p.text) + "}", "end_turn");
    return r;
  }
  r.contentType = "text/event-stream; charset=utf-8";
  r.sse.push_back(anthropicStart(p));
  r.sse.push_back(frame(
      "content_block_start",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  r.sse.push_back(frame("ping", R"({"type":"ping"})"));
  for (auto piece : pieces(p.text)) {
    r.sse.push_back(
        frame("content_block_delta",
              R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)" +
                  jstr(piece) + "}}"));
  }
  r.sse.push_back(frame("content_block_stop", R"({"type":"content_block_stop","index":0})"));
  anthropicEnd(r, p, "end_turn");
  return r;
}

std::string chatUsage(const Plan& p) {
  return R"({"prompt_tokens":)" + std::to_string(p.in) + R"(,"completion_tokens":)" +
         std::to_string(p.out) + R"(,"total_tokens":)" + std::to_string(p.in + p.out) +
         R"(,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})";
}

Reply chat(const json& body, std::string_view raw, uint64_t seq) {
  Plan p = makePlan(body, raw, false, "chatcmpl-mock-" + std::to_string(seq));
  std::string base = R"({"id":)" + jstr(p.id) + R"(,"object":)";
  std::string tail = R"(,"created":)" + std::to_string(kCreated) + R"(,"model":)" + jstr(p.model);
  Reply r;
  if (body.value("stream", false) != true) {
    r.body =
        base + R"("chat.completion")" + tail +
        R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)" + jstr(p.text) +
        R"(,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":)" +
        chatUsage(p) + R"(,"service_tier":"default","system_fingerprint":"fp_mock"})";
    return r;
  }
  bool includeUsage = false;
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
    includeUsage = so->value("include_usage", false) == true;
  }
  r.contentType = "text/event-stream; charset=utf-8";
  std::string head =
      base + R"("chat.completion.chunk")" + tail +
      R"(,"service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":)";
  std::string nullUsage = includeUsage ? R"(,"usage":null)" : "";
  auto chunk = [&](const std::string& delta, std::string_view finish) {
    r.sse.push_back(frame("", head + delta + R"(,"logprobs":null,"finish_reason":)" +
                                  std::string(finish) + "}]" + nullUsage + "}"));
  };
  chunk(R"({"role":"assistant","content":"","refusal":null})", "null");
  for (auto piece : pieces(p.text)) chunk(R"({"content":)" + jstr(piece) + "}", "null");
  chunk("{}", R"("stop")");
  if (includeUsage) {
    r.sse.push_back(frame(
        "",
        base + R"("chat.completion.chunk")" + tail +
            R"(,"service_tier":"default","system_fingerprint":"fp_mock","choices":[],"usage":)" +
            chatUsage(p) + "}"));
  }
  r.sse.push_back(frame("", "[DONE]"));
  return r;
}

std::string responseObject(const Plan& p, bool done, const std::string& output) {
  std::string s =
      R"({"id":)" + jstr(p.id) + R"(,"object":"response","created_at":)" +
      std::to_string(kCreated) + R"(,"status":)" + (done ? R"("completed")" : R"("in_progress")") +
      R"(,"background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":)" +
      jstr(p.model) + R"(,"output":)" + output +
      R"(,"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":true,"temperature":1,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":)";
  if (done) {
    s += R"({"input_tokens":)" + std::to_string(p.in) +
         R"(,"input_tokens_details":{"cached_tokens":0},"output_tokens":)" + std::to_string(p.out) +
         R"(,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":)" +
         std::to_string(p.in + p.out) + "}";
  } else {
    s += "null";
  }
  return s + R"(,"user":null,"metadata":{}})";
}

Reply responses(const json& body, std::string_view raw, uint64_t seq) {
  Plan p = makePlan(body, raw, true, "resp_mock_" + std::to_string(seq));
  std::string itemId = "msg_mock_" + std::to_string(seq);
  std::string part =
      R"({"type":"output_text","text":)" + jstr(p.text) + R"(,"annotations":[],"logprobs":[]})";
  std::string item = R"({"id":)" + jstr(itemId) +
                     R"(,"type":"message","status":"completed","role":"assistant","content":[)" +
                     part + "]}";
  Reply r;
  if (body.value("stream", false) != true) {
    r.body = responseObject(p, true, "[" + item + "]");
    return r;
  }
  r.contentType = "text/event-stream; charset=utf-8";
  int seqNo = 0;
  auto ev = [&](std::string_view type, const std::string& fields) {
    r.sse.push_back(frame(type, R"({"type":)" + jstr(type) + R"(,"sequence_number":)" +
                                    std::to_string(seqNo++) + "," + fields + "}"));
  };
  std::string initial = responseObject(p, false, "[]");
  std::string where = R"("item_id":)" + jstr(itemId) + R"(,"output_index":0,"content_index":0)";
  ev("response.created", R"("response":)" + initial);
  ev("response.in_progress", R"("response":)" + initial);
  ev("response.output_item.added",
     R"("output_index":0,"item":{"id":)" + jstr(itemId) +
         R"(,"type":"message","status":"in_progress","role":"assistant","content":[]})");
  ev("response.content_part.added",
     where + R"(,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]})");
  for (auto piece : pieces(p.text)) {
    ev("response.output_text.delta", where + R"(,"delta":)" + jstr(piece) + R"(,"logprobs":[])");
  }
  ev("response.output_text.done", where + R"(,"text":)" + jstr(p.text) + R"(,"logprobs":[])");
  ev("response.content_part.done", where + R"(,"part":)" + part);
  ev("response.output_item.done", R"("output_index":0,"item":)" + item);
  ev("response.completed", R"("response":)" + responseObject(p, true, "[" + item + "]"));
  return r;
}

Reply models(const http::RequestHead& head) {
  Reply r;
  if (head.headers.contains("anthropic-version") || head.headers.contains("x-api-key")) {
    r.body =
        R"J({"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5 (mock)","created_at":"2025-09-29T00:00:00Z"},)J"
        R"J({"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5 (mock)","created_at":"2025-10-01T00:00:00Z"}],)J"
        R"J("has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-haiku-4-5"})J";
  } else {
    r.body =
        R"J({"object":"list","data":[{"id":"gpt-5","object":"model","created":1754425777,"owned_by":"system"},)J"
        R"J({"id":"gpt-4.1","object":"model","created":1744316542,"owned_by":"system"}]})J";
  }
  return r;
}

Reply route(const http::RequestHead& head, std::string_view body, uint64_t seq) {
  std::string_view target = head.target;
  if (size_t q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  bool anthropic = target.starts_with("/v1/messages");
  if (target == "/v1/models") {
    if (head.method != "GET")
      return openaiError(405, "invalid_request_error", "Method Not Allowed");
    return models(head);
  }
  bool known = target == "/v1/messages" || target == "/v1/messages/count_tokens" ||
               target == "/v1/chat/completions" || target == "/v1/responses";
  if (!known) {
    return anthropic ? anthropicError(404, "not_found_error", "Not Found")
                     : openaiError(404, "invalid_request_error", "Unknown request URL");
  }
  if (head.method != "POST") {
    return anthropic ? anthropicError(405, "invalid_request_error", "Method Not Allowed")
                     : openaiError(405, "invalid_request_error", "Method Not Allowed");
  }
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return anthropic ? anthropicError(400, "invalid_request_error",
                                      "There was an error parsing the body of your request")
                     : openaiError(400, "invalid_request_error",
                                   "We could not parse the JSON body of your request.");
  }
  if (target == "/v1/messages/count_tokens") {
    Reply r;
    r.body = R"({"input_tokens":)" + std::to_string(inputTokens(body)) + "}";
    return r;
  }
  if (target == "/v1/messages") return anthropicMessages(doc, body, seq);
  if (target == "/v1/chat/completions") return chat(doc, body, seq);
  return responses(doc, body, seq);
}

}  // namespace

int64_t inputTokens(std::string_view body) {
  return std::max<int64_t>(1, static_cast<int64_t>((body.size() + 3) / 4));
}

int64_t outputTokens(std::string_view reply) {
  return std::max<int64_t>(1, static_cast<int64_t>((reply.size() + 3) / 4));
}

std::string respond(const http::RequestHead& head, std::string_view body, uint64_t seq,
                    bool keepAlive) {
  Reply r = route(head, body, seq);
  http::HeaderList h;
  h.add("content-type", r.contentType);
  h.add("request-id", "req_mock_" + std::to_string(seq));
  if (r.sse.empty()) {
    h.add("content-length", std::to_string(r.body.size()));
  } else {
    h.add("cache-control", "no-cache");
    h.add("transfer-encoding", "chunked");
  }
  if (!keepAlive) h.add("connection", "close");
  auto headBytes = http::serializeResponseHead(r.status, "", h);
  std::string out = headBytes ? std::move(headBytes.value()) : std::string();
  if (r.sse.empty()) {
    out += r.body;
    return out;
  }
  for (const auto& f : r.sse) out += http::chunk(f);
  out += http::lastChunk();
  return out;
}

}  // namespace gatehouse::proxy::mock
