// Server-sent events parser, following the WHATWG HTML "event stream interpretation" rules
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//
// The gateway taps a copy of an upstream text/event-stream (usage, tool calls, guardrails) while
// the bytes themselves are forwarded untouched. So besides the events, the parser reports stream
// offsets: where each event ended, and the last point at which no event was in progress. A proxy
// that holds bytes back can forward exactly [already sent, boundary) and know it sent only whole
// events, comments and blank lines.
//
// API: pull. feed(bytes) → the events completed by those bytes, in order. Bytes may be split
// anywhere: inside a CRLF, inside a multi-byte UTF-8 character, inside a field name.
//
// Rules implemented (spec section in brackets):
//   - lines end in CRLF, LF or CR; a leading UTF-8 BOM is dropped; invalid UTF-8 becomes U+FFFD
//     (the stream is decoded as UTF-8 with replacement, line by line, which is equivalent);
//   - "field: value" with one optional space after the colon removed; a line without a colon is
//     a field with an empty value; lines starting with ':' are comments;
//   - event → event type; data → appended to the data buffer plus "\n"; id → last event ID
//     unless the value contains NUL; retry → reconnection time if all ASCII digits; other fields
//     ignored;
//   - a blank line dispatches: nothing if the data buffer is empty, else one event with the last
//     "\n" removed and type "message" when no event field was given. The event and data
//     buffers reset; the last event ID persists across events, as the spec says.
//   - at end of stream an unfinished event is discarded (so there is no finish()).
//
// Limit: options.maxEventBytes bounds what one event may buffer (the line being read plus the
// data, event type and id gathered so far). Past it, feed() returns an error and the parser stays
// failed: a stream that never sends a blank line would otherwise grow without bound.
//
// Thread safety: single-threaded state machine; no I/O, no clock. Events are owned copies.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wg/status.h"

namespace gatehouse::proxy::http {

struct SseEvent {
  std::string event;             // the event field, or "message" if the event had none
  std::string data;              // data lines joined with '\n'
  std::string id;                // the last event ID at dispatch (persists across events)
  std::optional<int64_t> retry;  // a valid retry field inside this event, if any
  // Stream offset just past the terminator of the blank line that dispatched the event. For a
  // CRLF that is past the CR: the LF after it is a no-op to every SSE reader (a CR-LF pair is one
  // terminator), and this keeps `end` the same however the stream was split.
  uint64_t end = 0;
};

struct SseFeedResult {
  std::vector<SseEvent> events;
  // Largest stream offset, within the bytes fed so far, at which no event was in progress:
  // everything before it is complete events, comments and blank lines.
  uint64_t boundary = 0;
  Status status;  // not ok: the event size limit was exceeded (EMSGSIZE); the parser is failed
};

class SseParser {
 public:
  struct Options {
    size_t maxEventBytes = 16 * 1024 * 1024;
  };

  SseParser() : SseParser(Options{}) {}
  explicit SseParser(Options options) : options_(options) {}

  SseFeedResult feed(std::span<const char> bytes);
  // Strings and string literals (the literal's NUL is not fed).
  template <std::convertible_to<std::string_view> S>
  SseFeedResult feed(const S& text) {
    return feed(std::span<const char>(std::string_view(text)));
  }

  // Bytes fed so far.
  uint64_t offset() const { return offset_; }
  // See SseFeedResult::boundary.
  uint64_t boundary() const { return boundary_; }
  // True if bytes after boundary() belong to an event (or line) not finished yet.
  bool inEvent() const { return offset_ > boundary_; }
  // The spec's "last event ID string" and reconnection time, as of the last dispatch / field.
  const std::string& lastEventId() const { return lastEventId_; }
  std::optional<int64_t> reconnectionTime() const { return reconnectionTime_; }

 private:
  // `end` is the stream offset just past the line's terminator.
  void processLine(std::string_view line, uint64_t end, SseFeedResult& out);
  void processField(std::string_view name, std::string_view value);
  void dispatch(uint64_t end, SseFeedResult& out);
  size_t pendingBytes() const;  // event type, data and id gathered for the current event

  Options options_;
  uint64_t offset_ = 0;
  uint64_t boundary_ = 0;
  std::string line_;           // the incomplete line carried between feeds
  bool skipLf_ = false;        // the last line ended in CR: an LF right after belongs to it
  bool firstLine_ = true;      // the BOM may only lead the stream
  bool blockStarted_ = false;  // a field has been seen since the last blank line
  std::string eventType_;
  std::string data_;
  std::string idBuffer_;  // the spec's "last event ID buffer"
  std::optional<int64_t> retry_;
  std::string lastEventId_;
  std::optional<int64_t> reconnectionTime_;
  Status error_;
};

// Replaces each invalid UTF-8 sequence in `s` by U+FFFD, as the WHATWG "UTF-8 decode" does
// (one replacement per maximal invalid subpart). Returns whether anything was replaced.
bool sanitizeUtf8(std::string& s);

}  // namespace gatehouse::proxy::http
