// Forwarding between the host and the mesh, shared by `gatehouse bridge` and `gatehouse up`:
// local listener → mesh dial (startForward), mesh listener → local connect or the built-in
// whoami answer (startReverse). Accept threads are detached and live until the process exits.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "wg/node.h"

namespace gatehouse::cmd {

using SayFn = std::function<void(const std::string&)>;

// A base64 key file (mode 0600 or stricter).
Status readKeyFile(const std::string& path, wg::Key32* out);
// The built-in "whoami" target: one HTTP/1.x response naming the caller (whoIs): a first line
// "peer=KEY name=NAME addr=ADDR", then, for control-plane identities, the identity as JSON.
void serveWhoami(wg::Node& node, std::shared_ptr<wg::TcpConn> c);
// Accepts on a local `listen` address and dials `to` ("ip:port" or "name:port") in the mesh.
Status startForward(wg::Node& node, const wg::Endpoint& listen, const std::string& to, SayFn say);
// Accepts on the node's `port` in the mesh and connects to the local `to` ("ip:port"), or
// answers with whoami. Call from any thread but the node's loop.
Status startReverse(wg::Node& node, const wg::Endpoint& listen, const std::string& to);
// Blocks SIGINT and SIGTERM in this thread (and threads it starts later), ignores SIGPIPE, and
// returns the set for sigwait().
sigset_t blockTermSignals();

}  // namespace gatehouse::cmd
