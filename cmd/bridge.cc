// `gatehouse bridge`: a netstack node (no TUN, no root) that forwards TCP between the host and
// the mesh, so tools outside the mesh can reach mesh services and the reverse.
//
//   gatehouse bridge --state-dir /var/lib/gh --address 10.7.0.5 --peer
//   KEY,1.2.3.4:51820,10.7.0.0/24
//       --listen 127.0.0.1:8080 --to 10.7.0.1:80      local clients → a mesh service
//       --listen 10.7.0.5:80 --to 127.0.0.1:8000      mesh clients → a local service
//       --listen 10.7.0.5:80 --to whoami              mesh clients → built-in HTTP answer with
//                                                     the caller's identity (whoIs)
// --listen and --to repeat and pair up in order. An address is "in the mesh" when it is one of
// the node's --address values (for --listen) or inside a peer's allowed IPs (for --to).
// Options can also come from an INI/TOML file: --config FILE (keys are the long option names).
//
// Peer syntax: PUBKEY,ENDPOINT,ALLOWEDIP[,ALLOWEDIP...][,keepalive=SECONDS][,psk-file=FILE]
// [,name=NAME]; ENDPOINT may be "-" (the peer dials us). Runs until SIGINT/SIGTERM.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cmd/commands.h"
#include "cmd/forward.h"
#include "wg/node.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {
namespace {

using wg::Endpoint;
using wg::IpAddr;
using wg::IpPrefix;

struct Args {
  std::string key_file, state_dir, hostname = "bridge";
  uint16_t listen_port = 0;
  std::vector<std::string> addresses, peers, listens, tos;
  bool verbose = false;
};

void say(const std::string& msg) { std::fprintf(stderr, "bridge: %s\n", msg.c_str()); }

Status parsePeer(const std::string& spec, wg::NodePeer* p) {
  std::vector<std::string> f;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) f.push_back(item);
  auto bad = [&](const std::string& why) {
    return Status(EINVAL, "--peer '" + spec + "': " + why +
                              " (want PUBKEY,ENDPOINT|-,ALLOWEDIP[,...][,keepalive=N]"
                              "[,psk-file=F][,name=N])");
  };
  if (f.size() < 3) return bad("too few fields");
  auto pk = wg::keyFromBase64(f[0]);
  if (!pk) return bad("bad public key");
  p->public_key = *pk;
  if (f[1] != "-") {
    auto ep = Endpoint::parse(f[1]);
    if (!ep) return bad("bad endpoint '" + f[1] + "'");
    p->endpoint = *ep;
  }
  for (size_t i = 2; i < f.size(); ++i) {
    const std::string& v = f[i];
    if (v.rfind("keepalive=", 0) == 0) {
      p->persistent_keepalive = static_cast<uint16_t>(std::atoi(v.c_str() + 10));
    } else if (v.rfind("name=", 0) == 0) {
      p->name = v.substr(5);
    } else if (v.rfind("psk-file=", 0) == 0) {
      wg::Key32 psk;
      if (Status st = readKeyFile(v.substr(9), &psk); !st) return st;
      p->preshared_key = psk;
    } else if (auto prefix = IpPrefix::parse(v)) {
      p->allowed_ips.push_back(*prefix);
    } else if (auto addr = IpAddr::parse(v)) {
      p->allowed_ips.push_back({*addr, static_cast<uint8_t>(addr->maxBits())});
    } else {
      return bad("bad field '" + v + "'");
    }
  }
  return Status::ok();
}

int runBridge(const Args& a) {
  if (a.listens.size() != a.tos.size() || a.listens.empty()) {
    say("give --listen and --to in pairs (at least one pair)");
    return 2;
  }
  wg::NodeOptions o;
  o.state_dir = a.state_dir;
  o.listen_port = a.listen_port;
  o.hostname = a.hostname;
  o.log = [v = a.verbose](wg::LogLevel level, const std::string& msg) {
    if (v || level >= wg::LogLevel::kInfo) say(msg);
  };
  if (!a.key_file.empty()) {
    wg::Key32 k;
    if (Status st = readKeyFile(a.key_file, &k); !st) {
      say(st.message());
      return 1;
    }
    o.private_key = k;
  }
  for (const std::string& s : a.addresses) {
    auto addr = IpAddr::parse(s.substr(0, s.find('/')));
    if (!addr) {
      say("--address '" + s + "': not an IP address");
      return 2;
    }
    o.addresses.push_back(*addr);
  }
  for (const std::string& s : a.peers) {
    wg::NodePeer p;
    if (Status st = parsePeer(s, &p); !st) {
      say(st.message());
      return 2;
    }
    o.peers.push_back(p);
  }
  // Block the signals in every thread; the main thread waits for them.
  sigset_t sigs = blockTermSignals();

  wg::Node node(o);
  if (Status st = node.start(); !st) {
    say(st.message());
    return 1;
  }
  if (auto pk = node.publicKey()) say("public key " + wg::keyToBase64(*pk));
  for (size_t i = 0; i < a.listens.size(); ++i) {
    auto listen = Endpoint::parse(a.listens[i]);
    if (!listen) {
      say("--listen '" + a.listens[i] + "': want ip:port or [ip6]:port");
      return 2;
    }
    bool mesh_side =
        std::find(o.addresses.begin(), o.addresses.end(), listen->addr) != o.addresses.end();
    Status st = mesh_side ? startReverse(node, *listen, a.tos[i])
                          : startForward(node, *listen, a.tos[i], say);
    if (!st) {
      say(st.message());
      return 1;
    }
    say("forwarding " + a.listens[i] + (mesh_side ? " (mesh)" : " (local)") + " -> " + a.tos[i]);
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  say(std::string("shutting down: ") + strsignal(sig));
  node.close();
  return 0;
}

}  // namespace

void registerBridge(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "bridge", "netstack node (no TUN) forwarding TCP between this host and the mesh");
  auto a = std::make_shared<Args>();
  sub->set_config("--config", "", "read options from an INI/TOML file");
  sub->add_option("--key-file", a->key_file, "node private key (base64, mode 0600)");
  sub->add_option("--state-dir", a->state_dir, "directory for node.key (created 0600)");
  sub->add_option("--listen-port", a->listen_port, "WireGuard UDP port (default: any)");
  sub->add_option("--address", a->addresses, "tunnel address of this node (repeat for v4/v6)")
      ->required();
  sub->add_option("--peer", a->peers, "PUBKEY,ENDPOINT|-,ALLOWEDIP...[,keepalive=N]");
  sub->add_option("--hostname", a->hostname, "name reported by whoIs");
  sub->add_option("--listen", a->listens, "where to accept: local ip:port or a node address:port")
      ->required();
  sub->add_option("--to", a->tos, "where to connect: ip:port, or whoami")->required();
  sub->add_flag("-v,--verbose", a->verbose, "debug logs");
  sub->callback([a] {
    if (a->key_file.empty() && a->state_dir.empty()) {
      say("give --key-file or --state-dir");
      setExitCode(2);
      return;
    }
    setExitCode(runBridge(*a));
  });
}

}  // namespace gatehouse::cmd
