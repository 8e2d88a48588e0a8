// UAPI codec tests against a real Device: key encodings, the exact get text, every set key, the
// errno of each failure, byte-split feeds, many operations per connection, huge replies.
#include "wg/uapi.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace gatehouse::wg {
namespace {

const Now kNow{100 * kSec, 1'700'000'000 * kSec};

Key32 filled(uint8_t b) {
  Key32 k;
  k.fill(b);
  return k;
}

// A private key that clamping leaves unchanged.
Key32 clampedKey(uint8_t b) {
  Key32 k = filled(b);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

class FakeHost : public UapiHost {
 public:
  uint16_t listenPort() const override { return port; }
  int setListenPort(uint16_t p) override {
    if (port_error) return port_error;
    port = p;
    return 0;
  }
  uint32_t fwmark() const override { return mark; }
  int setFwmark(uint32_t m) override {
    mark = m;
    return 0;
  }
  uint16_t port = 0;
  uint32_t mark = 0;
  int port_error = 0;
};

class CountingOutput : public DeviceOutput {
 public:
  void sendToNetwork(const Endpoint& to, std::span<const uint8_t>) override {
    ++sent;
    last_to = to;
  }
  void writeToTun(std::span<const uint8_t>) override {}
  int sent = 0;
  Endpoint last_to;
};

class UapiTest : public ::testing::Test {
 protected:
  // Runs `text` on a fresh connection; returns the reply.
  std::string run(std::string_view text) {
    conn_ = std::make_unique<UapiConnection>(device_, host_, output_);
    std::string reply;
    conn_->feed(text, kNow, reply);
    return reply;
  }
  std::string set(std::string_view body) { return run("set=1\n" + std::string(body) + "\n"); }
  std::string get() { return run("get=1\n\n"); }
  std::optional<PeerInfo> peer(uint8_t b) { return device_.peerInfo(filled(b)); }
  static std::string pkLine(uint8_t b) { return "public_key=" + keyToHex(filled(b)) + "\n"; }

  FakeRandom random_{7};
  Device device_{random_};
  FakeHost host_;
  CountingOutput output_;
  std::unique_ptr<UapiConnection> conn_;
};

constexpr char kOk[] = "errno=0\n\n";
constexpr char kEinval[] = "errno=-22\n\n";

// ---- key encodings ----

TEST(UapiKeys, HexRoundTripAndCase) {
  Key32 k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 37 + 5);
  std::string hex = keyToHex(k);
  ASSERT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 6), "052a4f");
  EXPECT_EQ(keyFromHex(hex), k);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_EQ(keyFromHex(upper), k);  // Go's hex.DecodeString accepts both cases
  std::string ab;
  for (int i = 0; i < 32; ++i) ab += "ab";
  EXPECT_EQ(keyToHex(filled(0xab)), ab);
}

TEST(UapiKeys, HexRejects) {
  std::string good(64, '0');
  EXPECT_TRUE(keyFromHex(good));
  EXPECT_FALSE(keyFromHex(""));
  EXPECT_FALSE(keyFromHex(good.substr(1)));
  EXPECT_FALSE(keyFromHex(good + "0"));
  for (char bad : {'g', 'G', ' ', '-', '\0', 'x', '/', ':', '@', '`'}) {
    std::string s = good;
    s[17] = bad;
    EXPECT_FALSE(keyFromHex(s)) << int(bad);
  }
}

TEST(UapiKeys, Base64) {
  EXPECT_EQ(keyToBase64(filled(0)), std::string(43, 'A') + "=");
  Key32 k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(255 - i * 7);
  std::string b = keyToBase64(k);
  ASSERT_EQ(b.size(), 44u);
  EXPECT_EQ(keyFromBase64(b), k);
  EXPECT_EQ(keyToBase64(filled(0xff)), std::string(42, '/') + "8=");
  EXPECT_FALSE(keyFromBase64(std::string(42, '/') + "9="));  // non-canonical trailing bits
  EXPECT_FALSE(keyFromBase64(b.substr(0, 43)));
  EXPECT_FALSE(keyFromBase64(b + "="));
  EXPECT_FALSE(keyFromBase64(std::string(44, '*')));
  EXPECT_FALSE(keyFromBase64(""));
}

// ---- get ----

TEST_F(UapiTest, GetEmptyDevice) {
  EXPECT_EQ(get(), kOk);
  host_.port = 51820;
  EXPECT_EQ(get(), std::string("listen_port=51820\n") + kOk);
  EXPECT_FALSE(conn_->wantsClose());
}

