// Request and response parsers on llhttp.
//
// llhttp calls back while it runs over a buffer; the parser turns those calls into events in the
// FeedResult. Two internal pauses make the byte accounting exact whatever the split:
//   - on_headers_complete returns HPE_PAUSED, so llhttp_get_error_pos() is the first byte after
//     the header section. The head's size is checked there before its event is emitted, and the
//     head event is therefore always ahead of the first body byte.
//   - on_message_complete returns HPE_PAUSED, so the end of every message (and the start of the
//     next head) is a known stream offset; feed() either stops there (stopAfterMessage, upgrade)
//     or resumes at once.
// Returning HPE_PAUSED from on_headers_complete replaces llhttp's "1 = no body" / "2 = upgrade"
// return codes, so those are applied by setting the same parser fields llhttp sets for them
// (F_SKIPBODY in flags, the upgrade byte), which is what its generated code does.
#include "proxy/http/http1.h"

#include <llhttp.h>

#include <cerrno>
#include <deque>
#include <type_traits>

namespace gatehouse::proxy::http {

namespace detail {

template <typename Event>
class Http1Parser {
 public:
  static constexpr bool kRequest = std::is_same_v<Event, RequestEvent>;

  struct Config {
    size_t maxHeaderBytes = 0;
    uint64_t maxBodyBytes = 0;
    bool stopAfterMessage = false;
    bool reportInterim = true;
  };

  explicit Http1Parser(Config config) : config_(config) {
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = &Http1Parser::onMessageBegin;
    settings_.on_url = &Http1Parser::onSpan<&Http1Parser::url_>;
    settings_.on_status = &Http1Parser::onSpan<&Http1Parser::reason_>;
    settings_.on_method = &Http1Parser::onSpan<nullptr>;  // the method comes from llhttp's code
    settings_.on_version = &Http1Parser::onSpan<nullptr>;
    settings_.on_header_field = &Http1Parser::onSpan<&Http1Parser::field_>;
    settings_.on_header_value = &Http1Parser::onSpan<&Http1Parser::value_>;
    settings_.on_header_value_complete = &Http1Parser::onHeaderValueComplete;
    settings_.on_headers_complete = &Http1Parser::onHeadersComplete;
    settings_.on_body = &Http1Parser::onBody;
    settings_.on_message_complete = &Http1Parser::onMessageComplete;
    llhttp_init(&parser_, kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
    parser_.data = this;
  }
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  void expectResponseTo(std::string_view method) { methods_.emplace_back(method); }
  bool idle() const { return !midMessage_; }
  uint64_t offset() const { return offset_; }

  FeedResult<Event> feed(std::span<const char> data) {
    FeedResult<Event> result;
    if (error_) return failed(std::move(result), 0);
    const char* base = data.empty() ? "" : data.data();
    out_ = &result.events;
    buf_ = base;
    bufBase_ = offset_;
    if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);  // earlier stop

    size_t pos = 0;
    size_t scanFrom = inHead_ ? 0 : kNoScan;  // head bytes not yet checked for a bare CR
    for (;;) {
      llhttp_errno_t err = llhttp_execute(&parser_, base + pos, data.size() - pos);
      if (err == HPE_OK) {
        pos = data.size();
        break;
      }
      pos = stopPosition(base, data.size());
      if (err == HPE_PAUSED && pause_ == Pause::Head) {
        pause_ = Pause::None;
        if (!headComplete(base + std::min(scanFrom, pos), pos))
          return failed(std::move(result), pos);
        scanFrom = kNoScan;
        llhttp_resume(&parser_);
        continue;  // even with no bytes left: a message without a body completes right here
      }
      if (err == HPE_PAUSED && pause_ == Pause::End) {
        pause_ = Pause::None;
        headStart_ = bufBase_ + pos;
        scanFrom = pos;
        if (upgradeMessage_) {
          upgradeReported_ = true;
          result.stop = StopReason::Upgrade;
          break;
        }
        if (config_.stopAfterMessage) {
          result.stop = StopReason::MessageEnd;
          break;
        }
        llhttp_resume(&parser_);
        continue;  // with no bytes left too: llhttp closes the message's books on the next call
      }
      if (err == HPE_PAUSED_UPGRADE && upgradeReported_) {
        // The caller fed again after an Upgrade stop: it declined the switch.
        upgradeReported_ = false;
        llhttp_resume_after_upgrade(&parser_);
        continue;
      }
      if (err == HPE_PAUSED_UPGRADE) {
        upgradeReported_ = true;
        result.stop = StopReason::Upgrade;
        break;
      }
      if (!pendingError_) {
        fail(malformed(),
             std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_),
             bufBase_ + pos);
      }
      return failed(std::move(result), pos);
    }
    offset_ = bufBase_ + pos;
    result.consumed = pos;
    if (result.stop == StopReason::NeedMore && inHead_) {
      // A head still incomplete at the end of the bytes: check what arrived of it so far.
      if (headHasBareCr(base + std::min(scanFrom, pos), base + pos)) {
        fail(malformed(), "bare CR in the header section", offset_);
      } else if (offset_ - headStart_ > config_.maxHeaderBytes) {
        fail(ErrorKind::HeaderTooLarge, headTooLarge(), offset_);
      }
      if (pendingError_) return failed(std::move(result), pos);
    }
    out_ = nullptr;
    return result;
  }

