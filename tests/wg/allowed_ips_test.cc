// Allowed-IPs trie: the kernel selftest cases as ported by wireguard-go (allowedips_test.go),
// ownership rules (D11), and a differential test against a naive linear scan.
#include "wg/allowed_ips.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>

namespace gatehouse::wg {
namespace {

using Value = AllowedIps::Value;

// Distinct non-null tags standing in for peers.
int peer_tags[64];
Value peer(int i) { return &peer_tags[i]; }

IpPrefix prefix(const char* s) {
  auto p = IpPrefix::parse(s);
  EXPECT_TRUE(p) << s;
  return *p;
}
IpAddr addr(const char* s) {
  auto a = IpAddr::parse(s);
  EXPECT_TRUE(a) << s;
  return *a;
}

IpPrefix v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t cidr) {
  uint8_t bytes[4] = {a, b, c, d};
  return IpPrefix{IpAddr::v4(bytes), cidr};
}
IpAddr v4a(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}
IpAddr v6a(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  uint8_t bytes[16];
  uint32_t w[4] = {a, b, c, d};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) bytes[4 * i + j] = static_cast<uint8_t>(w[i] >> (24 - 8 * j));
  }
  return IpAddr::v6(bytes);
}
IpPrefix v6(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint8_t cidr) {
  return IpPrefix{v6a(a, b, c, d), cidr};
}

TEST(AllowedIpsTest, KernelIpv4Cases) {
  Value a = peer(0), b = peer(1), c = peer(2), d = peer(3), e = peer(4), g = peer(5), h = peer(6);
  AllowedIps t;
  t.insert(v4(192, 168, 4, 0, 24), a);
  t.insert(v4(192, 168, 4, 4, 32), b);
  t.insert(v4(192, 168, 0, 0, 16), c);
  t.insert(v4(192, 95, 5, 64, 27), d);
  t.insert(v4(192, 95, 5, 65, 27), c);  // same /27 after normalizing: moves d's prefix to c
  t.insert(v4(0, 0, 0, 0, 0), e);
  t.insert(v4(64, 15, 112, 0, 20), g);
  t.insert(v4(64, 15, 123, 211, 25), h);
  t.insert(v4(10, 0, 0, 0, 25), a);
  t.insert(v4(10, 0, 0, 128, 25), b);
  t.insert(v4(10, 1, 0, 0, 30), a);
  t.insert(v4(10, 1, 0, 4, 30), b);
  t.insert(v4(10, 1, 0, 8, 29), c);
  t.insert(v4(10, 1, 0, 16, 29), d);

  EXPECT_EQ(t.lookup(v4a(192, 168, 4, 20)), a);
  EXPECT_EQ(t.lookup(v4a(192, 168, 4, 0)), a);
  EXPECT_EQ(t.lookup(v4a(192, 168, 4, 4)), b);
  EXPECT_EQ(t.lookup(v4a(192, 168, 200, 182)), c);
  EXPECT_EQ(t.lookup(v4a(192, 95, 5, 68)), c);
  EXPECT_EQ(t.lookup(v4a(192, 95, 5, 96)), e);
  EXPECT_EQ(t.lookup(v4a(64, 15, 116, 26)), g);
  EXPECT_EQ(t.lookup(v4a(64, 15, 127, 3)), g);
  EXPECT_EQ(t.lookup(v4a(64, 15, 123, 200)), h);
  EXPECT_EQ(t.lookup(v4a(64, 15, 123, 1)), g);
  EXPECT_EQ(t.lookup(v4a(10, 0, 0, 200)), b);
  EXPECT_EQ(t.lookup(v4a(10, 1, 0, 5)), b);
  EXPECT_EQ(t.lookup(v4a(10, 1, 0, 20)), d);
  EXPECT_EQ(t.lookup(v4a(10, 1, 0, 25)), e);

  for (uint8_t first : {1, 64, 128, 192, 255}) t.insert(v4(first, 0, 0, 0, 32), a);
  for (uint8_t first : {1, 64, 128, 192, 255}) EXPECT_EQ(t.lookup(v4a(first, 0, 0, 0)), a);
  t.removeByValue(a);
  for (uint8_t first : {1, 64, 128, 192, 255}) EXPECT_NE(t.lookup(v4a(first, 0, 0, 0)), a);
  EXPECT_EQ(t.lookup(v4a(192, 168, 4, 20)), c);  // a's /24 gone, c's /16 remains

  for (Value v : {a, b, c, d, e, g, h}) t.removeByValue(v);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.lookup(v4a(192, 168, 4, 4)), nullptr);

  t.insert(v4(192, 168, 0, 0, 16), a);
  t.insert(v4(192, 168, 0, 0, 24), a);
  t.removeByValue(a);
  EXPECT_EQ(t.lookup(v4a(192, 168, 0, 1)), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(AllowedIpsTest, KernelIpv6Cases) {
  Value a = peer(0), b = peer(1), c = peer(2), d = peer(3), e = peer(4), f = peer(5), g = peer(6),
        h = peer(7);
  AllowedIps t;
  t.insert(v6(0x26075300, 0x60006b00, 0, 0xc05f0543, 128), d);
  t.insert(v6(0x26075300, 0x60006b00, 0, 0, 64), c);
  t.insert(v6(0, 0, 0, 0, 0), e);
  t.insert(v6(0, 0, 0, 0, 0), f);
  t.insert(v6(0x24046800, 0, 0, 0, 32), g);
  t.insert(v6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 64), h);
  t.insert(v6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 128), a);
  t.insert(v6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), c);
  t.insert(v6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), b);

  EXPECT_EQ(t.lookup(v6a(0x26075300, 0x60006b00, 0, 0xc05f0543)), d);
  EXPECT_EQ(t.lookup(v6a(0x26075300, 0x60006b00, 0, 0xc02e01ee)), c);
  EXPECT_EQ(t.lookup(v6a(0x26075300, 0x60006b01, 0, 0)), f);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040806, 0, 0x1006)), g);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040806, 0x1234, 0x5678)), g);
  EXPECT_EQ(t.lookup(v6a(0x240467ff, 0x40040806, 0x1234, 0x5678)), f);
  EXPECT_EQ(t.lookup(v6a(0x24046801, 0x40040806, 0x1234, 0x5678)), f);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040800, 0x1234, 0x5678)), h);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040800, 0, 0)), h);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040800, 0x10101010, 0x10101010)), h);
  EXPECT_EQ(t.lookup(v6a(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)), a);
  EXPECT_EQ(t.lookup(v6a(0x24446800, 0xf0e40800, 0xeeaebeef, 0x12345678)), b);
  EXPECT_EQ(t.size(), 8u);  // ::/0 was moved from e to f, not duplicated
  EXPECT_TRUE(t.entriesFor(e).empty());
}

