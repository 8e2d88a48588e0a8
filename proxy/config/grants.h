// Grant evaluation: may this caller use this model, and does it hold the admin role?
//
// Grants come from two places (CONFIG.md "Grants"):
//   - the gateway config's "grants" list, each with a `src` naming who it applies to;
//   - the app capability kAiCapability that the control policy grants to a peer on the gateway
//     node (wg::Identity::capabilities), each value a grant without `src` that applies to the
//     peer holding it.
// Deny by default; grants only allow, and a caller's access is the union of its grants. A caller
// is matched by what it is: a tagged node by its tags only (its owner's login and groups do not
// count), a user's node by the login and the groups.
//
// Everything here is sans-I/O: identities and names in, decisions out. A GrantSet is immutable
// after construction; its const methods may be called from any thread concurrently.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/gateway_config.h"
#include "wg/node.h"

namespace gatehouse::proxy {

// The app capability carrying gateway grants in the control policy; each value is a JSON object
// {"models": [...], "role": "user"|"admin"}.
inline constexpr std::string_view kAiCapability = "gatehouse.dev/cap/ai";

// The outcome of one check, with a reason fit for the client and for the log.
struct Decision {
  bool allowed = false;
  Role role = Role::kNone;  // the caller's highest role over all its grants
  std::string grant;        // origin of the grant that allowed it ("" when denied)
  // Allowed: `alice@example.com (group:eng) may use "anthropic/claude-x" (grant gw.hujson:9:5)`.
  // Denied:  `alice@example.com (group:eng) has no grant for model "openai/gpt-5"`.
  std::string reason;
};

class GrantSet {
 public:
  GrantSet() = default;
  explicit GrantSet(std::vector<Grant> grants) : grants_(std::move(grants)) {}
  explicit GrantSet(const GatewayConfig& config) : grants_(config.grants) {}

  // May `who` call `model` at provider `provider_id`? Grant patterns match "provider/model".
  Decision checkModel(const wg::Identity& who, std::string_view provider_id,
                      std::string_view model) const;
  bool allows(const wg::Identity& who, std::string_view provider_id, std::string_view model) const;
  // Does `who` hold the admin role (needed for /api/...)?
  Decision checkAdmin(const wg::Identity& who) const;
  Role role(const wg::Identity& who) const;

  // "provider/model" names `who` may use, for GET /v1/models: every literal (glob-free) model a
  // provider lists, plus every literal grant pattern a provider serves. Config order, no repeats.
  std::vector<std::string> grantedModels(const wg::Identity& who,
                                         const std::vector<ProviderConfig>& providers) const;
  // The subset of `models` (names at `provider_id`, e.g. from the upstream's model list) that
  // `who` may use, order kept.
  std::vector<std::string> filterModels(const wg::Identity& who, std::string_view provider_id,
                                        const std::vector<std::string>& models) const;

  const std::vector<Grant>& grants() const { return grants_; }

 private:
  // Config grants whose src names `who`, then its capability grants (parsed into `storage`).
  std::vector<const Grant*> applicable(const wg::Identity& who, std::vector<Grant>& storage,
                                       std::vector<std::string>* problems) const;
  std::vector<Grant> grants_;
};

// Whether one `src` entry names `who` (see the header comment for tagged vs user nodes).
bool srcMatches(std::string_view src, const wg::Identity& who);

// "alice@example.com (group:eng, group:ops)", "tag:ci, tag:pr-review-bot", or for a peer the
// control plane knows nothing about, `node "laptop" (no user or tags)`.
std::string describeIdentity(const wg::Identity& who);

// Grants carried by `who`'s kAiCapability values, and one problem line per value that was
// ignored because it is malformed (fail closed: a value that cannot be fully understood grants
// nothing).
struct CapabilityGrants {
  std::vector<Grant> grants;
  std::vector<std::string> problems;
};
CapabilityGrants grantsFromCapabilities(const wg::Identity& who);

// Parses one capability value (JSON text) into a Grant, e.g. for `gatehouse admin` to check a
// policy before applying it. EINVAL with the reason on failure.
Result<Grant> parseCapabilityValue(std::string_view json_text);

// The shared field parser behind config grants and capability values. Reports each problem at a
// JSON pointer below `ptr` (at_key: point at the key rather than the value). `with_src` accepts
// and requires "src"; `provider_ids`, when non-empty, are the ids a model pattern's provider
// part may name.
using GrantProblemFn =
    std::function<void(const std::string& pointer, std::string message, bool at_key)>;
Grant parseGrantFields(const nlohmann::json& value, const std::string& ptr, bool with_src,
                       const std::vector<std::string>& provider_ids, const GrantProblemFn& problem);

}  // namespace gatehouse::proxy
