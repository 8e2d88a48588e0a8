// `gatehouse up`: join this machine to the mesh through the control server, as a netstack node
// (no TUN, no root): the node gets its addresses, peers and policy from the server, keeps them in
// --state-dir, serves `gatehouse status|whois|ping` on STATE_DIR/gatehouse.sock, and forwards
// TCP between the host and the mesh like `gatehouse bridge`:
//
//   gatehouse up --control 192.0.2.1:7443 --control-key KEY --authkey ghk_… --state-dir DIR
//       --serve 80=whoami              mesh clients on port 80 → the built-in whoami answer
//       --serve 8000=127.0.0.1:8000    mesh clients on port 8000 → a local service
//       --forward 127.0.0.1:8080=ai:80 local clients → a mesh service, by peer name
//
// The auth key can also come from --authkey-file or $GATEHOUSE_AUTHKEY (not visible in ps).
// With --tun IFNAME (root) the node is a kernel interface instead (cmd/up_tun.h): every program
// reaches the mesh by address, `wg show IFNAME` works, and --serve/--forward are not needed.
// Runs until SIGINT/SIGTERM; exits 1 with the server's message when it refuses the node.
#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/forward.h"
#include "cmd/up_tun.h"
#include "control/joined_node.h"
#include "control/local_api.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {
namespace {

struct UpArgs {
  std::string control, control_key, authkey, authkey_file, state_dir = "/var/lib/gatehouse";
  std::string hostname, tun;
  int mtu = wg::TunDevice::kDefaultMtu;
  std::vector<std::string> tags, advertise, serves, forwards;
  bool ephemeral = false, verbose = false;
  uint16_t port = 0, keepalive = 0;
  int join_timeout = 30;
};

void say(const std::string& msg) { std::fprintf(stderr, "up: %s\n", msg.c_str()); }

}  // namespace

// HOST:PORT (a name, an IPv4 address or [IPv6]) → an endpoint, resolving names once.
Result<wg::Endpoint> resolveHostPort(const std::string& text) {
  if (auto ep = wg::Endpoint::parse(text)) return *ep;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status(EINVAL, "'" + text + "': want HOST:PORT");
  }
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Status(EHOSTUNREACH, "resolve '" + host + "': " + gai_strerror(rc));
  auto ep = wg::Endpoint::fromSockaddr(res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (!ep) return Status(EAFNOSUPPORT, "resolve '" + host + "': no usable address");
  return *ep;
}

