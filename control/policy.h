// The policy file model (control/POLICY.md is the spec): groups, tagOwners, hosts, grants and
// tests, parsed from HuJSON and validated with every problem reported at its line:column.
//
// parsePolicy is a pure function: text in, a validated Policy or diagnostics out. A Policy is an
// immutable value once parsed; share it across threads freely. Host aliases are resolved to
// prefixes at parse time; group and tag references are checked to exist, so later stages
// (compile.h, policy_check.h) never meet an undefined name.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/diagnostic.h"
#include "control/filter.h"
#include "control/hujson.h"
#include "wg/net/addr.h"

namespace gatehouse::control {

// Policy file format version described by control/POLICY.md.
inline constexpr int kPolicyFormatVersion = 1;

// Who a src/dst entry names.
struct Selector {
  enum class Kind : uint8_t {
    kAll,              // "*": every node (and, as a source, every address)
    kUser,             // "alice@example.com": nodes owned by that user (not tagged)
    kGroup,            // "group:eng": nodes owned by any member
    kTag,              // "tag:ai": nodes carrying the tag
    kAutogroupMember,  // every user-owned node
    kAutogroupTagged,  // every tagged node
    kAutogroupAdmin,   // tagOwners only: an admin of the tailnet
    kPrefix,           // an IP, a CIDR, or a host alias resolved to one
  };
  Kind kind = Kind::kAll;
  std::string name;  // login, "group:x", "tag:x", or the host alias
  wg::IpPrefix prefix;
  std::string text;  // as written in the file
  SourcePos pos;
};

struct Grant {
  std::vector<Selector> src;
  std::vector<Selector> dst;
  std::vector<IpSpec> ip;                                  // empty when the grant has only app
  std::map<std::string, std::vector<nlohmann::json>> app;  // capability name → values
  SourcePos pos;
};

// One `tests` entry (POLICY.md "tests").
struct PolicyTest {
  struct Target {
    Selector dst;
    uint16_t port = 0;
    std::string text;  // "tag:ai:443"
    SourcePos pos;
  };
  Selector src;
  uint8_t proto = kProtoTcp;
  std::vector<Target> accept;
  std::vector<Target> deny;
  std::optional<Selector> dst;  // required with appCaps / noAppCaps
  std::map<std::string, std::vector<nlohmann::json>> app_caps;
  std::vector<std::string> no_app_caps;
  SourcePos pos;
};

struct Policy {
  std::map<std::string, std::vector<std::string>> groups;   // "group:x" → logins
  std::map<std::string, std::vector<Selector>> tag_owners;  // "tag:x" → owners
  std::map<std::string, wg::IpPrefix> hosts;                // alias → prefix
  std::vector<Grant> grants;
  std::vector<PolicyTest> tests;
};

// Parses and validates. Diagnostics are sorted by position.
Result<Policy> parsePolicy(std::string_view text);

// Whether `login` (an admin when `is_admin`) may apply `tag` to a node, per tagOwners; tags owned
// by a tag are owned by that tag's owners.
bool mayApplyTag(const Policy& policy, std::string_view login, bool is_admin, std::string_view tag);

// Edit distance ≤ 2 suggestion from `candidates`, or "" (used for "did you mean").
std::string closestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace gatehouse::control
