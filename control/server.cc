#include "control/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "wg/net/addr.h"

namespace gatehouse::control {
namespace {

template <typename H>
void closeAndFree(H* h) {
  if (h && !uv_is_closing(reinterpret_cast<uv_handle_t*>(h))) {
    uv_close(reinterpret_cast<uv_handle_t*>(h),
             [](uv_handle_t* p) { delete reinterpret_cast<H*>(p); });
  }
}

void allocBuffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char storage[64 * 1024];  // the loop is single-threaded; read_cb consumes it at once
  *buf = uv_buf_init(storage, sizeof storage);
}

struct WriteReq {
  uv_write_t req;
  std::string data;
};

void writeString(uv_stream_t* stream, std::string data) {
  auto* w = new WriteReq;
  w->data = std::move(data);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, stream, &buf, 1,
               [](uv_write_t* r, int) { delete reinterpret_cast<WriteReq*>(r); }) != 0) {
    delete w;
  }
}

std::string peerName(uv_tcp_t* tcp) {
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  auto ep = wg::Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  return ep ? ep->toString() : "?";
}

}  // namespace

struct Server::Conn {
  uv_tcp_t tcp;
  Server* server = nullptr;
  ServerCore::ConnId id = 0;
  bool closing = false;
};

struct Server::AdminConn {
  uv_pipe_t pipe;
  Server* server = nullptr;
  std::string buffer;
};

bool writeFileAtomic(const std::string& path, const std::string& text, std::string* error) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": cannot write: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool readFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot read";
    return false;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  *out = buf.str();
  return true;
}

Server::Server(uv_loop_t* loop, ServerCore& core, ServerConfig config, LogFn log)
    : loop_(loop), core_(core), config_(std::move(config)), log_(std::move(log)) {}

Server::~Server() { stop(); }

bool Server::start(std::string* error) {
  auto ep = wg::Endpoint::parse(config_.listen);
  if (!ep) {
    *error = "--listen " + config_.listen + ": expected ADDR:PORT (e.g. 127.0.0.1:7443)";
    return false;
  }
  sockaddr_storage ss;
  ep->toSockaddr(&ss);
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_, tcp_);
  tcp_->data = this;
  int rc = uv_tcp_bind(tcp_, reinterpret_cast<sockaddr*>(&ss), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), 1024, onTcpConnection);
  if (rc != 0) {
    *error = "listen on " + config_.listen + ": " + uv_strerror(rc);
    return false;
  }
  int len = sizeof ss;
  uv_tcp_getsockname(tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = wg::Endpoint::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len)->port;

  if (!config_.admin_socket.empty()) {
    ::unlink(config_.admin_socket.c_str());
    admin_ = new uv_pipe_t;
    uv_pipe_init(loop_, admin_, 0);
    admin_->data = this;
    mode_t old = ::umask(0177);  // the socket is born 0600
    rc = uv_pipe_bind(admin_, config_.admin_socket.c_str());
    ::umask(old);
    if (rc == 0) {
      ::chmod(config_.admin_socket.c_str(), 0600);
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(admin_), 16, onAdminConnection);
    }
    if (rc != 0) {
      *error = "admin socket " + config_.admin_socket + ": " + uv_strerror(rc);
      return false;
    }
  }
  if (!config_.policy_path.empty()) {
    std::string path = config_.policy_path;
    core_.setPersistPolicy([path](const std::string& text, std::string* err) {
      std::string current, ignored;
      if (readFile(path, &current, &ignored) && current == text) return true;
      return writeFileAtomic(path, text, err);
    });
    sighup_ = new uv_signal_t;
    uv_signal_init(loop_, sighup_);
    sighup_->data = this;
    uv_signal_start(
        sighup_,
        [](uv_signal_t* s, int) {
          auto* self = static_cast<Server*>(s->data);
          std::string err;
          if (self->reloadPolicy(&err)) {
            self->log_("control: SIGHUP: policy reloaded from " + self->config_.policy_path);
          }
        },
        SIGHUP);
  }
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        self->core_.tick(wg::systemNow());
        self->drain();
      },
      config_.tick_ms, config_.tick_ms);
  return true;
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  closeAndFree(tcp_);
  closeAndFree(admin_);
  closeAndFree(sighup_);
  closeAndFree(timer_);
  tcp_ = nullptr;
  admin_ = nullptr;
  sighup_ = nullptr;
  timer_ = nullptr;
  for (auto& [id, c] : conns_) {
    core_.disconnected(id, wg::systemNow());
    c->closing = true;
    closeAndFree(c);
  }
  conns_.clear();
  if (!config_.admin_socket.empty()) ::unlink(config_.admin_socket.c_str());
}

