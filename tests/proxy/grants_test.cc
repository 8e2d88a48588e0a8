// Grant evaluation: who a grant names (users, groups, tags, "*", autogroups), deny by default,
// the reason strings, roles, grants arriving as the gatehouse.dev/cap/ai capability (fail
// closed on malformed values), and the model lists for GET /v1/models.
#include "proxy/config/grants.h"

#include <gtest/gtest.h>

namespace gatehouse::proxy {
namespace {

wg::Identity user(std::string login, std::vector<std::string> groups = {}) {
  wg::Identity id;
  id.name = "laptop";
  id.user_login = std::move(login);
  id.groups = std::move(groups);
  return id;
}

// A tagged node keeps the login of whoever registered it; it must not count.
wg::Identity tagged(std::vector<std::string> tags) {
  wg::Identity id = user("alice@example.com", {"group:eng"});
  id.name = "ci-runner";
  id.tags = std::move(tags);
  return id;
}

Grant grant(std::vector<std::string> src, std::vector<std::string> models, Role role,
            std::string origin) {
  Grant g;
  g.src = std::move(src);
  g.models = std::move(models);
  g.role = role;
  g.origin = std::move(origin);
  return g;
}

GrantSet sample() {
  return GrantSet({
      grant({"group:eng"}, {"anthropic/claude-*"}, Role::kUser, "gw.hujson:10:5"),
      grant({"tag:pr-review-bot"}, {"anthropic/claude-haiku-*"}, Role::kUser, "gw.hujson:11:5"),
      grant({"carol@example.com"}, {}, Role::kAdmin, "gw.hujson:12:5"),
      grant({"dave@example.com", "tag:ops"}, {"*"}, Role::kUser, "gw.hujson:13:5"),
  });
}

TEST(Grants, UserAndGroups) {
  GrantSet g = sample();
  wg::Identity alice = user("alice@example.com", {"group:eng"});
  Decision d = g.checkModel(alice, "anthropic", "claude-sonnet-4-5");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.role, Role::kUser);
  EXPECT_EQ(d.grant, "gw.hujson:10:5");
  EXPECT_EQ(d.reason,
            "alice@example.com (group:eng) may use \"anthropic/claude-sonnet-4-5\" (grant "
            "gw.hujson:10:5)");

  d = g.checkModel(alice, "openai", "gpt-5");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.grant, "");
  EXPECT_EQ(d.reason, "alice@example.com (group:eng) has no grant for model \"openai/gpt-5\"");

  wg::Identity bob = user("bob@example.com");
  d = g.checkModel(bob, "anthropic", "claude-sonnet-4-5");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.role, Role::kNone);
  EXPECT_EQ(d.reason, "bob@example.com has no grant for model \"anthropic/claude-sonnet-4-5\"");

  EXPECT_TRUE(g.allows(user("dave@example.com"), "openai", "gpt-5"));
}

TEST(Grants, TaggedNodesAreTheirTags) {
  GrantSet g = sample();
  wg::Identity bot = tagged({"tag:pr-review-bot"});
  // The owner's group:eng grant (claude-*) does not reach the tagged node.
  Decision d = g.checkModel(bot, "anthropic", "claude-sonnet-4-5");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "tag:pr-review-bot has no grant for model \"anthropic/claude-sonnet-4-5\"");
  EXPECT_TRUE(g.allows(bot, "anthropic", "claude-haiku-4-5"));
  EXPECT_TRUE(g.allows(tagged({"tag:ci", "tag:ops"}), "openai", "o3"));
  EXPECT_EQ(describeIdentity(tagged({"tag:a", "tag:b"})), "tag:a, tag:b");
}

