#include "cmd/gateway_admin.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "cmd/table.h"
#include "proxy/gateway/admin_api.h"
#include "proxy/http/http1.h"
#include "proxy/logstore/log_query.h"
#include "proxy/upstream/target.h"

namespace gatehouse::cmd {
namespace {

using nlohmann::json;

constexpr int kConnectTimeoutMs = 5000;
constexpr int kReplyTimeoutMs = 30000;

struct Url {
  std::string host, port, host_header;
};

// The gateway's address, parsed as the gateway parses a local provider's base URL.
bool parseUrl(const std::string& url, Url* out, std::string* error) {
  auto parsed = proxy::parseUpstreamUrl(url, /*local=*/true);
  if (!parsed || parsed->target.tls) {
    *error = "--gateway " + url +
             ": want http://HOST[:PORT] (the tunnel already encrypts; the gateway serves plain "
             "HTTP on its mesh address)";
    if (!parsed) *error += ": " + parsed.status().message();
    return false;
  }
  out->host = parsed->target.host;
  out->port = std::to_string(parsed->target.port);
  out->host_header = parsed->target.authority();
  return true;
}

// Connects with a timeout; -1 and *error on failure.
int dial(const Url& u, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res); rc != 0) {
    *error = u.host + ":" + u.port + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, kConnectTimeoutMs);
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
        rc = 0;
      } else {
        errno = rc == 0 ? ETIMEDOUT : (soerr != 0 ? soerr : errno);
        rc = -1;
      }
    }
    if (rc == 0) break;
    last = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) *error = u.host + ":" + u.port + ": " + last;
  return fd;
}

GatewayAdminReply fail(int code, std::string error) {
  GatewayAdminReply r;
  r.exit_code = code;
  r.error = std::move(error);
  return r;
}

// Status + JSON body into a reply: 2xx ok, else the API's {"error":{"message"}}.
GatewayAdminReply fromHttp(int status, const std::string& body) {
  GatewayAdminReply r;
  r.status = status;
  r.body = json::parse(body, nullptr, false);
  if (status >= 200 && status < 300 && !r.body.is_discarded()) return r;
  r.exit_code = 1;
  std::string msg;
  if (!r.body.is_discarded() && r.body.is_object() && r.body.contains("error") &&
      r.body["error"].is_object()) {
    msg = r.body["error"].value("message", "");
  }
  if (msg.empty()) msg = body.substr(0, 300);
  r.error = "gateway answered " + std::to_string(status) + ": " + msg;
  if (status == 403) r.error += " (the admin API needs an identity with role admin)";
  return r;
}

GatewayAdminReply httpCall(const std::string& base, const std::string& method,
                           const std::string& target, const std::string& body) {
  Url u;
  std::string error;
  if (!parseUrl(base, &u, &error)) return fail(2, error);
  int fd = dial(u, &error);
  if (fd < 0) return fail(2, "cannot reach the gateway at " + base + ": " + error);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + u.host_header +
                    "\r\nUser-Agent: gatehouse-admin\r\nAccept: application/json\r\n"
                    "Connection: close\r\n";
  if (!body.empty() || method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, kReplyTimeoutMs) != 1) break;
    ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      ::close(fd);
      return fail(2, "gateway at " + base + ": write failed: " + std::strerror(errno));
    }
    off += size_t(n);
  }
  proxy::http::ResponseParser parser(proxy::http::ResponseParser::Options{.reportInterim = false});
  parser.expectResponseTo(method);
  int status = 0;
  std::string out;
  bool done = false;
  auto take = [&](const proxy::http::FeedResult<proxy::http::ResponseEvent>& r) {
    for (const auto& e : r.events) {
      if (auto* h = std::get_if<proxy::http::ResponseHead>(&e)) status = h->status;
      if (auto* c = std::get_if<proxy::http::BodyChunk>(&e)) out.append(c->data);
      if (std::holds_alternative<proxy::http::MessageEnd>(e)) done = true;
    }
    if (r.error) error = r.error->message;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
  char buf[65536];
  while (!done && error.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) {
      error = "no answer within " + std::to_string(kReplyTimeoutMs / 1000) + " s";
      break;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      take(parser.finish());
      if (!done && error.empty()) error = "connection closed before the answer was complete";
      break;
    }
    take(parser.feed(std::span<const char>(buf, size_t(n))));
  }
  ::close(fd);
  if (!done) return fail(2, "gateway at " + base + ": " + error);
  return fromHttp(status, out);
}

