// The pre_request hook's request and answer. See hook_payload.h and HOOKS.md.
#include "proxy/hooks/hook_payload.h"

#include <cerrno>
#include <nlohmann/json.hpp>

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string cutUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  s.resize(n);
  return s;
}

// The text of a message's content: a string, or the text of its text blocks.
std::string contentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const json& block : content) {
    if (!block.is_object()) continue;
    auto text = block.find("text");
    if (text != block.end() && text->is_string()) {
      if (!out.empty()) out += "\n";
      out += text->get<std::string>();
    }
  }
  return out;
}

json summary(const json& body) {
  json s = json::object();
  if (!body.is_object()) return s;
  if (auto m = body.find("model"); m != body.end() && m->is_string()) s["model"] = *m;
  // Anthropic and OpenAI Chat: "messages"; OpenAI Responses: "input" (a list or one string).
  const json* turns = nullptr;
  if (auto m = body.find("messages"); m != body.end()) turns = &*m;
  if (auto in = body.find("input"); turns == nullptr && in != body.end()) turns = &*in;
  std::string last_user;
  size_t count = 0;
  if (turns != nullptr && turns->is_string()) {
    count = 1;
    last_user = turns->get<std::string>();
  } else if (turns != nullptr && turns->is_array()) {
    count = turns->size();
    for (const json& t : *turns) {
      if (!t.is_object()) continue;
      auto role = t.find("role");
      auto content = t.find("content");
      if (role != t.end() && *role == "user" && content != t.end())
        last_user = contentText(*content);
    }
  }
  s["message_count"] = count;
  for (const char* key : {"max_tokens", "max_output_tokens", "max_completion_tokens"}) {
    if (auto m = body.find(key); m != body.end() && m->is_number_integer()) {
      s["max_tokens"] = *m;
      break;
    }
  }
  auto stream = body.find("stream");
  s["stream"] = stream != body.end() && stream->is_boolean() && stream->get<bool>();
  json tools = json::array();
  if (auto t = body.find("tools"); t != body.end() && t->is_array()) {
    for (const json& tool : *t) {
      if (!tool.is_object()) continue;
      const json* name = nullptr;
      if (auto n = tool.find("name"); n != tool.end()) name = &*n;
      if (auto f = tool.find("function"); name == nullptr && f != tool.end() && f->is_object()) {
        if (auto n = f->find("name"); n != f->end()) name = &*n;
      }
      if (name != nullptr && name->is_string()) {
        tools.push_back(*name);
      } else if (auto type = tool.find("type"); type != tool.end() && type->is_string()) {
        tools.push_back(*type);  // built-in tools ("web_search", "local_shell") have no name
      }
    }
  }
  s["tools"] = std::move(tools);
  s["last_user_message"] = cutUtf8(std::move(last_user), kSummaryTextBytes);
  return s;
}

}  // namespace

std::string requestSummaryJson(std::string_view request_body) {
  return dumpJson(summary(json::parse(request_body, nullptr, false)));
}

json identityJson(const RequestIdentity& who) {
  return {{"node_id", who.node_id},
          {"node", who.node_name},
          {"user", who.user_login},
          {"groups", who.groups},
          {"tags", who.tags}};
}

std::string preRequestPayload(const PreRequestInfo& info, std::string_view request_body,
                              bool full_body) {
  json j = {{"version", kHookFormatVersion}, {"event", "pre_request"},
            {"request_id", info.request_id}, {"identity", identityJson(info.caller)},
            {"provider", info.provider},     {"api", info.api},
            {"model", info.model},           {"path", info.path}};
  json body = json::parse(request_body, nullptr, false);
  if (full_body) {
    j["body"] = body.is_discarded() ? json(std::string(request_body)) : std::move(body);
  } else {
    j["summary"] = summary(body);
  }
  return dumpJson(j);
}

Result<HookAnswer> parseHookAnswer(std::string_view text) {
  if (text.size() > kMaxHookAnswerBytes) return Status(EINVAL, "the answer is too large");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status(EINVAL, "the answer is not JSON");
  if (!j.is_object()) return Status(EINVAL, "the answer is not a JSON object");
  auto action = j.find("action");
  if (action == j.end() || !action->is_string()) {
    return Status(EINVAL, "the answer has no \"action\" string (allow, block or modify)");
  }
  HookAnswer a;
  const std::string& name = action->get_ref<const std::string&>();
  if (name == "allow") {
    a.action = HookAnswer::Action::kAllow;
  } else if (name == "block") {
    a.action = HookAnswer::Action::kBlock;
    if (auto m = j.find("message"); m != j.end()) {
      if (!m->is_string()) return Status(EINVAL, "block: \"message\" must be a string");
      a.message = m->get<std::string>();
    }
  } else if (name == "modify") {
    a.action = HookAnswer::Action::kModify;
    auto body = j.find("body");
    if (body == j.end() || !body->is_object()) {
      return Status(EINVAL, "modify: \"body\" must be the replacement request body (an object)");
    }
    a.body = dumpJson(*body);
  } else {
    return Status(EINVAL,
                  "unknown action \"" + cutUtf8(name, 64) + "\" (expected allow, block or modify)");
  }
  return a;
}

}  // namespace gatehouse::proxy
