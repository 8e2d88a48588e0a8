// `gatehouse admin tools`: the tool calls agents made through the gateway (/api/tools) and the
// counts by type per user and day (/api/tools/stats), as tables or JSON.
//
// Where the answers come from:
//   --gateway URL   the gateway's HTTP admin API (default $GATEHOUSE_GATEWAY_URL, else
//                   http://127.0.0.1:8080, what `gatehouse up --forward 127.0.0.1:8080=ai:80`
//                   exposes). The gateway knows the caller from its WireGuard peer: the node's
//                   identity needs role admin.
//   --db PATH       the gateway's log database, read directly on its host (read-only; WAL keeps
//                   the running gateway undisturbed), answered by the gateway's own API code.
// Exit status: 0 ok, 1 the gateway refused (its message on stderr), 2 unreachable.
//
// A standalone file for now: `admin logs|usage` (cmd/gateway_admin.cc) is being written beside
// it; when both are on main this command can share its source options and HTTP client.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "cmd/commands.h"
#include "proxy/gateway/admin_api.h"
#include "proxy/http/http1.h"
#include "proxy/logstore/log_query.h"

namespace gatehouse::cmd {
namespace {

struct ToolsFlags {
  std::string gateway, db, type, name, user, tag, session, command, guardrail;
  int64_t since = 0, until = 0;
  int limit = 50;
  bool stats = false, json_out = false;
};

std::string urlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string target(const ToolsFlags& f) {
  std::string q;
  auto add = [&q](const char* k, const std::string& v) {
    if (v.empty()) return;
    q += (q.empty() ? "?" : "&") + std::string(k) + "=" + urlEncode(v);
  };
  add("type", f.type);
  add("name", f.name);
  add("user", f.user);
  add("tag", f.tag);
  add("session", f.session);
  add("command", f.command);
  add("guardrail", f.guardrail);
  if (f.since) add("since", std::to_string(f.since));
  if (f.until) add("until", std::to_string(f.until));
  if (!f.stats) add("limit", std::to_string(f.limit));
  return std::string(f.stats ? "/api/tools/stats" : "/api/tools") + q;
}

struct Reply {
  int exit_code = 0;
  int status = 0;
  std::string body;
  std::string error;
};

// GET over plain HTTP/1.1 (the gateway listens on the tailnet; the tunnel encrypts), 10 s bound.
Reply httpGet(const std::string& url, const std::string& path) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return {2, 0, "", "--gateway: want http://HOST[:PORT]"};
  std::string hostport = url.substr(kScheme.size());
  if (size_t slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  std::string host = hostport, port = "80";
  if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return {2, 0, "", "cannot resolve " + host};
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addrs(res, freeaddrinfo);
  int fd = ::socket(res->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    if (fd >= 0) ::close(fd);
    return {2, 0, "", "cannot reach the gateway at " + url};
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + hostport +
                    "\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
  for (std::string_view d = req; !d.empty();) {
    ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    d.remove_prefix(static_cast<size_t>(n));
  }
  proxy::http::ResponseParser parser;
  parser.expectResponseTo("GET");
  Reply r;
  bool done = false;
  auto take = [&](const proxy::http::FeedResult<proxy::http::ResponseEvent>& fr) {
    for (const auto& ev : fr.events) {
      if (const auto* h = std::get_if<proxy::http::ResponseHead>(&ev)) r.status = h->status;
      if (const auto* b = std::get_if<proxy::http::BodyChunk>(&ev)) r.body.append(b->data);
      if (std::get_if<proxy::http::MessageEnd>(&ev)) done = true;
    }
    if (fr.error) done = true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      take(parser.finish());
      break;
    }
    take(parser.feed(std::string_view(buf, static_cast<size_t>(n))));
  }
  ::close(fd);
  if (r.status == 0) return {2, 0, "", "no answer from the gateway at " + url};
  return r;
}

Reply fromDb(const std::string& db, const std::string& path) {
  auto reader = proxy::LogReader::open(db);
  if (!reader) return {2, 0, "", reader.status().message()};
  proxy::AdminResponse a = proxy::handleAdminRequest(reader.value().get(), "GET", path);
  return {0, a.status, a.body, ""};
}

std::string utc(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string cut(std::string s, size_t n) {
  for (char& c : s) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}

void printCalls(const nlohmann::json& page) {
  std::printf("%-19s  %-24s  %-10s  %-14s  %-6s  %s\n", "TIME (UTC)", "USER", "TYPE", "TOOL",
              "RESULT", "COMMAND / TARGET");
  for (const auto& c : page.value("tool_calls", nlohmann::json::array())) {
    std::string what = c.value("command", "");
    if (what.empty()) what = c.value("target", "");
    if (what.empty()) what = c.value("arguments", "");
    if (c.value("args_state", "complete") != "complete") {
      what += "  [" + c.value("args_state", "") + "]";
    }
    for (const auto& g : c.value("guardrail", nlohmann::json::array())) {
      what += "  [" + g.value("action", "") + (g.value("enforced", false) ? "ed" : "") + ": " +
              g.value("rule", "") + "]";
    }
    std::printf("%-19s  %-24s  %-10s  %-14s  %-6s  %s\n",
                utc(c.value("time_ms", int64_t{0})).c_str(),
                cut(c["identity"].value("user_login", ""), 24).c_str(), c.value("type", "").c_str(),
                cut(c.value("name", ""), 14).c_str(), c.value("result", "").c_str(),
                cut(what, 100).c_str());
  }
  if (page.contains("next_cursor") && page["next_cursor"].is_string()) {
    std::printf("(more: --limit to see more)\n");
  }
}

void printStats(const nlohmann::json& stats) {
  std::printf("%-10s  %-24s  %6s  %6s  %s\n", "DAY", "USER", "CALLS", "ERRORS", "BY TYPE");
  for (const auto& r : stats.value("rows", nlohmann::json::array())) {
    std::string by;
    for (const auto& [type, n] : r["by_type"].items()) {
      by += (by.empty() ? "" : "  ") + type + " " + std::to_string(n.get<int64_t>());
    }
    std::printf("%-10s  %-24s  %6lld  %6lld  %s\n", r.value("day", "").c_str(),
                cut(r.value("user_login", ""), 24).c_str(),
                static_cast<long long>(r.value("total", int64_t{0})),
                static_cast<long long>(r.value("errors", int64_t{0})), by.c_str());
  }
}

int run(const ToolsFlags& f) {
  std::string path = target(f);
  Reply r = f.db.empty() ? httpGet(f.gateway, path) : fromDb(f.db, path);
  if (r.exit_code != 0) {
    std::cerr << "gatehouse admin tools: " << r.error << "\n";
    return r.exit_code;
  }
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || j.is_discarded()) {
    std::string msg =
        j.is_object() && j.contains("error") ? j["error"].value("message", r.body) : r.body;
    std::cerr << "gatehouse admin tools: " << r.status << ": " << msg << "\n";
    return 1;
  }
  if (f.json_out) {
    std::cout << j.dump(2) << "\n";
  } else if (f.stats) {
    printStats(j);
  } else {
    printCalls(j);
  }
  return 0;
}

}  // namespace

void registerAdminTools(CLI::App* admin) {
  auto f = std::make_shared<ToolsFlags>();
  const char* env = std::getenv("GATEHOUSE_GATEWAY_URL");
  f->gateway = env != nullptr && *env != '\0' ? env : "http://127.0.0.1:8080";
  CLI::App* tools = admin->add_subcommand(
      "tools", "tool calls agents made through the gateway (shell, file, search, web, mcp, ...)");
  tools->add_option("--gateway", f->gateway, "the gateway's URL ($GATEHOUSE_GATEWAY_URL)")
      ->capture_default_str();
  tools->add_option("--db", f->db, "read the gateway's log database directly instead");
  tools->add_flag("--stats", f->stats, "counts by type per user and UTC day");
  tools->add_flag("--json", f->json_out, "print the API's JSON answer");
  tools->add_option("--type", f->type,
                    "shell, file_read, file_write, file_edit, search, web, mcp, subagent, other");
  tools->add_option("--name", f->name, "tool name as the agent sent it (Bash, shell, ...)");
  tools->add_option("--user", f->user, "only this user (login)");
  tools->add_option("--tag", f->tag, "only nodes with this tag (tag:x)");
  tools->add_option("--session", f->session, "only this session id");
  tools->add_option("--command", f->command,
                    "a command word prefix, e.g. \"git push\" (matches each parsed command)");
  tools->add_option("--guardrail", f->guardrail,
                    "only calls a guardrail matched: any, flag, block or enforced");
  tools->add_option("--since", f->since, "from this time (Unix ms)");
  tools->add_option("--until", f->until, "before this time (Unix ms)");
  tools->add_option("--limit", f->limit, "at most this many calls")->capture_default_str();
  tools->callback([f] { setExitCode(run(*f)); });
}

}  // namespace gatehouse::cmd