TEST_F(UapiTest, GetExactText) {
  const Key32 sk = clampedKey(0x11);
  host_.port = 51820;
  host_.mark = 7;
  device_.setPrivateKey(sk, kNow);
  ASSERT_TRUE(device_.addPeer(filled(0xa1), kNow));
  ASSERT_TRUE(device_.setPresharedKey(filled(0xa1), filled(0x55)));
  ASSERT_TRUE(device_.setEndpoint(filled(0xa1), *Endpoint::parse("192.0.2.1:51821")));
  ASSERT_TRUE(device_.addAllowedIp(filled(0xa1), *IpPrefix::parse("10.1.0.0/16")));
  ASSERT_TRUE(device_.addPeer(filled(0xb2), kNow));
  ASSERT_TRUE(device_.setEndpoint(filled(0xb2), *Endpoint::parse("[2001:db8::1]:443")));
  ASSERT_TRUE(device_.setPersistentKeepalive(filled(0xb2), 25, kNow, output_));
  ASSERT_TRUE(device_.addAllowedIp(filled(0xb2), *IpPrefix::parse("fd00:1::/64")));
  const std::string want = "private_key=" + keyToHex(sk) +
                           "\n"
                           "listen_port=51820\n"
                           "fwmark=7\n"
                           "public_key=" +
                           keyToHex(filled(0xa1)) + "\npreshared_key=" + keyToHex(filled(0x55)) +
                           "\n"
                           "protocol_version=1\n"
                           "endpoint=192.0.2.1:51821\n"
                           "last_handshake_time_sec=0\n"
                           "last_handshake_time_nsec=0\n"
                           "tx_bytes=0\n"
                           "rx_bytes=0\n"
                           "persistent_keepalive_interval=0\n"
                           "allowed_ip=10.1.0.0/16\n"
                           "public_key=" +
                           keyToHex(filled(0xb2)) + "\npreshared_key=" + std::string(64, '0') +
                           "\n"
                           "protocol_version=1\n"
                           "endpoint=[2001:db8::1]:443\n"
                           "last_handshake_time_sec=0\n"
                           "last_handshake_time_nsec=0\n";
  std::string got = get();
  // tx_bytes may count the keepalive the device sent when persistent keepalive was turned on.
  ASSERT_EQ(got.substr(0, want.size()), want);
  auto info = peer(0xb2);
  ASSERT_TRUE(info);
  const std::string tail = "tx_bytes=" + std::to_string(info->stats.tx_bytes) +
                           "\n"
                           "rx_bytes=0\n"
                           "persistent_keepalive_interval=25\n"
                           "allowed_ip=fd00:1::/64\n" +
                           kOk;
  EXPECT_EQ(got.substr(want.size()), tail);
}

TEST_F(UapiTest, GetRequiresBlankLine) {
  EXPECT_EQ(run("get=1\nx"), kEinval);
  EXPECT_TRUE(conn_->wantsClose());
}

TEST_F(UapiTest, DropCountersAreExtraKeysWgIgnores) {
  device_.countDrop(DropReason::kDecryptFailed);
  device_.countDrop(DropReason::kDecryptFailed);
  device_.countDrop(DropReason::kNoRoute);
  ASSERT_TRUE(device_.addPeer(filled(1), kNow));
  std::string reply = get();
  size_t first_peer = reply.find("public_key=");
  std::string device_part = reply.substr(0, first_peer);
  EXPECT_NE(device_part.find("=2\n"), std::string::npos) << device_part;
  EXPECT_NE(device_part.find("=1\n"), std::string::npos) << device_part;
  // As wg's and wgctrl-go's get parsers need: every line is key=value with one '=', keys
  // [a-z0-9_], and the reply ends with errno=0 and a blank line.
  size_t pos = 0, drop_lines = 0;
  while (pos < reply.size()) {
    size_t nl = reply.find('\n', pos);
    ASSERT_NE(nl, std::string::npos);
    std::string line = reply.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      EXPECT_EQ(pos, reply.size());
      break;
    }
    ASSERT_EQ(std::count(line.begin(), line.end(), '='), 1) << line;
    std::string key = line.substr(0, line.find('='));
    for (char c : key) EXPECT_TRUE(islower(c) || isdigit(c) || c == '_') << line;
    if (key.rfind("gatehouse_drop_", 0) == 0) ++drop_lines;
  }
  EXPECT_EQ(drop_lines, 2u);
  EXPECT_EQ(reply.substr(reply.size() - 9), kOk);
}