GatewayAdminReply dbCall(const std::string& path, const std::string& method,
                         const std::string& target) {
  if (::access(path.c_str(), R_OK) != 0) {
    return fail(2, path + ": cannot read the log database: " + std::strerror(errno));
  }
  auto reader = proxy::LogReader::open(path);
  if (!reader) return fail(2, path + ": " + reader.status().message());
  proxy::AdminResponse a = proxy::handleAdminRequest(reader.value().get(), method, target);
  return fromHttp(a.status, a.body);
}

// Unix ms from "1740787201234", "2026-11-25", "2026-11-25T10:00:00Z", or "24h"/"30m"/"7d"/"90s"
// (that long before now). nullopt if none of these.
std::optional<int64_t> parseTime(const std::string& s, int64_t now_ms) {
  if (s.empty()) return std::nullopt;
  bool digits = s.find_first_not_of("0123456789") == std::string::npos;
  if (digits && s.size() >= 10) return std::stoll(s);
  if (s.size() >= 2 && s.find_first_not_of("0123456789", 0) == s.size() - 1) {
    int64_t n = std::stoll(s.substr(0, s.size() - 1));
    int64_t unit = 0;
    switch (s.back()) {
      case 's':
        unit = 1000;
        break;
      case 'm':
        unit = 60'000;
        break;
      case 'h':
        unit = 3'600'000;
        break;
      case 'd':
        unit = 86'400'000;
        break;
      default:
        return std::nullopt;
    }
    return now_ms - n * unit;
  }
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) {
    tm = {};
    end = strptime(s.c_str(), "%Y-%m-%d", &tm);
  }
  if (end == nullptr || !(*end == '\0' || std::string(end) == "Z")) return std::nullopt;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// Fixed-width times for log lines: "2026-11-25 10:00:01" UTC.
std::string timeMs(const json& v) {
  if (!v.is_number()) return "-";
  time_t t = v.get<int64_t>() / 1000;
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
  return buf;
}

std::string num(const json& v) { return v.is_number() ? std::to_string(v.get<int64_t>()) : "-"; }

std::string who(const json& id) {
  if (!id.is_object()) return "-";
  std::string user = id.value("user_login", "");
  std::string node = id.value("node_name", "");
  if (!user.empty()) return user + (node.empty() ? "" : " (" + node + ")");
  std::string tags = id.contains("tags") ? cell(id["tags"]) : "-";
  return node.empty() ? tags : node + " [" + tags + "]";
}

int report(const GatewayAdminReply& r) {
  if (r.exit_code != 0) std::cerr << "error: " << r.error << "\n";
  return r.exit_code;
}

int logsCommand(const GatewayAdminSource& src, const GatewayFilterFlags& f, size_t limit,
                const std::string& id) {
  std::string error;
  if (!id.empty()) {
    auto r = gatewayAdminCall(src, "GET", "/api/requests/" + urlEncode(id));
    if (r.exit_code == 0) std::cout << r.body.dump(2) << "\n";
    return report(r);
  }
  std::string q = filterQuery(f, &error);
  if (!error.empty()) return std::cerr << "error: " << error << "\n", 2;
  auto r = gatewayAdminCall(
      src, "GET", "/api/requests?limit=" + std::to_string(limit) + (q.empty() ? "" : "&") + q);
  if (r.exit_code != 0) return report(r);
  if (src.json_out) return std::cout << r.body.dump(2) << "\n", 0;
  std::vector<std::vector<std::string>> rows;
  for (const auto& rec : r.body["requests"]) {
    const json& t = rec["tokens"];
    std::string err = rec.value("error", "");
    if (err.size() > 60) err = err.substr(0, 57) + "...";
    rows.push_back({timeMs(rec["start_ms"]), rec.value("id", "").substr(0, 12),
                    who(rec["identity"]), rec.value("model", ""), num(rec["status"]),
                    num(rec["latency_ms"]), num(t["input"]), num(t["output"]), num(t["cache_read"]),
                    rec["cost_nanodollars"].is_number()
                        ? dollars(rec["cost_nanodollars"].get<int64_t>())
                        : "-",
                    err.empty() ? "" : err});
  }
  printTable(
      {"TIME (UTC)", "ID", "WHO", "MODEL", "STATUS", "MS", "IN", "OUT", "CACHE R", "COST", "ERROR"},
      rows);
  if (!r.body["next_cursor"].is_null()) {
    std::cerr << "(more: --limit N, or the API's cursor " << cell(r.body["next_cursor"]) << ")\n";
  }
  return 0;
}

