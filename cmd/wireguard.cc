// `gatehouse wireguard [-f|--foreground] [--mtu N] IFNAME`: a drop-in for `wireguard-go -f IFNAME`
// (reference §11.1). Creates the TUN interface and /var/run/wireguard/IFNAME.sock, then serves
// `wg` until SIGINT/SIGTERM, removal of the interface, or deletion of the socket file.
//
// Without -f it daemonizes like wireguard-go: the parent forks, waits until the child reports
// that the interface and the socket are up, and exits 0 (1 if the child failed). The child keeps
// stderr only when LOG_LEVEL is set, as wireguard-go does.
//
// Logging: stderr, "LEVEL: (IFNAME) time message"; LOG_LEVEL=debug|verbose|info|error|silent
// (default info). Keys appear only as base64 public keys; private and preshared keys never.
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "cmd/commands.h"
#include "wg/loop_device.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {
namespace {

int g_exit_code = 0;

using wg::LogLevel;

LogLevel levelFromEnv(bool* set) {
  const char* env = std::getenv("LOG_LEVEL");
  *set = env != nullptr && *env != 0;
  if (!*set) return LogLevel::kInfo;
  std::string v = env;
  if (v == "debug" || v == "verbose") return LogLevel::kDebug;
  if (v == "error") return LogLevel::kError;
  if (v == "silent") return LogLevel::kSilent;
  return LogLevel::kInfo;
}

wg::LogFn makeLogger(std::string ifname, LogLevel min) {
  return [ifname = std::move(ifname), min](LogLevel level, const std::string& msg) {
    if (level < min) return;
    static const char* kNames[] = {"DEBUG", "INFO", "ERROR"};
    char stamp[32];
    time_t t = time(nullptr);
    tm tmv;
    localtime_r(&t, &tmv);
    strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &tmv);
    std::fprintf(stderr, "%s: (%s) %s %s\n", kNames[static_cast<int>(level)], ifname.c_str(), stamp,
                 msg.c_str());
  };
}

// Forks; the parent waits for one status byte from the child and exits with it. Returns the
// write end of the status pipe in the child, or -1 on failure (then runs in the foreground).
int daemonize(bool keep_stderr) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid > 0) {
    close(fds[1]);
    uint8_t status = 1;
    ssize_t n;
    do {
      n = read(fds[0], &status, 1);
    } while (n < 0 && errno == EINTR);
    _exit(n == 1 && status == 0 ? 0 : 1);
  }
  close(fds[0]);
  setsid();
  if (chdir("/") != 0) { /* harmless: nothing uses relative paths */
  }
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    if (!keep_stderr) dup2(devnull, 2);
    close(devnull);
  }
  return fds[1];
}

void notifyParent(int* fd, uint8_t status) {
  if (*fd < 0) return;
  ssize_t n;
  do {
    n = write(*fd, &status, 1);
  } while (n < 0 && errno == EINTR);
  close(*fd);
  *fd = -1;
}

