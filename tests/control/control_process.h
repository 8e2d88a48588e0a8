// Helpers for tests and benchmarks that run a real `gatehouse control` process on loopback:
// spawn it (and learn its port and key from stdout), talk to its admin socket, read its CPU and
// memory from /proc, and stop it by PID. Header-only; POSIX.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "wg/uapi.h"

namespace gatehouse::control::testing {

struct ControlProcess {
  pid_t pid = -1;
  uint16_t port = 0;
  wg::crypto::Key32 key{};
  std::string admin_socket;

  // Starts `bin control` with state and policy in `dir`; waits (≤ 10 s) for its key line.
  bool start(const std::string& bin, const std::string& dir, const std::string& listen,
             std::vector<std::string> extra = {}) {
    admin_socket = dir + "/admin.sock";
    int out[2];
    if (pipe(out) != 0) return false;
    pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      std::string log = dir + "/control.log";
      FILE* err = fopen(log.c_str(), "a");
      if (err) dup2(fileno(err), 2);
      close(out[0]);
      std::vector<std::string> args = {bin,
                                       "control",
                                       "--state",
                                       dir + "/state.db",
                                       "--policy",
                                       dir + "/policy.hujson",
                                       "--listen",
                                       listen,
                                       "--admin-socket",
                                       admin_socket};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, size_t(n));
      auto k = text.find("server key ");
      auto nl = k == std::string::npos ? k : text.find('\n', k);
      if (nl != std::string::npos) {
        auto pp = text.find("(port ");
        port = static_cast<uint16_t>(std::stoi(text.substr(pp + 6)));
        auto parsed = wg::keyFromBase64(text.substr(k + 11, nl - k - 11));
        if (!parsed) break;
        key = *parsed;
        close(out[0]);
        return true;
      }
    }
    close(out[0]);
    stop();
    return false;
  }

  // SIGTERM, then SIGKILL after 5 s; reaps the child.
  void stop() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        return;
      }
      usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }

  std::optional<nlohmann::json> admin(nlohmann::json req) const {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, admin_socket.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return std::nullopt;
    }
    std::string line = req.dump() + "\n";
    if (write(fd, line.data(), line.size()) != ssize_t(line.size())) {
      close(fd);
      return std::nullopt;
    }
    std::string reply;
    char buf[65536];
    ssize_t n;
    while (reply.find('\n') == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
      reply.append(buf, size_t(n));
    }
    close(fd);
    auto j = nlohmann::json::parse(reply, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  }

  // utime + stime of the process, seconds.
  double cpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    auto rp = s.rfind(')');
    std::istringstream rest(s.substr(rp + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) ut = std::stod(field);
      if (i == 15) st = std::stod(field);
    }
    return (ut + st) / double(sysconf(_SC_CLK_TCK));
  }

  // "VmRSS" or "VmHWM" in MiB.
  double memoryMiB(const char* field) const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(field, 0) == 0) return std::stod(line.substr(line.find(':') + 1)) / 1024.0;
    }
    return 0;
  }
};

inline bool writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return bool(out);
}

}  // namespace gatehouse::control::testing
