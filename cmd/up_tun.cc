#include "cmd/up_tun.h"

#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace gatehouse::cmd {

Status prepareTunMode(const std::string& ifname, int mtu, bool netstack_flags,
                      const std::function<void(const std::string&)>& say, control::JoinOptions* o) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ ||
      ifname.find_first_of("/ \t\n:") != std::string::npos) {
    return Status(EINVAL, "--tun '" + ifname + "': want an interface name of 1 to " +
                              std::to_string(IFNAMSIZ - 1) +
                              " characters without '/', ':' or spaces");
  }
  if (mtu < 1280 || mtu > 65535) {
    return Status(EINVAL, "--mtu " + std::to_string(mtu) + ": want 1280..65535 (IPv6 needs 1280)");
  }
  if (netstack_flags) {
    return Status(EINVAL,
                  "--serve and --forward are netstack-mode features: with --tun every program on "
                  "this machine reaches the mesh through " +
                      ifname + ", so connect to the peers' addresses directly");
  }
  if (geteuid() != 0) {
    return Status(EPERM, "--tun needs root: it creates the interface " + ifname +
                             " and sets its addresses and routes. Run it as root, or drop --tun "
                             "for netstack mode (no root, no interface)");
  }
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    return Status(ENODEV,
                  "--tun: /dev/net/tun is missing or not usable: load the tun module (modprobe "
                  "tun), or in a container pass the device (--device /dev/net/tun --cap-add "
                  "NET_ADMIN); netstack mode (no --tun) needs neither");
  }
  o->tun_ifname = ifname;
  o->tun_mtu = mtu;
  o->on_interface_gone = [say](const std::string& reason) {
    say(reason + ": leaving the mesh");
    kill(getpid(), SIGTERM);
  };
  return Status::ok();
}

}  // namespace gatehouse::cmd
