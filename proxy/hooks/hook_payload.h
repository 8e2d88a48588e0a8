// The pre_request hook's wire format (HOOKS.md "pre_request"), sans I/O: the JSON the gateway
// POSTs to the hook and the parser for the hook's answer.
//
//   request  {"version":1,"event":"pre_request","request_id",...,"summary":{...}} or "body":{...}
//   answer   {"action":"allow"} | {"action":"block","message":"..."} |
//            {"action":"modify","body":{...}}
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/logstore/record.h"
#include "wg/status.h"

namespace gatehouse::proxy {

inline constexpr int kHookFormatVersion = 1;
// The last user message in a summary is cut to this many bytes (on a UTF-8 boundary).
inline constexpr size_t kSummaryTextBytes = 1000;
// Answers longer than this are refused (a modify carries a whole request body).
inline constexpr size_t kMaxHookAnswerBytes = 32 * 1024 * 1024;

// The identity object of hook requests and webhook events: node_id, node, user, groups, tags.
nlohmann::json identityJson(const RequestIdentity& who);

struct PreRequestInfo {
  std::string request_id;
  RequestIdentity caller;  // as the request log records it
  std::string provider;    // provider id from the config
  std::string api;         // "anthropic.messages", "openai.chat", ...
  std::string model;
  std::string path;  // the client's request target
};

// The JSON body of the hook request. `full_body`: the request body itself under "body" (as a
// JSON value; the gateway forwards only bodies that parse); otherwise a "summary".
std::string preRequestPayload(const PreRequestInfo& info, std::string_view request_body,
                              bool full_body);

// The summary alone (model, message count, max_tokens, stream, tool names, last user text).
std::string requestSummaryJson(std::string_view request_body);

struct HookAnswer {
  enum class Action { kAllow, kBlock, kModify };
  Action action = Action::kAllow;
  std::string message;  // block: shown to the client ("" = a default)
  std::string body;     // modify: the replacement request body, serialized JSON
};

// Parses a hook answer. Errors (EINVAL) say what is wrong, for the log record.
Result<HookAnswer> parseHookAnswer(std::string_view text);

}  // namespace gatehouse::proxy
