// Stream guards: enforce guardrails (guardrail.h) inside a streamed LLM response before the agent
// sees a dangerous tool call, without delaying anything else. One guard per API:
//
//   upstream bytes ──feed()──▶ complete SSE events ──▶ bytes for the client
//
// AnthropicStreamGuard (Messages, llm-wire-formats.md §2.2)
//     text, thinking, ping, message_* events       forwarded as soon as the event is complete,
//                                                   byte for byte
//     content_block_start(tool_use) … _stop        held until the block stops, then evaluated:
//                                                   released byte for byte, or replaced by a
//                                                   text block at the same index
//     message_delta with stop_reason "tool_use"    "end_turn" when every tool_use was blocked
// Anthropic streams one block at a time, so holding a tool block delays no text.
//
// ChatStreamGuard (Chat Completions, §3: `data: {chat.completion.chunk}` … `data: [DONE]`)
//     chunks without tool_calls (content, role,    forwarded as soon as complete, byte for byte
//     usage, other choices)
//     chunks with delta.tool_calls[i]              held per (choice, i) until that call is
//                                                   complete: the choice's next tool index begins,
//                                                   its finish_reason arrives, or [DONE]. Then
//                                                   released byte for byte, or replaced by one
//                                                   content delta chunk (the chunk's id, created,
//                                                   model, … kept) carrying the explanation
//     finish_reason "tool_calls"                   "stop" when every call of the choice was
//                                                   blocked; released calls after a blocked one
//                                                   are renumbered so the SDK sees no index gap
// A chunk holding one call's delta and its choice's finish_reason is held and judged at once. A
// chunk that mixes tool-call deltas with anything else (content, a second call or choice) is
// split: each call's part is held as a chunk of its own, the rest leaves now (re-serialized).
//
// ResponsesStreamGuard (Responses, §4.3: `event: response.*`)
//     events of function_call, custom_tool_call,   held from response.output_item.added to
//     local_shell_call and shell_call items         response.output_item.done, then released
//                                                   byte for byte, or replaced by a message item
//                                                   at the same output_index (output_item.added,
//                                                   content_part.added, output_text.delta/.done,
//                                                   content_part.done, output_item.done)
//     response.completed / .incomplete / .failed   a blocked item in response.output[] becomes
//                                                   the same message item
//     everything else                              forwarded as soon as complete
// sequence_number stays strictly increasing: from the first event that has to be renumbered (a
// replacement has more events than the item it replaces; a held item released after later
// events) on, every event is numbered one past the previous one.
//
// The replacement text names the tool, the command and the rule (blockedText()); every guard
// records what it replaced in blocked().
//
// Bad input never stalls the stream: a stream the SSE parser refuses, an event that is not
// JSON while a call is held, or held bytes past max_held_bytes hand over what is held, as it
// came, and everything after it unevaluated (passthrough()). finish() at the end of the upstream
// returns what is left: an unfinished event as it was, unless a tool call is still held: then
// the call and what followed it are dropped (the stream was cut; the call is incomplete anyway).
//
// Thread safety: one guard per response, one thread. Sans-I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/sse.h"
#include "proxy/tools/guardrail.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy::tools {

struct BlockedCall {
  std::string call_id;
  std::string name;
  GuardMatch match;
  bool operator==(const BlockedCall&) const = default;
};

// What the agent reads instead of a blocked call: "[gatehouse] Blocked the tool call NAME
// (COMMAND): rule "RULE": MESSAGE."
std::string blockedText(const BlockedCall& b);

// The first blocking rule `call` matches (normalized here for `agent`; arguments that are not
// JSON are marked malformed first, except a custom tool's free text), or nullopt.
std::optional<BlockedCall> blockingMatch(const Guardrails& rules, ToolCall call, Agent agent);

class StreamGuard {
 public:
  virtual ~StreamGuard() = default;

  // The next upstream bytes; returns the bytes to send to the client now (maybe none).
  std::string feed(std::string_view bytes);
  // The upstream ended; returns the bytes still to send.
  std::string finish();

  const std::vector<BlockedCall>& blocked() const { return blocked_; }
  bool passthrough() const { return passthrough_; }

 protected:
  StreamGuard(std::shared_ptr<const Guardrails> rules, size_t max_held_bytes);

