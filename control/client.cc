#include "control/client.h"

namespace gatehouse::control {

struct Client::Socket {
  uv_tcp_t tcp;
  uv_connect_t connect;
  Client* owner = nullptr;  // null once detached (closing)
};

namespace {

void freeSocketOnClose(uv_handle_t* h) { delete static_cast<Client::Socket*>(h->data); }

void allocBuffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char storage[64 * 1024];
  *buf = uv_buf_init(storage, sizeof storage);
}

struct WriteReq {
  uv_write_t req;
  std::string data;
};

}  // namespace

Client::Client(uv_loop_t* loop, wg::Endpoint server, std::unique_ptr<ClientCore> core,
               EventFn on_event, int64_t tick_ms)
    : loop_(loop),
      server_(server),
      core_(std::move(core)),
      on_event_(std::move(on_event)),
      tick_ms_(tick_ms) {}

Client::~Client() { stop(); }

void Client::start() {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<Client*>(t->data)->tick(); }, 0, tick_ms_);
}

void Client::stop() {
  if (stopped_) return;
  stopped_ = true;
  closeSocket();
  if (timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void Client::tick() {
  wg::Now now = wg::systemNow();
  if (socket_) {
    core_->tick(now);
    flush();
  } else if (core_->wantDial(now)) {
    dial();
  }
}

void Client::dial() {
  core_->dialing(wg::systemNow());
  auto* s = new Socket;
  s->owner = this;
  uv_tcp_init(loop_, &s->tcp);
  s->tcp.data = s;
  s->connect.data = s;
  socket_ = s;
  sockaddr_storage ss;
  server_.toSockaddr(&ss);
  int rc = uv_tcp_connect(
      &s->connect, &s->tcp, reinterpret_cast<sockaddr*>(&ss), [](uv_connect_t* req, int status) {
        auto* sock = static_cast<Socket*>(req->data);
        Client* self = sock->owner;
        if (!self) return;
        if (status != 0) return self->closeSocket();
        uv_tcp_nodelay(&sock->tcp, 1);
        self->core_->connected(wg::systemNow());
        uv_read_start(reinterpret_cast<uv_stream_t*>(&sock->tcp), allocBuffer,
                      [](uv_stream_t* st, ssize_t n, const uv_buf_t* buf) {
                        auto* so = static_cast<Socket*>(st->data);
                        Client* c = so->owner;
                        if (!c) return;
                        if (n < 0) return c->closeSocket();
                        c->core_->received({reinterpret_cast<const uint8_t*>(buf->base), size_t(n)},
                                           wg::systemNow());
                        c->flush();
                      });
        self->flush();
      });
  if (rc != 0) closeSocket();
}

void Client::flush() {
  for (auto& e : core_->takeEvents()) {
    if (on_event_) on_event_(*this, e);
  }
  if (!socket_) return;
  std::string out = core_->takeOutput();
  if (!out.empty()) {
    auto* w = new WriteReq;
    w->data = std::move(out);
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&socket_->tcp), &buf, 1,
                 [](uv_write_t* r, int) { delete reinterpret_cast<WriteReq*>(r); }) != 0) {
      delete w;
    }
  }
  if (core_->wantClose()) closeSocket();
}

void Client::closeSocket() {
  if (!socket_) return;
  Socket* s = socket_;
  socket_ = nullptr;
  s->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&s->tcp), freeSocketOnClose);
  if (!stopped_) {
    core_->disconnected(wg::systemNow());
    for (auto& e : core_->takeEvents()) {
      if (on_event_) on_event_(*this, e);
    }
  }
}

}  // namespace gatehouse::control