std::vector<std::string> totalsCells(const json& t) {
  int64_t cw = (t["cache_write_5m"].is_number() ? t["cache_write_5m"].get<int64_t>() : 0) +
               (t["cache_write_1h"].is_number() ? t["cache_write_1h"].get<int64_t>() : 0);
  return {num(t["requests"]),
          num(t["input"]),
          num(t["output"]),
          num(t["cache_read"]),
          std::to_string(cw),
          num(t["reasoning"]),
          dollars(t.value("cost_nanodollars", int64_t{0})) +
              (t.value("unpriced_requests", int64_t{0}) > 0
                   ? " (+" + num(t["unpriced_requests"]) + " unpriced)"
                   : "")};
}

int usageCommand(const GatewayAdminSource& src, const GatewayFilterFlags& f,
                 const std::string& by) {
  std::string error;
  std::string q = filterQuery(f, &error);
  if (!error.empty()) return std::cerr << "error: " << error << "\n", 2;
  auto r = gatewayAdminCall(src, "GET",
                            "/api/usage?group_by=" + urlEncode(by) + (q.empty() ? "" : "&") + q);
  if (r.exit_code != 0) return report(r);
  if (src.json_out) return std::cout << r.body.dump(2) << "\n", 0;
  std::vector<std::vector<std::string>> rows;
  json total = {
      {"requests", 0},         {"input", 0},          {"output", 0},    {"cache_read", 0},
      {"cache_write_5m", 0},   {"cache_write_1h", 0}, {"reasoning", 0}, {"cost_nanodollars", 0},
      {"unpriced_requests", 0}};
  for (const auto& row : r.body["rows"]) {
    std::vector<std::string> c = {row.value("key", "")};
    if (c[0].empty()) c[0] = "(none)";
    for (std::string& s : totalsCells(row)) c.push_back(std::move(s));
    rows.push_back(std::move(c));
    for (auto& [k, v] : total.items()) {
      if (row.contains(k) && row[k].is_number()) v = v.get<int64_t>() + row[k].get<int64_t>();
    }
  }
  std::vector<std::string> t = {"TOTAL"};
  for (std::string& s : totalsCells(total)) t.push_back(std::move(s));
  rows.push_back(std::move(t));
  std::string key = by;
  for (char& ch : key) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  printTable({key, "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "REASONING", "COST"},
             rows);
  return 0;
}

int sessionsCommand(const GatewayAdminSource& src, const GatewayFilterFlags& f, size_t limit) {
  std::string error;
  std::string q = filterQuery(f, &error);
  if (!error.empty()) return std::cerr << "error: " << error << "\n", 2;
  auto r = gatewayAdminCall(
      src, "GET", "/api/sessions?limit=" + std::to_string(limit) + (q.empty() ? "" : "&") + q);
  if (r.exit_code != 0) return report(r);
  if (src.json_out) return std::cout << r.body.dump(2) << "\n", 0;
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : r.body["sessions"]) {
    std::vector<std::string> c = {s.value("session_id", ""), s.value("user_login", ""),
                                  timeMs(s["first_ms"]), timeMs(s["last_ms"])};
    for (std::string& x : totalsCells(s["totals"])) c.push_back(std::move(x));
    rows.push_back(std::move(c));
  }
  printTable({"SESSION", "USER", "FIRST (UTC)", "LAST (UTC)", "REQUESTS", "INPUT", "OUTPUT",
              "CACHE READ", "CACHE WRITE", "REASONING", "COST"},
             rows);
  return 0;
}

