// `gatehouse admin quotas [list|refill|capacity]`: the gateway's quota admin API
// (proxy/gateway/quota_admin.cc) from the command line.
//
//   gatehouse admin quotas [list] [--bucket PREFIX]      buckets, levels, capacities, rates
//   gatehouse admin quotas refill BUCKET [AMOUNT]        add AMOUNT ("$5.00", "100 requests");
//                                                        no AMOUNT: fill it up
//   gatehouse admin quotas capacity BUCKET AMOUNT|default
//
// --gateway URL (default $GATEHOUSE_GATEWAY_URL, else http://127.0.0.1:8080): the gateway's
// HTTP listener; the gateway knows the caller from its WireGuard peer (or the loopback
// listener's configured identity), which needs the admin role. --json prints the raw answer.
// Exit status: 0 ok, 1 the gateway refused (its message on stderr), 2 unreachable.
// A small blocking HTTP/1.1 client (Connection: close) is all this needs.
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cmd/commands.h"

namespace gatehouse::cmd {
namespace {

using nlohmann::json;

struct QuotaArgs {
  std::string gateway;
  bool json_out = false;
  std::string prefix;
  std::string bucket;
  std::string amount;
};

struct Reply {
  int status = 0;  // 0: unreachable
  std::string body;
  std::string error;
};

Reply httpCall(const std::string& url, const std::string& method, const std::string& target,
               const std::string& body) {
  Reply r;
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host = rest, port = "80";
  if (size_t colon = rest.rfind(':');
      colon != std::string::npos && rest.find(']') == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    r.error = "cannot resolve " + host;
    return r;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, 0);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    r.error = "cannot reach the gateway at " + url + " (--gateway URL)";
    return r;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host +
                    "\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string in;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    r.error = "no HTTP answer from " + url;
    return r;
  }
  r.status = std::atoi(in.c_str() + 9);
  r.body = in.substr(end + 4);
  return r;
}

std::string gatewayUrl(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("GATEHOUSE_GATEWAY_URL");
  return env && *env ? env : "http://127.0.0.1:8080";
}

// Prints the answer (or the refusal); returns the exit status.
int report(const QuotaArgs& a, const Reply& r, bool table) {
  if (r.status == 0) {
    std::cerr << "admin quotas: " << r.error << "\n";
    return 2;
  }
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::string msg =
        j.is_object() && j.contains("error") ? j["error"].value("message", r.body) : r.body;
    std::cerr << "admin quotas: gateway answered " << r.status << ": " << msg << "\n";
    return 1;
  }
  if (a.json_out || !table || !j.is_object()) {
    std::cout << (j.is_discarded() ? r.body : j.dump(2)) << "\n";
    return 0;
  }
  std::printf("%-40s %-9s %22s %22s  %s\n", "BUCKET", "UNIT", "LEVEL", "CAPACITY", "RATE");
  for (const json& b : j.value("buckets", json::array())) {
    std::printf("%-40s %-9s %22s %22s  %s\n", b.value("bucket", "").c_str(),
                b.value("unit", "-").c_str(), b.value("level_text", "-").c_str(),
                b.value("capacity_text", "-").c_str(), b.value("rate", "-").c_str());
  }
  for (const auto& [who, f] : j.value("in_flight", json::object()).items()) {
    std::printf("in flight: %s %d requests, %d streams\n", who.c_str(), f.value("requests", 0),
                f.value("streams", 0));
  }
  return 0;
}

}  // namespace

void registerAdminQuotas(CLI::App* admin) {
  auto a = std::make_shared<QuotaArgs>();
  CLI::App* q = admin->add_subcommand("quotas",
                                      "quota buckets on the gateway: list, refill, "
                                      "set capacity (default: list)");
  q->add_option("--gateway", a->gateway,
                "gateway URL (default $GATEHOUSE_GATEWAY_URL, else http://127.0.0.1:8080)");
  q->add_flag("--json", a->json_out, "print the API's JSON answer");
  q->add_option("--bucket", a->prefix, "list only buckets whose name starts with this");
  CLI::App* list = q->add_subcommand("list", "buckets with their levels");
  CLI::App* refill = q->add_subcommand("refill", "add to a bucket, capped at its capacity");
  refill->add_option("BUCKET", a->bucket, "bucket instance, e.g. daily:alice@example.com")
      ->required();
  refill->add_option("AMOUNT", a->amount, "\"$5.00\", \"1M tokens\"; default: fill it up");
  CLI::App* cap = q->add_subcommand("capacity", "set a bucket's capacity");
  cap->add_option("BUCKET", a->bucket, "bucket instance")->required();
  cap->add_option("AMOUNT", a->amount, "new capacity, or \"default\" for the config's")->required();
  auto doList = [a] {
    std::string target = "/api/quotas" + (a->prefix.empty() ? "" : "?bucket=" + a->prefix);
    setExitCode(report(*a, httpCall(gatewayUrl(a->gateway), "GET", target, ""), true));
  };
  list->callback(doList);
  q->callback([q, doList] {
    if (q->get_subcommands().empty()) doList();
  });
  refill->callback([a] {
    json body = {{"bucket", a->bucket}};
    if (!a->amount.empty()) body["amount"] = a->amount;
    setExitCode(report(
        *a, httpCall(gatewayUrl(a->gateway), "POST", "/api/quotas/refill", body.dump()), false));
  });
  cap->callback([a] {
    json body = {{"bucket", a->bucket}};
    body["capacity"] = a->amount == "default" ? json(nullptr) : json(a->amount);
    setExitCode(report(
        *a, httpCall(gatewayUrl(a->gateway), "POST", "/api/quotas/capacity", body.dump()), false));
  });
}

}  // namespace gatehouse::cmd
