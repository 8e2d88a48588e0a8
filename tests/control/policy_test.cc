// Policy parsing and validation: a golden valid policy, and broken policies each asserting the
// exact line:column and message.
#include "control/policy.h"

#include <gtest/gtest.h>

namespace gatehouse::control {
namespace {

const char* kValid = R"({
  // Who is who.
  "groups": {
    "group:eng": ["alice@example.com", "bob@example.com",],
  },
  "tagOwners": {
    "tag:ai": ["autogroup:admin"],
    "tag:pr-review-bot": ["group:eng"],
    "tag:ci": ["tag:pr-review-bot"],
  },
  "hosts": { "printer": "100.64.9.9", "office": "10.1.0.0/16" },
  /* Grants are additive. */
  "grants": [
    {"src": ["group:eng", "tag:pr-review-bot"], "dst": ["tag:ai"], "ip": ["tcp:443", "icmp:*"]},
    {"src": ["group:eng"], "dst": ["tag:ai"],
     "app": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["anthropic/*"]}]}},
    {"src": ["office", "autogroup:member"], "dst": ["printer"], "ip": ["631", "1000-2000"]},
  ],
  "tests": [
    {"src": "alice@example.com", "accept": ["tag:ai:443"], "deny": ["tag:ai:22"]},
    {"src": "carol@example.com", "proto": "udp", "deny": ["tag:ai:443", "[fd7a::9]:53"]},
    {"src": "alice@example.com", "dst": "tag:ai",
     "appCaps": {"gatehouse.dev/cap/gateway": [{"role": "user", "models": ["anthropic/*"]}]},
     "noAppCaps": ["gatehouse.dev/cap/admin"]},
  ],
}
)";

TEST(Policy, ParsesGoldenValidPolicy) {
  auto p = parsePolicy(kValid);
  ASSERT_TRUE(p.ok()) << p.errors()[0].format("valid");
  EXPECT_EQ(p->groups.at("group:eng"),
            (std::vector<std::string>{"alice@example.com", "bob@example.com"}));
  EXPECT_EQ(p->tag_owners.size(), 3u);
  EXPECT_EQ(p->tag_owners.at("tag:ai")[0].kind, Selector::Kind::kAutogroupAdmin);
  EXPECT_EQ(p->hosts.at("office").toString(), "10.1.0.0/16");
  ASSERT_EQ(p->grants.size(), 3u);
  EXPECT_EQ(p->grants[0].pos.line, 14);
  EXPECT_EQ(p->grants[0].pos.column, 5);
  EXPECT_EQ(p->grants[0].src[1].kind, Selector::Kind::kTag);
  EXPECT_EQ(p->grants[0].ip.size(), 2u);
  EXPECT_TRUE(p->grants[1].ip.empty());
  EXPECT_EQ(p->grants[1].app.at("gatehouse.dev/cap/gateway")[0]["role"], "user");
  EXPECT_EQ(p->grants[2].src[0].kind, Selector::Kind::kPrefix);
  EXPECT_EQ(p->grants[2].src[0].prefix.toString(), "10.1.0.0/16");
  EXPECT_EQ(p->grants[2].dst[0].prefix.toString(), "100.64.9.9/32");
  ASSERT_EQ(p->tests.size(), 3u);
  EXPECT_EQ(p->tests[1].proto, kProtoUdp);
  EXPECT_EQ(p->tests[1].deny[1].dst.prefix.toString(), "fd7a::9/128");
  EXPECT_EQ(p->tests[1].deny[1].port, 53);
  EXPECT_EQ(p->tests[0].accept[0].pos.line, 20);
  EXPECT_EQ(p->tests[0].accept[0].pos.column, 45);
  EXPECT_TRUE(p->tests[2].dst.has_value());
  EXPECT_EQ(p->tests[2].no_app_caps, std::vector<std::string>{"gatehouse.dev/cap/admin"});
}

TEST(Policy, EmptyPolicyIsValidAndDeniesEverything) {
  auto p = parsePolicy("{}");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->grants.empty());
}

TEST(Policy, MayApplyTag) {
  auto p = parsePolicy(kValid);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(mayApplyTag(p.value(), "alice@example.com", false, "tag:pr-review-bot"));
  EXPECT_TRUE(mayApplyTag(p.value(), "bob@example.com", false, "tag:ci"));  // via tag owner
  EXPECT_FALSE(mayApplyTag(p.value(), "alice@example.com", false, "tag:ai"));
  EXPECT_TRUE(mayApplyTag(p.value(), "carol@example.com", true, "tag:ai"));
  EXPECT_FALSE(mayApplyTag(p.value(), "carol@example.com", false, "tag:nope"));
}

