// ResponsesStreamGuard (stream_guard.h): the events of a Responses tool item held from
// output_item.added to output_item.done, then released or replaced by a message item.
#include <algorithm>

#include "proxy/tools/json_access.h"
#include "proxy/tools/json_guard.h"
#include "proxy/tools/stream_guard.h"
#include "proxy/tools/tool_tap.h"

namespace gatehouse::proxy::tools {
namespace {

using json = nlohmann::ordered_json;

bool guardedItem(const json& item) {
  std::string type = str(item, "type");
  return type == "function_call" || type == "custom_tool_call" || type == "local_shell_call" ||
         type == "shell_call";
}

bool terminal(std::string_view type) {
  return type == "response.completed" || type == "response.incomplete" || type == "response.failed";
}

}  // namespace

ResponsesStreamGuard::ResponsesStreamGuard(std::shared_ptr<const Guardrails> rules,
                                           size_t max_held_bytes)
    : StreamGuard(std::move(rules), max_held_bytes) {}

std::string ResponsesStreamGuard::releaseHeld() {
  std::string out;
  for (auto& [index, e] : held_) out += e.raw;
  dropHeld();
  return out;
}

bool ResponsesStreamGuard::dropHeld() {
  bool held = !held_.empty();
  held_.clear();
  open_.clear();
  held_bytes_ = 0;
  return held;
}

void ResponsesStreamGuard::onEvent(const http::SseEvent& e, std::string_view raw,
                                   std::string& out) {
  Event ev{e.event, std::string(raw), json::parse(e.data, nullptr, false)};
  if (!ev.data.is_object()) {
    // Not JSON: a held item cannot be judged past it.
    if (!open_.empty()) giveUp(out);
    out.append(raw);
    return;
  }
  std::string type = e.event != "message" ? e.event : str(ev.data, "type");
  int64_t index = num(ev.data, "output_index", -1);
  if (type == "response.output_item.added" && index >= 0 && guardedItem(member(ev.data, "item"))) {
    open_.insert(index);
  }
  if (index >= 0 && open_.contains(index)) {
    held_bytes_ += ev.raw.size();
    held_.emplace_back(index, std::move(ev));
    if (held_bytes_ > max_held_bytes_) {
      giveUp(out);  // too big to judge: never stall, hand it over as it came
    } else if (type == "response.output_item.done") {
      json item = member(held_.back().second.data, "item");  // complete() moves the events
      complete(index, item, out);
    }
    return;
  }
  bool rewritten = false;
  if (terminal(type)) {
    // Items never done: judged from the final output, where they are complete.
    static const json kNone;
    json* output = nullptr;
    if (auto r = ev.data.find("response"); r != ev.data.end() && r->is_object()) {
      auto it = r->find("output");
      if (it != r->end() && it->is_array()) output = &*it;
    }
    while (!open_.empty()) {
      int64_t i = *open_.begin();
      bool in_output = output != nullptr && i >= 0 && static_cast<size_t>(i) < output->size();
      complete(i, in_output ? (*output)[static_cast<size_t>(i)] : kNone, out);
    }
    for (size_t i = 0; output != nullptr && i < output->size(); ++i) {
      json& item = (*output)[i];
      auto it = replaced_.find(str(item, "id"));
      if (it == replaced_.end()) it = replaced_.find(str(item, "call_id"));
      if (it == replaced_.end() || !guardedItem(item)) continue;
      item = it->second;
      rewritten = true;
    }
  }
  emit(ev, rewritten, out);
}

void ResponsesStreamGuard::complete(int64_t index, const json& item, std::string& out) {
  open_.erase(index);
  std::vector<Event> mine;
  std::erase_if(held_, [&](auto& h) {
    if (h.first != index) return false;
    held_bytes_ -= h.second.raw.size();
    mine.push_back(std::move(h.second));
    return true;
  });
  std::optional<ToolCall> call = responsesToolCall(item);
  std::optional<BlockedCall> b;
  if (call && guardedItem(item)) b = evaluate(std::move(*call), Agent::kCodex);
  if (!b) {
    for (Event& e : mine) emit(e, false, out);
    return;
  }
  std::string id = str(item, "id");
  json message = blockedMessageItem(id, *b);
  if (!id.empty()) replaced_[id] = message;
  if (std::string call_id = str(item, "call_id"); !call_id.empty()) replaced_[call_id] = message;
  std::string item_id = message["id"];
  const json& part = message["content"][0];
  json empty_part = part;
  empty_part["text"] = "";
  json added = message;
  added["status"] = "in_progress";
  added["content"] = json::array();
  emitNew("response.output_item.added", {{"output_index", index}, {"item", std::move(added)}}, out);
  json where = {{"item_id", item_id}, {"output_index", index}, {"content_index", 0}};
  auto with = [&where](json more) {
    json j = where;
    for (auto& [k, v] : more.items()) j[k] = v;
    return j;
  };
  emitNew("response.content_part.added", with({{"part", empty_part}}), out);
  emitNew("response.output_text.delta",
          with({{"delta", part["text"]}, {"logprobs", json::array()}}), out);
  emitNew("response.output_text.done", with({{"text", part["text"]}, {"logprobs", json::array()}}),
          out);
  emitNew("response.content_part.done", with({{"part", part}}), out);
  emitNew("response.output_item.done", {{"output_index", index}, {"item", message}}, out);
}

void ResponsesStreamGuard::emit(Event& e, bool rewritten, std::string& out) {
  auto seq = e.data.find("sequence_number");
  if (seq != e.data.end() && seq->is_number_integer()) {
    int64_t s = seq->get<int64_t>();
    if (!renumber_ && s >= next_seq_) {
      next_seq_ = s + 1;
    } else {
      renumber_ = true;
      *seq = next_seq_++;
      rewritten = true;
    }
  }
  if (!rewritten) {
    out += e.raw;
    return;
  }
  if (e.name != "message") out += "event: " + e.name + "\n";
  out += "data: " + e.data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

void ResponsesStreamGuard::emitNew(const std::string& type, json fields, std::string& out) {
  renumber_ = true;  // from here on the upstream's numbers are behind ours
  json data = {{"type", type}, {"sequence_number", next_seq_++}};
  for (auto& [k, v] : fields.items()) data[k] = std::move(v);
  out += "event: " + type + "\ndata: " + data.dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n\n";
}

}  // namespace gatehouse::proxy::tools
