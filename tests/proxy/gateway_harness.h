// A gateway running in process for tests and benchmarks: its own libuv loop on a thread, a
// loopback listener with the config's loopback identity, stopped and joined on destruction; and
// roundTrip(), one blocking HTTP/1.1 exchange on a fresh loopback connection.
//
// Thread safety: construct and destroy on one thread; the gateway lives on the loop thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "proxy/gateway/gateway.h"

namespace gatehouse::proxy {

class RunningGateway {
 public:
  // Starts the gateway on `options.config`'s loopback_listen; ok() says whether it listens.
  explicit RunningGateway(GatewayOptions options) {
    auto config = options.config;
    uv_loop_init(&loop_);
    gw_ = std::make_unique<Gateway>(&loop_, std::move(options));
    auto port = gw_->listenLoopback(*config->loopback_listen, *config->loopback_identity);
    if (port) port_ = port.value();
    status_ = port ? Status::ok() : port.status();
    stop_.data = this;
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      static_cast<RunningGateway*>(a->data)->gw_->close();
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~RunningGateway() {
    uv_async_send(&stop_);
    thread_.join();
    gw_.reset();
    uv_loop_close(&loop_);
  }
  RunningGateway(const RunningGateway&) = delete;
  RunningGateway& operator=(const RunningGateway&) = delete;

  const Status& status() const { return status_; }
  uint16_t port() const { return port_; }
  Gateway& gateway() { return *gw_; }  // counters are atomics: readable from the test thread

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<Gateway> gw_;
  std::thread thread_;
  uint16_t port_ = 0;
  Status status_;
};

// Sends `request` (which should say Connection: close) to 127.0.0.1:port and returns every byte
// of the answer until EOF, or what arrived within `timeout`; "" when the connect fails.
inline std::string roundTrip(uint16_t port, const std::string& request,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  for (std::string_view d = request; !d.empty();) {
    ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    d.remove_prefix(static_cast<size_t>(n));
  }
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace gatehouse::proxy
