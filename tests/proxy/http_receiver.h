// A loopback HTTP/1.1 server for hook and webhook tests: one thread, one connection at a time,
// every request answered by a handler (status, body, an optional delay) with Connection: close.
// Records every request it read. Every wait is bounded; the destructor stops and joins.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/gateway_client.h"

namespace gatehouse::proxy {
namespace {

class HttpReceiver {
 public:
  struct Request {
    std::string target;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    std::string header(const std::string& n) const {
      auto it = headers.find(n);
      return it == headers.end() ? "" : it->second;
    }
  };
  struct Answer {
    int status = 200;
    std::string body = "{}";
    int delay_ms = 0;
  };
  using Handler = std::function<Answer(const Request&)>;

  explicit HttpReceiver(Handler handler) : handler_(std::move(handler)), fd_(listenLocal()) {
    port_ = boundPort(fd_);
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handle(c);
      ::close(c);
    }
  }

  void handle(int c) {
    std::string buf;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (Clock::now() > deadline || readSome(c, &buf, 50) == 0) return;
    }
    Request r;
    std::string head = buf.substr(0, end);
    size_t sp = head.find(' ');
    r.target = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
    for (size_t pos = head.find("\r\n"); pos != std::string::npos;) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      if (size_t colon = line.find(':'); colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        r.headers[lower(line.substr(0, colon))] = v;
      }
      pos = next;
    }
    size_t n = std::strtoul(r.header("content-length").c_str(), nullptr, 10);
    while (buf.size() < end + 4 + n) {
      if (Clock::now() > deadline || readSome(c, &buf, 50) == 0) return;
    }
    r.body = buf.substr(end + 4, n);
    // A client that gave up while this connection waited its turn never sees an answer: it
    // must not count as one (a webhook delivered to nobody).
    char probe;
    if (::recv(c, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return;
    Answer a = handler_(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(r);
    }
    for (int waited = 0; waited < a.delay_ms && !stop_; waited += 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    sendAll(c, "HTTP/1.1 " + std::to_string(a.status) +
                   " X\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                   std::to_string(a.body.size()) + "\r\n\r\n" + a.body);
  }

  Handler handler_;
  int fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> requests_;
  std::thread thread_;
};

}  // namespace
}  // namespace gatehouse::proxy