TEST(AllowedIpsTest, FamiliesAreSeparate) {
  AllowedIps t;
  t.insert(prefix("0.0.0.0/0"), peer(0));
  EXPECT_EQ(t.lookup(addr("::1")), nullptr);
  t.insert(prefix("::/0"), peer(1));
  EXPECT_EQ(t.lookup(addr("::1")), peer(1));
  EXPECT_EQ(t.lookup(addr("1.2.3.4")), peer(0));
  EXPECT_EQ(t.lookup(IpAddr{}), nullptr);
}

TEST(AllowedIpsTest, InsertNormalizesHostBits) {
  AllowedIps t;
  t.insert(IpPrefix{addr("10.1.2.3"), 8}, peer(0));
  EXPECT_EQ(t.lookup(addr("10.200.0.1")), peer(0));
  ASSERT_EQ(t.entriesFor(peer(0)).size(), 1u);
  EXPECT_EQ(t.entriesFor(peer(0))[0], prefix("10.0.0.0/8"));
  EXPECT_TRUE(t.remove(IpPrefix{addr("10.9.9.9"), 8}, peer(0)));
  EXPECT_EQ(t.size(), 0u);
}

TEST(AllowedIpsTest, MovingAPrefixBetweenPeers) {
  AllowedIps t;
  Value a = peer(0), b = peer(1);
  t.insert(prefix("192.168.241.0/24"), a);
  t.insert(prefix("fd00::/64"), a);
  t.insert(prefix("192.168.241.2/32"), a);
  EXPECT_EQ(t.size(), 3u);
  // netns.sh §13 row 7: a more specific prefix given to another peer takes that traffic.
  t.insert(prefix("192.168.241.2/32"), b);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.lookup(addr("192.168.241.2")), b);
  EXPECT_EQ(t.lookup(addr("192.168.241.3")), a);
  EXPECT_EQ(t.entriesFor(a),
            (std::vector<IpPrefix>{prefix("192.168.241.0/24"), prefix("fd00::/64")}));
  EXPECT_EQ(t.entriesFor(b), std::vector<IpPrefix>{prefix("192.168.241.2/32")});
  // The old owner can no longer remove it.
  EXPECT_FALSE(t.remove(prefix("192.168.241.2/32"), a));
  EXPECT_EQ(t.lookup(addr("192.168.241.2")), b);
  // Removing it from its owner restores the covering route.
  EXPECT_TRUE(t.remove(prefix("192.168.241.2/32"), b));
  EXPECT_EQ(t.lookup(addr("192.168.241.2")), a);
  EXPECT_TRUE(t.entriesFor(b).empty());
  // Re-inserting for the same owner is a no-op.
  t.insert(prefix("fd00::/64"), a);
  EXPECT_EQ(t.size(), 2u);
}

