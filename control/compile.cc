// Per-node policy compilation. See compile.h for the semantics.
#include "control/compile.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

namespace gatehouse::control {
namespace {

// A set of node indices.
class Bits {
 public:
  explicit Bits(size_t n = 0) : words_((n + 63) / 64, 0) {}
  void set(size_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
  void reset(size_t i) { words_[i / 64] &= ~(uint64_t{1} << (i % 64)); }
  bool test(size_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  void operator|=(const Bits& o) {
    for (size_t w = 0; w < words_.size(); ++w) words_[w] |= o.words_[w];
  }
  template <typename F>
  void forEach(F f) const {
    for (size_t w = 0; w < words_.size(); ++w) {
      for (uint64_t x = words_[w]; x != 0; x &= x - 1) f(w * 64 + std::countr_zero(x));
    }
  }

 private:
  std::vector<uint64_t> words_;
};

// Selector → set of nodes, computed once per distinct selector.
class SelectorIndex {
 public:
  SelectorIndex(const Policy& policy, std::span<const Node> nodes)
      : policy_(policy),
        nodes_(nodes),
        all_(nodes.size()),
        member_(nodes.size()),
        tagged_(nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      all_.set(i);
      if (nodes[i].tags.empty()) {
        if (!nodes[i].user.empty()) {
          member_.set(i);
          by_user_[nodes[i].user].push_back(i);
        }
      } else {
        tagged_.set(i);
        for (const std::string& t : nodes[i].tags) by_tag_[t].push_back(i);
      }
    }
  }

  const Bits& nodesOf(const Selector& s) {
    auto [it, inserted] = cache_.try_emplace(s.text, nodes_.size());
    if (!inserted) return it->second;
    Bits& b = it->second;
    auto addAll = [&](const std::vector<size_t>* v) {
      if (v) {
        for (size_t i : *v) b.set(i);
      }
    };
    switch (s.kind) {
      case Selector::Kind::kAll:
        b = all_;
        break;
      case Selector::Kind::kAutogroupMember:
        b = member_;
        break;
      case Selector::Kind::kAutogroupTagged:
        b = tagged_;
        break;
      case Selector::Kind::kUser:
        addAll(find(by_user_, s.name));
        break;
      case Selector::Kind::kGroup:
        if (auto g = policy_.groups.find(s.name); g != policy_.groups.end()) {
          for (const std::string& login : g->second) addAll(find(by_user_, login));
        }
        break;
      case Selector::Kind::kTag:
        addAll(find(by_tag_, s.name));
        break;
      case Selector::Kind::kPrefix:
        for (size_t i = 0; i < nodes_.size(); ++i) {
          for (const wg::IpAddr& a : nodes_[i].addrs) {
            if (s.prefix.contains(a)) b.set(i);
          }
        }
        break;
      case Selector::Kind::kAutogroupAdmin:
        break;
    }
    return b;
  }

 private:
  static const std::vector<size_t>* find(
      const std::unordered_map<std::string, std::vector<size_t>>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  }

  const Policy& policy_;
  std::span<const Node> nodes_;
  Bits all_, member_, tagged_;
  std::unordered_map<std::string, std::vector<size_t>> by_user_, by_tag_;
  std::unordered_map<std::string, Bits> cache_;
};

struct CompiledGrant {
  Bits src, dst;
  std::shared_ptr<const PrefixSet> src_prefixes;
};

wg::IpPrefix hostPrefix(const wg::IpAddr& a) {
  return wg::IpPrefix{a, static_cast<uint8_t>(a.maxBits())};
}

void unionInto(std::vector<nlohmann::json>* out, const std::vector<nlohmann::json>& values) {
  for (const nlohmann::json& v : values) {
    if (std::find(out->begin(), out->end(), v) == out->end()) out->push_back(v);
  }
}

}  // namespace

std::vector<NodeMap> compilePolicy(const Policy& policy, std::span<const Node> nodes,
                                   const CompileOptions& options) {
  const size_t n = nodes.size();
  SelectorIndex index(policy, nodes);
  std::vector<CompiledGrant> grants;
  grants.reserve(policy.grants.size());
  for (const Grant& g : policy.grants) {
    CompiledGrant cg{Bits(n), Bits(n), nullptr};
    auto prefixes = std::make_shared<std::vector<wg::IpPrefix>>();
    bool everyone = false;
    for (const Selector& s : g.src) {
      cg.src |= index.nodesOf(s);
      if (s.kind == Selector::Kind::kAll) everyone = true;
      if (s.kind == Selector::Kind::kPrefix) prefixes->push_back(s.prefix);
    }
    for (const Selector& s : g.dst) cg.dst |= index.nodesOf(s);
    if (everyone) {
      prefixes->assign({*wg::IpPrefix::parse("0.0.0.0/0"), *wg::IpPrefix::parse("::/0")});
    } else {
      cg.src.forEach([&](size_t i) {
        for (const wg::IpAddr& a : nodes[i].addrs) prefixes->push_back(hostPrefix(a));
      });
      std::sort(prefixes->begin(), prefixes->end());
      prefixes->erase(std::unique(prefixes->begin(), prefixes->end()), prefixes->end());
    }
    cg.src_prefixes = std::make_shared<const PrefixSet>(std::move(*prefixes));
    grants.push_back(std::move(cg));
  }

  std::vector<NodeMap> maps(n);
  for (size_t d = 0; d < n; ++d) {
    NodeMap& m = maps[d];
    m.self = nodes[d].id;
    Bits visible(n);
    std::vector<FilterRule> rules;
    std::unordered_map<size_t, CapMap> caps;
    for (size_t gi = 0; gi < grants.size(); ++gi) {
      const CompiledGrant& cg = grants[gi];
      const Grant& g = policy.grants[gi];
      if (cg.src.test(d)) visible |= cg.dst;
      if (!cg.dst.test(d)) continue;
      visible |= cg.src;
      for (const IpSpec& spec : g.ip) {
        rules.push_back({cg.src_prefixes, spec.protos, spec.ports, static_cast<int>(gi)});
      }
      if (!g.app.empty()) {
        cg.src.forEach([&](size_t s) {
          if (s == d) return;
          CapMap& cm = caps[s];
          for (const auto& [cap, values] : g.app) unionInto(&cm[cap], values);
        });
      }
    }
    visible.reset(d);
    m.filter = PacketFilter(std::move(rules));
    visible.forEach([&](size_t p) {
      m.peers.push_back(nodes[p].id);
      std::string fqdn = nodes[p].name;
      if (!options.dns_suffix.empty()) fqdn += "." + options.dns_suffix;
      m.dns.push_back({nodes[p].id, std::move(fqdn), nodes[p].addrs});
    });
    for (auto& [s, cm] : caps) m.caps.emplace(nodes[s].id, std::move(cm));
    // Ids ascending, keeping dns aligned with peers.
    std::vector<size_t> order(m.peers.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return m.peers[a] < m.peers[b]; });
    std::vector<uint64_t> peers;
    std::vector<PeerName> dns;
    for (size_t i : order) {
      peers.push_back(m.peers[i]);
      dns.push_back(std::move(m.dns[i]));
    }
    m.peers = std::move(peers);
    m.dns = std::move(dns);
  }
  return maps;
}

}  // namespace gatehouse::control

namespace gatehouse::control {

bool selectorMatches(const Policy& policy, const Selector& s, const Node& node) {
  bool tagged = !node.tags.empty();
  switch (s.kind) {
    case Selector::Kind::kAll:
      return true;
    case Selector::Kind::kAutogroupMember:
      return !tagged && !node.user.empty();
    case Selector::Kind::kAutogroupTagged:
      return tagged;
    case Selector::Kind::kUser:
      return !tagged && node.user == s.name;
    case Selector::Kind::kGroup: {
      auto g = policy.groups.find(s.name);
      return !tagged && !node.user.empty() && g != policy.groups.end() &&
             std::find(g->second.begin(), g->second.end(), node.user) != g->second.end();
    }
    case Selector::Kind::kTag:
      return std::find(node.tags.begin(), node.tags.end(), s.name) != node.tags.end();
    case Selector::Kind::kPrefix:
      return std::any_of(node.addrs.begin(), node.addrs.end(),
                         [&](const wg::IpAddr& a) { return s.prefix.contains(a); });
    case Selector::Kind::kAutogroupAdmin:
      return false;
  }
  return false;
}

}  // namespace gatehouse::control
