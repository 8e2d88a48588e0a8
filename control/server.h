// The control server's I/O shell: a libuv TCP listener for nodes, a UNIX admin socket speaking
// JSON lines, a SIGHUP policy reload and a tick timer, all around one ServerCore.
//
// Thread: the loop's thread only. Ownership: borrows the loop and the core (both outlive the
// Server); owns its handles, which are freed in their close callbacks (stop() starts that; the
// loop must run until the close callbacks fire).
//
// Protection: a connection whose unsent output exceeds kMaxQueuedOutput (a client that does not
// read) is cut off; everything else that is bad input (garbage, wrong server key, oversize,
// slowloris) is cut off by the core. Each is logged; other connections are unaffected.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <string>

#include "control/server_core.h"

namespace gatehouse::control {

struct ServerConfig {
  std::string listen = "127.0.0.1:7443";  // ADDR:PORT (port 0 picks one)
  std::string admin_socket;               // UNIX socket path; empty disables admin
  std::string policy_path;                // reloaded on SIGHUP; written by admin policy.set
  int64_t tick_ms = 20;
};

inline constexpr size_t kMaxQueuedOutput = 64u << 20;

class Server {
 public:
  Server(uv_loop_t* loop, ServerCore& core, ServerConfig config, LogFn log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  bool start(std::string* error);
  void stop();
  // Reads the policy file and applies it atomically; false (old policy kept) with the errors.
  bool reloadPolicy(std::string* error);
  uint16_t port() const { return port_; }

 private:
  struct Conn;
  struct AdminConn;
  static void onTcpConnection(uv_stream_t* server, int status);
  static void onAdminConnection(uv_stream_t* server, int status);
  void drain();
  void closeConn(Conn* c);
  void handleAdminLine(AdminConn* a, const std::string& line);

  uv_loop_t* loop_;
  ServerCore& core_;
  ServerConfig config_;
  LogFn log_;
  uv_tcp_t* tcp_ = nullptr;
  uv_pipe_t* admin_ = nullptr;
  uv_signal_t* sighup_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::map<ServerCore::ConnId, Conn*> conns_;
  uint16_t port_ = 0;
  bool stopping_ = false;
};

// Writes `text` to `path` atomically (temporary file 0600 + rename).
bool writeFileAtomic(const std::string& path, const std::string& text, std::string* error);
bool readFile(const std::string& path, std::string* out, std::string* error);

}  // namespace gatehouse::control