  FeedResult<Event> finish() {
    FeedResult<Event> result;
    if (error_) return failed(std::move(result), 0);
    if (upgradeReported_) return result;  // the bytes after the upgrade were someone else's
    out_ = &result.events;
    buf_ = "";
    bufBase_ = offset_;
    if (llhttp_get_errno(&parser_) == HPE_PAUSED) {
      // Stopped at a message end: let llhttp finish its bookkeeping for that message first, or
      // it still believes the message is in progress.
      llhttp_resume(&parser_);
      llhttp_execute(&parser_, buf_, 0);
    }
    if constexpr (!kRequest) {
      if (!midMessage_ && !methods_.empty()) {
        fail(ErrorKind::UnexpectedEof, "connection closed before the response", offset_);
        return failed(std::move(result), 0);
      }
    }
    llhttp_errno_t err = llhttp_finish(&parser_);
    if (err == HPE_PAUSED) {  // on_message_complete ran: a close-delimited body ended
      pause_ = Pause::None;
      result.stop = StopReason::MessageEnd;
    } else if (err != HPE_OK) {
      fail(ErrorKind::UnexpectedEof,
           std::string("connection closed in the middle of a ") +
               (kRequest ? "request" : "response") + " (" + llhttp_errno_name(err) + ")",
           offset_);
      return failed(std::move(result), 0);
    }
    out_ = nullptr;
    return result;
  }

 private:
  enum class Pause { None, Head, End };

  static Http1Parser* self(llhttp_t* p) { return static_cast<Http1Parser*>(p->data); }

  // Where llhttp stopped inside [base, base + size]; defensive about a missing position.
  size_t stopPosition(const char* base, size_t size) const {
    const char* at = llhttp_get_error_pos(&parser_);
    if (at == nullptr || at < base || at > base + size) return size;
    return static_cast<size_t>(at - base);
  }

  static constexpr size_t kNoScan = static_cast<size_t>(-1);

  static constexpr ErrorKind malformed() {
    return kRequest ? ErrorKind::BadRequest : ErrorKind::BadResponse;
  }

  // At the end of a header section (`end` is its offset in this call's bytes): the checks that
  // need the whole head, in the order a server answers them (400, 431, 413). False on error.
  bool headComplete(const char* scanFrom, size_t end) {
    uint64_t at = bufBase_ + end;
    if (headHasBareCr(scanFrom, buf_ + end) || headPrevCr_) {
      fail(malformed(), "bare CR in the header section", at);
    } else if (at - headStart_ > config_.maxHeaderBytes) {
      fail(ErrorKind::HeaderTooLarge, headTooLarge(), at);
    } else if (declaredTooLarge_) {
      fail(ErrorKind::BodyTooLarge,
           "Content-Length " + std::to_string(parser_.content_length) + " exceeds " +
               std::to_string(config_.maxBodyBytes) + " bytes",
           at);
    }
    headPrevCr_ = false;
    if (pendingError_) return false;
    if (pendingHead_) out_->push_back(std::move(*pendingHead_));
    pendingHead_.reset();
    return true;
  }

  // Makes the pending error sticky; `pos` is how far into this call's bytes the parser got.
  FeedResult<Event> failed(FeedResult<Event> result, size_t pos) {
    if (!error_) {
      error_ = std::move(pendingError_);
      offset_ = bufBase_ + pos;
    }
    result.consumed = pos;
    result.stop = StopReason::Error;
    result.error = error_;
    out_ = nullptr;
    return result;
  }