namespace {

int runUp(UpArgs a) {
  auto server = resolveHostPort(a.control);
  if (!server) {
    say("--control: " + server.status().message());
    return 2;
  }
  auto key = wg::keyFromBase64(a.control_key);
  if (!key) {
    say("--control-key: not a base64 public key (the key `gatehouse control` prints at start)");
    return 2;
  }
  if (a.authkey.empty() && !a.authkey_file.empty()) {
    std::ifstream in(a.authkey_file);
    if (!(in >> a.authkey)) {
      say("--authkey-file " + a.authkey_file + ": cannot read a key");
      return 2;
    }
  }
  if (a.authkey.empty()) {
    if (const char* env = getenv("GATEHOUSE_AUTHKEY")) a.authkey = env;
  }
  if (a.hostname.empty()) {
    char h[256] = {0};
    gethostname(h, sizeof h - 1);
    a.hostname = h;
  }
  sigset_t sigs = blockTermSignals();

  control::JoinOptions o;
  o.state_dir = a.state_dir;
  o.control = *server;
  o.control_key = *key;
  o.auth_key = a.authkey;
  o.hostname = a.hostname;
  o.tags = a.tags;
  o.ephemeral = a.ephemeral;
  o.listen_port = a.port;
  o.advertise = a.advertise;
  o.persistent_keepalive = a.keepalive;
  o.join_timeout_ms = int64_t{a.join_timeout} * 1000;
  o.log = [v = a.verbose](wg::LogLevel level, const std::string& msg) {
    if (v || level >= wg::LogLevel::kInfo) say(msg);
  };
  if (!a.tun.empty()) {
    Status st = prepareTunMode(a.tun, a.mtu, !a.serves.empty() || !a.forwards.empty(), say, &o);
    if (!st) {
      say(st.message());
      return st.code() == EINVAL ? 2 : 1;
    }
  }
  control::JoinedNode joined(o);
  if (Status st = joined.start(); !st) {
    say(st.message());
    return 1;
  }
  control::ControlInfo info = joined.info();
  std::string addrs;
  for (const auto& ad : info.addresses) addrs += " " + ad;
  say("joined as " + info.name + " (node " + std::to_string(info.node_id) + "), addresses" + addrs);
  control::LocalApiServer api(joined);
  std::string sock = a.state_dir + "/gatehouse.sock";
  if (Status st = api.start(sock); !st) {
    say(st.message());
    return 1;
  }
  wg::Node* node = joined.node();  // null in TUN mode (no --serve/--forward there)
  for (const std::string& s : a.serves) {
    size_t eq = s.find('=');
    int port = eq == std::string::npos ? 0 : std::atoi(s.substr(0, eq).c_str());
    if (port <= 0 || port > 65535) {
      say("--serve '" + s + "': want PORT=whoami or PORT=IP:PORT");
      return 2;
    }
    wg::Endpoint listen{{}, static_cast<uint16_t>(port)};
    if (Status st = startReverse(*node, listen, s.substr(eq + 1)); !st) {
      say("--serve '" + s + "': " + st.message());
      return 1;
    }
  }
  for (const std::string& f : a.forwards) {
    size_t eq = f.find('=');
    auto listen = eq == std::string::npos ? std::nullopt : wg::Endpoint::parse(f.substr(0, eq));
    if (!listen) {
      say("--forward '" + f + "': want LOCALIP:PORT=HOST:PORT");
      return 2;
    }
    if (Status st = startForward(*node, *listen, f.substr(eq + 1), say); !st) {
      say("--forward '" + f + "': " + st.message());
      return 1;
    }
  }
  say("ready; local API on " + sock);
  int sig = 0;
  sigwait(&sigs, &sig);
  say(std::string("shutting down: ") + strsignal(sig));
  api.stop();
  joined.close();
  return 0;
}

}  // namespace

void registerUp(CLI::App& app) {
  auto* sub = app.add_subcommand("up", "join this machine to the mesh through a control server");
  auto a = std::make_shared<UpArgs>();
  sub->add_option("--control", a->control, "control server HOST:PORT")->required();
  sub->add_option("--control-key", a->control_key,
                  "the control server's public key (printed by `gatehouse control`)")
      ->required();
  sub->add_option("--authkey", a->authkey, "pre-auth key (or --authkey-file, $GATEHOUSE_AUTHKEY)");
  sub->add_option("--authkey-file", a->authkey_file, "file holding the pre-auth key");
  sub->add_option("--state-dir", a->state_dir, "keys, last map and the local API socket")
      ->capture_default_str();
  sub->add_option("--hostname", a->hostname, "name in the mesh (default: this host's name)");
  sub->add_option("--advertise-tags", a->tags, "request tags, e.g. tag:ci (repeat)");
  sub->add_flag("--ephemeral", a->ephemeral, "remove this node when it disconnects");
  sub->add_option("--port", a->port, "WireGuard UDP port (default: persisted, else any)");
  sub->add_option("--advertise", a->advertise,
                  "address peers reach this node at (repeat; default: interface addresses)");
  sub->add_option("--keepalive", a->keepalive, "persistent keepalive to every peer, seconds");
  sub->add_option("--serve", a->serves, "PORT=whoami or PORT=IP:PORT: mesh port → target");
  sub->add_option("--forward", a->forwards, "LOCALIP:PORT=HOST:PORT: local port → mesh service");
  sub->add_option("--join-timeout", a->join_timeout, "seconds to wait for the first map")
      ->capture_default_str();
  sub->add_option("--tun", a->tun, "TUN mode (root): carry the mesh on kernel interface IFNAME");
  sub->add_option("--mtu", a->mtu, "TUN mode: interface MTU")->capture_default_str();
  sub->add_flag("-v,--verbose", a->verbose, "debug logs");
  sub->callback([a] { setExitCode(runUp(*a)); });
}

}  // namespace gatehouse::cmd
