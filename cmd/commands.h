// Subcommand registration. Each registerX adds a subcommand whose callback runs the command and
// stores its exit status for exitCode().
#pragma once

#include <CLI/CLI.hpp>

namespace gatehouse::cmd {

void registerWireguard(CLI::App& app);
void registerAdmin(CLI::App& app);
void registerBridge(CLI::App& app);
void registerControl(CLI::App& app);
void registerUp(CLI::App& app);
void registerGateway(CLI::App& app);
void registerMockProvider(CLI::App& app);
void registerDev(CLI::App& app);
// `status`, `whois`, `ping` (cmd/node_cli.cc).
void registerNodeCli(CLI::App& app);
// `admin users|keys|nodes|status` and `admin policy set|get|reload` (cmd/admin_server.cc).
void registerAdminServerCommands(CLI::App* admin, CLI::App* policy);
// `admin tools`: the gateway's tool-call records (cmd/admin_tools.cc; registered by
// registerGatewayAdminCommands with the other gateway admin commands).
void registerAdminTools(CLI::App* admin);

void setExitCode(int code);
int exitCode();

}  // namespace gatehouse::cmd
