// Grant `ip` syntax and the packet filter, including a differential test against a naive model.
#include "control/filter.h"

#include <gtest/gtest.h>

#include <random>

namespace gatehouse::control {
namespace {

IpSpec spec(const char* text) {
  std::string why;
  auto s = parseIpSpec(text, &why);
  EXPECT_TRUE(s.has_value()) << text << ": " << why;
  return s.value_or(IpSpec{});
}

std::string specError(const char* text) {
  std::string why;
  EXPECT_FALSE(parseIpSpec(text, &why).has_value()) << text;
  return why;
}

TEST(IpSpec, Parses) {
  EXPECT_EQ(spec("*"), (IpSpec{{}, {{0, 65535}}}));
  EXPECT_EQ(spec("tcp:80"), (IpSpec{{kProtoTcp}, {{80, 80}}}));
  EXPECT_EQ(spec("udp:53"), (IpSpec{{kProtoUdp}, {{53, 53}}}));
  EXPECT_EQ(spec("80,443"), (IpSpec{{kProtoTcp, kProtoUdp, kProtoSctp}, {{80, 80}, {443, 443}}}));
  EXPECT_EQ(spec("1000-2000"), (IpSpec{{kProtoTcp, kProtoUdp, kProtoSctp}, {{1000, 2000}}}));
  EXPECT_EQ(spec("tcp:*"), (IpSpec{{kProtoTcp}, {{0, 65535}}}));
  EXPECT_EQ(spec("icmp:*"), (IpSpec{{kProtoIcmp, kProtoIcmpV6}, {{0, 65535}}}));
  EXPECT_EQ(spec("47:*"), (IpSpec{{47}, {{0, 65535}}}));
  EXPECT_EQ(spec("tcp:22,8000-8999"), (IpSpec{{kProtoTcp}, {{22, 22}, {8000, 8999}}}));
}

TEST(IpSpec, ErrorsSayHowToFix) {
  EXPECT_EQ(specError("tcp:http"),
            "malformed port \"http\": ports are numbers 0-65535, ranges like 1000-2000, lists "
            "like 80,443, or *");
  EXPECT_EQ(specError("tcp:70000"),
            "malformed port \"70000\": ports are numbers 0-65535, ranges like 1000-2000, lists "
            "like 80,443, or *");
  EXPECT_EQ(specError("tcp:90-80"), "port range \"90-80\" is backwards: write 80-90");
  EXPECT_EQ(specError("icmp:8"), "icmp has no ports: write \"icmp:*\"");
  EXPECT_EQ(specError("tcpp:80"),
            "unknown protocol \"tcpp\": use tcp, udp, sctp, icmp or an IP protocol number 1-255");
  EXPECT_EQ(specError("tcp"), "missing ports after protocol: write \"tcp:*\" or \"tcp:443\"");
  EXPECT_EQ(specError("80,"),
            "malformed port \"\": ports are numbers 0-65535, ranges like 1000-2000, lists like "
            "80,443, or *");
  EXPECT_EQ(specError(""),
            "malformed port \"\": ports are numbers 0-65535, ranges like 1000-2000, lists like "
            "80,443, or *");
}

wg::IpAddr ip(const char* s) { return *wg::IpAddr::parse(s); }
wg::IpPrefix pfx(const char* s) { return *wg::IpPrefix::parse(s); }

FilterRule rule(std::vector<wg::IpPrefix> srcs, const char* ip_spec, int grant = 0) {
  IpSpec s = spec(ip_spec);
  return {std::make_shared<const PrefixSet>(std::move(srcs)), s.protos, s.ports, grant};
}

TEST(PacketFilter, DenyByDefault) {
  PacketFilter empty;
  EXPECT_FALSE(empty.evaluate(ip("100.64.0.1"), kProtoTcp, 80).allow);
}

TEST(PacketFilter, MatchesSourceProtoAndPort) {
  PacketFilter f({rule({pfx("100.64.0.1/32"), pfx("fd7a::1/128")}, "tcp:443", 7),
                  rule({pfx("10.0.0.0/8")}, "udp:53", 8), rule({pfx("0.0.0.0/0")}, "icmp:*", 9)});
  EXPECT_TRUE(f.evaluate(ip("100.64.0.1"), kProtoTcp, 443).allow);
  EXPECT_EQ(f.evaluate(ip("100.64.0.1"), kProtoTcp, 443).rule, 0);
  EXPECT_TRUE(f.evaluate(ip("fd7a::1"), kProtoTcp, 443).allow);
  EXPECT_FALSE(f.evaluate(ip("100.64.0.1"), kProtoTcp, 80).allow);
  EXPECT_FALSE(f.evaluate(ip("100.64.0.1"), kProtoUdp, 443).allow);
  EXPECT_FALSE(f.evaluate(ip("100.64.0.2"), kProtoTcp, 443).allow);
  EXPECT_TRUE(f.evaluate(ip("10.1.2.3"), kProtoUdp, 53).allow);
  EXPECT_FALSE(f.evaluate(ip("11.1.2.3"), kProtoUdp, 53).allow);
  // ICMP ignores the port; only IPv4 sources are covered by 0.0.0.0/0.
  EXPECT_TRUE(f.evaluate(ip("8.8.8.8"), kProtoIcmp, 12345).allow);
  EXPECT_EQ(f.evaluate(ip("8.8.8.8"), kProtoIcmp, 0).rule, 2);
  EXPECT_FALSE(f.evaluate(ip("fd7a::2"), kProtoIcmpV6, 0).allow);
}

TEST(PacketFilter, StarAllowsEveryProtocolAndBarePortsOnlyPortProtocols) {
  PacketFilter f({rule({pfx("100.64.0.1/32")}, "*"), rule({pfx("100.64.0.2/32")}, "80")});
  EXPECT_TRUE(f.evaluate(ip("100.64.0.1"), 47, 0).allow);
  EXPECT_TRUE(f.evaluate(ip("100.64.0.1"), kProtoIcmp, 0).allow);
  EXPECT_TRUE(f.evaluate(ip("100.64.0.2"), kProtoSctp, 80).allow);
  EXPECT_FALSE(f.evaluate(ip("100.64.0.2"), kProtoIcmp, 0).allow);
}

// Differential: random rules and packets against a linear scan over every rule and prefix.
TEST(PacketFilter, MatchesNaiveModel) {
  std::mt19937 rng(42);
  const char* specs[] = {"*", "tcp:80", "udp:53", "80,443", "1000-2000", "icmp:*", "tcp:*", "47:*"};
  auto randomAddr = [&](bool v6) {
    if (v6) {
      uint8_t b[16] = {0xfd, 0x7a};
      b[15] = uint8_t(rng() % 8);
      b[14] = uint8_t(rng() % 2);
      return wg::IpAddr::v6(b);
    }
    uint8_t b[4] = {100, 64, uint8_t(rng() % 2), uint8_t(rng() % 8)};
    return wg::IpAddr::v4(b);
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<FilterRule> rules;
    int nrules = int(rng() % 6);
    for (int r = 0; r < nrules; ++r) {
      std::vector<wg::IpPrefix> srcs;
      int nsrc = int(rng() % 4);
      for (int s = 0; s < nsrc; ++s) {
        bool v6 = rng() % 2;
        wg::IpAddr a = randomAddr(v6);
        unsigned bits =
            v6 ? (rng() % 2 ? 128 : 120 + rng() % 9) : (rng() % 2 ? 32 : 22 + rng() % 11);
        srcs.push_back(wg::IpPrefix{a, uint8_t(bits)}.normalized());
      }
      rules.push_back(rule(srcs, specs[rng() % std::size(specs)], r));
    }
    PacketFilter f(rules);
    const uint8_t protos[] = {kProtoTcp, kProtoUdp, kProtoIcmp, kProtoIcmpV6, 47, kProtoSctp};
    const uint16_t ports[] = {0, 53, 80, 443, 999, 1000, 1500, 2000, 2001};
    for (int p = 0; p < 100; ++p) {
      wg::IpAddr src = randomAddr(rng() % 2);
      uint8_t proto = protos[rng() % std::size(protos)];
      uint16_t port = ports[rng() % std::size(ports)];
      int naive = -1;
      for (size_t r = 0; r < rules.size() && naive < 0; ++r) {
        bool src_ok = false;
        for (const auto& prefix : rules[r].srcs->prefixes())
          src_ok = src_ok || prefix.contains(src);
        bool proto_ok = rules[r].protos.empty() ||
                        std::count(rules[r].protos.begin(), rules[r].protos.end(), proto) > 0;
        bool port_ok = !protoHasPorts(proto);
        for (const auto& range : rules[r].ports) port_ok = port_ok || range.contains(port);
        if (src_ok && proto_ok && port_ok) naive = int(r);
      }
      FilterVerdict v = f.evaluate(src, proto, port);
      ASSERT_EQ(v.allow, naive >= 0) << "round " << round << " src " << src.toString();
      ASSERT_EQ(v.rule, naive) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace gatehouse::control
