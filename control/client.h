// The control client's I/O shell: drives one ClientCore over libuv TCP (dial, reconnect after
// the core's backoff, keepalive ticks). The node facade will embed this; benchmarks and the
// multi-process tests use it as a lightweight node.
//
// Thread: the loop's thread only. Ownership: owns the core and its libuv handles (freed in close
// callbacks: call stop() and let the loop run before destroying). on_event fires synchronously
// from the loop for every ClientCore event, after the core applied it (map() is current).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "control/client_core.h"

namespace gatehouse::control {

class Client {
 public:
  using EventFn = std::function<void(Client&, const ClientCore::Event&)>;

  Client(uv_loop_t* loop, wg::Endpoint server, std::unique_ptr<ClientCore> core, EventFn on_event,
         int64_t tick_ms = 250);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  void stop();
  ClientCore& core() { return *core_; }

 private:
 public:
  struct Socket;  // one TCP connection attempt (control/client.cc)

 private:
  void tick();
  void dial();
  void flush();
  void closeSocket();

  uv_loop_t* loop_;
  wg::Endpoint server_;
  std::unique_ptr<ClientCore> core_;
  EventFn on_event_;
  int64_t tick_ms_;
  uv_timer_t* timer_ = nullptr;
  Socket* socket_ = nullptr;
  bool stopped_ = false;
};

}  // namespace gatehouse::control