struct Broken {
  const char* name;
  const char* text;
  std::vector<Diagnostic> want;
};

const Broken kBroken[] = {
    {"unknown top-level key",
     "{\n  \"grant\": []\n}",
     {{2, 3,
       "unknown top-level key \"grant\" (did you mean \"grants\"?); allowed: groups, tagOwners, "
       "hosts, grants, tests"}}},
    {"tailscale-only key",
     "{\"acls\": []}",
     {{1, 2,
       "unsupported top-level key \"acls\": Gatehouse policies have groups, tagOwners, hosts, "
       "grants and tests; rewrite ACL rules as grants"}}},
    {"not an object",
     "[1]",
     {{1, 1, "the policy must be a JSON object, e.g. {\"grants\": [...]}"}}},
    {"unknown group",
     "{\"groups\": {\"group:eng\": [\"a@x\"]},\n"
     " \"grants\": [{\"src\": [\"group:engg\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
     {{2, 22,
       "unknown group \"group:engg\" (did you mean \"group:eng\"?): define it under \"groups\""}}},
    {"tag without owner",
     "{\"grants\": [\n  {\"src\": [\"*\"], \"dst\": [\"tag:ai\"], \"ip\": [\"*\"]}\n]}",
     {{2, 26,
       "tag \"tag:ai\" has no tagOwners entry: add \"tagOwners\": {\"tag:ai\": "
       "[\"autogroup:admin\"]} or fix the name"}}},
    {"malformed port",
     "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"],\n  \"ip\": [\"tcp:80\", \"tcp:8o\"]}]}",
     {{2, 20,
       "malformed ip entry \"tcp:8o\": malformed port \"8o\": ports are numbers 0-65535, ranges "
       "like 1000-2000, lists like 80,443, or *"}}},
    {"grant without ip or app",
     "{\"grants\": [\n   {\"src\": [\"*\"], \"dst\": [\"*\"]}]}",
     {{2, 4,
       "grant has neither \"ip\" nor \"app\", so it grants nothing: add \"ip\": [\"tcp:443\"] "
       "(or [\"*\"]) and/or an \"app\" capability map"}}},
    {"grant without dst",
     "{\"grants\": [{\"src\": [\"*\"], \"ip\": [\"*\"]}]}",
     {{1, 13, "grant has no \"dst\": add \"dst\": [\"...\"] (a grant needs src and dst)"}}},
    {"empty src",
     "{\"grants\": [{\"src\": [], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
     {{1, 21,
       "\"src\" is empty, so the grant matches nothing: add a selector (\"*\" for everyone)"}}},
    {"unknown grant key",
     "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ips\": [\"*\"]}]}",
     {{1, 13,
       "grant has neither \"ip\" nor \"app\", so it grants nothing: add \"ip\": [\"tcp:443\"] "
       "(or [\"*\"]) and/or an \"app\" capability map"},
      {1, 42, "unknown grant key \"ips\" (did you mean \"ip\"?); allowed: src, dst, ip, app"}}},
    {"unknown selector",
     "{\"hosts\": {\"db\": \"10.0.0.5\"},\n"
     " \"grants\": [{\"src\": [\"dbb\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
     {{2, 22,
       "unknown selector \"dbb\" (did you mean \"db\"?): expected a login (name@domain), "
       "group:NAME, tag:NAME, autogroup:member, autogroup:tagged, \"*\", a host from \"hosts\", "
       "or an IP/CIDR"}}},
    {"autogroup:admin in a grant",
     "{\"grants\": [{\"src\": [\"autogroup:admin\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
     {{1, 22,
       "\"autogroup:admin\" cannot be used in a grant: grants accept autogroup:member and "
       "autogroup:tagged, tagOwners accept autogroup:admin"}}},
    {"group member is a group",
     "{\"groups\": {\"group:a\": [\"group:b\", \"bob\"]}}",
     {{1, 25, "group members must be user logins, not \"group:b\": list the logins directly"},
      {1, 36, "group member \"bob\" is not a user login: write it as name@domain"}}},
    {"bad tag name",
     "{\"tagOwners\": {\"ai\": []}}",
     {{1, 16, "tag name \"ai\" must look like \"tag:NAME\" (letters, digits, - _ .)"}}},
    {"bad host",
     "{\"hosts\": {\"db\": \"10.0.0.300\"}}",
     {{1, 18,
       "host \"db\" must map to an IP address or CIDR string, e.g. \"100.64.0.7\" or "
       "\"10.0.0.0/8\""}}},
    {"app not a map",
     "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"app\": [\"x\"]}]}",
     {{1, 49,
       "\"app\" must map capability names to lists of values, e.g. "
       "{\"gatehouse.dev/cap/gateway\": [{\"role\": \"user\"}]}"}}},
    {"cap values not a list",
     "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"app\": {\"a.dev/cap/x\": {}}}]}",
     {{1, 65, "capability \"a.dev/cap/x\" must map to a list of values, e.g. [{...}]"}}},
    {"test target without port",
     "{\"tests\": [{\"src\": \"a@x\", \"accept\": [\"a@x\"]}]}",
     {{1, 38,
       "test destination \"a@x\" must be DESTINATION:PORT, e.g. \"tag:ai:443\" or "
       "\"[fd7a::1]:80\""}}},
    {"test appCaps without dst",
     "{\"tests\": [{\"src\": \"a@x\", \"appCaps\": {\"a.dev/cap/x\": []}}]}",
     {{1, 12,
       "a test with appCaps or noAppCaps needs \"dst\": the node holding the capabilities, e.g. "
       "\"dst\": \"tag:ai\""}}},
    {"test src group",
     "{\"groups\": {\"group:a\": []}, \"tests\": [{\"src\": \"group:a\", \"deny\": "
     "[\"1.2.3.4:1\"]}]}",
     {{1, 47, "a group cannot be used as a test src: name one of its members' logins"}}},
    {"test checks nothing",
     "{\"tests\": [{\"src\": \"a@x\"}]}",
     {{1, 12, "test checks nothing: add \"accept\", \"deny\", \"appCaps\" or \"noAppCaps\""}}},
    {"unknown test key",
     "{\"tests\": [{\"src\": \"a@x\", \"deny\": [], \"acept\": []}]}",
     {{1, 39,
       "unknown test key \"acept\" (did you mean \"accept\"?); allowed: src, proto, accept, deny, "
       "dst, appCaps, noAppCaps"}}},
    {"hujson error passes through",
     "{\n  \"grants\": [ /* oops\n}",
     {{2, 15, "unterminated /* comment: close it with */"}}},
};

