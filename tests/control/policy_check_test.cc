// Policy `tests` evaluation: passing tests, and each kind of failure with its exact message.
#include "control/policy_check.h"

#include <gtest/gtest.h>

namespace gatehouse::control {
namespace {

PolicyTestReport check(const char* text) {
  auto p = parsePolicy(text);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.errors()[0].format("policy"));
  return p.ok() ? runPolicyTests(p.value()) : PolicyTestReport{};
}

const char* kPolicyHead = R"({
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:ai": ["autogroup:admin"], "tag:db": ["autogroup:admin"]},
  "hosts": {"printer": "100.100.1.1"},
  "grants": [
    {"src": ["group:eng"], "dst": ["tag:ai"], "ip": ["tcp:80"]},
    {"src": ["*"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
    {"src": ["group:eng"], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/gateway": [{"role": "user"}, {"models": ["anthropic/*"]}]}},
    {"src": ["alice@example.com"], "dst": ["printer"], "ip": ["631", "icmp:*"]},
  ],
)";

std::string withTests(const char* tests) {
  return std::string(kPolicyHead) + "  \"tests\": [\n" + tests + "  ],\n}\n";
}

TEST(PolicyCheck, PassingTests) {
  auto r = check(withTests(R"(
    {"src": "alice@example.com", "accept": ["tag:ai:80", "tag:db:5432", "printer:631"],
     "deny": ["tag:ai:443"]},
    {"src": "alice@example.com", "proto": "udp", "accept": ["printer:631"], "deny": ["tag:ai:80"]},
    {"src": "alice@example.com", "proto": "icmp", "accept": ["100.100.1.1:0"]},
    {"src": "bob@example.com", "accept": ["tag:db:5432"], "deny": ["tag:ai:80", "printer:631"]},
    {"src": "tag:ai", "accept": ["tag:db:5432"], "deny": ["alice@example.com:22"]},
    {"src": "alice@example.com", "dst": "tag:ai",
     "appCaps": {"gatehouse.dev/cap/gateway": [{"models": ["anthropic/*"]}, {"role": "user"}]},
     "noAppCaps": ["gatehouse.dev/cap/admin"]},
    {"src": "bob@example.com", "dst": "tag:ai", "noAppCaps": ["gatehouse.dev/cap/gateway"]},
)")
                     .c_str());
  EXPECT_EQ(r.tests, 7);
  EXPECT_EQ(r.checks, 15);
  for (const auto& f : r.failures) ADD_FAILURE() << f.format("policy");
}

TEST(PolicyCheck, AcceptFailureNamesWhatIsMissing) {
  auto r = check(withTests(R"(
    {"src": "alice@example.com", "accept": ["tag:ai:443"]},
    {"src": "bob@example.com", "accept": ["tag:ai:80"]},
)")
                     .c_str());
  ASSERT_EQ(r.failures.size(), 2u);
  EXPECT_EQ(r.failures[0].format("p"),
            "p:14:45: test 1 (src alice@example.com): expected accept tag:ai:443, but no grant "
            "allows tcp/443 from alice@example.com to tag:ai (grant 1 (line 6) connects them on "
            "other ports); add a grant or fix the test");
  EXPECT_EQ(r.failures[1].format("p"),
            "p:15:43: test 2 (src bob@example.com): expected accept tag:ai:80, but no grant "
            "allows tcp/80 from bob@example.com to tag:ai; add a grant or fix the test");
}

TEST(PolicyCheck, DenyFailureNamesTheGrant) {
  auto r = check(withTests(R"(
    {"src": "bob@example.com", "deny": ["tag:db:5432"]},
)")
                     .c_str());
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].format("p"),
            "p:14:41: test 1 (src bob@example.com): expected deny tag:db:5432, but grant 2 "
            "(line 7) allows tcp/5432 from bob@example.com to tag:db");
}

TEST(PolicyCheck, AppCapsFailures) {
  auto r = check(withTests(R"(
    {"src": "alice@example.com", "dst": "tag:ai",
     "appCaps": {"gatehouse.dev/cap/gateway": [{"role": "admin"}]}},
    {"src": "bob@example.com", "dst": "tag:ai",
     "appCaps": {"gatehouse.dev/cap/gateway": [{"role": "user"}]}},
    {"src": "alice@example.com", "dst": "tag:ai", "noAppCaps": ["gatehouse.dev/cap/gateway"]},
)")
                     .c_str());
  ASSERT_EQ(r.failures.size(), 3u);
  EXPECT_EQ(r.failures[0].format("p"),
            "p:14:5: test 1 (src alice@example.com): expected appCaps "
            "\"gatehouse.dev/cap/gateway\" on tag:ai = [{\"role\":\"admin\"}], but the grants "
            "give [{\"role\":\"user\"},{\"models\":[\"anthropic/*\"]}]");
  EXPECT_EQ(r.failures[1].format("p"),
            "p:16:5: test 2 (src bob@example.com): expected appCaps "
            "\"gatehouse.dev/cap/gateway\" on tag:ai = [{\"role\":\"user\"}], but no grant gives "
            "bob@example.com this capability on tag:ai");
  EXPECT_EQ(
      r.failures[2].format("p"),
      "p:18:5: test 3 (src alice@example.com): expected no \"gatehouse.dev/cap/gateway\" on "
      "tag:ai, but grant 3 (line 8) gives [{\"role\":\"user\"},{\"models\":[\"anthropic/*\"]}]");
}

TEST(PolicyCheck, SyntheticAddressesAvoidLiterals) {
  // alice's synthetic node would be 100.64.0.1; the test names that address as a separate,
  // ownerless node, which the grant to alice must not cover.
  auto r = check(R"({
    "grants": [{"src": ["*"], "dst": ["alice@example.com"], "ip": ["tcp:22"]}],
    "tests": [{"src": "100.64.0.9", "accept": ["alice@example.com:22"], "deny": ["100.64.0.1:22"]}]
  })");
  EXPECT_EQ(r.checks, 2);
  for (const auto& f : r.failures) ADD_FAILURE() << f.format("policy");
}

}  // namespace
}  // namespace gatehouse::control
