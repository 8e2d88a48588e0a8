// The C ABI (include/gatehouse.h): two nodes in one process through the C calls only (they share
// the library's loop thread), fd echo both ways, whois into the caller's struct, truncation,
// struct versioning, and misuse returning codes with messages.
#include <gtest/gtest.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "gatehouse.h"
#include "tests/wg/node_pair.h"
#include "wg/uapi.h"

namespace gatehouse::wg::testing {
namespace {

struct Keys {
  std::string priv, pub;
};

Keys newKeys() {
  Key32 k = randomKey();
  return {keyToBase64(k), keyToBase64(crypto::publicKey(k))};
}

class CapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    ka_ = newKeys();
    kb_ = newKeys();
    gatehouse_options o;
    gatehouse_options_init(&o);
    o.private_key = kb_.priv.c_str();
    o.addresses = "10.8.0.2, fd8::2";
    o.hostname = "capi-b";
    ASSERT_EQ(gatehouse_node_new(&o, &b_), GATEHOUSE_OK);
    gatehouse_peer p;
    gatehouse_peer_init(&p);
    p.public_key = ka_.pub.c_str();
    p.allowed_ips = "10.8.0.1/32,fd8::1/128";
    p.name = "capi-a";
    ASSERT_EQ(gatehouse_node_add_peer(b_, &p), GATEHOUSE_OK) << gatehouse_errmsg(b_);
    ASSERT_EQ(gatehouse_node_start(b_), GATEHOUSE_OK) << gatehouse_errmsg(b_);

    o.private_key = ka_.priv.c_str();
    o.addresses = "10.8.0.1,fd8::1";
    o.hostname = "capi-a";
    ASSERT_EQ(gatehouse_node_new(&o, &a_), GATEHOUSE_OK);
    std::string ep = "127.0.0.1:" + std::to_string(gatehouse_node_listen_port(b_));
    p.public_key = kb_.pub.c_str();
    p.endpoint = ep.c_str();
    p.allowed_ips = "10.8.0.2/32,fd8::2/128";
    p.name = "capi-b";
    p.persistent_keepalive = 25;
    ASSERT_EQ(gatehouse_node_add_peer(a_, &p), GATEHOUSE_OK) << gatehouse_errmsg(a_);
    ASSERT_EQ(gatehouse_node_start(a_), GATEHOUSE_OK) << gatehouse_errmsg(a_);
  }
  void TearDown() override {
    gatehouse_node_free(a_);
    gatehouse_node_free(b_);
  }
  gatehouse_node* a_ = nullptr;
  gatehouse_node* b_ = nullptr;
  Keys ka_, kb_;
};

TEST(CapiVersion, VersionAndStrerror) {
  EXPECT_EQ(gatehouse_version(), GATEHOUSE_API_VERSION);
  EXPECT_NE(std::strstr(gatehouse_version_string(), "api 1"), nullptr);
  EXPECT_STREQ(gatehouse_strerror(GATEHOUSE_OK), "ok");
  EXPECT_STREQ(gatehouse_strerror(GATEHOUSE_ECONNREFUSED), "Connection refused");
  EXPECT_STREQ(gatehouse_strerror(GATEHOUSE_ENOENT), "no peer owns this address");
  EXPECT_STREQ(gatehouse_strerror(12345), "unknown error");
  EXPECT_STREQ(gatehouse_errmsg(nullptr), "");
  gatehouse_node_free(nullptr);  // NULL-safe
}

