// Fuzz target: HuJSON → policy parse/validate → compile for a few nodes → policy tests, on
// arbitrary bytes. Any crash, sanitizer report or exception escaping is a bug: user input must
// only ever produce diagnostics.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/compile.h"
#include "control/hujson.h"
#include "control/policy.h"
#include "control/policy_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gatehouse::control;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = parseHuJson(text);
  if (doc) {
    // Every recorded position must be inside the input.
    (void)doc->valuePos("");
  }
  auto policy = parsePolicy(text);
  if (!policy) {
    for (const Diagnostic& d : policy.errors()) {
      if (d.line < 0 || d.column < 0 || d.message.empty()) __builtin_trap();
    }
    return 0;
  }
  std::vector<Node> nodes;
  const char* users[] = {"alice@example.com", "bob@example.com", ""};
  for (uint8_t i = 0; i < 6; ++i) {
    Node n;
    n.id = i + 1u;
    n.name = "n" + std::to_string(i);
    n.user = users[i % 3];
    if (i >= 3) {
      for (const auto& [tag, owners] : policy->tag_owners) {
        if ((i + tag.size()) % 2) n.tags.push_back(tag);
      }
    }
    uint8_t v4[4] = {100, 64, 0, uint8_t(i + 1)};
    n.addrs = {gatehouse::wg::IpAddr::v4(v4)};
    nodes.push_back(std::move(n));
  }
  auto maps = compilePolicy(policy.value(), nodes);
  for (const NodeMap& m : maps) {
    for (const Node& n : nodes) (void)m.filter.evaluate(n.addrs[0], kProtoTcp, 443);
  }
  (void)runPolicyTests(policy.value());
  return 0;
}
