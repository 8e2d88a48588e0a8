// ChatStreamGuard (stream_guard.h): tool-call deltas of a streamed Chat Completion held per
// (choice, tool index) until the call is complete, then released or replaced.
#include <algorithm>

#include "proxy/tools/json_access.h"
#include "proxy/tools/stream_guard.h"

namespace gatehouse::proxy::tools {
namespace {

using json = nlohmann::ordered_json;

std::string dataEvent(const json& chunk) {
  return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// A delta that says nothing a reader shows: only tool calls, a role, nulls and empty strings.
bool quiet(const json& delta) {
  if (!delta.is_object()) return true;
  for (const auto& [k, v] : delta.items()) {
    if (k == "tool_calls" || k == "role" || v.is_null()) continue;
    if (v.is_string() && v.get_ref<const std::string&>().empty()) continue;
    return false;
  }
  return true;
}

json envelopeOf(const json& chunk) {
  json e = chunk;
  e.erase("choices");
  return e;
}

}  // namespace

ChatStreamGuard::ChatStreamGuard(std::shared_ptr<const Guardrails> rules, size_t max_held_bytes)
    : StreamGuard(std::move(rules), max_held_bytes) {}

std::string ChatStreamGuard::releaseHeld() {
  std::string out;
  for (Segment& s : segments_) out += s.raw;
  dropHeld();
  return out;
}

bool ChatStreamGuard::dropHeld() {
  bool held = !segments_.empty();
  segments_.clear();
  calls_.clear();
  held_bytes_ = 0;
  return held;
}

void ChatStreamGuard::onEvent(const http::SseEvent& e, std::string_view raw, std::string& out) {
  if (e.data == "[DONE]") {
    while (!calls_.empty()) complete(calls_.begin()->first, out);
    out.append(raw);
    return;
  }
  json j = json::parse(e.data, nullptr, false);
  const json& choices = member(j, "choices");
  if (!choices.is_array()) {
    // Not a chunk: an error object, or not JSON at all. A held call cannot be judged past it.
    if (j.is_discarded() && !segments_.empty()) giveUp(out);
    out.append(raw);
    return;
  }
  struct Part {
    Key key;
    const json* choice;
    const json* call;
  };
  std::vector<Part> parts;
  for (const json& choice : choices) {
    const json& tcs = member(member(choice, "delta"), "tool_calls");
    if (!tcs.is_array()) continue;
    for (const json& tc : tcs)
      parts.push_back({{num(choice, "index", 0), num(tc, "index", 0)}, &choice, &tc});
  }
  if (parts.empty()) {
    pass(j, raw, false, out);
    return;
  }
  // A choice's next tool index began: its calls with no delta in this chunk are complete.
  std::vector<Key> done;
  for (const auto& [key, call] : calls_) {
    bool chunk_has_choice = false, chunk_has_call = false;
    for (const Part& p : parts) {
      chunk_has_choice = chunk_has_choice || p.key.first == key.first;
      chunk_has_call = chunk_has_call || p.key == key;
    }
    if (chunk_has_choice && !chunk_has_call) done.push_back(key);
  }
  for (const Key& key : done) complete(key, out);
  const json& first = *parts[0].choice;
  if (parts.size() == 1 && choices.size() == 1 && quiet(member(first, "delta"))) {
    hold(parts[0].key, j, std::string(raw));
    if (member(first, "finish_reason").is_string()) {
      // The call and its choice end in this chunk: released as it came, or replaced and then
      // the finish_reason in a chunk of its own.
      size_t before = blocked_.size();
      complete(parts[0].key, out);
      if (blocked_.size() > before) {
        json finish = envelopeOf(j);
        json choice = first;
        choice["delta"] = json::object();
        if (choice.contains("logprobs")) choice["logprobs"] = nullptr;
        finish["choices"] = json::array({std::move(choice)});
        pass(finish, "", true, out);
      }
    }
  } else {
    // Mixed: each call's delta is held as a chunk of its own; the rest leaves now.
    for (const Part& p : parts) {
      json part = envelopeOf(j);
      json choice = *p.choice;
      choice["delta"] = json::object();
      if (member(member(*p.choice, "delta"), "role").is_string()) {
        choice["delta"]["role"] = (*p.choice)["delta"]["role"];
      }
      choice["delta"]["tool_calls"] = json::array({*p.call});
      if (choice.contains("logprobs")) choice["logprobs"] = nullptr;
      if (choice.contains("finish_reason")) choice["finish_reason"] = nullptr;
      part["choices"] = json::array({std::move(choice)});
      std::string bytes = dataEvent(part);
      hold(p.key, part, std::move(bytes));
    }
    json rest = j;
    json kept = json::array();
    for (json& choice : rest["choices"]) {
      if (choice.is_object() && choice.contains("delta") && choice["delta"].is_object()) {
        choice["delta"].erase("tool_calls");
        choice["delta"].erase("role");
        if (choice["delta"].empty() && member(choice, "finish_reason").is_null()) continue;
      }
      kept.push_back(std::move(choice));
    }
    if (!kept.empty() || !member(rest, "usage").is_null()) {
      rest["choices"] = std::move(kept);
      pass(rest, "", true, out);
    }
  }
  if (held_bytes_ > max_held_bytes_) giveUp(out);  // too big to judge: never stall
}

void ChatStreamGuard::hold(const Key& key, const json& chunk, std::string raw) {
  auto [it, inserted] = calls_.try_emplace(key);
  Call& c = it->second;
  if (inserted) c.envelope = envelopeOf(chunk);
  for (const json& choice : member(chunk, "choices")) {
    if (num(choice, "index", 0) != key.first) continue;
    const json& delta = member(choice, "delta");
    if (member(delta, "role").is_string()) c.role = str(delta, "role");
    for (const json& tc : member(delta, "tool_calls")) {
      if (num(tc, "index", 0) != key.second) continue;
      if (std::string id = str(tc, "id"); !id.empty() && c.id.empty()) c.id = id;
      const json& fn = member(tc, "function");
      c.name += str(fn, "name");
      c.arguments += str(fn, "arguments");
    }
  }
  held_bytes_ += raw.size();
  segments_.push_back({key, std::move(raw), chunk});
}

void ChatStreamGuard::complete(Key key, std::string& out) {
  auto it = calls_.find(key);
  if (it == calls_.end()) return;
  Call c = std::move(it->second);
  calls_.erase(it);
  std::vector<Segment> mine;
  std::erase_if(segments_, [&](Segment& s) {
    if (s.key != key) return false;
    held_bytes_ -= s.raw.size();
    mine.push_back(std::move(s));
    return true;
  });
  Choice& choice = choices_[key.first];
  ToolCall call;
  call.call_id = c.id;
  call.name = c.name;
  call.source = "tool_calls";
  call.arguments = c.arguments;
  if (std::optional<BlockedCall> b = evaluate(std::move(call), Agent::kCodex)) {
    ++choice.blocked;
    json delta = json::object();
    if (!c.role.empty()) delta["role"] = c.role;
    delta["content"] = (choice.content ? "\n\n" : "") + blockedText(*b);
    json chunk = std::move(c.envelope);
    chunk["choices"] = json::array({{{"index", key.first},
                                     {"delta", std::move(delta)},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
    out += dataEvent(chunk);
    choice.content = true;
    return;
  }
  ++choice.released;
  for (Segment& s : mine) {
    if (choice.blocked == 0) {
      out += s.raw;
      continue;
    }
    // Calls before it were blocked: renumber, or the SDK's tool_calls array has holes.
    for (json& ch : s.chunk["choices"]) {
      if (!ch.is_object() || !ch.contains("delta") || !ch["delta"].is_object()) continue;
      json& tcs = ch["delta"]["tool_calls"];
      if (!tcs.is_array()) continue;
      for (json& tc : tcs) {
        if (tc.is_object()) tc["index"] = num(tc, "index", 0) - choice.blocked;
      }
    }
    out += dataEvent(s.chunk);
  }
}

void ChatStreamGuard::pass(json& chunk, std::string_view raw, bool rewritten, std::string& out) {
  for (json& choice : chunk["choices"]) {
    int64_t ci = num(choice, "index", 0);
    const json& content = member(member(choice, "delta"), "content");
    if (content.is_string() && !content.get_ref<const std::string&>().empty()) {
      choices_[ci].content = true;
    }
    if (!member(choice, "finish_reason").is_string()) continue;
    std::vector<Key> done;
    for (const auto& [key, call] : calls_) {
      if (key.first == ci) done.push_back(key);
    }
    for (const Key& key : done) complete(key, out);
    const Choice& c = choices_[ci];
    if (c.blocked > 0 && c.released == 0 && str(choice, "finish_reason") == "tool_calls") {
      choice["finish_reason"] = "stop";
      rewritten = true;
    }
  }
  if (rewritten) {
    out += dataEvent(chunk);
  } else {
    out.append(raw);
  }
}

}  // namespace gatehouse::proxy::tools