bool Server::reloadPolicy(std::string* error) {
  std::string text;
  if (!readFile(config_.policy_path, &text, error)) {
    log_("control: policy reload failed: " + *error);
    return false;
  }
  auto errors = core_.setPolicy(text);
  if (!errors.empty()) {
    *error = "";
    for (const auto& d : errors) {
      log_("control: policy rejected, the old policy stays: " + d.format(config_.policy_path));
      *error += d.format(config_.policy_path) + "\n";
    }
    return false;
  }
  return true;
}

void Server::onTcpConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status != 0) return;
  auto* c = new Conn;
  c->server = self;
  uv_tcp_init(self->loop_, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    closeAndFree(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->id = self->core_.accept(wg::systemNow(), peerName(&c->tcp));
  self->conns_[c->id] = c;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), allocBuffer,
                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  auto* conn = static_cast<Conn*>(s->data);
                  Server* server = conn->server;
                  if (n < 0) {
                    server->closeConn(conn);
                  } else if (n > 0) {
                    server->core_.receive(conn->id,
                                          {reinterpret_cast<const uint8_t*>(buf->base), size_t(n)},
                                          wg::systemNow());
                  }
                  server->drain();
                });
}

void Server::closeConn(Conn* c) {
  if (c->closing) return;
  c->closing = true;
  conns_.erase(c->id);
  core_.disconnected(c->id, wg::systemNow());
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
  // Shut down after queued writes (e.g. an Error message), then close.
  auto* req = new uv_shutdown_t;
  req->data = c;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->tcp), [](uv_shutdown_t* r, int) {
        closeAndFree(static_cast<Conn*>(r->data));
        delete r;
      }) != 0) {
    delete req;
    closeAndFree(c);
  }
}

void Server::drain() {
  for (auto& out : core_.takeOutputs()) {
    auto it = conns_.find(out.conn);
    if (it == conns_.end()) continue;
    Conn* c = it->second;
    auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
    if (!out.bytes.empty()) writeString(stream, std::move(out.bytes));
    if (uv_stream_get_write_queue_size(stream) > kMaxQueuedOutput) {
      log_("control: cut off conn " + std::to_string(c->id) + ": not reading its map stream");
      out.close = true;
    }
    if (out.close) closeConn(c);
  }
}

void Server::onAdminConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status != 0) return;
  auto* a = new AdminConn;
  a->server = self;
  uv_pipe_init(self->loop_, &a->pipe, 0);
  a->pipe.data = a;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&a->pipe)) != 0) {
    closeAndFree(a);
    return;
  }
  // Only root or the server's own user may administer (the socket mode already says so).
  uv_os_fd_t fd;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&a->pipe), &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != 0 && cred.uid != ::geteuid())) {
    self->log_("control: admin connection refused for uid " + std::to_string(cred.uid));
    closeAndFree(a);
    return;
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&a->pipe), allocBuffer,
                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  auto* conn = static_cast<AdminConn*>(s->data);
                  if (n < 0) return closeAndFree(conn);
                  conn->buffer.append(buf->base, size_t(n));
                  if (conn->buffer.size() > (8u << 20)) return closeAndFree(conn);
                  size_t nl;
                  while ((nl = conn->buffer.find('\n')) != std::string::npos) {
                    std::string line = conn->buffer.substr(0, nl);
                    conn->buffer.erase(0, nl + 1);
                    conn->server->handleAdminLine(conn, line);
                  }
                });
}

void Server::handleAdminLine(AdminConn* a, const std::string& line) {
  auto req = nlohmann::json::parse(line, nullptr, false);
  nlohmann::json reply;
  if (req.is_object() && req.value("cmd", "") == "policy.reload") {
    std::string error;
    reply = config_.policy_path.empty()
                ? nlohmann::json{{"ok", false}, {"error", "no --policy file to reload"}}
            : reloadPolicy(&error) ? nlohmann::json{{"ok", true}}
                                   : nlohmann::json{{"ok", false}, {"error", error}};
  } else if (req.is_discarded()) {
    reply = {{"ok", false}, {"error", "request is not JSON"}};
  } else {
    reply = core_.admin(req, wg::systemNow());
  }
  writeString(reinterpret_cast<uv_stream_t*>(&a->pipe), reply.dump() + "\n");
  drain();
}

}  // namespace gatehouse::control
