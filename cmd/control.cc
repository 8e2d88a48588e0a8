// `gatehouse control`: the coordination server. State in SQLite (--state), the policy from a
// HuJSON file (--policy, reloaded on SIGHUP), nodes over the Noise channel on --listen, operators
// over the root-only UNIX socket --admin-socket. Prints the server's public key at start (nodes
// pin it); never prints the private key.
#include <sys/resource.h>
#include <uv.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "cmd/stop_signals.h"
#include "control/server.h"
#include "wg/crypto/aead.h"
#include "wg/crypto/x25519.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {
namespace {

struct ControlFlags {
  std::string state;
  std::string policy;
  std::string listen = "127.0.0.1:7443";
  std::string admin_socket = "/run/gatehouse-control.sock";
  std::string dns_suffix;
  int64_t key_expiry_days = 180;
  int64_t ephemeral_timeout_sec = 30;
};

void logLine(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

// One map stream per node: let a big tailnet use more than the default 1,024 descriptors.
void raiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int runControl(const ControlFlags& f) {
  raiseFileLimit();
  std::string error;
  auto store = control::Store::open(f.state, &error);
  if (!store) {
    logLine("control: " + error);
    return 1;
  }
  wg::SystemRandom random;
  wg::noise::LocalStatic key;
  auto saved = store->getMeta("server_private_key");
  if (saved && saved->size() == 32) {
    std::copy(saved->begin(), saved->end(), key.priv.begin());
  } else {
    wg::crypto::Key32 seed;
    random.fill(seed);
    key.priv = wg::crypto::privateKeyFromRandom(seed);
    wg::crypto::wipe(seed);
    store->setMeta("server_private_key",
                   std::string_view(reinterpret_cast<char*>(key.priv.data()), 32));
  }
  if (saved) wg::crypto::wipe(saved->data(), saved->size());
  key.pub = wg::crypto::publicKey(key.priv);

  control::ServerOptions options;
  options.key_expiry_sec = f.key_expiry_days * 86400;
  options.ephemeral_timeout_sec = f.ephemeral_timeout_sec;
  options.dns_suffix = f.dns_suffix;
  control::ServerCore core(*store, key, random, options, logLine, wg::systemNow());
  wg::crypto::wipe(key.priv);

  std::string text;
  if (!control::readFile(f.policy, &text, &error)) {
    logLine("control: " + error);
    return 1;
  }
  auto errors = core.setPolicy(text);
  if (!errors.empty()) {
    for (const auto& d : errors) logLine(d.format(f.policy));
    return 1;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  control::ServerConfig config;
  config.listen = f.listen;
  config.admin_socket = f.admin_socket;
  config.policy_path = f.policy;
  auto server = std::make_unique<control::Server>(&loop, core, config, logLine);
  if (!server->start(&error)) {
    logLine("control: " + error);
    server.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  std::printf("control: listening on %s (port %u)\ncontrol: server key %s\n", f.listen.c_str(),
              server->port(), wg::keyToBase64(key.pub).c_str());
  std::fflush(stdout);

  StopSignals stop(&loop, [srv = server.get()](int signum) {
    logLine("control: signal " + std::to_string(signum) + ", shutting down");
    srv->stop();
  });
  uv_run(&loop, UV_RUN_DEFAULT);
  server.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}

}  // namespace

void registerControl(CLI::App& app) {
  auto flags = std::make_shared<ControlFlags>();
  CLI::App* cmd = app.add_subcommand("control", "run the coordination server");
  cmd->add_option("--state", flags->state, "SQLite state database (created 0600)")->required();
  cmd->add_option("--policy", flags->policy, "policy file (HuJSON); reloaded on SIGHUP")
      ->required();
  cmd->add_option("--listen", flags->listen, "ADDR:PORT for nodes")->capture_default_str();
  cmd->add_option("--admin-socket", flags->admin_socket, "UNIX socket for `gatehouse admin`")
      ->capture_default_str();
  cmd->add_option("--dns-suffix", flags->dns_suffix, "DNS suffix of node names (default none)");
  cmd->add_option("--key-expiry-days", flags->key_expiry_days,
                  "node key lifetime of user-owned nodes (0 = never; tagged nodes never expire)")
      ->capture_default_str();
  cmd->add_option("--ephemeral-timeout", flags->ephemeral_timeout_sec,
                  "seconds after disconnect before an ephemeral node is deleted")
      ->capture_default_str();
  cmd->callback([flags] { setExitCode(runControl(*flags)); });
}

}  // namespace gatehouse::cmd