// `admin quotas [list] [--bucket PREFIX]`, `admin quotas refill BUCKET [AMOUNT]`,
// `admin quotas capacity BUCKET AMOUNT|default`: the gateway's quota API
// (proxy/gateway/quota_admin.cc). Levels live in the gateway's quota store, not the log
// database, so these need --gateway.
int quotasCommand(const GatewayAdminSource& src, const std::string& method,
                  const std::string& target, const json& body) {
  if (!src.db.empty()) {
    std::cerr << "error: quota levels live in the gateway's quota store, not the log database: "
                 "use --gateway URL\n";
    return 2;
  }
  GatewayAdminReply r = gatewayAdminCall(src, method, target, body.is_null() ? "" : body.dump());
  if (r.exit_code != 0) return report(r);
  if (src.json_out || method != "GET") {
    std::cout << r.body.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& b : r.body.value("buckets", json::array())) {
    rows.push_back({b.value("bucket", "-"), b.value("unit", "-"), b.value("level_text", "-"),
                    b.value("capacity_text", "-"), b.value("rate", "-"),
                    b.value("on_exceed", "-")});
  }
  printTable({"BUCKET", "UNIT", "LEVEL", "CAPACITY", "RATE", "ON_EXCEED"}, rows);
  for (const auto& [who, f] : r.body.value("in_flight", json::object()).items()) {
    std::cout << "in flight: " << who << " " << f.value("requests", 0) << " requests, "
              << f.value("streams", 0) << " streams\n";
  }
  return 0;
}

void registerQuotaCommands(CLI::App* admin) {
  auto src = std::make_shared<GatewayAdminSource>();
  auto prefix = std::make_shared<std::string>();
  auto bucket = std::make_shared<std::string>();
  auto amount = std::make_shared<std::string>();
  CLI::App* q = admin->add_subcommand(
      "quotas", "quota buckets on the gateway: list (default), refill, capacity");
  addGatewaySourceOptions(q, src.get());
  q->add_option("--bucket", *prefix, "list only buckets whose name starts with this");
  CLI::App* list = q->add_subcommand("list", "buckets with their levels, capacities and rates");
  CLI::App* refill = q->add_subcommand("refill", "add to a bucket, capped at its capacity");
  refill->add_option("BUCKET", *bucket, "bucket instance, e.g. daily:alice@example.com")
      ->required();
  refill->add_option("AMOUNT", *amount, "\"$5.00\", \"1M tokens\", \"10 requests\"; default: full");
  CLI::App* cap = q->add_subcommand("capacity", "set a bucket's capacity");
  cap->add_option("BUCKET", *bucket, "bucket instance")->required();
  cap->add_option("AMOUNT", *amount, "the new capacity, or \"default\" for the config's")
      ->required();
  auto doList = [=] {
    std::string target = "/api/quotas" + (prefix->empty() ? "" : "?bucket=" + *prefix);
    setExitCode(quotasCommand(*src, "GET", target, nullptr));
  };
  list->callback(doList);
  q->callback([q, doList] {
    if (q->get_subcommands().empty()) doList();
  });
  refill->callback([=] {
    json body = {{"bucket", *bucket}};
    if (!amount->empty()) body["amount"] = *amount;
    setExitCode(quotasCommand(*src, "POST", "/api/quotas/refill", body));
  });
  cap->callback([=] {
    json body = {{"bucket", *bucket}};
    body["capacity"] = *amount == "default" ? json(nullptr) : json(*amount);
    setExitCode(quotasCommand(*src, "POST", "/api/quotas/capacity", body));
  });
}

}  // namespace

std::string urlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '@') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void addGatewaySourceOptions(CLI::App* app, GatewayAdminSource* src) {
  const char* env = std::getenv("GATEHOUSE_GATEWAY_URL");
  src->url = env != nullptr && *env != '\0' ? env : "http://127.0.0.1:8080";
  app->add_option("--gateway", src->url,
                  "the gateway's HTTP address, reached as a node whose identity has role admin "
                  "($GATEHOUSE_GATEWAY_URL)")
      ->capture_default_str();
  app->add_option("--db", src->db,
                  "read the gateway's log database directly instead (on the gateway's host)");
  app->add_flag("--json", src->json_out, "print the API's JSON answer");
}

