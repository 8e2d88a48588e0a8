// HTTP/1.1 codec for the gateway: sans-I/O request and response parsers on llhttp, and the
// serializers that write message heads and chunked framing.
//
// Model: the caller owns the bytes. feed() takes whatever arrived (any split, down to one byte
// at a time) and returns what it found as events, plus how many bytes it consumed. Body events
// are views into the caller's buffer, already dechunked: chunk sizes, extensions and the
// terminating chunk never reach the caller, so it handles a Content-Length body, a chunked body
// and a close-delimited body the same way and re-frames as it likes when forwarding.
//
//   RequestParser (server side)    RequestHead, BodyChunk*, MessageEnd   per request
//   ResponseParser (client side)   InterimResponse* (1xx), ResponseHead, BodyChunk*, MessageEnd
//
// A feed() stops early (consumed < size) in two cases, and the caller keeps the rest:
//   - StopReason::MessageEnd: a message ended and options.stopAfterMessage is set. Pipelined
//     requests are handled one at a time this way: answer, then feed() the rest again.
//   - StopReason::Upgrade: the message switched protocols (request: Upgrade + Connection:
//     upgrade, or CONNECT; response: 101, or 2xx to CONNECT). Bytes after `consumed` belong to
//     the new protocol. To refuse the upgrade and carry on with HTTP/1.1, just feed() again.
// Errors are sticky values (HttpError): after one, feed() returns it again and consumes nothing.
// After a message whose head says keepAlive == false, llhttp consumes and ignores whatever
// follows (counted against the header limit): answer, then close. finish() is the last call.
//
// Limits: max header bytes counts the raw bytes of the start line and header section, CRLFs
// included (and the bytes of a chunked trailer section); max body bytes counts decoded body
// bytes and is checked against Content-Length before any body byte is read. Beyond llhttp's
// checks, a header name with whitespace ("Host : x") and a bare CR in a head are rejected: both
// are request-smuggling vectors that llhttp 8.1 lets through.
//
// Use from an event loop (server side; the client side is the same with ResponseParser):
//   on read:   in.append(bytes);
//              for (;;) {
//                auto r = parser.feed(in);      // views in r.events point into `in`
//                for (auto& e : r.events) ...;  // RequestHead → route; BodyChunk → forward
//                in.erase(0, r.consumed);
//                if (r.stop == StopReason::Error) { reply r.error->httpStatus(); close; }
//                if (r.stop == StopReason::Upgrade) { hand `in` to the new protocol; }
//                if (r.stop != StopReason::MessageEnd || !readyForNext) break;
//              }
//   on EOF:    parser.finish()  (ResponseParser: ends a close-delimited body)
//   when the response to a pipelined request is done: feed(in) again with what was kept.
//
// Thread safety: a parser is a single-threaded state machine; no I/O, no clock, no threads.
// Ownership: BodyChunk views point into the span given to the feed() that returned them and are
// valid as long as that buffer is; heads and trailers are owned copies.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/http/headers.h"
#include "wg/status.h"

namespace gatehouse::proxy::http {

enum class ErrorKind {
  BadRequest,      // malformed request (llhttp's reason in the message) → 400
  BadResponse,     // malformed upstream response → 502
  HeaderTooLarge,  // start line + headers (or trailers) over the limit → 431
  BodyTooLarge,    // declared or decoded body over the limit → 413
  UnexpectedEof,   // finish() in the middle of a message → 400 (request) / 502 (response)
};

struct HttpError {
  ErrorKind kind = ErrorKind::BadRequest;
  std::string message;  // e.g. "HPE_INVALID_METHOD: Invalid method encountered at offset 0"
  uint64_t offset = 0;  // stream offset (bytes since the parser was created) where it was found
  bool isResponse = false;