// ---- set: device keys ----

TEST_F(UapiTest, SetPrivateKeyClampsAndClears) {
  EXPECT_EQ(set("private_key=" + std::string(64, 'f') + "\n"), kOk);
  Key32 want = filled(0xff);
  want[0] = 0xf8;
  want[31] = 0x7f;
  EXPECT_EQ(device_.privateKey(), want);
  EXPECT_EQ(get().substr(0, 12 + 64), "private_key=" + keyToHex(want));
  EXPECT_EQ(set("private_key=" + std::string(64, '0') + "\n"), kOk);
  EXPECT_FALSE(device_.privateKey());
  EXPECT_EQ(get(), kOk);
}

TEST_F(UapiTest, SetListenPortAndFwmark) {
  EXPECT_EQ(set("listen_port=51820\nfwmark=4294967295\n"), kOk);
  EXPECT_EQ(host_.port, 51820);
  EXPECT_EQ(host_.mark, 4294967295u);
  EXPECT_EQ(get(), "listen_port=51820\nfwmark=4294967295\nerrno=0\n\n");
  EXPECT_EQ(set("fwmark=0\nlisten_port=00080\n"), kOk);  // ParseUint allows leading zeros
  EXPECT_EQ(host_.mark, 0u);
  EXPECT_EQ(host_.port, 80);
  EXPECT_EQ(get(), "listen_port=80\nerrno=0\n\n");
  host_.port_error = EADDRINUSE;
  EXPECT_EQ(set("listen_port=51821\n"), "errno=-98\n\n");
  EXPECT_EQ(kUapiErrPortInUse, -EADDRINUSE);
}

TEST_F(UapiTest, SetReplacePeers) {
  EXPECT_EQ(set(pkLine(1) + pkLine(2)), kOk);
  EXPECT_EQ(device_.peerCount(), 2u);
  EXPECT_EQ(set("replace_peers=true\n" + pkLine(3)), kOk);
  EXPECT_EQ(device_.peerKeys(), std::vector<Key32>{filled(3)});
  EXPECT_EQ(set("replace_peers=false\n"), kEinval);
  EXPECT_EQ(device_.peerCount(), 1u);
}

TEST_F(UapiTest, DeviceKeyInsidePeerSectionIsInvalid) {
  EXPECT_EQ(set(pkLine(1) + "listen_port=1\n"), kEinval);
  EXPECT_EQ(host_.port, 0);
  EXPECT_EQ(set(pkLine(1) + "replace_peers=true\n"), kEinval);
  EXPECT_TRUE(device_.hasPeer(filled(1)));
}

// ---- set: peer keys ----

TEST_F(UapiTest, SetAllPeerKeys) {
  EXPECT_EQ(set(pkLine(1) + "protocol_version=1\npreshared_key=" + keyToHex(filled(9)) +
                "\nendpoint=198.51.100.7:1234\npersistent_keepalive_interval=21\n"
                "allowed_ip=10.0.0.0/8\nallowed_ip=fd00::1/128\n"),
            kOk);
  auto p = peer(1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->preshared_key, filled(9));
  EXPECT_EQ(p->endpoint, Endpoint::parse("198.51.100.7:1234"));
  EXPECT_EQ(p->persistent_keepalive, 21);
  std::vector<IpPrefix> ips = p->allowed_ips;
  std::sort(ips.begin(), ips.end());
  EXPECT_EQ(ips, (std::vector<IpPrefix>{*IpPrefix::parse("10.0.0.0/8"),
                                        *IpPrefix::parse("fd00::1/128")}));

  // Zero preshared key clears; endpoint changes; host bits are masked.
  EXPECT_EQ(set(pkLine(1) + "preshared_key=" + std::string(64, '0') +
                "\nendpoint=[fd00::9]:9\nreplace_allowed_ips=true\nallowed_ip=192.168.1.77/24\n"),
            kOk);
  p = peer(1);
  EXPECT_FALSE(p->preshared_key);
  EXPECT_EQ(p->endpoint->toString(), "[fd00::9]:9");
  EXPECT_EQ(p->allowed_ips, std::vector<IpPrefix>{*IpPrefix::parse("192.168.1.0/24")});
  EXPECT_NE(get().find("preshared_key=" + std::string(64, '0') + "\n"), std::string::npos);

  // "-CIDR" removes one prefix; removing an absent one is fine.
  EXPECT_EQ(set(pkLine(1) + "allowed_ip=10.9.0.0/16\nallowed_ip=-192.168.1.0/24\n"
                            "allowed_ip=-172.16.0.0/12\n"),
            kOk);
  EXPECT_EQ(peer(1)->allowed_ips, std::vector<IpPrefix>{*IpPrefix::parse("10.9.0.0/16")});
}

