#include "proxy/tools/tool_results.h"

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "proxy/tools/json_access.h"
#include "proxy/tools/tool_tap.h"

namespace gatehouse::proxy::tools {
namespace {

using nlohmann::json;

int64_t contentSize(const json& content) {
  if (content.is_string())
    return static_cast<int64_t>(content.get_ref<const std::string&>().size());
  if (content.is_null()) return 0;
  if (!content.is_array()) return static_cast<int64_t>(content.dump().size());
  int64_t n = 0;
  for (const json& part : content) {
    const json& text = member(part, "text");
    n += text.is_string() ? static_cast<int64_t>(text.get_ref<const std::string&>().size())
                          : static_cast<int64_t>(part.dump().size());
  }
  return n;
}

// Codex reports a shell command's exit code inside the output text.
ResultStatus codexStatus(const json& output) {
  if (!output.is_string()) return ResultStatus::kOk;
  const std::string& text = output.get_ref<const std::string&>();
  if (!text.empty() && text.front() == '{') {
    json j = json::parse(text, nullptr, false);
    const json& code = member(member(j, "metadata"), "exit_code");
    if (code.is_number_integer()) {
      return code.get<int64_t>() == 0 ? ResultStatus::kOk : ResultStatus::kError;
    }
  }
  constexpr std::string_view kExit = "Exit code: ";
  if (text.starts_with(kExit)) {
    int64_t code = 0;
    const char* begin = text.data() + kExit.size();
    auto r = std::from_chars(begin, text.data() + text.size(), code);
    if (r.ec == std::errc() && r.ptr != begin) {
      return code == 0 ? ResultStatus::kOk : ResultStatus::kError;
    }
  }
  return ResultStatus::kOk;
}

// shell_call_output: output[] of {stdout, stderr, outcome {type, exit_code}}.
ToolResult shellCallOutput(const json& item) {
  ToolResult r{str(item, "call_id"), ResultStatus::kOk, 0};
  const json& output = member(item, "output");
  if (!output.is_array()) {
    r.size = contentSize(output);
    return r;
  }
  for (const json& o : output) {
    r.size += static_cast<int64_t>(str(o, "stdout").size() + str(o, "stderr").size());
    const json& outcome = member(o, "outcome");
    const json& code = member(outcome, "exit_code");
    if (str(outcome, "type") == "timeout" ||
        (code.is_number_integer() && code.get<int64_t>() != 0)) {
      r.status = ResultStatus::kError;
    }
  }
  return r;
}

class Collector {
 public:
  void add(ToolResult r) {
    if (r.call_id.empty()) return;
    auto [it, inserted] = index_.try_emplace(r.call_id, out_.size());
    if (inserted) {
      out_.push_back(std::move(r));
    } else {
      out_[it->second] = std::move(r);
    }
  }
  std::vector<ToolResult> take() { return std::move(out_); }

 private:
  std::map<std::string, size_t> index_;
  std::vector<ToolResult> out_;
};

}  // namespace

std::string_view apiKindName(ApiKind kind) {
  switch (kind) {
    case ApiKind::kAnthropicMessages:
      return "anthropic.messages";
    case ApiKind::kAnthropicCountTokens:
      return "anthropic.count_tokens";
    case ApiKind::kOpenAiChat:
      return "openai.chat";
    case ApiKind::kOpenAiResponses:
      return "openai.responses";
  }
  return "";
}

std::optional<ApiKind> parseApiKindName(std::string_view name) {
  for (ApiKind k : {ApiKind::kAnthropicMessages, ApiKind::kAnthropicCountTokens,
                    ApiKind::kOpenAiChat, ApiKind::kOpenAiResponses}) {
    if (apiKindName(k) == name) return k;
  }
  return std::nullopt;
}

bool mayHoldToolResults(std::string_view request_body) {
  return mayMention(request_body, "tool_result") || mayMention(request_body, "tool_call_id") ||
         mayMention(request_body, "_output");
}

std::vector<ToolResult> extractToolResults(ApiKind kind, std::string_view request_body) {
  // Most first turns carry no results: skip the parse when no result marker is present.
  if (!mayHoldToolResults(request_body)) return {};
  json j = json::parse(request_body, nullptr, false);
  Collector c;
  if (!j.is_object()) return {};
  if (kind == ApiKind::kAnthropicMessages) {
    const json& messages = member(j, "messages");
    if (!messages.is_array()) return {};
    for (const json& m : messages) {
      const json& content = member(m, "content");
      if (!content.is_array()) continue;
      for (const json& block : content) {
        if (str(block, "type") != "tool_result") continue;
        bool error = member(block, "is_error").is_boolean() && block["is_error"].get<bool>();
        c.add({str(block, "tool_use_id"), error ? ResultStatus::kError : ResultStatus::kOk,
               contentSize(member(block, "content"))});
      }
    }
  } else if (kind == ApiKind::kOpenAiChat) {
    const json& messages = member(j, "messages");
    if (!messages.is_array()) return {};
    for (const json& m : messages) {
      if (str(m, "role") != "tool") continue;
      c.add({str(m, "tool_call_id"), ResultStatus::kOk, contentSize(member(m, "content"))});
    }
  } else if (kind == ApiKind::kOpenAiResponses) {
    const json& input = member(j, "input");
    if (!input.is_array()) return {};
    for (const json& item : input) {
      std::string type = str(item, "type");
      if (type == "function_call_output" || type == "custom_tool_call_output" ||
          type == "local_shell_call_output") {
        const json& output = member(item, "output");
        c.add({str(item, "call_id"), codexStatus(output), contentSize(output)});
      } else if (type == "shell_call_output") {
        c.add(shellCallOutput(item));
      }
    }
  }
  return c.take();
}

}  // namespace gatehouse::proxy::tools
