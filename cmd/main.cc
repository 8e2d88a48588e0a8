// gatehouse: one binary, one subcommand per role. Each subcommand lives in its own file and
// registers itself through cmd/commands.h.
#include <CLI/CLI.hpp>

#include "cmd/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"gatehouse: the network is the sandbox for AI agents"};
  app.require_subcommand(1);
  gatehouse::cmd::registerWireguard(app);
  gatehouse::cmd::registerAdmin(app);
  gatehouse::cmd::registerBridge(app);
  gatehouse::cmd::registerControl(app);
  gatehouse::cmd::registerUp(app);
  gatehouse::cmd::registerGateway(app);
  gatehouse::cmd::registerMockProvider(app);
  gatehouse::cmd::registerDev(app);
  gatehouse::cmd::registerNodeCli(app);
  CLI11_PARSE(app, argc, argv);
  return gatehouse::cmd::exitCode();
}
