// The mock provider's libuv server: accept, parse with http::RequestParser (one request at a time,
// so pipelining works), answer with mock::respond(), keep the connection alive unless the client
// asked to close. One 64 KiB read buffer per connection, reused for every read.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <unordered_set>
#include <variant>

#include "proxy/mock/mock_provider.h"

namespace gatehouse::proxy::mock {

namespace {
constexpr size_t kReadBuffer = 64 * 1024;

struct Conn;
}  // namespace

struct MockProvider::State {
  uv_loop_t* loop = nullptr;
  uv_tcp_t* listener = nullptr;
  uint16_t port = 0;
  uint64_t requests = 0;
  std::unordered_set<Conn*> conns;
};

namespace {

struct Conn {
  uv_tcp_t tcp{};
  MockProvider::State* state = nullptr;
  http::RequestParser parser;
  http::RequestHead head;
  std::string body;
  bool closing = false;
  bool closeAfterWrite = false;
  char buf[kReadBuffer];
};

struct WriteReq {
  uv_write_t req{};
  std::string data;
  Conn* conn = nullptr;
  bool closeAfter = false;
};

void closeConn(Conn* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->state) c->state->conns.erase(c);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
           [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
}

void send(Conn* c, std::string data, bool closeAfter) {
  auto* w = new WriteReq;
  w->data = std::move(data);
  w->conn = c;
  w->closeAfter = closeAfter;
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1,
                    [](uv_write_t* req, int status) {
                      auto* wr = static_cast<WriteReq*>(req->data);
                      if ((status < 0 || wr->closeAfter) && !wr->conn->closing) closeConn(wr->conn);
                      delete wr;
                    });
  if (rc < 0) {
    delete w;
    closeConn(c);
  }
}

void simpleError(Conn* c, int status) {
  http::HeaderList h{
      {"content-type", "text/plain"}, {"content-length", "0"}, {"connection", "close"}};
  auto head = http::serializeResponseHead(status, "", h);
  send(c, head ? head.value() : std::string("HTTP/1.1 400 Bad Request\r\n\r\n"), true);
}

void onData(Conn* c, const char* data, size_t n) {
  std::span<const char> rest(data, n);
  while (!rest.empty() && !c->closing && !c->closeAfterWrite) {
    auto r = c->parser.feed(rest);
    for (auto& ev : r.events) {
      if (auto* h = std::get_if<http::RequestHead>(&ev)) {
        c->head = std::move(*h);
        c->body.clear();
      } else if (auto* b = std::get_if<http::BodyChunk>(&ev)) {
        c->body.append(b->data);
      } else if (std::holds_alternative<http::MessageEnd>(ev)) {
        bool keep = c->head.keepAlive;
        uint64_t seq = ++c->state->requests;
        send(c, respond(c->head, c->body, seq, keep), !keep);
        if (!keep) c->closeAfterWrite = true;
      }
    }
    if (r.stop == http::StopReason::Error) {
      simpleError(c, r.error ? r.error->httpStatus() : 400);
      c->closeAfterWrite = true;
      return;
    }
    if (r.stop == http::StopReason::Upgrade) {
      simpleError(c, 400);
      c->closeAfterWrite = true;
      return;
    }
    rest = rest.subspan(r.consumed);
    if (r.stop == http::StopReason::NeedMore) break;
  }
}

void onConnection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* st = static_cast<MockProvider::State*>(server->data);
  auto* c = new Conn;
  c->state = st;
  uv_tcp_init(st->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  st->conns.insert(c);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* cc = static_cast<Conn*>(h->data);
        *b = uv_buf_init(cc->buf, sizeof cc->buf);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
        auto* cc = static_cast<Conn*>(s->data);
        if (n < 0) {
          closeConn(cc);
          return;
        }
        if (n > 0) onData(cc, b->base, static_cast<size_t>(n));
      });
}

}  // namespace

MockProvider::MockProvider(std::unique_ptr<State> state) : state_(std::move(state)) {}

MockProvider::~MockProvider() { close(); }

Result<std::unique_ptr<MockProvider>> MockProvider::start(uv_loop_t* loop, const Options& options) {
  sockaddr_storage ss{};
  int rc = uv_ip4_addr(options.host.c_str(), options.port, reinterpret_cast<sockaddr_in*>(&ss));
  if (rc != 0) {
    rc = uv_ip6_addr(options.host.c_str(), options.port, reinterpret_cast<sockaddr_in6*>(&ss));
  }
  if (rc != 0) return Status(EINVAL, "mock provider: bad listen address '" + options.host + "'");
  auto st = std::make_unique<State>();
  st->loop = loop;
  st->listener = new uv_tcp_t;
  uv_tcp_init(loop, st->listener);
  st->listener->data = st.get();
  rc = uv_tcp_bind(st->listener, reinterpret_cast<sockaddr*>(&ss), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(st->listener), 1024, onConnection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(st->listener),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    return Status(-rc, "mock provider: listen on " + options.host + ":" +
                           std::to_string(options.port) + ": " + uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(st->listener, reinterpret_cast<sockaddr*>(&bound), &len);
  st->port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return std::unique_ptr<MockProvider>(new MockProvider(std::move(st)));
}

uint16_t MockProvider::port() const { return state_->port; }
uint64_t MockProvider::requests() const { return state_->requests; }

void MockProvider::close() {
  if (!state_) return;
  if (state_->listener) {
    uv_close(reinterpret_cast<uv_handle_t*>(state_->listener),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    state_->listener = nullptr;
  }
  auto conns = state_->conns;
  for (Conn* c : conns) {
    c->state = nullptr;
    closeConn(c);
  }
  state_->conns.clear();
}

// --- MockProviderThread ---

MockProviderThread::~MockProviderThread() { stop(); }

Status MockProviderThread::start(const MockProvider::Options& options) {
  if (running_) return Status(EBUSY, "mock provider: already running");
  uv_loop_init(&loop_);
  auto p = MockProvider::start(&loop_, options);
  if (!p) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
    return p.status();
  }
  provider_ = std::move(p.value());
  port_ = provider_->port();
  stop_.data = this;
  uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
    auto* self = static_cast<MockProviderThread*>(a->data);
    self->provider_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
  });
  running_ = true;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  return Status::ok();
}

void MockProviderThread::stop() {
  if (!running_) return;
  running_ = false;
  uv_async_send(&stop_);
  thread_.join();
  provider_.reset();
  uv_loop_close(&loop_);
}

}  // namespace gatehouse::proxy::mock