TEST(Policy, BrokenPoliciesReportLineColumnAndFix) {
  for (const Broken& b : kBroken) {
    auto p = parsePolicy(b.text);
    ASSERT_FALSE(p.ok()) << b.name;
    EXPECT_EQ(p.errors().size(), b.want.size()) << b.name;
    for (size_t i = 0; i < std::min(p.errors().size(), b.want.size()); ++i) {
      EXPECT_EQ(p.errors()[i].line, b.want[i].line) << b.name;
      EXPECT_EQ(p.errors()[i].column, b.want[i].column) << b.name;
      EXPECT_EQ(p.errors()[i].message, b.want[i].message) << b.name;
    }
  }
}

TEST(Policy, ReportsEveryErrorSortedByPosition) {
  auto p = parsePolicy(
      "{\n"
      "  \"grants\": [\n"
      "    {\"src\": [\"group:x\"], \"dst\": [\"tag:y\"], \"ip\": [\"tcp:0-99999\"]},\n"
      "  ],\n"
      "  \"bogus\": 1,\n"
      "}\n");
  ASSERT_FALSE(p.ok());
  ASSERT_EQ(p.errors().size(), 4u);
  EXPECT_EQ(p.errors()[0].format("f"),
            "f:3:14: unknown group \"group:x\": define it under \"groups\"");
  EXPECT_EQ(p.errors()[1].column, 34);
  EXPECT_EQ(p.errors()[2].column, 51);
  EXPECT_EQ(p.errors()[3].line, 5);
}

TEST(Policy, ClosestName) {
  EXPECT_EQ(closestName("grnats", {"groups", "grants"}), "grants");
  EXPECT_EQ(closestName("zzzzzz", {"groups", "grants"}), "");
}

}  // namespace
}  // namespace gatehouse::control