  void fail(ErrorKind kind, std::string message, uint64_t at) {
    if (pendingError_) return;
    message += " at offset " + std::to_string(at);
    pendingError_ = HttpError{kind, std::move(message), at, !kRequest};
  }

  std::string headTooLarge() const {
    return std::string(kRequest ? "request" : "response") + " line and headers exceed " +
           std::to_string(config_.maxHeaderBytes) + " bytes";
  }

  // Built in place: moving a temporary variant of these types into the vector trips GCC 12's
  // -Wmaybe-uninitialized (a false positive).
  template <typename T>
  void emit(T&& event) {
    out_->emplace_back(std::in_place_type<std::decay_t<T>>, std::forward<T>(event));
  }

  uint64_t streamPos(const char* p) const { return bufBase_ + static_cast<uint64_t>(p - buf_); }

  // Bare CR in a head: llhttp 8.1 takes "\r\n\r" followed by anything as the end of the header
  // section (CVE-2023-30589), so a CR must be followed by LF. Scans head bytes only.
  bool headHasBareCr(const char* from, const char* to) {
    for (const char* c = from; c < to; ++c) {
      if (headPrevCr_ && *c != '\n') return true;
      headPrevCr_ = *c == '\r';
    }
    return false;
  }

  // Head fields accumulate only while the head is under the limit; trailers count their bytes.
  int checkHeadBytes(const char* at, size_t len) {
    lastSpanEnd_ = streamPos(at + len);
    if (inHead_) {
      if (lastSpanEnd_ - headStart_ <= config_.maxHeaderBytes) return 0;
      fail(ErrorKind::HeaderTooLarge, headTooLarge(), lastSpanEnd_);
      return -1;
    }
    trailerBytes_ += len;
    if (trailerBytes_ <= config_.maxHeaderBytes) return 0;
    fail(ErrorKind::HeaderTooLarge,
         "trailer section exceeds " + std::to_string(config_.maxHeaderBytes) + " bytes",
         streamPos(at + len));
    return -1;
  }

  static int onMessageBegin(llhttp_t* p) {
    Http1Parser* s = self(p);
    s->midMessage_ = true;
    s->url_.clear();
    s->reason_.clear();
    s->field_.clear();
    s->value_.clear();
    s->headers_.clear();
    s->trailers_.clear();
    s->trailerBytes_ = 0;
    s->bodyBytes_ = 0;
    s->upgradeMessage_ = false;
    s->interim_ = false;
    return 0;
  }

  // Start line and header spans: counted against the limit, then kept in `*Field` (if any).
  template <std::string Http1Parser::*Field>
  static int onSpan(llhttp_t* p, const char* at, size_t len) {
    Http1Parser* s = self(p);
    if (s->checkHeadBytes(at, len) != 0) return -1;
    if constexpr (Field != nullptr) (s->*Field).append(at, len);
    return 0;
  }

  static int onHeaderValueComplete(llhttp_t* p) {
    Http1Parser* s = self(p);
    // llhttp drops leading whitespace but keeps trailing OWS, which is not part of the value.
    while (!s->value_.empty() && (s->value_.back() == ' ' || s->value_.back() == '\t')) {
      s->value_.pop_back();
    }
    // llhttp 8.1 accepts "Host : x" (name "Host "), which RFC 9112 §5.1 says to reject: a
    // recipient that trims the name would see a header this parser did not.
    if (!isValidHeaderName(s->field_)) {
      s->fail(malformed(), "invalid header name (whitespace or a non-token character)",
              s->lastSpanEnd_);
      return -1;
    }
    (s->inHead_ ? s->headers_ : s->trailers_).add(std::move(s->field_), std::move(s->value_));
    s->field_.clear();
    s->value_.clear();
    return 0;
  }

  static int onHeadersComplete(llhttp_t* p) { return self(p)->headersComplete(); }

