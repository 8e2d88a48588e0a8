#include "control/local_api.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/map_apply.h"
#include "wg/uapi.h"

namespace gatehouse::control {
namespace {

using nlohmann::json;

constexpr size_t kMaxRequest = 64 * 1024;
constexpr int kMaxPings = 20;
constexpr int kMaxPingTimeoutMs = 5000;

Status unixAddress(const std::string& path, sockaddr_un* sa) {
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path.size() >= sizeof sa->sun_path) {
    return Status(ENAMETOOLONG, "socket path too long: " + path);
  }
  std::memcpy(sa->sun_path, path.c_str(), path.size() + 1);
  return Status::ok();
}

bool writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until `stop_at_newline` sees '\n', EOF, the size cap or the deadline.
bool readMessage(int fd, std::string* out, bool stop_at_newline, int timeout_ms, size_t cap) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > cap) return false;
    if (stop_at_newline && out->find('\n') != std::string::npos) return true;
  }
}

json error(const std::string& message) { return {{"ok", false}, {"error", message}}; }

std::string endpointText(const std::optional<wg::Endpoint>& ep) { return ep ? ep->toString() : ""; }

}  // namespace

json identityToJson(const wg::Identity& id) {
  json caps = json::object();
  for (const auto& [name, values] : id.capabilities) {
    json arr = json::array();
    for (const std::string& v : values) {
      auto parsed = json::parse(v, nullptr, false);
      arr.push_back(parsed.is_discarded() ? json(v) : parsed);
    }
    caps[name] = arr;
  }
  json addrs = json::array();
  for (const wg::IpPrefix& p : id.allowed_ips) addrs.push_back(p.toString());
  return {{"node_key", wg::keyToBase64(id.node_public_key)},
          {"node_id", id.node_id},
          {"name", id.name},
          {"addresses", addrs},
          {"endpoint", endpointText(id.endpoint)},
          {"is_self", id.is_self},
          {"user", {{"login", id.user_login}, {"display_name", id.user_display_name}}},
          {"groups", id.groups},
          {"tags", id.tags},
          {"capabilities", caps}};
}

json LocalApiServer::handle(const json& req) {
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
    return error("bad request: want {\"cmd\": \"status\" | \"whois\" | \"ping\", ...}");
  }
  const std::string cmd = req["cmd"];
  DataPlane* plane = node_.dataPlane();
  if (plane == nullptr) return error("the node is not running");
  if (cmd == "status") {
    ControlInfo ci = node_.info();
    auto dp = plane->status();
    if (!dp) return error(dp.status().message());
    json self{{"node_id", ci.node_id},
              {"name", ci.name},
              {"addresses", ci.addresses},
              {"endpoints", ci.endpoints}};
    if (dp->public_key) self["node_key"] = wg::keyToBase64(*dp->public_key);
    json peers = json::array();
    for (const wg::PeerInfo& p : dp->peers) {
      json entry{{"node_key", wg::keyToBase64(p.public_key)},
                 {"endpoint", endpointText(p.endpoint)},
                 {"last_handshake_unix", p.stats.last_handshake_wall_ns / 1'000'000'000},
                 {"rx_bytes", p.stats.rx_bytes},
                 {"tx_bytes", p.stats.tx_bytes}};
      // Names come from the map (immutable, safe to read here): the same answer whoIs gives.
      wg::Identity who;
      if (!p.allowed_ips.empty() && ci.map &&
          identityFromMap(*ci.map, p.allowed_ips.front().addr, who)) {
        entry["name"] = who.name;
        entry["node_id"] = who.node_id;
        entry["user"] = who.user_login;
        entry["tags"] = who.tags;
        json addrs = json::array();
        for (const wg::IpPrefix& a : p.allowed_ips) addrs.push_back(a.toString());
        entry["addresses"] = addrs;
      }
      peers.push_back(entry);
    }
    return {{"ok", true},
            {"self", self},
            {"control",
             {{"state", ci.state},
              {"server", ci.server},
              {"map_seq", ci.map_seq},
              {"last_error", ci.last_error}}},
            {"data_plane",
             {{"mode", dp->mode},
              {"interface", dp->interface},
              {"listen_port", dp->listen_port},
              {"filter_denied", dp->filter_denied},
              {"drops", dp->device_drops}}},
            {"peers", peers}};
  }
  if (cmd == "whois") {
    auto addr = wg::IpAddr::parse(req.value("addr", std::string()));
    if (!addr) return error("whois: want an IP address, e.g. 100.64.0.2");
    auto who = plane->whoIs(*addr);
    if (!who) return error(who.status().message());
    return {{"ok", true}, {"identity", identityToJson(who.value())}};
  }
  if (cmd == "ping") {
    std::string host = req.value("host", std::string());
    auto addr = node_.resolve(host);
    if (!addr) return error("ping: unknown host '" + host + "' (not a peer name or address)");
    int count = std::clamp(req.value("count", 3), 1, kMaxPings);
    int timeout = std::clamp(req.value("timeout_ms", 2000), 10, kMaxPingTimeoutMs);
    json results = json::array();
    int ok = 0;
    for (int i = 0; i < count; ++i) {
      auto rtt = plane->ping(*addr, timeout);
      if (rtt) {
        ++ok;
        results.push_back({{"seq", i + 1}, {"rtt_us", rtt.value() / 1000}});
      } else {
        results.push_back({{"seq", i + 1}, {"error", rtt.status().message()}});
      }
    }
    return {
        {"ok", ok > 0},  {"host", host},       {"addr", addr->toString()},
        {"replies", ok}, {"results", results}, {"error", ok > 0 ? "" : "no reply from " + host}};
  }
  return error("unknown cmd '" + cmd + "'");
}

