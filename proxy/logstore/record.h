// RequestRecord: what the gateway remembers about one proxied request (DESIGN.md "Gateway request
// path", last steps). The gateway fills one per request after the response ends and hands it to a
// LogWriter; the admin API reads them back through a LogReader. LOG_FORMAT.md is the prose spec
// of the fields and of their storage.
//
// Thread safety: plain values. Ownership: a record owns its strings and bodies; moving it into
// LogWriter::submit is the cheap path.
//
// Identity fields come from the node's whoIs lookup, never from a request header. The session id
// is correlation data chosen by the client (X-Claude-Code-Session-Id, Codex `session_id`, ...):
// it groups requests for display and is never used for authorization.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::proxy {

// One header as seen on the wire. Order and duplicates are kept.
struct RecordHeader {
  std::string name;
  std::string value;
  bool operator==(const RecordHeader&) const = default;
};

// Who made the request (from whoIs on the tailnet address).
struct RequestIdentity {
  std::string node_id;
  std::string node_name;
  std::string user_login;
  std::string user_display_name;
  std::vector<std::string> groups;
  std::vector<std::string> tags;  // e.g. "tag:ci"; filtering by tag is exact
  bool operator==(const RequestIdentity&) const = default;
};

// Token counts by kind. nullopt = the provider did not report it (unknown), which is not 0.
struct RecordTokens {
  std::optional<int64_t> input;
  std::optional<int64_t> output;
  std::optional<int64_t> cache_read;
  std::optional<int64_t> cache_write_5m;
  std::optional<int64_t> cache_write_1h;
  std::optional<int64_t> reasoning;
  bool operator==(const RecordTokens&) const = default;
};

// One tool call the response asked for (proxy/tools), flattened for storage: the log store
// keeps one row per (node, call id), so a call repeated in later turns is stored once.
struct ToolCallRecord {
  std::string call_id;  // unique per node; the gateway invents "<request id>#<n>" when none
  std::string name;
  std::string type;    // shell, file_read, file_write, file_edit, search, web, mcp, subagent, other
  std::string source;  // tool_use, tool_calls, function_call, custom_tool_call, local_shell_call…
  std::string mcp_server;
  std::string mcp_tool;
  std::string arguments;                   // raw, as the model sent them
  std::string args_state;                  // complete, malformed, truncated
  std::string command;                     // shell calls: the script or argv as text
  std::string commands_json;               // JSON [{"argv": [...], ...}], "[]" when none
  std::vector<std::string> command_lines;  // each command's argv joined by spaces
  bool shell_ok = true;                    // false: `command` did not parse, kept raw
  std::string target;                      // path, pattern, url or query
  // Guardrail rules the call matched: JSON [{"rule", "action", "enforced"}], "[]" when none.
  // enforced: the gateway replaced the call before the client saw it.
  std::string guardrail = "[]";
  bool operator==(const ToolCallRecord&) const = default;
};

// A request body to read tool results from, on the writer thread (LogStore::insert): parsing a
// long conversation costs milliseconds, which the gateway's loop should not spend.
struct ToolResultSource {
  std::string api_kind;  // as RequestRecord::api_kind
  std::string body;
  // The body is the record's request_body (logged whole): not copied a second time, and `body`
  // is empty.
  bool in_request_body = false;
};

// A result the request carried for an earlier call: sets that call's result once.
struct ToolResultRecord {
  std::string call_id;
  std::string status;  // ok, error
  int64_t size = 0;    // bytes of result content
  bool operator==(const ToolResultRecord&) const = default;
};

struct RequestRecord {
  std::string id;        // request id chosen by the caller (e.g. 16 random bytes, hex); unique
  int64_t start_ms = 0;  // Unix ms when the request arrived
  RequestIdentity identity;
  std::string session_id;  // client-supplied correlation id; empty when none
  std::string user_agent;
  std::string provider;  // provider id from the config, e.g. "anthropic"
  std::string api_kind;  // e.g. "anthropic.messages", "openai.responses"
  std::string model;
  std::string method;
  std::string path;
  int status = 0;  // HTTP status sent to the client; 0 = none (client went away first)
  std::string error;
  // What the pre_request hook did: "" (no hook), "allow", "block", "modify", or
  // "fail_open: WHY" / "fail_closed: WHY" when it could not be asked (LOG_FORMAT.md, version 4).
  std::string hook;
  int64_t latency_ms = 0;
  std::optional<int64_t> ttfb_ms;  // time to first response byte; nullopt = none sent
  bool streamed = false;
  bool partial = false;  // the stream ended before the provider's final event
  RecordTokens tokens;
  std::optional<int64_t> cost_nanodollars;  // nullopt = unknown model price
  std::vector<RecordHeader> request_headers;
  std::vector<RecordHeader> response_headers;
  std::optional<std::string> request_body;   // bytes as forwarded; nullopt = not captured
  std::optional<std::string> response_body;  // bytes as received
  // Set by LogWriter when it shed the bodies because its queue was full (never by the gateway).
  bool bodies_dropped = false;
  std::vector<ToolCallRecord> tool_calls;      // found in the response
  std::vector<ToolResultRecord> tool_results;  // found in the request's history
  // Results still to be read from the request body (LogStore::insert adds them to tool_results'
  // effect); the writer counts it with the bodies and sheds it with them when its queue is full.
  std::shared_ptr<const ToolResultSource> tool_result_source;

  bool operator==(const RequestRecord&) const = default;
};

// Value written in place of a credential header's value.
inline constexpr std::string_view kRedacted = "[redacted]";

// True for headers whose value the store never keeps: authorization, x-api-key,
// proxy-authorization, cookie, set-cookie, api-key, x-goog-api-key, x-amz-security-token
// (compared case-insensitively). Cookies are here though the gateway forwards them: they are
// credentials for someone, and a log is no place for them.
bool isRedactedHeader(std::string_view name);

// Replaces the value of every credential header with kRedacted. The upstream filter already
// strips client keys; the store does this again so a filter bug never puts a key on disk.
void redactHeaders(std::vector<RecordHeader>& headers);

// Admin API shape (see LOG_FORMAT.md "JSON"). Headers and bodies are included only with
// `detail`; a body that is valid UTF-8 is a string ("request_body"), any other body is base64
// ("request_body_base64"). Text fields that are not UTF-8 get U+FFFD for the bad bytes.
nlohmann::json toJson(const RequestRecord& record, bool detail);

}  // namespace gatehouse::proxy