  int headersComplete() {
    inHead_ = false;
    if constexpr (!kRequest) decideResponseBody();
    BodyFraming framing = framingOf();
    std::optional<uint64_t> length;
    if (parser_.flags & F_CONTENT_LENGTH) length = parser_.content_length;
    declaredTooLarge_ = config_.maxBodyBytes != 0 && framing == BodyFraming::Length &&
                        parser_.content_length > config_.maxBodyBytes;
    upgradeMessage_ = parser_.upgrade != 0;
    bool keepAlive = llhttp_should_keep_alive(&parser_) != 0;
    if constexpr (kRequest) {
      RequestHead head;
      head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
      head.target = std::move(url_);
      head.versionMajor = parser_.http_major;
      head.versionMinor = parser_.http_minor;
      auto expect = headers_.get("Expect");
      head.expectContinue = expect && equalsIgnoreCase(*expect, "100-continue");
      head.upgrade = upgradeMessage_;
      head.upgradeProtocol = headers_.getJoined("Upgrade");
      head.headers = std::move(headers_);
      head.keepAlive = keepAlive;
      head.framing = framing;
      head.contentLength = length;
      pendingHead_.emplace(std::in_place_type<RequestHead>, std::move(head));
    } else {
      ResponseHead head;
      head.status = parser_.status_code;
      head.reason = std::move(reason_);
      head.versionMajor = parser_.http_major;
      head.versionMinor = parser_.http_minor;
      head.headers = std::move(headers_);
      head.keepAlive = keepAlive;
      head.upgrade = upgradeMessage_;
      head.framing = framing;
      head.contentLength = length;
      if (!interim_) {
        pendingHead_.emplace(std::in_place_type<ResponseHead>, std::move(head));
      } else if (config_.reportInterim) {
        pendingHead_.emplace(std::in_place_type<InterimResponse>, InterimResponse{std::move(head)});
      }
    }
    pause_ = Pause::Head;
    return HPE_PAUSED;
  }

  // Which responses have no body is known from the request, not the response (RFC 9112 §6.3).
  void decideResponseBody() {
    int status = parser_.status_code;
    interim_ = status / 100 == 1 && status != 101;
    bool skip = interim_ || status == 204 || status == 304;
    if (!interim_) {
      std::string method = "GET";
      if (!methods_.empty()) {
        method = std::move(methods_.front());
        methods_.pop_front();
      }
      skip = skip || method == "HEAD";
      // After 101, or a 2xx to CONNECT, the connection carries another protocol at once.
      if (status == 101 || (method == "CONNECT" && status / 100 == 2)) {
        parser_.upgrade = 1;
        skip = true;
      }
    }
    if (skip) parser_.flags |= F_SKIPBODY;
  }

  BodyFraming framingOf() const {
    uint16_t flags = parser_.flags;
    if (flags & F_SKIPBODY) return BodyFraming::None;
    if (flags & F_CHUNKED) return BodyFraming::Chunked;
    if (kRequest) {
      return (flags & F_CONTENT_LENGTH) && parser_.content_length > 0 ? BodyFraming::Length
                                                                      : BodyFraming::None;
    }
    if (flags & F_TRANSFER_ENCODING) return BodyFraming::UntilClose;
    if (flags & F_CONTENT_LENGTH) {
      return parser_.content_length > 0 ? BodyFraming::Length : BodyFraming::None;
    }
    return BodyFraming::UntilClose;
  }

  static int onBody(llhttp_t* p, const char* at, size_t len) {
    Http1Parser* s = self(p);
    if (len == 0) return 0;
    uint64_t max = s->config_.maxBodyBytes;
    if (max != 0 && len > max - s->bodyBytes_) {
      // Hand over the bytes up to the limit first, so the caller sees the same body before the
      // error however the stream was split.
      size_t allowed = static_cast<size_t>(max - s->bodyBytes_);
      if (allowed > 0) s->emit(BodyChunk{std::string_view(at, allowed)});
      s->fail(ErrorKind::BodyTooLarge, "body exceeds " + std::to_string(max) + " bytes",
              s->streamPos(at + allowed));
      return -1;
    }
    s->bodyBytes_ += len;
    s->emit(BodyChunk{std::string_view(at, len)});
    return 0;
  }

  static int onMessageComplete(llhttp_t* p) {
    Http1Parser* s = self(p);
    s->midMessage_ = false;
    s->inHead_ = true;
    if (kRequest || !s->interim_) s->emit(MessageEnd{std::move(s->trailers_)});
    s->trailers_.clear();
    s->pause_ = Pause::End;
    return HPE_PAUSED;
  }

  Config config_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};