TEST_F(UapiTest, KeepaliveTurnedOnSendsOnceAtSectionEnd) {
  device_.setPrivateKey(clampedKey(0x42), kNow);
  // Keepalive before endpoint in the section: wireguard-go sends at the section's end, when the
  // endpoint is known.
  EXPECT_EQ(set(pkLine(1) + "persistent_keepalive_interval=25\nendpoint=192.0.2.9:7\n"), kOk);
  EXPECT_GE(output_.sent, 1);
  EXPECT_EQ(output_.last_to, *Endpoint::parse("192.0.2.9:7"));
  int before = output_.sent;
  EXPECT_EQ(set(pkLine(1) + "persistent_keepalive_interval=30\n"), kOk);  // N → M: no keepalive
  EXPECT_EQ(output_.sent, before);
  EXPECT_EQ(peer(1)->persistent_keepalive, 30);
  EXPECT_EQ(set(pkLine(1) + "persistent_keepalive_interval=0\n"), kOk);
  EXPECT_EQ(peer(1)->persistent_keepalive, 0);
}

TEST_F(UapiTest, RemoveAndUpdateOnly) {
  EXPECT_EQ(set(pkLine(1) + pkLine(2)), kOk);
  EXPECT_EQ(set(pkLine(1) + "remove=true\nallowed_ip=10.0.0.0/8\n"), kOk);
  EXPECT_FALSE(device_.hasPeer(filled(1)));
  EXPECT_EQ(set(pkLine(7) + "remove=true\n"), kOk);  // absent: not created
  EXPECT_FALSE(device_.hasPeer(filled(7)));
  EXPECT_EQ(set(pkLine(2) + "remove=yes\n"), kEinval);
  EXPECT_TRUE(device_.hasPeer(filled(2)));

  // update_only on a missing peer creates nothing, even with lines before and after it.
  EXPECT_EQ(set(pkLine(8) + "allowed_ip=10.8.0.0/16\nupdate_only=true\nendpoint=1.2.3.4:5\n"), kOk);
  EXPECT_FALSE(device_.hasPeer(filled(8)));
  EXPECT_EQ(set(pkLine(2) + "update_only=true\nendpoint=1.2.3.4:5\n"), kOk);
  EXPECT_EQ(peer(2)->endpoint, Endpoint::parse("1.2.3.4:5"));
  EXPECT_EQ(set(pkLine(2) + "update_only=1\n"), kEinval);
  EXPECT_EQ(device_.peerKeys(), std::vector<Key32>{filled(2)});
}

TEST_F(UapiTest, OwnPublicKeySectionIsIgnored) {
  device_.setPrivateKey(clampedKey(0x33), kNow);
  const Key32 own = *device_.publicKey();
  EXPECT_EQ(set("public_key=" + keyToHex(own) +
                "\nendpoint=1.2.3.4:5\nallowed_ip=10.0.0.0/8\npersistent_keepalive_interval=5\n" +
                pkLine(4) + "allowed_ip=10.0.0.0/8\n"),
            kOk);
  EXPECT_FALSE(device_.hasPeer(own));
  EXPECT_EQ(device_.peerKeys(), std::vector<Key32>{filled(4)});
  EXPECT_EQ(peer(4)->allowed_ips.size(), 1u);
  // Values in an ignored section are still validated.
  EXPECT_EQ(set("public_key=" + keyToHex(own) + "\nendpoint=nonsense\n"), kEinval);
}

TEST_F(UapiTest, CrlfLinesInSet) {
  EXPECT_EQ(run("set=1\r\n\n"), "");  // the operation line is exact, as in wireguard-go
  EXPECT_TRUE(conn_->wantsClose());
  EXPECT_EQ(run("set=1\nlisten_port=5\r\n\r\nget=1\n\n"), "errno=0\n\nlisten_port=5\nerrno=0\n\n");
}

// ---- errors ----

struct BadSet {
  const char* body;
  const char* reply;
};

