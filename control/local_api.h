// The local API of a running node: `gatehouse status`, `gatehouse whois ADDR` and `gatehouse
// ping HOST` talk to the `gatehouse up` (or `gatehouse gateway`) process through a Unix socket
// in its state directory (STATE_DIR/gatehouse.sock, mode 0600: root or the node's owner only).
//
// Wire format (version 1): the client writes one JSON object and a newline, the server answers
// one JSON object and closes. Requests:
//   {"cmd":"status"}
//   {"cmd":"whois","addr":"100.64.0.2"}
//   {"cmd":"ping","host":"ai","count":3,"timeout_ms":2000}
// Every answer has "ok": true, or "ok": false and "error": "<message>". A status answer has
// "self", "control", "peers" and "data_plane" ({"mode": "netstack"|"tun", "interface",
// "listen_port", "filter_denied": inbound packets the map's filter dropped, "drops"}). In TUN mode
// ping is a kernel ICMP echo through the interface; in netstack mode it leaves the netstack.
//
// Threads: LocalApiServer runs one accept thread and serves connections one at a time (a ping
// holds it for at most count × timeout, both capped); the JoinedNode must outlive it.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "control/joined_node.h"
#include "wg/status.h"

namespace gatehouse::control {

class LocalApiServer {
 public:
  explicit LocalApiServer(JoinedNode& node) : node_(node) {}
  ~LocalApiServer() { stop(); }
  Status start(const std::string& socket_path);
  void stop();

  // The answer to one request (also used by tests without a socket).
  nlohmann::json handle(const nlohmann::json& request);

 private:
  void serve();
  JoinedNode& node_;
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Client side: sends `request` to the socket and returns the answer, or an error Status that
// names the socket and what to check ("is `gatehouse up` running?").
Result<nlohmann::json> localApiCall(const std::string& socket_path, const nlohmann::json& request,
                                    int timeout_ms = 60000);

// Identity as JSON (whois answers; the gateway's logs use the same field names).
nlohmann::json identityToJson(const wg::Identity& id);

}  // namespace gatehouse::control