  // Stream accounting: offsets count every byte consumed since construction.
  uint64_t offset_ = 0;
  const char* buf_ = nullptr;  // the span being fed
  uint64_t bufBase_ = 0;       // its stream offset
  uint64_t headStart_ = 0;     // where the current (or next) message's head begins
  bool inHead_ = true;         // until headers complete; between messages too
  bool midMessage_ = false;
  Pause pause_ = Pause::None;
  bool upgradeMessage_ = false;
  bool upgradeReported_ = false;  // stopped with Upgrade; the next feed() declines it
  bool headPrevCr_ = false;       // the last head byte scanned was a CR
  uint64_t lastSpanEnd_ = 0;      // stream offset after the last start line / field span

  // The message being parsed.
  std::string url_, reason_, field_, value_;
  HeaderList headers_, trailers_;
  size_t trailerBytes_ = 0;
  uint64_t bodyBytes_ = 0;
  bool interim_ = false;
  bool declaredTooLarge_ = false;  // Content-Length over maxBodyBytes
  std::optional<Event> pendingHead_;
  std::deque<std::string> methods_;

  std::vector<Event>* out_ = nullptr;
  std::optional<HttpError> pendingError_;  // set by a callback before it fails llhttp
  std::optional<HttpError> error_;         // sticky
};

}  // namespace detail

int HttpError::httpStatus() const {
  if (isResponse) return 502;
  switch (kind) {
    case ErrorKind::HeaderTooLarge:
      return 431;
    case ErrorKind::BodyTooLarge:
      return 413;
    case ErrorKind::BadResponse:
      return 502;
    case ErrorKind::BadRequest:
    case ErrorKind::UnexpectedEof:
      return 400;
  }
  return 400;
}

Status HttpError::toStatus() const {
  int code = EBADMSG;
  if (kind == ErrorKind::HeaderTooLarge) code = EMSGSIZE;
  if (kind == ErrorKind::BodyTooLarge) code = EFBIG;
  if (kind == ErrorKind::UnexpectedEof) code = ECONNABORTED;
  return Status(code, std::string(errorKindName(kind)) + ": " + message);
}

std::string_view errorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadRequest:
      return "bad request";
    case ErrorKind::BadResponse:
      return "bad response";
    case ErrorKind::HeaderTooLarge:
      return "header too large";
    case ErrorKind::BodyTooLarge:
      return "body too large";
    case ErrorKind::UnexpectedEof:
      return "unexpected end of stream";
  }
  return "unknown";
}

namespace {
using RequestImpl = detail::Http1Parser<RequestEvent>;
using ResponseImpl = detail::Http1Parser<ResponseEvent>;
}  // namespace

RequestParser::RequestParser() : RequestParser(Options{}) {}
RequestParser::RequestParser(Options o)
    : impl_(std::make_unique<RequestImpl>(
          RequestImpl::Config{o.maxHeaderBytes, o.maxBodyBytes, o.stopAfterMessage, true})) {}
RequestParser::~RequestParser() = default;
RequestParser::RequestParser(RequestParser&&) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&&) noexcept = default;
FeedResult<RequestEvent> RequestParser::feed(std::span<const char> data) {
  return impl_->feed(data);
}
FeedResult<RequestEvent> RequestParser::finish() { return impl_->finish(); }
bool RequestParser::idle() const { return impl_->idle(); }
uint64_t RequestParser::offset() const { return impl_->offset(); }

ResponseParser::ResponseParser() : ResponseParser(Options{}) {}
ResponseParser::ResponseParser(Options o)
    : impl_(std::make_unique<ResponseImpl>(ResponseImpl::Config{
          o.maxHeaderBytes, o.maxBodyBytes, o.stopAfterMessage, o.reportInterim})) {}
ResponseParser::~ResponseParser() = default;
ResponseParser::ResponseParser(ResponseParser&&) noexcept = default;
ResponseParser& ResponseParser::operator=(ResponseParser&&) noexcept = default;
void ResponseParser::expectResponseTo(std::string_view method) { impl_->expectResponseTo(method); }
FeedResult<ResponseEvent> ResponseParser::feed(std::span<const char> data) {
  return impl_->feed(data);
}
FeedResult<ResponseEvent> ResponseParser::finish() { return impl_->finish(); }
bool ResponseParser::idle() const { return impl_->idle(); }
uint64_t ResponseParser::offset() const { return impl_->offset(); }

}  // namespace gatehouse::proxy::http