  // One complete event; `raw` is its bytes as they came. Appends what leaves now to `out`.
  virtual void onEvent(const http::SseEvent& e, std::string_view raw, std::string& out) = 0;
  // Everything held, as it came, in stream order; forgets it.
  virtual std::string releaseHeld() = 0;
  // The stream ended: forgets what is held; returns whether anything was.
  virtual bool dropHeld() = 0;

  // Gives up on the stream: what is held leaves as it came, and (feed() sees to it) everything
  // after it.
  void giveUp(std::string& out);
  std::optional<BlockedCall> evaluate(ToolCall call, Agent agent);

  std::shared_ptr<const Guardrails> rules_;
  size_t max_held_bytes_;
  std::vector<BlockedCall> blocked_;

 private:
  http::SseParser parser_;
  std::string pending_;        // bytes fed and not yet assigned to a complete event
  uint64_t pending_base_ = 0;  // stream offset of pending_[0]
  bool passthrough_ = false;
};

// The guard for a streamed response of `kind`, or null for an API without tool calls.
std::unique_ptr<StreamGuard> makeStreamGuard(ApiKind kind, std::shared_ptr<const Guardrails> rules,
                                             size_t max_held_bytes = size_t{4} << 20);

class AnthropicStreamGuard : public StreamGuard {
 public:
  explicit AnthropicStreamGuard(std::shared_ptr<const Guardrails> rules,
                                size_t max_held_bytes = size_t{4} << 20);

 private:
  void onEvent(const http::SseEvent& e, std::string_view raw, std::string& out) override;
  std::string releaseHeld() override;
  bool dropHeld() override;
  void completeHeld(std::string& out);

  bool holding_ = false;
  int64_t held_index_ = -1;
  std::string held_;  // the held block's bytes
  std::string held_id_, held_name_, held_input_, held_initial_;
  int tool_uses_released_ = 0;
};

class ChatStreamGuard : public StreamGuard {
 public:
  explicit ChatStreamGuard(std::shared_ptr<const Guardrails> rules,
                           size_t max_held_bytes = size_t{4} << 20);

 private:
  using Key = std::pair<int64_t, int64_t>;  // (choice index, tool call index)
  struct Call {
    nlohmann::ordered_json envelope;  // its first chunk minus the choices
    std::string id, name, arguments, role;
  };
  struct Segment {  // one held chunk (as it came, or split off a mixed one)
    Key key;
    std::string raw;
    nlohmann::ordered_json chunk;
  };
  struct Choice {
    int released = 0;
    int blocked = 0;
    bool content = false;  // text went out: the explanation starts on a new paragraph
  };

  void onEvent(const http::SseEvent& e, std::string_view raw, std::string& out) override;
  std::string releaseHeld() override;
  bool dropHeld() override;
  void hold(const Key& key, const nlohmann::ordered_json& chunk, std::string raw);
  void complete(Key key, std::string& out);  // by value: callers pass keys of calls_
  // `chunk` (no tool call in it) leaves: a finish_reason completes its choice's calls first.
  void pass(nlohmann::ordered_json& chunk, std::string_view raw, bool rewritten, std::string& out);

  std::map<Key, Call> calls_;
  std::vector<Segment> segments_;
  size_t held_bytes_ = 0;
  std::map<int64_t, Choice> choices_;
};

class ResponsesStreamGuard : public StreamGuard {
 public:
  explicit ResponsesStreamGuard(std::shared_ptr<const Guardrails> rules,
                                size_t max_held_bytes = size_t{4} << 20);

 private:
  struct Event {
    std::string name;  // the SSE event field ("message" when it had none)
    std::string raw;
    nlohmann::ordered_json data;
  };

  void onEvent(const http::SseEvent& e, std::string_view raw, std::string& out) override;
  std::string releaseHeld() override;
  bool dropHeld() override;
  void complete(int64_t index, const nlohmann::ordered_json& item, std::string& out);
  // Sends one event: as it came while sequence numbers keep increasing, renumbered after that.
  void emit(Event& e, bool rewritten, std::string& out);
  // Sends an event the guard made, numbered next.
  void emitNew(const std::string& type, nlohmann::ordered_json fields, std::string& out);

  std::set<int64_t> open_;                       // output indexes of tool items being held
  std::vector<std::pair<int64_t, Event>> held_;  // (output_index, event) in arrival order
  size_t held_bytes_ = 0;
  int64_t next_seq_ = 0;
  bool renumber_ = false;
  // Blocked items by id and call_id → the message item that replaces them in response.output.
  std::map<std::string, nlohmann::ordered_json> replaced_;
};

}  // namespace gatehouse::proxy::tools