TEST(AllowedIpsTest, RemoveRequiresExactPrefix) {
  AllowedIps t;
  t.insert(prefix("10.0.0.0/8"), peer(0));
  EXPECT_FALSE(t.remove(prefix("10.0.0.0/9"), peer(0)));
  EXPECT_FALSE(t.remove(prefix("10.0.0.0/7"), peer(0)));
  EXPECT_FALSE(t.remove(prefix("11.0.0.0/8"), peer(0)));
  EXPECT_FALSE(t.remove(prefix("::/0"), peer(0)));
  EXPECT_EQ(t.size(), 1u);
  // A branch point (10.0.0.0/15 between the two /16s) is not an entry either.
  t.insert(prefix("10.0.0.0/16"), peer(1));
  t.insert(prefix("10.1.0.0/16"), peer(1));
  EXPECT_FALSE(t.remove(prefix("10.0.0.0/15"), peer(1)));
  EXPECT_TRUE(t.remove(prefix("10.0.0.0/8"), peer(0)));
  EXPECT_EQ(t.lookup(addr("10.1.2.3")), peer(1));
  EXPECT_EQ(t.lookup(addr("10.2.0.0")), nullptr);
}

TEST(AllowedIpsTest, ClearEmptiesEverything) {
  AllowedIps t;
  t.insert(prefix("10.0.0.0/8"), peer(0));
  t.insert(prefix("fd00::/8"), peer(1));
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.lookup(addr("10.0.0.1")), nullptr);
  EXPECT_TRUE(t.entriesFor(peer(0)).empty());
  t.insert(prefix("10.0.0.0/8"), peer(2));
  EXPECT_EQ(t.lookup(addr("10.0.0.1")), peer(2));
}

// netns.sh §13 row 13: one peer with 255×256×2 allowed IPs.
TEST(AllowedIpsTest, OnePeerWithManyPrefixes) {
  AllowedIps t;
  Value p = peer(0);
  for (int i = 0; i < 255; ++i) {
    for (int j = 0; j < 256; ++j) {
      t.insert(v4(10, static_cast<uint8_t>(i), static_cast<uint8_t>(j), 0, 24), p);
      t.insert(v6(0xfd000000, static_cast<uint32_t>(i << 16 | j), 0, 0, 64), p);
    }
  }
  EXPECT_EQ(t.size(), 255u * 256 * 2);
  EXPECT_EQ(t.entriesFor(p).size(), 255u * 256 * 2);
  EXPECT_EQ(t.lookup(v4a(10, 254, 255, 9)), p);
  EXPECT_EQ(t.lookup(v4a(10, 255, 0, 9)), nullptr);
  EXPECT_EQ(t.lookup(v6a(0xfd000000, 0x00fe00ff, 7, 7)), p);
  t.insert(prefix("10.7.7.7/32"), peer(1));
  EXPECT_EQ(t.lookup(addr("10.7.7.7")), peer(1));
  t.removeByValue(p);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.lookup(v4a(10, 1, 1, 1)), nullptr);
  EXPECT_EQ(t.lookup(addr("10.7.7.7")), peer(1));
}

// ---- Differential test against a naive model ----

struct Naive {
  std::map<IpPrefix, Value> entries;
  void insert(const IpPrefix& p, Value v) { entries[p.normalized()] = v; }
  bool remove(const IpPrefix& p, Value v) {
    auto it = entries.find(p.normalized());
    if (it == entries.end() || it->second != v) return false;
    entries.erase(it);
    return true;
  }
  void removeByValue(Value v) {
    std::erase_if(entries, [v](auto& e) { return e.second == v; });
  }
  Value lookup(const IpAddr& a) const {
    Value best = nullptr;
    int best_bits = -1;
    for (const auto& [p, v] : entries) {
      if (p.bits > best_bits && p.contains(a)) {
        best = v;
        best_bits = p.bits;
      }
    }
    return best;
  }
  std::set<IpPrefix> entriesFor(Value v) const {
    std::set<IpPrefix> out;
    for (const auto& [p, pv] : entries) {
      if (pv == v) out.insert(p);
    }
    return out;
  }
};

