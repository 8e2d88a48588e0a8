#include "cmd/forward.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "control/local_api.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {

using wg::Endpoint;

Status readKeyFile(const std::string& path, wg::Key32* out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::fromErrno(errno, "key file " + path);
  if ((st.st_mode & 077) != 0) {
    return Status(EPERM, "key file " + path + " is readable by others; run: chmod 600 " + path);
  }
  std::ifstream in(path);
  std::string text;
  in >> text;
  auto k = wg::keyFromBase64(text);
  if (!k) return Status(EINVAL, "key file " + path + ": not a base64 key (as `wg genkey` prints)");
  *out = *k;
  return Status::ok();
}

// The built-in "whoami" target: one HTTP/1.x response naming the caller, from whoIs.
void serveWhoami(wg::Node& node, std::shared_ptr<wg::TcpConn> c) {
  auto req = std::make_shared<std::string>();
  wg::TcpConn* raw = c.get();
  c->setHandlers({.on_data =
                      [&node, raw, req](std::span<const uint8_t> d) {
                        if (req->size() > 16384) {
                          raw->abort();
                          return size_t{0};
                        }
                        req->append(d.begin(), d.end());
                        if (req->find("\r\n\r\n") == std::string::npos) return d.size();
                        auto who = node.whoIs(raw->remoteEndpoint().addr);
                        std::string body =
                            who.isOk() ? "peer=" + wg::keyToBase64(who->node_public_key) +
                                             " name=" + who->name +
                                             " addr=" + raw->remoteEndpoint().addr.toString() + "\n"
                                       : "unknown: " + who.status().message() + "\n";
                        // A control-plane identity: the whole whoIs answer as one JSON line.
                        if (who.isOk() && !who->node_id.empty()) {
                          body += control::identityToJson(who.value()).dump() + "\n";
                        }
                        std::string resp =
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Connection: close\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
                        raw->write({reinterpret_cast<const uint8_t*>(resp.data()), resp.size()});
                        raw->close();
                        return d.size();
                      },
                  .on_error = [c](const Status&) mutable { c.reset(); }});
}

int connectLocal(const Endpoint& to) {
  sockaddr_storage ss;
  socklen_t len = to.toSockaddr(&ss);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Local listener → mesh dial, one accept thread.
Status startForward(wg::Node& node, const Endpoint& listen, const std::string& to, SayFn say) {
  sockaddr_storage ss;
  socklen_t len = listen.toSockaddr(&ss);
  int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(lfd, 512) != 0) {
    return Status::fromErrno(errno, "listen on " + listen.toString());
  }
  std::thread([&node, lfd, to, say] {
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
        return;
      }
      node.post([&node, fd, to, say] {
        auto holder = std::make_shared<std::shared_ptr<wg::TcpConn>>();
        auto r = node.dialTcp(to, wg::Node::kDefaultDialTimeoutMs,
                              [&node, fd, holder, say](const Status& st) {
                                auto conn = std::move(*holder);
                                if (!st || !conn) {
                                  say(st.message());
                                  linger lg{1, 0};  // the local client sees the failure as RST
                                  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                                  ::close(fd);
                                  return;
                                }
                                node.bridge(conn, fd);
                              });
        if (!r) {
          say(r.status().message());
          ::close(fd);
          return;
        }
        *holder = r.value();
      });
    }
  }).detach();
  return Status::ok();
}

// Mesh listener → local connect (or whoami).
Status startReverse(wg::Node& node, const Endpoint& listen, const std::string& to) {
  std::optional<Endpoint> target;
  if (to != "whoami") {
    target = Endpoint::parse(to);
    if (!target) return Status(EINVAL, "--to '" + to + "': want ip:port, [ip6]:port or whoami");
  }
  Status st = Status::ok();
  std::promise<void> done;
  node.post([&] {
    auto r = node.listenTcp(listen.port, [&node, target](std::shared_ptr<wg::TcpConn> c) {
      if (!target) {
        serveWhoami(node, std::move(c));
        return;
      }
      // connect() may block; do it off the loop and come back to bridge.
      std::thread([&node, c, t = *target] {
        int fd = connectLocal(t);
        node.post([&node, c, fd] {
          if (fd < 0) {
            c->abort();
          } else {
            node.bridge(c, fd);
          }
        });
      }).detach();
    });
    if (!r) st = r.status();
    if (r) {
      static std::vector<std::shared_ptr<wg::TcpListener>> keep;
      keep.push_back(r.value());
    }
    done.set_value();
  });
  done.get_future().wait();
  return st;
}

sigset_t blockTermSignals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return sigs;
}

}  // namespace gatehouse::cmd