TEST(CapiVersion, BadOptionsAndConfig) {
  gatehouse_node* n = reinterpret_cast<gatehouse_node*>(1);
  EXPECT_EQ(gatehouse_node_new(nullptr, &n), GATEHOUSE_EINVAL);
  EXPECT_EQ(n, nullptr);
  gatehouse_options o;
  gatehouse_options_init(&o);
  o.struct_size = 4;
  EXPECT_EQ(gatehouse_node_new(&o, &n), GATEHOUSE_EINVAL);
  // A newer caller's larger struct is fine while the fields we do not know are zero.
  struct Bigger {
    gatehouse_options o;
    uint64_t future_field;
  } big{};
  gatehouse_options_init(&big.o);
  big.o.struct_size = sizeof big;
  big.o.private_key = "not base64!";
  big.o.addresses = "10.9.0.1";
  ASSERT_EQ(gatehouse_node_new(&big.o, &n), GATEHOUSE_OK);
  EXPECT_EQ(gatehouse_node_start(n), GATEHOUSE_EINVAL);
  EXPECT_NE(std::strstr(gatehouse_errmsg(n), "private_key"), nullptr) << gatehouse_errmsg(n);
  gatehouse_node_free(n);
  big.future_field = 1;
  EXPECT_EQ(gatehouse_node_new(&big.o, &n), GATEHOUSE_EINVAL);
  big.future_field = 0;
  big.o.api_version = GATEHOUSE_API_VERSION + 1;
  EXPECT_EQ(gatehouse_node_new(&big.o, &n), GATEHOUSE_EINVAL);

  gatehouse_options_init(&o);
  std::string key = keyToBase64(randomKey());
  o.private_key = key.c_str();
  o.addresses = "10.9.0.1,banana";
  ASSERT_EQ(gatehouse_node_new(&o, &n), GATEHOUSE_OK);
  gatehouse_peer p;
  gatehouse_peer_init(&p);
  p.public_key = "short";
  EXPECT_EQ(gatehouse_node_add_peer(n, &p), GATEHOUSE_EINVAL);
  EXPECT_NE(std::strstr(gatehouse_errmsg(n), "public_key 'short'"), nullptr);
  p.public_key = key.c_str();
  p.allowed_ips = "10.9.0.0/16,10.300.0.0/16";
  EXPECT_EQ(gatehouse_node_add_peer(n, &p), GATEHOUSE_EINVAL);
  EXPECT_NE(std::strstr(gatehouse_errmsg(n), "10.300.0.0/16"), nullptr);
  p.allowed_ips = "10.9.0.0/16";
  p.endpoint = "localhost:51820";
  EXPECT_EQ(gatehouse_node_add_peer(n, &p), GATEHOUSE_EINVAL);
  EXPECT_EQ(gatehouse_node_start(n), GATEHOUSE_EINVAL);
  EXPECT_NE(std::strstr(gatehouse_errmsg(n), "'banana'"), nullptr) << gatehouse_errmsg(n);
  // Not started: every verb says so.
  EXPECT_EQ(gatehouse_listen(n, "tcp", 80), GATEHOUSE_EBADF);
  EXPECT_EQ(gatehouse_dial(n, "10.9.0.2:80", 100), GATEHOUSE_EBADF);
  EXPECT_EQ(gatehouse_node_listen_port(n), GATEHOUSE_EBADF);
  gatehouse_node_free(n);
}

TEST_F(CapiTest, DialAcceptEchoAndWhois) {
  int l = gatehouse_listen(b_, "tcp", 7000);
  ASSERT_GE(l, 0) << gatehouse_errmsg(b_);
  std::string seen_from;
  std::thread server([&] {
    char from[GATEHOUSE_ADDRSTRLEN];
    int fd = gatehouse_accept(b_, l, 10000, from, sizeof from);
    ASSERT_GE(fd, 0) << gatehouse_errmsg(b_);
    seen_from = from;
    std::string got;
    readAll(fd, &got);  // until the client's FIN
    std::string reply = "echo:" + got;
    writeAll(fd, reply.data(), reply.size());
    ::close(fd);
  });
  int fd = gatehouse_dial(a_, "[fd8::2]:7000", 5000);
  ASSERT_GE(fd, 0) << gatehouse_errmsg(a_);
  ASSERT_TRUE(writeAll(fd, "hello", 5));
  shutdown(fd, SHUT_WR);
  std::string reply;
  EXPECT_EQ(readAll(fd, &reply), 10);
  EXPECT_EQ(reply, "echo:hello");
  ::close(fd);
  server.join();
  EXPECT_EQ(seen_from.rfind("[fd8::1]:", 0), 0u) << seen_from;

  gatehouse_identity id;
  gatehouse_identity_init(&id);
  ASSERT_EQ(gatehouse_whois(b_, seen_from.c_str(), &id), GATEHOUSE_OK) << gatehouse_errmsg(b_);
  EXPECT_EQ(ka_.pub, id.public_key);
  EXPECT_STREQ(id.name, "capi-a");
  EXPECT_EQ(id.flags, 0u);
  ASSERT_EQ(id.allowed_ip_count, 2u);
  EXPECT_STREQ(id.allowed_ips[0], "10.8.0.1/32");
  EXPECT_STREQ(id.allowed_ips[1], "fd8::1/128");
  EXPECT_STRNE(id.endpoint, "");
  gatehouse_identity_init(&id);
  ASSERT_EQ(gatehouse_whois(b_, "10.8.0.2", &id), GATEHOUSE_OK);
  EXPECT_EQ(id.flags, unsigned{GATEHOUSE_IDENTITY_SELF});
  EXPECT_EQ(kb_.pub, id.public_key);
  char pub[GATEHOUSE_KEY_STRLEN];
  ASSERT_EQ(gatehouse_node_public_key(b_, pub, sizeof pub), GATEHOUSE_OK);
  EXPECT_EQ(kb_.pub, pub);
  EXPECT_EQ(gatehouse_whois(b_, "10.99.0.1", &id), GATEHOUSE_ENOENT);
  EXPECT_NE(std::strstr(gatehouse_errmsg(b_), "10.99.0.1"), nullptr);
  EXPECT_EQ(gatehouse_whois(b_, "nonsense", &id), GATEHOUSE_EINVAL);
  EXPECT_EQ(gatehouse_listener_close(b_, l), GATEHOUSE_OK);
  EXPECT_EQ(gatehouse_listener_close(b_, l), GATEHOUSE_EBADF);
}