GatewayAdminReply gatewayAdminCall(const GatewayAdminSource& src, const std::string& method,
                                   const std::string& target, const std::string& body) {
  if (!src.db.empty()) {
    if (method != "GET") {
      return fail(2, "--db reads the log database only; " + method + " " + target +
                         " needs the running gateway (--gateway URL)");
    }
    return dbCall(src.db, method, target);
  }
  return httpCall(src.url, method, target, body);
}

void addGatewayFilterOptions(CLI::App* app, GatewayFilterFlags* f) {
  app->add_option("--user", f->user, "only this user (login)");
  app->add_option("--tag", f->tag, "only nodes with this tag (tag:x)");
  app->add_option("--model", f->model, "only this model");
  app->add_option("--session", f->session, "only this session id");
  app->add_option("--status", f->status, "only this HTTP status");
  app->add_option("--since", f->since, "from: Unix ms, 2026-11-25, RFC 3339, or 30m/24h/7d ago");
  app->add_option("--until", f->until, "to (exclusive): same forms as --since");
}

std::string filterQuery(const GatewayFilterFlags& f, std::string* error) {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    q += (q.empty() ? "" : "&") + std::string(k) + "=" + urlEncode(v);
  };
  add("user", f.user);
  add("tag", f.tag);
  add("model", f.model);
  add("session", f.session);
  if (f.status != 0) add("status", std::to_string(f.status));
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  for (auto [k, v] :
       {std::pair<const char*, const std::string*>{"since", &f.since}, {"until", &f.until}}) {
    if (v->empty()) continue;
    auto t = parseTime(*v, now);
    if (!t) {
      *error = std::string("--") + k + " " + *v +
               ": want Unix ms, a date (2026-11-25), an RFC 3339 time (2026-11-25T10:00:00Z) "
               "or a duration back from now (30m, 24h, 7d)";
      return "";
    }
    add(k, std::to_string(*t));
  }
  return q;
}

std::string dollars(int64_t nanos) {
  char buf[48];
  const char* sign = nanos < 0 ? "-" : "";
  uint64_t n = nanos < 0 ? uint64_t(-(nanos + 1)) + 1 : uint64_t(nanos);
  // Six decimals (micro-dollars), rounded half up.
  uint64_t micros = (n + 500) / 1000;
  std::snprintf(buf, sizeof buf, "%s$%llu.%06llu", sign,
                static_cast<unsigned long long>(micros / 1000000),
                static_cast<unsigned long long>(micros % 1000000));
  return buf;
}

void registerGatewayAdminCommands(CLI::App* admin) {
  auto src = std::make_shared<GatewayAdminSource>();
  auto filt = std::make_shared<GatewayFilterFlags>();
  auto limit = std::make_shared<size_t>(50);
  auto id = std::make_shared<std::string>();
  auto by = std::make_shared<std::string>("user");

  CLI::App* logs = admin->add_subcommand(
      "logs", "the gateway's request log, newest first (ID: one record with headers and bodies)");
  addGatewaySourceOptions(logs, src.get());
  addGatewayFilterOptions(logs, filt.get());
  logs->add_option("--limit", *limit, "at most this many")->capture_default_str();
  logs->add_option("ID", *id, "a request id: print the whole record as JSON");
  logs->callback([=] { setExitCode(logsCommand(*src, *filt, *limit, *id)); });

  CLI::App* usage =
      admin->add_subcommand("usage", "requests, tokens and cost from the gateway's log");
  addGatewaySourceOptions(usage, src.get());
  addGatewayFilterOptions(usage, filt.get());
  usage->add_option("--by", *by, "group by user, tag, model, day or user_agent")
      ->capture_default_str()
      ->check(CLI::IsMember({"user", "tag", "model", "day", "user_agent"}));
  usage->callback([=] { setExitCode(usageCommand(*src, *filt, *by)); });

  CLI::App* sessions = admin->add_subcommand("sessions", "agent sessions seen by the gateway");
  addGatewaySourceOptions(sessions, src.get());
  addGatewayFilterOptions(sessions, filt.get());
  sessions->add_option("--limit", *limit, "at most this many")->capture_default_str();
  sessions->callback([=] { setExitCode(sessionsCommand(*src, *filt, *limit)); });

  registerQuotaCommands(admin);
  registerAdminTools(admin);  // cmd/admin_tools.cc
}

}  // namespace gatehouse::cmd
