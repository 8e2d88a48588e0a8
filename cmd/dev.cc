// `gatehouse dev`: the whole system on one machine, for trying it and for local agents.
//
// It runs, as child processes of this binary (each in its own log file under STATE/logs):
//   control        `gatehouse control` on 127.0.0.1 (a free port), state in STATE, and a generated
//                  policy: the user dev@gatehouse.dev may reach tag:ai on tcp:80 and is granted
//                  every model (the gatehouse.dev/cap/ai capability, role admin)
//   mock-provider  the built-in mock (proxy/mock/mock_provider.h) on 127.0.0.1 (a free port);
//                  not started when both real keys are set
//   gateway        node "ai" (tag:ai) serving the LLM gateway on mesh port 80; provider
//                  "anthropic" is https://api.anthropic.com with env:ANTHROPIC_API_KEY when that
//                  variable is set, else the mock; likewise "openai" with OPENAI_API_KEY
//   up             node "dev" (the dev user) forwarding 127.0.0.1:PORT (--port, default 8080)
//                  → ai:80 through WireGuard, for tools outside the mesh
// then checks the whole path with one request, prints a curl line and the Claude Code
// environment, and waits. SIGINT/SIGTERM (Ctrl-C) stops the children in reverse order (SIGTERM,
// SIGKILL after 4 s), and a temporary STATE is removed. Children are in their own process group
// and get SIGTERM if this process dies (PR_SET_PDEATHSIG), so nothing is left running.
// If a child exits by itself, dev stops everything and exits 1 with that child's log tail.
// Exit: 0 after a signal, 1 on a failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cmd/commands.h"

namespace gatehouse::cmd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kUser = "dev@gatehouse.dev";

struct DevFlags {
  int port = 8080;
  std::string state_dir;
  bool verbose = false;
};

struct Child {
  std::string name;
  pid_t pid = -1;
  std::string log;
};

void say(const std::string& s) {
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
}

class Dev {
 public:
  explicit Dev(DevFlags f) : f_(std::move(f)) {}
  ~Dev() { stopAll(); }
  int run();

 private:
  // Forks and execs this binary with `args`; output goes to STATE/logs/NAME.log.
  bool spawn(const std::string& name, const std::vector<std::string>& args,
             const std::vector<std::string>& env = {});
  // Runs this binary with `args` to completion (≤ 10 s) and returns its stdout.
  std::optional<std::string> capture(const std::vector<std::string>& args);
  // Waits until `child`'s log holds `needle`; false on timeout, child exit or a stop signal.
  std::optional<std::string> waitLine(const Child& child, const std::string& needle, int seconds);
  bool stopRequested();
  bool childDied(Child& c);
  bool probe(int seconds);
  void stopAll();
  void fail(const std::string& why, const Child* c = nullptr);
  std::string tail(const Child& c) const;

