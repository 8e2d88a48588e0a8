// whoami_server.cc: an HTTP server on a Gatehouse mesh node, in C++ through the Node callback
// API (wg/node.h): every connection is handled on the node's loop, no thread per connection and
// no file descriptor. It answers every request with the caller's identity as the node sees it
// (whoIs on the connection's tunnel source address): public key, name, allowed IPs.
//
//   whoami_cpp --key-file node.key --address 10.7.0.1[,fd7::1] [--listen-port 51820]
//              --peer PUBKEY,ENDPOINT|-,ALLOWEDIP[,ALLOWEDIP...][,name=NAME] [--peer ...]
//              [--port 80]
//
// Stops on SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "wg/node.h"
#include "wg/uapi.h"

using namespace gatehouse;
using namespace gatehouse::wg;

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --key-file FILE --address IP[,IP] [--listen-port N] [--port 80]\n"
               "          --peer PUBKEY,ENDPOINT|-,ALLOWEDIP[,...][,name=NAME] [--peer ...]\n",
               argv0);
  return 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

std::optional<NodePeer> parsePeer(const std::string& spec) {
  auto f = split(spec);
  if (f.size() < 2) return std::nullopt;
  NodePeer p;
  auto key = keyFromBase64(f[0]);
  if (!key) return std::nullopt;
  p.public_key = *key;
  if (f[1] != "-") {
    p.endpoint = Endpoint::parse(f[1]);
    if (!p.endpoint) return std::nullopt;
  }
  for (size_t i = 2; i < f.size(); ++i) {
    if (f[i].rfind("name=", 0) == 0) {
      p.name = f[i].substr(5);
    } else if (auto pre = IpPrefix::parse(f[i])) {
      p.allowed_ips.push_back(pre->normalized());
    } else {
      return std::nullopt;
    }
  }
  return p;
}

std::string answer(Node& node, const Endpoint& remote) {
  auto id = node.whoIs(remote.addr);  // on the loop thread: a direct lookup
  std::string body = "remote=" + remote.toString() + "\n";
  if (id) {
    body +=
        "public_key=" + keyToBase64(id->node_public_key) + "\nname=" + id->name + "\nallowed_ips=";
    for (size_t i = 0; i < id->allowed_ips.size(); ++i) {
      body += (i ? "," : "") + id->allowed_ips[i].toString();
    }
    body += "\n";
  } else {
    body += "error=" + id.status().message() + "\n";
  }
  return std::string("HTTP/1.1 ") + (id ? "200 OK" : "403 Forbidden") +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// One HTTP exchange on the loop: collect the request head, write the answer, close.
class Exchange {
 public:
  Exchange(Node& node, std::set<std::shared_ptr<TcpConn>>& live, std::shared_ptr<TcpConn> conn)
      : node_(node), live_(live), conn_(std::move(conn)) {}
  void start() {
    live_.insert(conn_);
    TcpConn* raw = conn_.get();
    raw->setHandlers({.on_data = [this](std::span<const uint8_t> d) { return onData(d); },
                      .on_eof = [this] { finish(); },
                      .on_writable = [this] { flush(); },
                      .on_error = [this](const Status&) { finish(); }});
  }

 private:
  size_t onData(std::span<const uint8_t> d) {
    if (answered_) return d.size();
    request_.append(d.begin(), d.end());
    if (request_.find("\r\n\r\n") != std::string::npos || request_.size() > 8192) {
      answered_ = true;
      out_ = answer(node_, conn_->remoteEndpoint());
      flush();
    }
    return d.size();
  }
  void flush() {
    while (sent_ < out_.size()) {
      auto n = conn_->write(
          {reinterpret_cast<const uint8_t*>(out_.data()) + sent_, out_.size() - sent_});
      if (!n || *n == 0) break;  // on_writable resumes
      sent_ += *n;
    }
    if (answered_ && sent_ == out_.size()) finish();
  }
  // Closes gracefully (FIN after the answer); no handler fires after close(), so the
  // Exchange can go. Callers return right after, touching no member.
  void finish() {
    conn_->close();
    live_.erase(conn_);
    delete this;
  }

  Node& node_;
  std::set<std::shared_ptr<TcpConn>>& live_;
  std::shared_ptr<TcpConn> conn_;
  std::string request_, out_;
  size_t sent_ = 0;
  bool answered_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  NodeOptions o;
  o.hostname = "whoami-cpp";
  int port = 80;
  std::string key_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--key-file") {
      key_file = value;
    } else if (flag == "--address") {
      for (const std::string& a : split(value)) {
        auto ip = IpAddr::parse(a);
        if (!ip) return usage(argv[0]);
        o.addresses.push_back(*ip);
      }
    } else if (flag == "--listen-port") {
      o.listen_port = static_cast<uint16_t>(std::stoi(value));
    } else if (flag == "--port") {
      port = std::stoi(value);
    } else if (flag == "--peer") {
      auto p = parsePeer(value);
      if (!p) return usage(argv[0]);
      o.peers.push_back(*p);
    } else {
      return usage(argv[0]);
    }
  }
  std::ifstream kf(key_file);
  std::string key_text;
  kf >> key_text;
  o.private_key = keyFromBase64(key_text);
  if (!o.private_key || o.addresses.empty()) return usage(argv[0]);

  // Block the stop signals before the node's loop thread exists; this thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  Node node(o);
  if (Status st = node.start(); !st) {
    std::fprintf(stderr, "whoami_cpp: %s\n", st.message().c_str());
    return 1;
  }
  std::set<std::shared_ptr<TcpConn>> live;  // loop thread only
  std::shared_ptr<TcpListener> listener;
  std::promise<Status> listening;
  node.post([&] {
    auto l = node.listenTcp(static_cast<uint16_t>(port), [&](std::shared_ptr<TcpConn> c) {
      (new Exchange(node, live, std::move(c)))->start();
    });
    if (l) listener = l.value();
    listening.set_value(l ? Status::ok() : l.status());
  });
  if (Status st = listening.get_future().get(); !st) {
    std::fprintf(stderr, "whoami_cpp: %s\n", st.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "whoami_cpp: listening on port %d (UDP %u)\n", port, node.listenPort());
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "whoami_cpp: stopping\n");
  node.close();  // aborts what is left; the Exchanges of aborted connections are not called
  return 0;
}
