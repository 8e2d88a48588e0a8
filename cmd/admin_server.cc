// `gatehouse admin users|keys|nodes|policy …` against a running `gatehouse control`, over its
// admin socket (JSON lines, proto/PROTOCOL.md "Admin socket"). Table output by default, the
// server's JSON reply with --json. Exit 0 on success, 1 when the server refuses, 2 when the
// socket is unreachable.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cmd/commands.h"
#include "cmd/table.h"
#include "control/server.h"

namespace gatehouse::cmd {
namespace {

using json = nlohmann::json;

struct AdminFlags {
  std::string socket = "/run/gatehouse-control.sock";
  bool json_out = false;
};

std::optional<json> call(const std::string& path, const json& req, std::string* error) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = path +
             ": cannot connect to the control server's admin socket: " + std::strerror(errno) +
             " (is `gatehouse control` running? --socket PATH)";
    if (fd >= 0) ::close(fd);
    return std::nullopt;
  }
  std::string line = req.dump() + "\n";
  for (size_t off = 0; off < line.size();) {
    ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += size_t(n);
  }
  std::string reply;
  char buf[65536];
  ssize_t n;
  while (reply.find('\n') == std::string::npos && (n = ::read(fd, buf, sizeof buf)) > 0) {
    reply.append(buf, size_t(n));
  }
  ::close(fd);
  auto j = json::parse(reply, nullptr, false);
  if (j.is_discarded()) {
    *error = path + ": no valid reply from the control server";
    return std::nullopt;
  }
  return j;
}

// Table views of list replies, keyed by command.
void printReply(const std::string& cmd, const json& r) {
  std::vector<std::vector<std::string>> rows;
  if (cmd == "users.list") {
    for (const auto& u : r["users"])
      rows.push_back({cell(u["id"]), cell(u["login"]), cell(u["display_name"])});
    return printTable({"ID", "LOGIN", "DISPLAY NAME"}, rows);
  }
  if (cmd == "keys.list") {
    for (const auto& k : r["keys"]) {
      rows.push_back({cell(k["id"]), cell(k["prefix"]) + "…", cell(k["user"]), cell(k["reusable"]),
                      cell(k["ephemeral"]), cell(k["tags"]), when(k["expires"]), cell(k["uses"]),
                      cell(k["state"])});
    }
    return printTable(
        {"ID", "KEY", "USER", "REUSABLE", "EPHEMERAL", "TAGS", "EXPIRES", "USES", "STATE"}, rows);
  }
  if (cmd == "nodes.list") {
    for (const auto& n : r["nodes"]) {
      rows.push_back({cell(n["id"]), cell(n["name"]), n["tags"].empty() ? cell(n["user"]) : "-",
                      cell(n["tags"]), cell(n["addresses"]),
                      n["expired"].get<bool>() ? "expired" : when(n["key_expiry"]),
                      cell(n["online"]), cell(n["ephemeral"])});
    }
    return printTable(
        {"ID", "NAME", "USER", "TAGS", "ADDRESSES", "KEY EXPIRY", "ONLINE", "EPHEMERAL"}, rows);
  }
  if (cmd == "keys.create") {
    std::cout << r["secret"].get<std::string>() << "\n";
    std::cerr << "auth key " << r["key"]["id"]
              << " created; it is shown only this once, store it now\n";
    return;
  }
  if (cmd == "policy.get") {
    std::cout << r["text"].get<std::string>();
    return;
  }
  std::cout << "ok\n";
}

int run(const AdminFlags& f, const std::string& cmd, json req) {
  req["cmd"] = cmd;
  std::string error;
  auto r = call(f.socket, req, &error);
  if (!r) {
    std::cerr << error << "\n";
    return 2;
  }
  if (f.json_out) {
    std::cout << r->dump(2) << "\n";
  } else if (r->value("ok", false)) {
    printReply(cmd, *r);
  } else {
    std::cerr << "error: " << r->value("error", "unknown error") << "\n";
    if (r->contains("diagnostics")) {
      for (const auto& d : (*r)["diagnostics"]) {
        std::cerr << "policy:" << d.value("line", 0) << ":" << d.value("column", 0) << ": "
                  << d.value("message", "") << "\n";
      }
    }
  }
  return r->value("ok", false) ? 0 : 1;
}

}  // namespace