TEST(Grants, SelectorsMatchOnlyWhatTheyName) {
  wg::Identity alice = user("alice@example.com", {"group:eng"});
  wg::Identity bot = tagged({"tag:ci"});
  wg::Identity anonymous;
  anonymous.name = "static-peer";
  EXPECT_TRUE(srcMatches("*", alice));
  EXPECT_TRUE(srcMatches("*", bot));
  EXPECT_TRUE(srcMatches("*", anonymous));
  EXPECT_TRUE(srcMatches("alice@example.com", alice));
  EXPECT_FALSE(srcMatches("alice@example.com", bot));
  EXPECT_FALSE(srcMatches("group:eng", bot));
  EXPECT_TRUE(srcMatches("group:eng", alice));
  EXPECT_FALSE(srcMatches("group:ops", alice));
  EXPECT_TRUE(srcMatches("tag:ci", bot));
  EXPECT_FALSE(srcMatches("tag:ci", alice));
  EXPECT_TRUE(srcMatches("autogroup:member", alice));
  EXPECT_FALSE(srcMatches("autogroup:member", bot));
  EXPECT_FALSE(srcMatches("autogroup:member", anonymous));
  EXPECT_TRUE(srcMatches("autogroup:tagged", bot));
  EXPECT_FALSE(srcMatches("autogroup:tagged", alice));
  EXPECT_FALSE(srcMatches("", anonymous));  // an empty login never matches an empty src
  EXPECT_EQ(describeIdentity(anonymous), "node \"static-peer\" (no user or tags)");
}

TEST(Grants, DenyByDefault) {
  GrantSet empty;
  Decision d = empty.checkModel(user("root@example.com"), "anthropic", "claude-x");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.role, Role::kNone);
  EXPECT_FALSE(empty.checkAdmin(user("root@example.com")).allowed);
}

TEST(Grants, Roles) {
  GrantSet g = sample();
  Decision admin = g.checkAdmin(user("carol@example.com"));
  EXPECT_TRUE(admin.allowed);
  EXPECT_EQ(admin.role, Role::kAdmin);
  EXPECT_EQ(admin.reason, "carol@example.com is an admin (grant gw.hujson:12:5)");
  // An admin grant without models allows the admin API, not model calls.
  Decision model = g.checkModel(user("carol@example.com"), "anthropic", "claude-x");
  EXPECT_FALSE(model.allowed);
  EXPECT_EQ(model.role, Role::kAdmin);

  Decision not_admin = g.checkAdmin(user("alice@example.com", {"group:eng"}));
  EXPECT_FALSE(not_admin.allowed);
  EXPECT_EQ(not_admin.reason,
            "alice@example.com (group:eng) has role user; the admin API needs a grant with "
            "\"role\": \"admin\"");
  EXPECT_EQ(g.role(user("nobody@example.com")), Role::kNone);
  EXPECT_EQ(roleName(g.role(user("alice@example.com", {"group:eng"}))), "user");
}