Status LocalApiServer::start(const std::string& socket_path) {
  path_ = socket_path;
  sockaddr_un sa;
  if (Status st = unixAddress(path_, &sa); !st) return st;
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Status::fromErrno(errno, "local API socket");
  ::unlink(path_.c_str());
  mode_t old = umask(0177);  // created 0600
  int r = ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  umask(old);
  if (r != 0 || ::listen(fd_, 16) != 0) {
    Status st = Status::fromErrno(errno, "local API socket " + path_);
    ::close(fd_);
    fd_ = -1;
    return st;
  }
  thread_ = std::thread([this] { serve(); });
  return Status::ok();
}

void LocalApiServer::serve() {
  for (;;) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (stopping_) {
      if (c >= 0) ::close(c);
      return;
    }
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    std::string in;
    json answer;
    if (!readMessage(c, &in, true, 5000, kMaxRequest)) {
      answer = error("bad request: send one JSON object and a newline");
    } else {
      auto req = json::parse(in, nullptr, false);
      answer = req.is_discarded() ? error("bad request: not JSON") : handle(req);
    }
    writeAll(c, answer.dump() + "\n");
    ::close(c);
  }
}

void LocalApiServer::stop() {
  if (fd_ < 0) return;
  stopping_ = true;
  ::shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  fd_ = -1;
  ::unlink(path_.c_str());
}

Result<json> localApiCall(const std::string& socket_path, const json& request, int timeout_ms) {
  sockaddr_un sa;
  if (Status st = unixAddress(socket_path, &sa); !st) return st;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(fd);
    return Status(e, "cannot reach the node at " + socket_path + ": " + std::strerror(e) +
                         " (is `gatehouse up` running with this --state-dir?)");
  }
  std::string out;
  bool ok = writeAll(fd, request.dump() + "\n") &&
            readMessage(fd, &out, false, timeout_ms, 64 * 1024 * 1024);
  ::close(fd);
  if (!ok) return Status(EIO, "no answer from the node at " + socket_path);
  auto j = json::parse(out, nullptr, false);
  if (j.is_discarded()) return Status(EPROTO, "bad answer from the node at " + socket_path);
  return j;
}

}  // namespace gatehouse::control