  // The status a server answers with (requests) or the gateway reports (responses).
  int httpStatus() const;
  Status toStatus() const;
};

std::string_view errorKindName(ErrorKind kind);

// How the body of a message is delimited on the wire (informational: the parser removes it).
enum class BodyFraming {
  None,        // no body: Content-Length: 0, none declared on a request, HEAD/204/304/1xx
  Length,      // Content-Length
  Chunked,     // Transfer-Encoding: chunked
  UntilClose,  // response read until the connection closes (call finish() at EOF)
};

struct RequestHead {
  std::string method;  // upper case as on the wire ("POST")
  std::string target;  // request-target exactly as sent, query string included
  int versionMajor = 1;
  int versionMinor = 1;
  HeaderList headers;  // original case and order
  bool keepAlive = true;
  bool expectContinue = false;  // Expect: 100-continue
  bool upgrade = false;         // Upgrade listed in Connection, or CONNECT
  std::string upgradeProtocol;  // the Upgrade header's value ("websocket"), empty if none
  BodyFraming framing = BodyFraming::None;
  std::optional<uint64_t> contentLength;
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int versionMajor = 1;
  int versionMinor = 1;
  HeaderList headers;
  bool keepAlive = true;  // false if the connection must close after this response
  bool upgrade = false;   // 101 Switching Protocols, or 2xx to CONNECT
  BodyFraming framing = BodyFraming::None;
  std::optional<uint64_t> contentLength;
};

// Decoded body bytes; a view into the fed buffer.
struct BodyChunk {
  std::string_view data;
};

// The message is complete. Trailers come from a chunked body's trailer section.
struct MessageEnd {
  HeaderList trailers;
};

// A 1xx response other than 101 (100 Continue, 103 Early Hints). The final response follows.
struct InterimResponse {
  ResponseHead head;
};

using RequestEvent = std::variant<RequestHead, BodyChunk, MessageEnd>;
using ResponseEvent = std::variant<InterimResponse, ResponseHead, BodyChunk, MessageEnd>;

enum class StopReason {
  NeedMore,    // every byte consumed; feed more when it arrives
  MessageEnd,  // stopped after a message (stopAfterMessage); feed the rest later
  Upgrade,     // protocol switch; bytes after `consumed` are not HTTP/1.1
  Error,       // see `error`
};

template <typename Event>
struct FeedResult {
  size_t consumed = 0;
  std::vector<Event> events;
  StopReason stop = StopReason::NeedMore;
  std::optional<HttpError> error;
};

namespace detail {
template <typename Event>
class Http1Parser;
}  // namespace detail

class RequestParser {
 public:
  struct Options {
    size_t maxHeaderBytes = 64 * 1024;
    uint64_t maxBodyBytes = 32 * 1024 * 1024;  // 0 = unlimited
    bool stopAfterMessage = true;              // one request at a time (pipelining)
  };

  RequestParser();
  explicit RequestParser(Options options);
  ~RequestParser();
  RequestParser(RequestParser&&) noexcept;
  RequestParser& operator=(RequestParser&&) noexcept;

  FeedResult<RequestEvent> feed(std::span<const char> data);
  // Strings and string literals (the literal's NUL is not fed).
  template <std::convertible_to<std::string_view> S>
  FeedResult<RequestEvent> feed(const S& text) {
    return feed(std::span<const char>(std::string_view(text)));
  }
  // The peer closed its side. Mid-request → UnexpectedEof; between requests → nothing.
  FeedResult<RequestEvent> finish();

  // True between messages (nothing of the next request seen yet).
  bool idle() const;
  // Bytes consumed since construction.
  uint64_t offset() const;

 private:
  std::unique_ptr<detail::Http1Parser<RequestEvent>> impl_;
};

class ResponseParser {
 public:
  struct Options {
    size_t maxHeaderBytes = 64 * 1024;
    uint64_t maxBodyBytes = 0;      // 0 = unlimited: upstream bodies are streamed, not buffered
    bool stopAfterMessage = false;  // a client usually has one response in flight
    bool reportInterim = true;      // false: 1xx interim responses are consumed silently
  };

  ResponseParser();
  explicit ResponseParser(Options options);
  ~ResponseParser();
  ResponseParser(ResponseParser&&) noexcept;
  ResponseParser& operator=(ResponseParser&&) noexcept;

  // The method of the request whose response comes next, in sending order (a FIFO, so
  // pipelined requests work). HEAD responses have no body; a 2xx to CONNECT is an upgrade.
  // Responses with no method queued are taken as answers to GET.
  void expectResponseTo(std::string_view method);

  FeedResult<ResponseEvent> feed(std::span<const char> data);
  // Strings and string literals (the literal's NUL is not fed).
  template <std::convertible_to<std::string_view> S>
  FeedResult<ResponseEvent> feed(const S& text) {
    return feed(std::span<const char>(std::string_view(text)));
  }
  // The upstream closed. Completes a close-delimited body (MessageEnd); mid-message otherwise
  // → UnexpectedEof (a truncated response).
  FeedResult<ResponseEvent> finish();

  bool idle() const;
  uint64_t offset() const;

 private:
  std::unique_ptr<detail::Http1Parser<ResponseEvent>> impl_;
};

// --- serializers ---

// "METHOD target HTTP/1.1\r\n" + fields + "\r\n". Refuses (EINVAL) a method that is not a token,
// a target with spaces or control characters, and header names/values that would let a field
// smuggle another one (CR, LF, NUL).
Result<std::string> serializeRequestHead(std::string_view method, std::string_view target,
                                         const HeaderList& headers);
// "HTTP/1.1 status reason\r\n" + fields + "\r\n". An empty reason uses reasonPhrase(status).
Result<std::string> serializeResponseHead(int status, std::string_view reason,
                                          const HeaderList& headers);
// One chunk of a chunked body: hex size, CRLF, data, CRLF. Empty data gives an empty string,
// because a zero-size chunk would end the body.
std::string chunk(std::string_view data);
// The last chunk with no trailers: "0\r\n\r\n".
std::string_view lastChunk();
// The standard reason phrase ("Request Header Fields Too Large"); empty if unknown.
std::string_view reasonPhrase(int status);

}  // namespace gatehouse::proxy::http
