// `gatehouse status`, `gatehouse whois ADDR`, `gatehouse ping HOST`: ask a running node (`gatehouse
// up`, `gatehouse gateway`) through its local API socket (control/local_api.h). Table output by
// default, the node's JSON answer with --json.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "cmd/commands.h"
#include "control/local_api.h"

namespace gatehouse::cmd {
namespace {

using nlohmann::json;

struct CliArgs {
  std::string state_dir = "/var/lib/gatehouse";
  bool json_out = false;
  std::string target;
  int count = 3;
  int timeout_ms = 2000;
};

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>().empty() ? "-" : it->get<std::string>();
  return it->dump();
}

std::string joinList(const json& j) {
  if (!j.is_array() || j.empty()) return "-";
  std::string out;
  for (const auto& v : j)
    out += (out.empty() ? "" : ",") + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

std::string ago(int64_t unix_s) {
  if (unix_s <= 0) return "never";
  int64_t d = static_cast<int64_t>(time(nullptr)) - unix_s;
  if (d < 0) d = 0;
  if (d < 120) return std::to_string(d) + "s ago";
  if (d < 7200) return std::to_string(d / 60) + "m ago";
  return std::to_string(d / 3600) + "h ago";
}

int call(const CliArgs& a, const json& req, json* out) {
  auto r = control::localApiCall(a.state_dir + "/gatehouse.sock", req);
  if (!r) {
    std::fprintf(stderr, "%s\n", r.status().message().c_str());
    return 1;
  }
  *out = r.value();
  if (a.json_out) {
    std::printf("%s\n", out->dump(2).c_str());
    return out->value("ok", false) ? 0 : 1;
  }
  if (!out->value("ok", false) && !out->contains("results")) {
    std::fprintf(stderr, "%s\n", out->value("error", std::string("failed")).c_str());
    return 1;
  }
  return -1;  // caller prints
}

int status(const CliArgs& a) {
  json r;
  if (int rc = call(a, {{"cmd", "status"}}, &r); rc >= 0) return rc;
  const json& self = r["self"];
  const json& c = r["control"];
  std::printf("self: %s (node %s) %s  key %s\n", str(self, "name").c_str(),
              str(self, "node_id").c_str(), joinList(self["addresses"]).c_str(),
              str(self, "node_key").c_str());
  std::printf("control: %s %s  map %s%s\n", str(c, "state").c_str(), str(c, "server").c_str(),
              str(c, "map_seq").c_str(),
              str(c, "last_error") == "-" ? "" : ("  last error: " + str(c, "last_error")).c_str());
  if (r.contains("data_plane")) {
    const json& dp = r["data_plane"];
    std::printf("data plane: %s%s  UDP port %s  denied by policy %s\n", str(dp, "mode").c_str(),
                str(dp, "interface") == "-" ? "" : (" " + str(dp, "interface")).c_str(),
                str(dp, "listen_port").c_str(), str(dp, "filter_denied").c_str());
  }
  std::printf("%-24s %-18s %-22s %-22s %-10s %12s %12s\n", "PEER", "ADDRESS", "OWNER", "ENDPOINT",
              "HANDSHAKE", "RX", "TX");
  for (const json& p : r["peers"]) {
    std::string owner = str(p, "user");
    if (owner == "-") owner = joinList(p.value("tags", json::array()));
    std::string addr = "-";
    if (p.contains("addresses") && !p["addresses"].empty()) addr = p["addresses"][0];
    std::printf("%-24s %-18s %-22s %-22s %-10s %12s %12s\n", str(p, "name").c_str(), addr.c_str(),
                owner.c_str(), str(p, "endpoint").c_str(),
                ago(p.value("last_handshake_unix", int64_t{0})).c_str(), str(p, "rx_bytes").c_str(),
                str(p, "tx_bytes").c_str());
  }
  return 0;
}

int whois(const CliArgs& a) {
  json r;
  if (int rc = call(a, {{"cmd", "whois"}, {"addr", a.target}}, &r); rc >= 0) return rc;
  const json& id = r["identity"];
  std::printf("node:    %s (id %s)%s\n", str(id, "name").c_str(), str(id, "node_id").c_str(),
              id.value("is_self", false) ? " [this node]" : "");
  std::printf("key:     %s\n", str(id, "node_key").c_str());
  std::printf("user:    %s (%s)\n", str(id["user"], "login").c_str(),
              str(id["user"], "display_name").c_str());
  std::printf("groups:  %s\n", joinList(id["groups"]).c_str());
  std::printf("tags:    %s\n", joinList(id["tags"]).c_str());
  std::printf("addrs:   %s\n", joinList(id["addresses"]).c_str());
  for (const auto& [name, values] : id["capabilities"].items()) {
    std::printf("cap:     %s %s\n", name.c_str(), values.dump().c_str());
  }
  return 0;
}

int ping(const CliArgs& a) {
  json r;
  json req{{"cmd", "ping"}, {"host", a.target}, {"count", a.count}, {"timeout_ms", a.timeout_ms}};
  if (int rc = call(a, req, &r); rc >= 0) return rc;
  for (const json& x : r["results"]) {
    if (x.contains("rtt_us")) {
      std::printf("reply from %s (%s): seq=%d time=%.2f ms\n", a.target.c_str(),
                  str(r, "addr").c_str(), x.value("seq", 0), x.value("rtt_us", 0) / 1000.0);
    } else {
      std::printf("no reply from %s (%s): seq=%d %s\n", a.target.c_str(), str(r, "addr").c_str(),
                  x.value("seq", 0), str(x, "error").c_str());
    }
  }
  return r.value("replies", 0) > 0 ? 0 : 1;
}

void addCommon(CLI::App* sub, CliArgs* a) {
  sub->add_option("--state-dir", a->state_dir, "the node's state directory")->capture_default_str();
  sub->add_flag("--json", a->json_out, "print the node's JSON answer");
}

}  // namespace

void registerNodeCli(CLI::App& app) {
  auto a = std::make_shared<CliArgs>();
  auto* st = app.add_subcommand("status", "this node's peers, endpoints, handshakes and bytes");
  addCommon(st, a.get());
  st->callback([a] { setExitCode(status(*a)); });
  auto* wi = app.add_subcommand("whois", "who owns a tunnel address (user, groups, tags, caps)");
  addCommon(wi, a.get());
  wi->add_option("addr", a->target, "tunnel address")->required();
  wi->callback([a] { setExitCode(whois(*a)); });
  auto* pi = app.add_subcommand("ping", "ICMP echo to a peer through the tunnel");
  addCommon(pi, a.get());
  pi->add_option("host", a->target, "peer name or tunnel address")->required();
  pi->add_option("-c,--count", a->count, "echo requests (max 20)")->capture_default_str();
  pi->add_option("--timeout-ms", a->timeout_ms, "wait per reply (max 5000)")->capture_default_str();
  pi->callback([a] { setExitCode(ping(*a)); });
}

}  // namespace gatehouse::cmd
