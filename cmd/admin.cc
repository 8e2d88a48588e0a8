// `gatehouse admin …`: operator commands. `admin policy check FILE` parses and validates a
// policy file and runs its `tests` offline, with no server; the commands that talk to a running
// server are in cmd/admin_server.cc. Problems go to stderr as
// FILE:LINE:COL: message; exit 0 when the file is valid and every test passes, 1 otherwise.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "cmd/commands.h"
#include "cmd/gateway_admin.h"
#include "control/policy.h"
#include "control/policy_check.h"

namespace gatehouse::cmd {
namespace {

int policyCheck(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << path << ": cannot read the policy file\n";
    return 1;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  auto policy = control::parsePolicy(buf.str());
  if (!policy) {
    for (const auto& d : policy.errors()) std::cerr << d.format(path) << "\n";
    std::cerr << path << ": " << policy.errors().size() << " error"
              << (policy.errors().size() == 1 ? "" : "s") << "\n";
    return 1;
  }
  control::PolicyTestReport report = control::runPolicyTests(policy.value());
  for (const auto& d : report.failures) std::cerr << d.format(path) << "\n";
  if (!report.failures.empty()) {
    std::cerr << path << ": " << report.failures.size() << " of " << report.checks
              << " test checks failed\n";
    return 1;
  }
  std::cout << path << ": ok: " << policy->grants.size() << " grants, " << report.tests
            << " tests (" << report.checks << " checks) passed\n";
  return 0;
}

}  // namespace

void registerAdmin(CLI::App& app) {
  CLI::App* admin = app.add_subcommand(
      "admin", "administer users, keys, nodes and the policy; read the gateway's logs and usage");
  admin->require_subcommand(1);
  CLI::App* policy = admin->add_subcommand("policy", "policy file commands");
  policy->require_subcommand(1);
  CLI::App* check = policy->add_subcommand(
      "check", "validate a policy file and run its tests offline (exit 0 ok, 1 problems)");
  auto file = std::make_shared<std::string>();
  check->add_option("FILE", *file, "policy file (HuJSON)")->required();
  check->callback([file] { setExitCode(policyCheck(*file)); });
  registerAdminServerCommands(admin, policy);
  registerGatewayAdminCommands(admin);
}

}  // namespace gatehouse::cmd
