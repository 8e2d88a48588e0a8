// Policy `tests` evaluation on synthetic nodes. See policy_check.h.
#include "control/policy_check.h"

#include <algorithm>
#include <set>

#include "control/compile.h"

namespace gatehouse::control {
namespace {

std::string identityKey(const Selector& s) {
  return s.kind == Selector::Kind::kPrefix ? "ip:" + s.prefix.addr.toString() : s.name;
}

std::string grantRef(const Policy& policy, int gi) {
  return "grant " + std::to_string(gi + 1) + " (line " +
         std::to_string(policy.grants[static_cast<size_t>(gi)].pos.line) + ")";
}

std::string listRefs(const Policy& policy, const std::vector<int>& grants) {
  std::string out = grants.size() == 1 ? "grant " : "grants ";
  for (size_t i = 0; i < grants.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(grants[i] + 1) + " (line " +
           std::to_string(policy.grants[static_cast<size_t>(grants[i])].pos.line) + ")";
  }
  return out;
}

std::string dumpValues(const std::vector<nlohmann::json>& values) {
  return nlohmann::json(values).dump();
}

// Values as a set: order and duplicates do not matter.
std::set<std::string> asSet(const std::vector<nlohmann::json>& values) {
  std::set<std::string> out;
  for (const auto& v : values) out.insert(v.dump());
  return out;
}

class Runner {
 public:
  explicit Runner(const Policy& policy) : policy_(policy) {}

  PolicyTestReport run() {
    addNodes();
    maps_ = compilePolicy(policy_, nodes_);
    for (size_t i = 0; i < policy_.tests.size(); ++i) runTest(static_cast<int>(i));
    return std::move(report_);
  }

 private:
  void addIdentity(const Selector& s) {
    std::string key = identityKey(s);
    if (index_.count(key)) return;
    Node n;
    n.id = nodes_.size() + 1;
    n.name = s.text;
    if (s.kind == Selector::Kind::kUser) n.user = s.name;
    if (s.kind == Selector::Kind::kTag) n.tags = {s.name};
    if (s.kind == Selector::Kind::kPrefix) n.addrs = {s.prefix.addr};
    index_[key] = nodes_.size();
    nodes_.push_back(std::move(n));
  }

