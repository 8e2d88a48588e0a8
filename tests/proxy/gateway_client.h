// Test helpers shared by the in-process gateway tests: loopback sockets and a raw HTTP/1.1
// client that reads one response at a time (chunked or Content-Length), every wait bounded.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace gatehouse::proxy {
namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads what is available within `ms`: >0 bytes appended, 0 on EOF (or reset), -1 on timeout.
int readSome(int fd, std::string* buf, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return -1;
  char tmp[65536];
  ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return 0;
  buf->append(tmp, static_cast<size_t>(n));
  return static_cast<int>(n);
}

uint16_t boundPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

int listenLocal() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 64), 0);
  return fd;
}

int connectLocal(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: a socket and a buffer, so pipelined responses are read one at a time.

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool chunked = false;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

struct Client {
  int fd = -1;
  std::string buf;
  explicit Client(uint16_t port) : fd(connectLocal(port)) {}
  explicit Client(int adopted_peer, bool) : fd(adopted_peer) {}
  ~Client() {
    if (fd >= 0) ::close(fd);
  }
  bool send(std::string_view data) { return sendAll(fd, data); }

  // Waits until `pred` holds; false on EOF or when `deadline` passes.
  bool fill(const std::function<bool()>& pred, Clock::time_point deadline) {
    while (!pred()) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return false;
      if (readSome(fd, &buf, left) == 0) return false;
    }
    return true;
  }

  // One complete response (nullopt on timeout or EOF first).
  std::optional<Response> read(int timeout_ms = 3000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t end = 0;
    if (!fill([&] { return (end = buf.find("\r\n\r\n")) != std::string::npos; }, deadline)) {
      return std::nullopt;
    }
    Response r;
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    r.status = std::atoi(head.c_str() + 9);
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        r.headers[lower(line.substr(0, colon))] = v;
      }
      pos = next;
    }
    if (r.status / 100 == 1) return r;
    if (lower(r.header("transfer-encoding")) == "chunked") {
      r.chunked = true;
      for (;;) {
        size_t eol = 0;
        if (!fill([&] { return (eol = buf.find("\r\n")) != std::string::npos; }, deadline)) {
          return std::nullopt;
        }
        size_t n = std::strtoul(buf.c_str(), nullptr, 16);
        if (!fill([&] { return buf.size() >= eol + 2 + n + 2; }, deadline)) return std::nullopt;
        r.body += buf.substr(eol + 2, n);
        buf.erase(0, eol + 2 + n + 2);
        if (n == 0) break;
      }
    } else {
      size_t n = std::strtoul(r.header("content-length").c_str(), nullptr, 10);
      if (!fill([&] { return buf.size() >= n; }, deadline)) return std::nullopt;
      r.body = buf.substr(0, n);
      buf.erase(0, n);
    }
    return r;
  }

  // True when the peer closes the connection within `ms` (bytes arriving meanwhile are kept).
  bool closedWithin(int ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return false;
      if (readSome(fd, &buf, left) == 0) return true;
    }
  }
};

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: ai\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace
}  // namespace gatehouse::proxy