TEST_F(UapiTest, ErrorReplies) {
  const std::string pk = pkLine(1);
  const BadSet cases[] = {
      {"bogus=1\n", kEinval},
      {"=1\n", kEinval},
      {"no_equals_sign\n", "errno=-71\n\n"},
      {"private_key=abc\n", kEinval},
      {"private_key=0000000000000000000000000000000000000000000000000000000000000g00\n", kEinval},
      {"public_key=\n", kEinval},
      {"public_key=zz\n", kEinval},
      {"listen_port=65536\n", kEinval},
      {"listen_port=-1\n", kEinval},
      {"listen_port=+1\n", kEinval},
      {"listen_port=\n", kEinval},
      {"listen_port= 1\n", kEinval},
      {"fwmark=4294967296\n", kEinval},
      {"fwmark=0x10\n", kEinval},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(set(c.body), c.reply) << c.body;
    EXPECT_TRUE(conn_->wantsClose()) << c.body;
  }
  const char* peer_cases[] = {
      "bogus=1\n",
      "preshared_key=1234\n",
      "endpoint=\n",
      "endpoint=1.2.3.4\n",
      "endpoint=1.2.3.4:65536\n",
      "endpoint=example.com:51820\n",
      "endpoint=fd00::1:51820\n",
      "endpoint=[1.2.3.4]:51820\n",
      "endpoint=[fd00::1]51820\n",
      "persistent_keepalive_interval=65536\n",
      "persistent_keepalive_interval=x\n",
      "replace_allowed_ips=1\n",
      "allowed_ip=10.0.0.0\n",
      "allowed_ip=10.0.0.0/33\n",
      "allowed_ip=fd00::/129\n",
      "allowed_ip=10.0.0.0/08\n",
      "allowed_ip=10.0.0.0/-8\n",
      "allowed_ip=10.0.0.0/\n",
      "allowed_ip=garbage/8\n",
      "allowed_ip=-\n",
      "allowed_ip=--10.0.0.0/8\n",
      "allowed_ip=\n",
      "protocol_version=2\n",
      "protocol_version=\n",
  };
  for (const char* body : peer_cases) {
    EXPECT_EQ(set(pk + body), kEinval) << body;
    EXPECT_TRUE(conn_->wantsClose()) << body;
  }
  // Lines before the error took effect, as in wireguard-go.
  EXPECT_TRUE(device_.hasPeer(filled(1)));
}

TEST_F(UapiTest, UnknownOperationClosesSilently) {
  for (const char* op : {"put=1\n", "get=2\n", "get\n", "\n", "GET=1\n", "get=1 \n"}) {
    EXPECT_EQ(run(op), "") << op;
    EXPECT_TRUE(conn_->wantsClose()) << op;
  }
  std::string reply;
  conn_->feed("get=1\n\n", kNow, reply);  // ignored after close
  EXPECT_EQ(reply, "");
}

TEST_F(UapiTest, LongLinesAreBounded) {
  // Op line: closes without buffering it all.
  conn_ = std::make_unique<UapiConnection>(device_, host_, output_);
  std::string reply, chunk(1000, 'a');
  for (int i = 0; i < 10 && !conn_->wantsClose(); ++i) {
    conn_->feed(chunk, kNow, reply);
    EXPECT_LE(conn_->bufferedBytes(), 4096u);
  }
  EXPECT_TRUE(conn_->wantsClose());
  EXPECT_EQ(reply, "");
  // Set line: errno=-5 like bufio.Scanner's ErrTooLong.
  EXPECT_EQ(set("allowed_ip=" + std::string(5000, '1') + "\n"), "errno=-5\n\n");
  EXPECT_TRUE(conn_->wantsClose());
  // A line exactly at the limit is still a line.
  EXPECT_EQ(set("bogus=" + std::string(4096 - 6, 'x') + "\n"), kEinval);
}

// ---- streaming ----

std::string script() {
  std::string s = "set=1\nprivate_key=" + keyToHex(clampedKey(0x21)) +
                  "\nlisten_port=1000\nfwmark=3\n"
                  "public_key=" +
                  keyToHex(filled(5)) +
                  "\nendpoint=[fd00::5]:5\nallowed_ip=10.5.0.0/16\nallowed_ip=fd05::/32\n"
                  "public_key=" +
                  keyToHex(filled(6)) + "\npreshared_key=" + keyToHex(filled(66)) +
                  "\nallowed_ip=10.6.0.0/16\n\nget=1\n\nset=1\npublic_key=" + keyToHex(filled(5)) +
                  "\nremove=true\n\nget=1\n\n";
  return s;
}