  void addNodes() {
    std::set<wg::IpAddr> taken;
    for (const PolicyTest& t : policy_.tests) {
      addIdentity(t.src);
      if (t.dst) addIdentity(*t.dst);
      for (const auto* list : {&t.accept, &t.deny}) {
        for (const auto& target : *list) addIdentity(target.dst);
      }
    }
    for (const Node& n : nodes_) taken.insert(n.addrs.begin(), n.addrs.end());
    // Synthetic addresses for user and tag nodes, avoiding addresses the tests name literally.
    uint32_t next = 1;
    for (Node& n : nodes_) {
      if (!n.addrs.empty()) continue;
      for (;; ++next) {
        uint8_t v4[4] = {100, uint8_t(64 + (next >> 16)), uint8_t(next >> 8), uint8_t(next)};
        uint8_t v6[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
        v6[13] = uint8_t(next >> 16), v6[14] = uint8_t(next >> 8), v6[15] = uint8_t(next);
        wg::IpAddr a4 = wg::IpAddr::v4(v4), a6 = wg::IpAddr::v6(v6);
        if (taken.count(a4) || taken.count(a6)) continue;
        n.addrs = {a4, a6};
        ++next;
        break;
      }
    }
  }

  const Node& node(const Selector& s) const { return nodes_[index_.at(identityKey(s))]; }
  const NodeMap& map(const Selector& s) const { return maps_[index_.at(identityKey(s))]; }

  void fail(const SourcePos& pos, std::string message) {
    report_.failures.push_back({pos.line, pos.column, std::move(message)});
  }

  // Grants whose src selects `src` and dst selects `dst`.
  std::vector<int> connecting(const Node& src, const Node& dst, bool app) const {
    std::vector<int> out;
    for (size_t gi = 0; gi < policy_.grants.size(); ++gi) {
      const Grant& g = policy_.grants[gi];
      if (app ? g.app.empty() : g.ip.empty()) continue;
      auto any = [&](const std::vector<Selector>& sel, const Node& n) {
        return std::any_of(sel.begin(), sel.end(),
                           [&](const Selector& s) { return selectorMatches(policy_, s, n); });
      };
      if (any(g.src, src) && any(g.dst, dst)) out.push_back(static_cast<int>(gi));
    }
    return out;
  }

  void runTest(int ti) {
    const PolicyTest& t = policy_.tests[static_cast<size_t>(ti)];
    report_.tests++;
    const std::string label = "test " + std::to_string(ti + 1) + " (src " + t.src.text + "): ";
    const Node& src = node(t.src);
    const wg::IpAddr& src_addr = src.addrs.front();
    for (bool expect_accept : {true, false}) {
      for (const PolicyTest::Target& target : expect_accept ? t.accept : t.deny) {
        report_.checks++;
        const PacketFilter& filter = map(target.dst).filter;
        FilterVerdict v = filter.evaluate(src_addr, t.proto, target.port);
        std::string what =
            protoName(t.proto) + (protoHasPorts(t.proto) ? "/" + std::to_string(target.port) : "");
        std::string route = " from " + t.src.text + " to " + target.dst.text;
        if (expect_accept && !v.allow) {
          std::string msg =
              label + "expected accept " + target.text + ", but no grant allows " + what + route;
          std::vector<int> near = connecting(src, node(target.dst), false);
          if (!near.empty()) {
            msg += " (" + listRefs(policy_, near) + (near.size() == 1 ? " connects" : " connect") +
                   " them on other ports)";
          }
          fail(target.pos, msg + "; add a grant or fix the test");
        } else if (!expect_accept && v.allow) {
          int gi = filter.rules()[static_cast<size_t>(v.rule)].grant;
          fail(target.pos, label + "expected deny " + target.text + ", but " +
                               grantRef(policy_, gi) + " allows " + what + route);
        }
      }
    }
    if (!t.dst) return;
    const NodeMap& dst_map = map(*t.dst);
    const CapMap* caps = nullptr;
    if (auto it = dst_map.caps.find(src.id); it != dst_map.caps.end()) caps = &it->second;
    for (const auto& [cap, expected] : t.app_caps) {
      report_.checks++;
      const std::vector<nlohmann::json>* got = nullptr;
      if (caps) {
        if (auto it = caps->find(cap); it != caps->end()) got = &it->second;
      }
      std::string head = label + "expected appCaps \"" + cap + "\" on " + t.dst->text + " = " +
                         dumpValues(expected);
      if (!got) {
        fail(t.pos,
             head + ", but no grant gives " + t.src.text + " this capability on " + t.dst->text);
      } else if (asSet(*got) != asSet(expected)) {
        fail(t.pos, head + ", but the grants give " + dumpValues(*got));
      }
    }
    for (const std::string& cap : t.no_app_caps) {
      report_.checks++;
      if (!caps || !caps->count(cap)) continue;
      std::vector<int> from;
      for (int gi : connecting(src, node(*t.dst), true)) {
        if (policy_.grants[static_cast<size_t>(gi)].app.count(cap)) from.push_back(gi);
      }
      fail(t.pos, label + "expected no \"" + cap + "\" on " + t.dst->text + ", but " +
                      listRefs(policy_, from) + " gives " + dumpValues(caps->at(cap)));
    }
  }

  const Policy& policy_;
  std::vector<Node> nodes_;
  std::map<std::string, size_t> index_;
  std::vector<NodeMap> maps_;
  PolicyTestReport report_;
};

}  // namespace

PolicyTestReport runPolicyTests(const Policy& policy) { return Runner(policy).run(); }

}  // namespace gatehouse::control