// An old caller's smaller identity struct gets only its prefix written.
TEST_F(CapiTest, WhoisIntoSmallerStruct) {
  struct {
    gatehouse_identity id;
    char canary[8];
  } s;
  std::memset(&s, 0x5A, sizeof s);
  s.id.struct_size = offsetof(gatehouse_identity, endpoint);
  ASSERT_EQ(gatehouse_whois(b_, "10.8.0.1", &s.id), GATEHOUSE_OK);
  EXPECT_EQ(ka_.pub, s.id.public_key);
  EXPECT_EQ(static_cast<unsigned char>(s.id.endpoint[0]), 0x5Au);  // untouched
  EXPECT_EQ(static_cast<unsigned char>(s.canary[0]), 0x5Au);
}

TEST_F(CapiTest, ListenerPollsReadableAndMisuse) {
  int l = gatehouse_listen(b_, "tcp", 7001);
  ASSERT_GE(l, 0);
  EXPECT_EQ(gatehouse_listen(b_, "tcp", 7001), GATEHOUSE_EADDRINUSE);
  EXPECT_NE(std::strstr(gatehouse_errmsg(b_), "7001"), nullptr) << gatehouse_errmsg(b_);
  EXPECT_EQ(gatehouse_listen(b_, "udp", 7002), GATEHOUSE_ENOTSUP);
  EXPECT_EQ(gatehouse_listen(b_, "tcp", 70000), GATEHOUSE_EINVAL);
  EXPECT_EQ(gatehouse_accept(b_, l, 0, nullptr, 0), GATEHOUSE_ETIMEDOUT);
  EXPECT_EQ(gatehouse_accept(b_, 12345, 0, nullptr, 0), GATEHOUSE_EBADF);
  EXPECT_EQ(gatehouse_dial(a_, "10.99.0.1:80", 500), GATEHOUSE_EHOSTUNREACH);
  EXPECT_EQ(gatehouse_dial(a_, "10.8.0.2:7999", 5000), GATEHOUSE_ECONNREFUSED);
  EXPECT_EQ(gatehouse_dial(a_, "10.8.0.2", 500), GATEHOUSE_EINVAL);
  EXPECT_EQ(gatehouse_node_start(a_), GATEHOUSE_EINVAL);
  int fd = gatehouse_dial(a_, "10.8.0.2:7001", 5000);
  ASSERT_GE(fd, 0) << gatehouse_errmsg(a_);
  pollfd p{l, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 5000), 1);
  char from[8];  // too small: truncated, still NUL-terminated
  int c = gatehouse_accept(b_, l, 0, from, sizeof from);
  ASSERT_GE(c, 0);
  EXPECT_EQ(std::strlen(from), 7u);
  ::close(c);
  ::close(fd);
  // A thread blocked in accept wakes with EBADF when the node closes.
  std::thread waiter(
      [&] { EXPECT_EQ(gatehouse_accept(b_, l, 20000, nullptr, 0), GATEHOUSE_EBADF); });
  usleep(50000);
  EXPECT_EQ(gatehouse_node_close(b_), GATEHOUSE_OK);
  waiter.join();
  EXPECT_EQ(gatehouse_node_close(b_), GATEHOUSE_OK);  // idempotent
  EXPECT_EQ(gatehouse_listen(b_, "tcp", 7003), GATEHOUSE_EBADF);
  gatehouse_identity id;
  gatehouse_identity_init(&id);
  EXPECT_EQ(gatehouse_whois(b_, "10.8.0.1", &id), GATEHOUSE_EBADF);
}

}  // namespace
}  // namespace gatehouse::wg::testing
