// SSE parsing: split bytes into lines, lines into fields, blank lines into events (see sse.h).
//
// A line is processed straight from the caller's bytes when it lies inside one feed() call and
// copied into line_ only when it straddles calls, so the common case (whole events per read)
// copies each byte once, into the event. Line terminators are ASCII and never occur inside a
// multi-byte UTF-8 sequence, so decoding line by line equals decoding the whole stream, and a
// character split across feeds is whole again by the time its line is complete.
#include "proxy/http/sse.h"

#include <cerrno>
#include <cstring>
#include <limits>

namespace gatehouse::proxy::http {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one. `maximal`
// receives how many bytes form the maximal invalid subpart when 0 is returned (at least 1).
size_t utf8SequenceAt(std::string_view s, size_t i, size_t& maximal) {
  unsigned char b = static_cast<unsigned char>(s[i]);
  maximal = 1;
  if (b < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds for the second byte (Unicode Table 3-7)
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    unsigned char c = static_cast<unsigned char>(s[i + k]);
    if (c < lo || c > hi) return 0;
    lo = 0x80;
    hi = 0xBF;
    maximal = k + 1;
  }
  return need + 1;
}

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  // ASCII, the common case, eight bytes at a time.
  for (uint64_t word; i + 8 <= s.size(); i += 8) {
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) break;
  }
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t maximal;
    size_t n = utf8SequenceAt(s, i, maximal);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool parseRetry(std::string_view value, int64_t& out) {
  if (value.empty()) return false;
  int64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    int digit = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) return false;  // overflow: ignore
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

}  // namespace

bool sanitizeUtf8(std::string& s) {
  if (isValidUtf8(s)) return false;
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t maximal;
    size_t n = utf8SequenceAt(s, i, maximal);
    if (n == 0) {
      out += kReplacement;
      i += maximal;  // the byte that broke the sequence starts the next one
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  s = std::move(out);
  return true;
}

SseFeedResult SseParser::feed(std::span<const char> bytes) {
  SseFeedResult result;
  if (!error_.isOk()) {
    result.boundary = boundary_;
    result.status = error_;
    return result;
  }
  const char* p = bytes.data();
  const size_t n = bytes.size();
  const uint64_t base = offset_;
  size_t i = 0;
  while (i < n && error_.isOk()) {
    if (skipLf_) {
      skipLf_ = false;
      if (p[i] == '\n') {
        ++i;
        if (!blockStarted_) boundary_ = base + i;
        continue;
      }
    }
    // The line ends at the first LF or CR.
    const void* lf = std::memchr(p + i, '\n', n - i);
    size_t j = lf ? static_cast<size_t>(static_cast<const char*>(lf) - p) : n;
    if (const void* cr = std::memchr(p + i, '\r', j - i)) {
      j = static_cast<size_t>(static_cast<const char*>(cr) - p);
    }
    if (j == n) {  // the line continues in a later feed
      if (line_.size() + (n - i) + pendingBytes() > options_.maxEventBytes) {
        error_ = Status(EMSGSIZE, "SSE event exceeds " + std::to_string(options_.maxEventBytes) +
                                      " bytes without a blank line, at stream offset " +
                                      std::to_string(base + n));
        break;
      }
      line_.append(p + i, n - i);
      i = n;
      break;
    }
    std::string_view line(p + i, j - i);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    skipLf_ = p[j] == '\r';
    i = j + 1;
    uint64_t end = base + i;
    if (line.size() + pendingBytes() > options_.maxEventBytes) {
      error_ = Status(EMSGSIZE, "SSE event exceeds " + std::to_string(options_.maxEventBytes) +
                                    " bytes, at stream offset " + std::to_string(end));
      break;
    }
    processLine(line, end, result);
    line_.clear();
    if (!blockStarted_) boundary_ = end;
  }
  offset_ = base + i;
  if (!error_.isOk()) {
    result.status = error_;
  } else {
    offset_ = base + n;
  }
  result.boundary = boundary_;
  return result;
}

size_t SseParser::pendingBytes() const {
  return data_.size() + eventType_.size() + idBuffer_.size();
}

void SseParser::processLine(std::string_view line, uint64_t end, SseFeedResult& out) {
  if (firstLine_) {
    firstLine_ = false;
    if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  }
  if (line.empty()) {
    dispatch(end, out);
    return;
  }
  if (line.front() == ':') return;  // comment
  std::string owned;
  if (!isValidUtf8(line)) {
    owned.assign(line);
    sanitizeUtf8(owned);
    line = owned;
  }
  blockStarted_ = true;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    processField(line, {});
    return;
  }
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  processField(line.substr(0, colon), value);
}

void SseParser::processField(std::string_view name, std::string_view value) {
  if (name == "event") {
    eventType_.assign(value);
  } else if (name == "data") {
    data_.reserve(data_.size() + value.size() + 1);  // one allocation with its '\n'
    data_.append(value);
    data_.push_back('\n');
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) idBuffer_.assign(value);
  } else if (name == "retry") {
    int64_t ms;
    if (parseRetry(value, ms)) {
      retry_ = ms;
      reconnectionTime_ = ms;
    }
  }
  // Any other field is ignored, as the spec says.
}

void SseParser::dispatch(uint64_t end, SseFeedResult& out) {
  blockStarted_ = false;
  lastEventId_ = idBuffer_;
  if (!data_.empty()) {
    data_.pop_back();  // the '\n' after the last data line
    SseEvent event;
    event.event = eventType_.empty() ? std::string("message") : std::move(eventType_);
    event.data = std::move(data_);
    event.id = lastEventId_;
    event.retry = retry_;
    event.end = end;
    if (out.events.empty()) out.events.reserve(8);  // a read usually carries several
    out.events.push_back(std::move(event));
  }
  data_.clear();
  eventType_.clear();
  retry_.reset();
}

}  // namespace gatehouse::proxy::http
