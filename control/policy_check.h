// Runs a policy's `tests` against the policy itself, offline (`gatehouse admin policy check`).
//
// Each identity a test names (a login, a tag, an address) becomes one synthetic node: a login is
// an untagged node owned by that user, a tag a node carrying only that tag, an address a node
// with only that address and no owner. The policy is compiled for those nodes exactly as the
// server would (compile.h), then each accept/deny target is evaluated in the destination node's
// packet filter, and appCaps/noAppCaps against the destination's capability map for the source.
//
// Pure function; failures are Diagnostics at the failing entry's line:column whose message names
// the test (1-based), the source, what was expected and which grant (or none) decided it.
#pragma once

#include <vector>

#include "control/diagnostic.h"
#include "control/policy.h"

namespace gatehouse::control {

struct PolicyTestReport {
  int tests = 0;   // test entries run
  int checks = 0;  // accept + deny targets + appCaps entries + noAppCaps entries
  std::vector<Diagnostic> failures;
};

PolicyTestReport runPolicyTests(const Policy& policy);

}  // namespace gatehouse::control
