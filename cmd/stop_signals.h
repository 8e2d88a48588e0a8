// StopSignals: SIGINT and SIGTERM on a libuv loop for the `gatehouse` subcommands that run one
// loop until told to stop (control, mock-provider). The first signal calls `on_stop` with its
// number and closes both handles, so the loop can run down once the caller's servers close.
//
// Thread safety: loop thread only. The object must outlive the loop's run.
#pragma once

#include <uv.h>

#include <functional>

namespace gatehouse::cmd {

class StopSignals {
 public:
  StopSignals(uv_loop_t* loop, std::function<void(int signum)> on_stop)
      : on_stop_(std::move(on_stop)) {
    for (uv_signal_t* s : {&sigint_, &sigterm_}) {
      uv_signal_init(loop, s);
      s->data = this;
    }
    uv_signal_start(&sigint_, onSignal, SIGINT);
    uv_signal_start(&sigterm_, onSignal, SIGTERM);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static void onSignal(uv_signal_t* s, int signum) {
    auto* self = static_cast<StopSignals*>(s->data);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm_), nullptr);
    if (self->on_stop_) self->on_stop_(signum);
  }

  std::function<void(int)> on_stop_;
  uv_signal_t sigint_{}, sigterm_{};
};

}  // namespace gatehouse::cmd