void registerAdminServerCommands(CLI::App* admin, CLI::App* policy) {
  auto f = std::make_shared<AdminFlags>();
  if (const char* env = std::getenv("GATEHOUSE_ADMIN_SOCKET")) f->socket = env;
  admin->add_option("--socket", f->socket, "admin socket of `gatehouse control`")
      ->capture_default_str();
  admin->add_flag("--json", f->json_out, "print the server's JSON reply");
  auto on = [f](CLI::App* app, std::string cmd, std::function<json()> build) {
    app->callback([f, cmd, build] { setExitCode(run(*f, cmd, build())); });
  };

  CLI::App* users = admin->add_subcommand("users", "users (logins that own nodes and keys)");
  users->require_subcommand(1);
  auto login = std::make_shared<std::string>();
  auto display = std::make_shared<std::string>();
  CLI::App* uc = users->add_subcommand("create", "create a user");
  uc->add_option("LOGIN", *login, "e.g. alice@example.com")->required();
  uc->add_option("--display-name", *display, "shown in whois");
  on(uc, "users.create", [=] { return json{{"login", *login}, {"display_name", *display}}; });
  on(users->add_subcommand("list", "list users"), "users.list", [] { return json::object(); });

  CLI::App* keys = admin->add_subcommand("keys", "pre-auth keys");
  keys->require_subcommand(1);
  auto user = std::make_shared<std::string>();
  auto reusable = std::make_shared<bool>(false);
  auto ephemeral = std::make_shared<bool>(false);
  auto tags = std::make_shared<std::vector<std::string>>();
  auto expiry = std::make_shared<int64_t>(86400);
  CLI::App* kc = keys->add_subcommand("create", "create a key (printed once)");
  kc->add_option("--user", *user, "owner login")->required();
  kc->add_flag("--reusable", *reusable, "allow many registrations");
  kc->add_flag("--ephemeral", *ephemeral, "nodes are deleted after they disconnect");
  kc->add_option("--tags", *tags, "pre-assigned tags (tag:x,tag:y)")->delimiter(',');
  kc->add_option("--expiry", *expiry, "seconds until the key expires (0 = never)")
      ->capture_default_str();
  on(kc, "keys.create", [=] {
    return json{{"user", *user},
                {"reusable", *reusable},
                {"ephemeral", *ephemeral},
                {"tags", *tags},
                {"expiry_sec", *expiry}};
  });
  on(keys->add_subcommand("list", "list keys (never the secrets)"), "keys.list",
     [] { return json::object(); });
  auto key_id = std::make_shared<int64_t>(0);
  CLI::App* kr = keys->add_subcommand("revoke", "revoke a key");
  kr->add_option("ID", *key_id)->required();
  on(kr, "keys.revoke", [=] { return json{{"id", *key_id}}; });

  CLI::App* nodes = admin->add_subcommand("nodes", "registered nodes");
  nodes->require_subcommand(1);
  on(nodes->add_subcommand("list", "list nodes"), "nodes.list", [] { return json::object(); });
  auto node = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto node_tags = std::make_shared<std::vector<std::string>>();
  for (const char* verb : {"expire", "delete"}) {
    CLI::App* c = nodes->add_subcommand(verb, std::string(verb) + " a node (by id or name)");
    c->add_option("NODE", *node)->required();
    on(c, std::string("nodes.") + verb, [=] { return json{{"node", *node}}; });
  }
  CLI::App* rn = nodes->add_subcommand("rename", "rename a node");
  rn->add_option("NODE", *node)->required();
  rn->add_option("NAME", *name)->required();
  on(rn, "nodes.rename", [=] { return json{{"node", *node}, {"name", *name}}; });
  CLI::App* rt = nodes->add_subcommand("retag", "replace a node's tags (none: back to its user)");
  rt->add_option("NODE", *node)->required();
  rt->add_option("TAGS", *node_tags, "tag:x …");
  on(rt, "nodes.retag", [=] { return json{{"node", *node}, {"tags", *node_tags}}; });

  auto file = std::make_shared<std::string>();
  CLI::App* ps = policy->add_subcommand("set", "validate and apply a policy file atomically");
  ps->add_option("FILE", *file)->required();
  ps->callback([f, file] {
    std::string text, error;
    if (!control::readFile(*file, &text, &error)) {
      std::cerr << error << "\n";
      return setExitCode(1);
    }
    setExitCode(run(*f, "policy.set", json{{"text", text}}));
  });
  on(policy->add_subcommand("get", "print the server's current policy"), "policy.get",
     [] { return json::object(); });
  on(policy->add_subcommand("reload", "re-read the server's --policy file (like SIGHUP)"),
     "policy.reload", [] { return json::object(); });
  on(admin->add_subcommand("status", "server counters"), "status", [] { return json::object(); });
}

}  // namespace gatehouse::cmd
