// AnthropicStreamGuard: enforces guardrails (guardrail.h) inside a streamed Anthropic Messages
// response before the agent sees a dangerous tool call, without delaying anything else.
//
//   upstream bytes ──feed()──▶ complete SSE events ──▶ bytes for the client
//     text, thinking, ping, message_* events       forwarded as soon as the event is complete,
//                                                   byte for byte
//     content_block_start(tool_use) … _stop        held until the block stops, then evaluated:
//                                                   released byte for byte, or replaced by a
//                                                   text block at the same index that names the
//                                                   rule and the command
//     message_delta with stop_reason "tool_use"    rewritten to "end_turn" when every tool_use of
//                                                   the message was blocked (the SDK would
//                                                   otherwise wait for tool results)
// Only whole events leave the guard: bytes of an event still arriving wait for its blank line.
// Anthropic streams one block at a time, so holding a tool block delays no text.
//
// Bad input never stalls the stream: a stream the SSE parser refuses, or a tool block larger
// than max_held_bytes, is passed through unevaluated from then on (counted in passthrough()).
// finish() at the end of the upstream returns what is left: an unfinished event as it was; a
// tool block still open is dropped (the stream was cut; its call is incomplete anyway).
//
// Thread safety: one guard per response, one thread. Sans-I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/sse.h"
#include "proxy/tools/guardrail.h"

namespace gatehouse::proxy::tools {

struct BlockedCall {
  std::string call_id;
  std::string name;
  GuardMatch match;
  bool operator==(const BlockedCall&) const = default;
};

class AnthropicStreamGuard {
 public:
  explicit AnthropicStreamGuard(std::shared_ptr<const Guardrails> rules,
                                size_t max_held_bytes = size_t{4} << 20);

  // The next upstream bytes; returns the bytes to send to the client now (maybe none).
  std::string feed(std::string_view bytes);
  // The upstream ended; returns the bytes still to send.
  std::string finish();

  const std::vector<BlockedCall>& blocked() const { return blocked_; }
  bool passthrough() const { return passthrough_; }

 private:
  void onEvent(const http::SseEvent& e, std::string_view raw, std::string& out);
  void completeHeld(std::string& out);

  std::shared_ptr<const Guardrails> rules_;
  size_t max_held_bytes_;
  http::SseParser parser_;
  std::string pending_;        // bytes fed and not yet assigned to a complete event
  uint64_t pending_base_ = 0;  // stream offset of pending_[0]
  bool passthrough_ = false;

  bool holding_ = false;
  int64_t held_index_ = -1;
  std::string held_;  // the held block's bytes
  std::string held_id_, held_name_, held_input_, held_initial_;
  int tool_uses_released_ = 0;
  std::vector<BlockedCall> blocked_;
};

}  // namespace gatehouse::proxy::tools