  DevFlags f_;
  std::string self_;
  std::string state_;
  bool tempState_ = false;
  std::vector<Child> children_;
  sigset_t sigs_{};
  bool stop_ = false;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

std::vector<char*> argvOf(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

// In the child, before exec: own process group, default signal mask, die with the parent.
void childSetup(pid_t parent) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(1);
}

bool Dev::spawn(const std::string& name, const std::vector<std::string>& args,
                const std::vector<std::string>& env) {
  Child c{name, -1, state_ + "/logs/" + name + ".log"};
  std::vector<std::string> full{self_};
  full.insert(full.end(), args.begin(), args.end());
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    childSetup(parent);
    int fd = open(c.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    auto v = argvOf(full);
    execv(self_.c_str(), v.data());
    _exit(127);
  }
  c.pid = pid;
  children_.push_back(c);
  return true;
}

std::optional<std::string> Dev::capture(const std::vector<std::string>& args) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return std::nullopt;
  std::vector<std::string> full{self_};
  full.insert(full.end(), args.begin(), args.end());
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    childSetup(parent);
    dup2(p[1], 1);
    int err = open((state_ + "/logs/admin.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (err >= 0) dup2(err, 2);
    auto v = argvOf(full);
    execv(self_.c_str(), v.data());
    _exit(127);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  std::string out;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  bool done = false;
  while (Clock::now() < deadline) {
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    if (waitpid(pid, &status, WNOHANG) == pid) {
      done = true;
      while ((n = read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(p[0]);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return std::nullopt;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

bool Dev::stopRequested() {
  if (stop_) return true;
  timespec zero{0, 0};
  siginfo_t info;
  for (;;) {
    int s = sigtimedwait(&sigs_, &info, &zero);
    if (s == SIGINT || s == SIGTERM) {
      stop_ = true;
      return true;
    }
    if (s < 0) return false;  // nothing pending (SIGCHLD is only a wake-up)
  }
}

bool Dev::childDied(Child& c) {
  if (c.pid <= 0) return true;
  int status = 0;
  if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
    c.pid = -1;
    return true;
  }
  return false;
}

std::optional<std::string> Dev::waitLine(const Child& child, const std::string& needle,
                                         int seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  Child* c = nullptr;
  for (auto& x : children_) {
    if (x.name == child.name) c = &x;
  }
  while (Clock::now() < deadline) {
    std::string text = readFile(child.log);
    if (size_t at = text.find(needle); at != std::string::npos) {
      size_t eol = text.find('\n', at);
      return text.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
    }
    if (stopRequested() || (c && childDied(*c))) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

// One GET /v1/models through the forward: the whole path (up node, WireGuard, gateway, grant,
// provider) works once it answers 200.
bool Dev::probe(int seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  std::string req =
      "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: -\r\n"
      "anthropic-version: 2023-06-01\r\nConnection: close\r\n\r\n";
  while (Clock::now() < deadline && !stopRequested()) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(f_.port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string got;
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
        send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[512];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) got.assign(buf, static_cast<size_t>(n));
    }
    close(fd);
    if (got.starts_with("HTTP/1.1 200")) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

std::string Dev::tail(const Child& c) const {
  std::string text = readFile(c.log);
  size_t n = 0, at = text.size();
  while (at > 0 && n < 15) {
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) {
      at = 0;
      break;
    }
    ++n;
  }
  return text.substr(at);
}

void Dev::fail(const std::string& why, const Child* c) {
  std::fprintf(stderr, "gatehouse dev: %s\n", why.c_str());
  if (c) std::fprintf(stderr, "--- %s (last lines) ---\n%s\n", c->log.c_str(), tail(*c).c_str());
}

void Dev::stopAll() {
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    if (it->pid > 0) kill(it->pid, SIGTERM);
  }
  auto deadline = Clock::now() + std::chrono::seconds(4);
  for (;;) {
    bool alive = false;
    for (auto& c : children_) alive |= !childDied(c);
    if (!alive || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& c : children_) {
    if (c.pid > 0) {
      std::fprintf(stderr, "gatehouse dev: %s did not stop in 4 s, killing it\n", c.name.c_str());
      kill(-c.pid, SIGKILL);
      kill(c.pid, SIGKILL);
      waitpid(c.pid, nullptr, 0);
      c.pid = -1;
    }
  }
  children_.clear();
  if (tempState_ && !state_.empty()) {
    std::error_code ec;
    fs::remove_all(state_, ec);
    tempState_ = false;
  }
}

// True if 127.0.0.1:PORT can be bound now (the forward binds it later).
bool portFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  close(fd);
  return ok;
}

std::string policyText() {
  return std::string(R"({
  // Generated by `gatehouse dev`.
  "tagOwners": {"tag:ai": [")") +
         kUser + R"("]},
  "grants": [
    {"src": [")" +
         kUser + R"("], "dst": ["tag:ai"], "ip": ["tcp:80"]},
    {"src": [")" +
         kUser + R"("], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/ai": [{"models": ["*"], "role": "admin"}]}},
  ],
}
)";
}

std::string providerText(const char* id, const char* kind, const char* env, const char* real,
                         uint16_t mockPort) {
  std::string head = std::string("    \"") + id + "\": {\"kind\": \"" + kind + "\", ";
  if (std::getenv(env) && *std::getenv(env)) {
    return head + "\"base_url\": \"" + real + "\", \"key\": \"env:" + env +
           "\", \"models\": [\"*\"]},\n";
  }
  return head + "\"base_url\": \"http://127.0.0.1:" + std::to_string(mockPort) +
         "\", \"local\": true, \"models\": [\"*\"]},\n";
}

int Dev::run() {
  // A shell starts background jobs with SIGINT ignored; an ignored signal is never queued, so
  // restore the defaults before blocking them for sigwaitinfo().
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigemptyset(&sigs_);
  sigaddset(&sigs_, SIGINT);
  sigaddset(&sigs_, SIGTERM);
  sigaddset(&sigs_, SIGCHLD);
  sigprocmask(SIG_BLOCK, &sigs_, nullptr);

  if (f_.port <= 0 || f_.port > 65535) return fail("--port must be 1-65535"), 1;
  if (!portFree(f_.port)) {
    return fail("127.0.0.1:" + std::to_string(f_.port) + " is in use; pick another with --port"), 1;
  }
  std::error_code ec;
  self_ = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return fail("cannot find this binary: " + ec.message()), 1;
  if (f_.state_dir.empty()) {
    char tmpl[] = "/tmp/gatehouse-dev.XXXXXX";
    if (!mkdtemp(tmpl)) return fail("mkdtemp failed"), 1;
    state_ = tmpl;
    tempState_ = true;
  } else {
    state_ = fs::absolute(f_.state_dir).string();
    fs::create_directories(state_, ec);
    fs::permissions(state_, fs::perms::owner_all, ec);
  }
  fs::create_directories(state_ + "/logs", ec);
  bool realAnt = std::getenv("ANTHROPIC_API_KEY") && *std::getenv("ANTHROPIC_API_KEY");
  bool realOai = std::getenv("OPENAI_API_KEY") && *std::getenv("OPENAI_API_KEY");

  // 1. control server
  writeFile(state_ + "/policy.hujson", policyText());
  std::string adminSock = state_ + "/admin.sock";
  fs::remove(adminSock, ec);
  spawn("control",
        {"control", "--state", state_ + "/control.db", "--policy", state_ + "/policy.hujson",
         "--listen", "127.0.0.1:0", "--admin-socket", adminSock});
  auto line = waitLine(children_.back(), "(port ", 15);
  auto keyLine = line ? waitLine(children_.back(), "server key ", 5) : std::nullopt;
  if (!line || !keyLine) return stop_ ? 0 : (fail("control did not start", &children_.back()), 1);
  std::string cport = line->substr(6, line->find(')') - 6);
  std::string ckey = keyLine->substr(11);
  std::string control = "127.0.0.1:" + cport;

  auto admin = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"admin", "--socket", adminSock});
    return capture(a);
  };
  std::optional<std::string> users = admin({"users", "list"});
  if (!users) return fail("admin users list failed", &children_.front()), 1;
  if (users->find(kUser) == std::string::npos && !admin({"users", "create", kUser})) {
    return fail("admin users create failed", &children_.front()), 1;
  }
  auto gwKey = admin({"keys", "create", "--user", kUser, "--tags", "tag:ai"});
  auto devKey = admin({"keys", "create", "--user", kUser});
  if (!gwKey || !devKey) return fail("admin keys create failed", &children_.front()), 1;
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  };

  // 2. mock provider (unless both real providers are configured)
  uint16_t mockPort = 0;
  if (!realAnt || !realOai) {
    spawn("mock-provider", {"mock-provider", "--listen", "127.0.0.1:0"});
    auto l = waitLine(children_.back(), "listening on http://127.0.0.1:", 10);
    if (!l) return stop_ ? 0 : (fail("mock provider did not start", &children_.back()), 1);
    mockPort = static_cast<uint16_t>(std::atoi(l->c_str() + l->rfind(':') + 1));
  }

  // 3. gateway node "ai"
  std::string config =
      "{\n  \"hostname\": \"ai\",\n  \"providers\": {\n" +
      providerText("anthropic", "anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com",
                   mockPort) +
      providerText("openai", "openai", "OPENAI_API_KEY", "https://api.openai.com", mockPort) +
      "  },\n  \"grants\": [{\"src\": [\"" + kUser +
      "\"], \"models\": [\"*\"], \"role\": \"admin\"}],\n"
      "  \"logging\": {\"database\": \"" +
      state_ + "/gateway-logs.db\", \"bodies\": true},\n}\n";
  writeFile(state_ + "/gateway.hujson", config);
  std::vector<std::string> gwArgs{"gateway",     "--config",    state_ + "/gateway.hujson",
                                  "--control",   control,       "--control-key",
                                  ckey,          "--state-dir", state_ + "/ai",
                                  "--advertise", "127.0.0.1"};
  if (f_.verbose) gwArgs.push_back("-v");
  spawn("gateway", gwArgs, {"GATEHOUSE_AUTHKEY=" + trim(*gwKey)});
  if (!waitLine(children_.back(), "gateway: ready", 30)) {
    return stop_ ? 0 : (fail("gateway did not start", &children_.back()), 1);
  }

  // 4. node "dev" forwarding the local port to ai:80
  std::string local = "127.0.0.1:" + std::to_string(f_.port);
  spawn("up",
        {"up", "--control", control, "--control-key", ckey, "--state-dir", state_ + "/dev",
         "--hostname", "dev", "--advertise", "127.0.0.1", "--forward", local + "=ai:80"},
        {"GATEHOUSE_AUTHKEY=" + trim(*devKey)});
  if (!waitLine(children_.back(), "ready; local API", 30)) {
    return stop_ ? 0 : (fail("node \"dev\" did not join", &children_.back()), 1);
  }
  if (!probe(20)) {
    if (stop_) return 0;
    fail("no answer through 127.0.0.1:" + std::to_string(f_.port) + " → ai:80");
    for (const auto& c : children_) fail("log of " + c.name, &c);
    return 1;
  }

  std::string base = "http://" + local;
  std::string providers = std::string("anthropic: ") +
                          (realAnt ? "https://api.anthropic.com" : "built-in mock") +
                          ", openai: " + (realOai ? "https://api.openai.com" : "built-in mock");
  say("gatehouse dev: ready on " + base + " (" + providers + ")");
  say("  mesh: control 127.0.0.1:" + cport + ", gateway node \"ai\", node \"dev\" (" + kUser +
      ") forwarding " + local + " -> ai:80");
  say("  state and logs: " + state_ + (tempState_ ? " (removed on exit)" : ""));
  say("Try it:");
  say("  curl " + base +
      "/v1/messages -H 'x-api-key: -' -H 'anthropic-version: 2023-06-01' -H 'content-type: "
      "application/json' -d '{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":256,\"messages\":"
      "[{\"role\":\"user\",\"content\":\"Hello from the mesh\"}]}'");
  say("Claude Code:");
  say("  ANTHROPIC_BASE_URL=" + base + " ANTHROPIC_API_KEY=- claude");
  say("Ctrl-C stops everything.");

  for (;;) {
    siginfo_t info;
    int s = sigwaitinfo(&sigs_, &info);
    if (s == SIGINT || s == SIGTERM) {
      say(std::string("gatehouse dev: ") + strsignal(s) + ", stopping");
      stopAll();
      say("gatehouse dev: stopped");
      return 0;
    }
    for (auto& c : children_) {
      if (childDied(c)) {
        fail(c.name + " exited", &c);
        stopAll();
        return 1;
      }
    }
  }
}

}  // namespace

void registerDev(CLI::App& app) {
  auto f = std::make_shared<DevFlags>();
  CLI::App* sub = app.add_subcommand(
      "dev", "control + mock provider + gateway \"ai\" + a node forwarding localhost, in one go");
  sub->add_option("--port", f->port, "local port forwarded to ai:80")->capture_default_str();
  sub->add_option("--state-dir", f->state_dir,
                  "keep state and logs here (default: a temporary directory, removed on exit)");
  sub->add_flag("-v,--verbose", f->verbose, "debug logs from the gateway");
  sub->callback([f] {
    Dev dev(*f);
    setExitCode(dev.run());
  });
}

}  // namespace gatehouse::cmd
