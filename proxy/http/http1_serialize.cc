// Serializers for HTTP/1.1 message heads and chunked framing (declared in http1.h).
//
// Every field is checked before it is written: header names and values reach these functions
// from clients, upstreams and configuration, and one stray CRLF would let any of them add a
// header or a whole request of its own (request smuggling / response splitting).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>

#include "proxy/http/http1.h"

namespace gatehouse::proxy::http {

namespace {

struct Reason {
  int status;
  std::string_view phrase;
};

// RFC 9110 §15, sorted by status.
constexpr Reason kReasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {511, "Network Authentication Required"},
};

bool isTargetChar(unsigned char c) { return c > 0x20 && c != 0x7f; }

Status appendHeaders(std::string& out, const HeaderList& headers) {
  for (const Header& h : headers) {
    if (!isValidHeaderName(h.name)) {
      return Status(EINVAL, "invalid header name \"" + h.name + "\"");
    }
    if (!isValidHeaderValue(h.value)) {
      return Status(EINVAL, "invalid value for header " + h.name +
                                " (CR, LF, NUL or surrounding whitespace)");
    }
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  out.append("\r\n");
  return Status::ok();
}

}  // namespace

Result<std::string> serializeRequestHead(std::string_view method, std::string_view target,
                                         const HeaderList& headers) {
  if (!isValidHeaderName(method)) {  // a method is a token, like a field name
    return Status(EINVAL, "invalid request method \"" + std::string(method) + "\"");
  }
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        return isTargetChar(static_cast<unsigned char>(c));
      })) {
    return Status(EINVAL, "invalid request target (empty, or space or control characters)");
  }
  std::string out;
  out.reserve(method.size() + target.size() + 16 + headers.size() * 32);
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (Status s = appendHeaders(out, headers); !s) return s;
  return out;
}

Result<std::string> serializeResponseHead(int status, std::string_view reason,
                                          const HeaderList& headers) {
  if (status < 100 || status > 999) {
    return Status(EINVAL, "invalid status code " + std::to_string(status));
  }
  if (reason.empty()) reason = reasonPhrase(status);
  for (char c : reason) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return Status(EINVAL, "invalid reason phrase (control characters)");
    }
  }
  std::string out;
  out.reserve(16 + reason.size() + headers.size() * 32);
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason);
  out.append("\r\n");
  if (Status s = appendHeaders(out, headers); !s) return s;
  return out;
}

std::string chunk(std::string_view data) {
  if (data.empty()) return {};
  char size[24];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string out;
  out.reserve(static_cast<size_t>(n) + data.size() + 2);
  out.append(size, static_cast<size_t>(n)).append(data).append("\r\n");
  return out;
}

std::string_view lastChunk() { return "0\r\n\r\n"; }

std::string_view reasonPhrase(int status) {
  auto it = std::lower_bound(std::begin(kReasons), std::end(kReasons), status,
                             [](const Reason& r, int s) { return r.status < s; });
  return it != std::end(kReasons) && it->status == status ? it->phrase : std::string_view();
}

}  // namespace gatehouse::proxy::http