class Differential : public ::testing::TestWithParam<bool> {
 protected:
  bool six() const { return GetParam(); }
  size_t len() const { return six() ? 16 : 4; }

  // Addresses cluster around a few bases so prefixes nest and diverge at every depth.
  IpAddr randomAddr() {
    IpAddr a;
    a.family = six() ? IpAddr::Family::kV6 : IpAddr::Family::kV4;
    const auto& base = bases_[rng_() % bases_.size()];
    unsigned keep = rng_() % (len() * 8 + 1);
    for (size_t i = 0; i < len(); ++i) {
      uint8_t r = static_cast<uint8_t>(rng_());
      int k = static_cast<int>(keep) - static_cast<int>(i * 8);
      uint8_t mask = k >= 8 ? 0xff : k <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - k));
      a.bytes[i] = static_cast<uint8_t>((base[i] & mask) | (r & ~mask));
    }
    return a;
  }
  IpPrefix randomPrefix() {
    unsigned bits = len() * 8;
    // Bias toward longer prefixes, but cover /0 and host routes.
    unsigned cidr = rng_() % 4 == 0 ? rng_() % (bits + 1) : bits / 2 + rng_() % (bits / 2 + 1);
    return IpPrefix{randomAddr(), static_cast<uint8_t>(cidr)};
  }
  void checkAll(const AllowedIps& t, const Naive& n, int lookups) {
    ASSERT_EQ(t.size(), n.entries.size());
    for (int i = 0; i < lookups; ++i) {
      IpAddr a = randomAddr();
      ASSERT_EQ(t.lookup(a), n.lookup(a)) << a.toString();
    }
    // Entries' own addresses sit exactly on prefix boundaries; check a sample of them.
    size_t k = 0;
    for (const auto& [p, v] : n.entries) {
      if (k++ % 4 == 0) {
        ASSERT_EQ(t.lookup(p.addr), n.lookup(p.addr)) << p.toString();
      }
    }
    for (int i = 0; i < kPeers; ++i) {
      auto got = t.entriesFor(peer(i));
      std::set<IpPrefix> got_set(got.begin(), got.end());
      ASSERT_EQ(got_set.size(), got.size()) << "duplicates for peer " << i;
      ASSERT_EQ(got_set, n.entriesFor(peer(i))) << "peer " << i;
    }
  }

  static constexpr int kPeers = 16;
  std::mt19937_64 rng_{GetParam() ? 0x6a09e667u : 0xbb67ae85u};
  std::vector<std::array<uint8_t, 16>> bases_ = [this] {
    std::vector<std::array<uint8_t, 16>> b(8);
    for (auto& x : b) {
      for (auto& byte : x) byte = static_cast<uint8_t>(rng_());
    }
    return b;
  }();
};

TEST_P(Differential, RandomInsertLookupRemove) {
  AllowedIps t;
  Naive n;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1500; ++i) {
      IpPrefix p = randomPrefix();
      Value v = peer(static_cast<int>(rng_() % kPeers));
      t.insert(p, v);
      n.insert(p, v);
    }
    checkAll(t, n, 1500);
    // Remove a third of the entries; half the attempts name the wrong owner and must fail.
    std::vector<std::pair<IpPrefix, Value>> all(n.entries.begin(), n.entries.end());
    for (size_t i = 0; i < all.size(); i += 3) {
      Value v = rng_() % 2 ? all[i].second : peer(static_cast<int>(rng_() % kPeers));
      ASSERT_EQ(t.remove(all[i].first, v), n.remove(all[i].first, v));
    }
    // Removals of random prefixes mostly miss.
    for (int i = 0; i < 200; ++i) {
      IpPrefix p = randomPrefix();
      Value v = peer(static_cast<int>(rng_() % kPeers));
      ASSERT_EQ(t.remove(p, v), n.remove(p, v));
    }
    checkAll(t, n, 1500);
    Value gone = peer(static_cast<int>(rng_() % kPeers));
    t.removeByValue(gone);
    n.removeByValue(gone);
    checkAll(t, n, 1500);
  }
  for (int i = 0; i < kPeers; ++i) {
    t.removeByValue(peer(i));
    n.removeByValue(peer(i));
  }
  checkAll(t, n, 100);
  EXPECT_EQ(t.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, Differential, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IPv6" : "IPv4"; });

}  // namespace
}  // namespace gatehouse::wg
