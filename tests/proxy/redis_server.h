// A real redis-server (Debian's /usr/bin/redis-server) for tests: on 127.0.0.1, a free port,
// no persistence unless a directory is given (then append-only file there). Started with
// fork/exec, stopped by its PID (SIGTERM, then SIGKILL after a bounded wait).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::proxy {

inline constexpr const char* kRedisServer = "/usr/bin/redis-server";

class RedisServer {
 public:
  // `dir` empty: --save '' --appendonly no. Otherwise --appendonly yes --dir dir.
  explicit RedisServer(std::string dir = {}, uint16_t port = 0) : dir_(std::move(dir)) {
    port_ = port != 0 ? port : freePort();
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  static bool available() { return ::access(kRedisServer, X_OK) == 0; }
  uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {
        kRedisServer,  "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
        "--daemonize", "no",     "--loglevel",          "warning"};
    if (dir_.empty()) {
      args.insert(args.end(), {"--appendonly", "no"});
    } else {
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always", "--dir", dir_});
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      int devnull = ::open("/dev/null", O_WRONLY);  // its start-up banner and warnings
      if (devnull >= 0) {
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(kRedisServer, argv.data());
      ::_exit(127);
    }
    // Ready when it accepts a connection (bounded: 5 s).
    for (int i = 0; i < 250; ++i) {
      if (accepts()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 250; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  bool accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  static uint16_t freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

 private:
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace gatehouse::proxy