void reportCounters(const wg::LoopDevice& dev, const wg::LogFn& log) {
  const wg::Device& d = dev.device();
  for (const auto& pk : d.peerKeys()) {
    auto info = d.peerInfo(pk);
    if (!info) continue;
    log(LogLevel::kDebug, "peer " + wg::keyToBase64(pk) + " endpoint " +
                              (info->endpoint ? info->endpoint->toString() : "(none)") + " rx " +
                              std::to_string(info->stats.rx_bytes) + " tx " +
                              std::to_string(info->stats.tx_bytes));
  }
  std::string drops = "drops: total " + std::to_string(d.totalDrops());
  for (size_t i = 0; i < static_cast<size_t>(wg::DropReason::kCount); ++i) {
    auto r = static_cast<wg::DropReason>(i);
    if (d.drops(r) != 0)
      drops += std::string(", ") + wg::dropReasonName(r) + " " + std::to_string(d.drops(r));
  }
  log(LogLevel::kInfo, drops);
  const auto& c = dev.counters();
  const auto& u = dev.udpCounters();
  log(LogLevel::kInfo, "io: tun read " + std::to_string(c.tun_read_packets) + ", tun written " +
                           std::to_string(c.tun_write_packets) + ", tun write dropped " +
                           std::to_string(c.tun_write_dropped) + ", udp received " +
                           std::to_string(c.udp_recv_datagrams) + ", udp sent " +
                           std::to_string(c.udp_sent_datagrams) + ", udp send errors " +
                           std::to_string(u.send_errors + u.send_no_socket) +
                           ", sticky source fallbacks " + std::to_string(u.source_fallbacks) +
                           ", udp truncated " + std::to_string(u.recv_truncated));
  log(LogLevel::kInfo, "offload: tun gso reads " + std::to_string(c.tun_gso_reads) +
                           ", tun gro writes " + std::to_string(c.tun_gro_writes) +
                           ", tun split errors " + std::to_string(c.tun_split_errors) +
                           ", udp gso sends " + std::to_string(u.gso_sends) +
                           ", udp gro receives " + std::to_string(u.gro_receives) +
                           ", udp gso fallbacks " + std::to_string(u.gso_fallbacks));
}

int runWireguard(const std::string& ifname, bool foreground, int mtu) {
  bool level_set = false;
  LogLevel level = levelFromEnv(&level_set);
  wg::LogFn log = makeLogger(ifname, level);
  if (geteuid() != 0) log(LogLevel::kError, "not running as root; TUN creation will likely fail");
  int ready_fd = -1;
  if (!foreground) ready_fd = daemonize(level_set && level != LogLevel::kSilent);
  if (sodium_init() < 0) {
    log(LogLevel::kError, "libsodium initialisation failed");
    notifyParent(&ready_fd, 1);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  uv_loop_init(&loop);
  wg::SystemRandom random;
  int rc = 0;
  {
    // GATEHOUSE_OFFLOAD=0 (or "tun" / "udp": only that one) forces the plain data path, for
    // A/B benchmarks and for kernels whose offloads misbehave.
    const char* off = std::getenv("GATEHOUSE_OFFLOAD");
    std::string offload = off ? off : "1";
    wg::LoopDevice dev(&loop, random, log,
                       {.ifname = ifname,
                        .mtu = mtu,
                        .tun_offload = offload != "0" && offload != "udp",
                        .udp_offload = offload != "0" && offload != "tun"});
    std::string what;
    int err = dev.start(&what);
    if (err != 0) {
      log(LogLevel::kError, "failed to " + what + ": " + std::strerror(err));
      dev.stop("startup failed");
      uv_run(&loop, UV_RUN_DEFAULT);
      notifyParent(&ready_fd, 1);
      rc = 1;
    } else {
      notifyParent(&ready_fd, 0);
      log(LogLevel::kInfo, "device started");
      uv_run(&loop, UV_RUN_DEFAULT);
      reportCounters(dev, log);
    }
  }
  uv_loop_close(&loop);
  return rc;
}

}  // namespace

void setExitCode(int code) { g_exit_code = code; }
int exitCode() { return g_exit_code; }

void registerWireguard(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "wireguard", "userspace WireGuard interface driven by wg(8); like wireguard-go");
  struct Args {
    std::string ifname;
    bool foreground = false;
    int mtu = wg::TunDevice::kDefaultMtu;
  };
  auto args = std::make_shared<Args>();
  sub->add_flag("-f,--foreground", args->foreground, "stay in the foreground");
  sub->add_option("--mtu", args->mtu, "tunnel MTU")->check(CLI::Range(576, 65535));
  sub->add_option("IFNAME", args->ifname, "interface name")->required();
  sub->callback([args] { setExitCode(runWireguard(args->ifname, args->foreground, args->mtu)); });
}

}  // namespace gatehouse::cmd