TEST_F(UapiTest, SplitFeedsEqualOneFeed) {
  const std::string text = script();
  std::string whole;
  {
    FakeRandom r(7);
    Device d(r);
    FakeHost h;
    UapiConnection c(d, h, output_);
    c.feed(text, kNow, whole);
    EXPECT_FALSE(c.wantsClose());
  }
  // set reply 2 lines, get 3 + 11 + 9 + 2, set reply 2, get 3 + 9 + 2.
  ASSERT_EQ(std::count(whole.begin(), whole.end(), '\n'), 43) << whole;
  for (size_t split = 0; split <= text.size(); ++split) {
    FakeRandom r(7);
    Device d(r);
    FakeHost h;
    UapiConnection c(d, h, output_);
    std::string reply;
    c.feed(std::string_view(text).substr(0, split), kNow, reply);
    c.feed(std::string_view(text).substr(split), kNow, reply);
    ASSERT_EQ(reply, whole) << "split at " << split;
  }
  FakeRandom r(7);
  Device d(r);
  FakeHost h;
  UapiConnection c(d, h, output_);
  std::string reply;
  for (char ch : text) c.feed(std::string_view(&ch, 1), kNow, reply);
  EXPECT_EQ(reply, whole);
}

TEST_F(UapiTest, ManyOperationsOnOneConnection) {
  conn_ = std::make_unique<UapiConnection>(device_, host_, output_);
  std::string reply;
  for (int i = 0; i < 200; ++i) {
    std::string op = "set=1\n" + pkLine(static_cast<uint8_t>(i)) + "allowed_ip=10.0." +
                     std::to_string(i) + ".0/24\n\nget=1\n\n";
    size_t before = reply.size();
    conn_->feed(op, kNow, reply);
    ASSERT_FALSE(conn_->wantsClose());
    std::string got = reply.substr(before);
    ASSERT_EQ(got.substr(0, 9), kOk);
    ASSERT_EQ(std::count(got.begin(), got.end(), '\n'), 2 + 9 * (i + 1) + 2);
  }
  EXPECT_EQ(device_.peerCount(), 200u);
}

TEST_F(UapiTest, HugeAllowedIpList) {
  // The kernel selftest's shape: one peer with 255 * 256 * 2 allowed IPs, through one set.
  std::string body = pkLine(1);
  body.reserve(130560 * 40);
  for (int i = 0; i < 255; ++i) {
    for (int j = 0; j < 256; ++j) {
      body += "allowed_ip=1." + std::to_string(i) + "." + std::to_string(j) + ".0/24\n";
      body += "allowed_ip=abcd:" + std::to_string(i) + ":" + std::to_string(j) + "::/48\n";
    }
  }
  EXPECT_EQ(set(body), kOk);
  EXPECT_EQ(peer(1)->allowed_ips.size(), 130560u);
  std::string reply = get();
  EXPECT_EQ(std::count(reply.begin(), reply.end(), '\n'), 130560 + 8 + 2);
  EXPECT_NE(reply.find("allowed_ip=1.254.255.0/24\n"), std::string::npos);
  EXPECT_NE(reply.find("allowed_ip=abcd:254:255::/48\n"), std::string::npos);
  EXPECT_EQ(reply.substr(reply.size() - 9), kOk);
}

TEST_F(UapiTest, FortyPeersFiftyTwoIps) {
  std::string body;
  for (int p = 0; p < 40; ++p) {
    body += pkLine(static_cast<uint8_t>(p + 1));
    for (int i = 0; i < 52; ++i) {
      body += "allowed_ip=10." + std::to_string(p) + "." + std::to_string(i) + ".0/24\n";
    }
  }
  EXPECT_EQ(set(body), kOk);
  std::string reply = get();
  EXPECT_EQ(std::count(reply.begin(), reply.end(), '\n'), 40 * (8 + 52) + 2);
}

TEST_F(UapiTest, PeerLimit) {
  UapiOptions opts;
  opts.max_peers = 3;
  UapiConnection c(device_, host_, output_, opts);
  std::string reply;
  c.feed("set=1\n" + pkLine(1) + pkLine(2) + pkLine(3) + pkLine(1) + pkLine(4) + "\n", kNow, reply);
  EXPECT_EQ(reply, kEinval);
  EXPECT_EQ(device_.peerCount(), 3u);
}

}  // namespace
}  // namespace gatehouse::wg
