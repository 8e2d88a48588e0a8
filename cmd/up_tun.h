// `gatehouse up --tun IFNAME`: what TUN mode adds to `gatehouse up` (cmd/up.cc). The join, the
// state directory and the local API are the same as in netstack mode; the data plane is a kernel
// interface (control/tun_plane.h), which needs root and /dev/net/tun, so both are checked before
// anything registers with the control server, with a message that says what to do instead.
#pragma once

#include <functional>
#include <string>

#include "control/joined_node.h"
#include "wg/status.h"

namespace gatehouse::cmd {

// Checks the environment and the flags for TUN mode and sets the TUN fields of `o`. EPERM (not
// root), ENODEV (no /dev/net/tun) or EINVAL (a bad name, or netstack-only flags) on failure.
// When the interface later goes away by itself, `say` reports it and the process gets SIGTERM
// (the way `gatehouse up` waits for its end).
Status prepareTunMode(const std::string& ifname, int mtu, bool netstack_flags,
                      const std::function<void(const std::string&)>& say, control::JoinOptions* o);

}  // namespace gatehouse::cmd