TEST(Grants, CapabilityGrantsApplyToThePeerHoldingThem) {
  GrantSet g = sample();
  wg::Identity bob = user("bob@example.com");
  bob.capabilities[std::string(kAiCapability)] = {
      R"({"models": ["openai/*"], "role": "user"})",
      R"({"role": "admin"})",
  };
  bob.capabilities["example.com/cap/other"] = {R"({"models": ["*"]})"};
  Decision d = g.checkModel(bob, "openai", "gpt-5");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.grant, "capability gatehouse.dev/cap/ai[0]");
  EXPECT_EQ(d.role, Role::kAdmin);
  EXPECT_FALSE(g.allows(bob, "anthropic", "claude-x"));  // the other capability is not ours
  EXPECT_TRUE(g.checkAdmin(bob).allowed);
  EXPECT_EQ(g.checkAdmin(bob).grant, "capability gatehouse.dev/cap/ai[1]");
}

TEST(Grants, MalformedCapabilityValuesFailClosed) {
  wg::Identity bob = user("bob@example.com");
  bob.capabilities[std::string(kAiCapability)] = {
      R"({"models": ["openai/*"], "quota": "daily"})",  // an unknown field might restrict
      R"(not json)",
      R"({"models": "openai/*"})",
      R"({"src": ["*"], "models": ["openai/*"]})",
      R"({"models": ["gpt-4o"]})",
  };
  CapabilityGrants caps = grantsFromCapabilities(bob);
  EXPECT_TRUE(caps.grants.empty());
  ASSERT_EQ(caps.problems.size(), 5u);
  EXPECT_EQ(caps.problems[0],
            "ignored gatehouse.dev/cap/ai value 0: /quota: unknown grant key \"quota\"; allowed: "
            "models, role");
  EXPECT_EQ(caps.problems[1], "ignored gatehouse.dev/cap/ai value 1: not valid JSON");
  EXPECT_NE(caps.problems[2].find("\"models\" must be a list of strings"), std::string::npos);
  EXPECT_NE(caps.problems[3].find("a capability applies to the peer holding it, so it has no src"),
            std::string::npos);
  EXPECT_NE(caps.problems[4].find("must name the provider"), std::string::npos);

  Decision d = GrantSet().checkModel(bob, "openai", "gpt-4o");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason,
            "bob@example.com has no grant for model \"openai/gpt-4o\" (ignored "
            "gatehouse.dev/cap/ai value 0: /quota: unknown grant key \"quota\"; allowed: "
            "models, role)");
}

TEST(Grants, ParseCapabilityValue) {
  auto g = parseCapabilityValue(R"({"models": ["anthropic/*", "openai/gpt-4o"]})");
  ASSERT_TRUE(g.isOk()) << g.status().message();
  EXPECT_EQ(g->role, Role::kUser);
  EXPECT_EQ(g->models.size(), 2u);
  EXPECT_TRUE(g->src.empty());
  EXPECT_EQ(g->origin, "capability gatehouse.dev/cap/ai");
  auto bad = parseCapabilityValue(R"({"role": "superuser", "models": ["*"]})");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message(), "/role: role must be \"user\" or \"admin\"");
  EXPECT_FALSE(parseCapabilityValue("[]").isOk());
  EXPECT_FALSE(parseCapabilityValue(R"({"role": "user"})").isOk());  // allows nothing
}

TEST(Grants, GrantedModelsForTheModelList) {
  std::vector<ProviderConfig> providers(2);
  providers[0].id = "anthropic";
  providers[0].models = {"claude-*", "claude-sonnet-4-5"};
  providers[1].id = "openai";
  providers[1].models = {"gpt-4o", "o3", "gpt-*"};
  GrantSet g({
      grant({"*"}, {"openai/gpt-*", "anthropic/claude-opus-4-5", "anthropic/claude-haiku-*"},
            Role::kUser, "a"),
      grant({"group:eng"}, {"anthropic/*"}, Role::kUser, "b"),
  });
  EXPECT_EQ(g.grantedModels(user("x@example.com"), providers),
            (std::vector<std::string>{"anthropic/claude-opus-4-5", "openai/gpt-4o"}));
  EXPECT_EQ(g.grantedModels(user("y@example.com", {"group:eng"}), providers),
            (std::vector<std::string>{"anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-5",
                                      "openai/gpt-4o"}));
  EXPECT_TRUE(GrantSet().grantedModels(user("x@example.com"), providers).empty());

  EXPECT_EQ(g.filterModels(user("x@example.com"), "anthropic",
                           {"claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"}),
            (std::vector<std::string>{"claude-haiku-4-5", "claude-opus-4-5"}));
}

TEST(Grants, FromTheConfigFile) {
  auto cfg = parseGatewayConfig(R"({
  "providers": {"anthropic": {"kind": "anthropic", "key": "env:K", "models": ["claude-*"]}},
  "grants": [
    {"src": ["group:eng"], "models": ["anthropic/claude-*"]},
    {"src": ["tag:pr-review-bot"], "models": ["anthropic/claude-haiku-*"], "role": "user"},
    {"src": ["alice@example.com"], "role": "admin"},
  ],
})",
                                LoadOptions{"gw.hujson", "", nullptr, false});
  ASSERT_TRUE(cfg.isOk()) << cfg.status().message();
  GrantSet g(cfg.value());
  Decision d = g.checkModel(user("bob@example.com", {"group:eng"}), "anthropic", "claude-x");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.grant, "gw.hujson:4:5");
  EXPECT_TRUE(g.checkAdmin(user("alice@example.com")).allowed);
  EXPECT_EQ(g.checkAdmin(user("alice@example.com")).grant, "gw.hujson:6:5");
}

}  // namespace
}  // namespace gatehouse::proxy
