// Two embedded Nodes in one process, peered over loopback UDP, on one shared LoopThread (lwIP is
// process-global: netstack.h). Node A is 10.7.0.1 / fd7::1, node B 10.7.0.2 / fd7::2. A's peer
// entry for B also routes 10.7.1.0/24 (nobody answers there: dial timeouts). A sends a
// keepalive at start so both ends know each other's endpoint.
#pragma once

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <memory>
#include <string>

#include "wg/crypto/x25519.h"
#include "wg/node.h"

namespace gatehouse::wg::testing {

inline Key32 randomKey() {
  Key32 seed;
  randombytes_buf(seed.data(), seed.size());
  return crypto::privateKeyFromRandom(seed);
}

inline IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }
inline IpAddr ip(const char* text) { return *IpAddr::parse(text); }

// Runs fn on the node's loop and returns its result.
template <typename F>
auto onLoop(Node& node, F fn) -> decltype(fn()) {
  using R = decltype(fn());
  auto p = std::make_shared<std::promise<R>>();
  auto fut = p->get_future();
  node.post([p, fn]() mutable {
    if constexpr (std::is_void_v<R>) {
      fn();
      p->set_value();
    } else {
      p->set_value(fn());
    }
  });
  return fut.get();
}

// Reads until EOF or error; returns bytes read, or -errno.
inline long readAll(int fd, std::string* out) {
  char buf[65536];
  long total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return total;
    if (out != nullptr) out->append(buf, static_cast<size_t>(n));
    total += n;
  }
}

inline bool writeAll(int fd, const void* data, size_t len) {
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

class NodePairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    Key32 ka = randomKey(), kb = randomKey();
    loop_ = std::make_unique<LoopThread>();

    NodeOptions ob;
    ob.private_key = kb;
    ob.addresses = {ip("10.7.0.2"), ip("fd7::2")};
    ob.hostname = "node-b";
    ob.loop_thread = loop_.get();
    ob.peers = {{.public_key = crypto::publicKey(ka),
                 .allowed_ips = {prefix("10.7.0.1/32"), prefix("fd7::1/128")},
                 .name = "node-a"}};
    b_ = std::make_unique<Node>(ob);
    ASSERT_TRUE(b_->start().isOk());

    NodeOptions oa;
    oa.private_key = ka;
    oa.addresses = {ip("10.7.0.1"), ip("fd7::1")};
    oa.hostname = "node-a";
    oa.loop_thread = loop_.get();
    oa.peers = {
        {.public_key = crypto::publicKey(kb),
         .endpoint = Endpoint{ip("127.0.0.1"), b_->listenPort()},
         .allowed_ips = {prefix("10.7.0.2/32"), prefix("10.7.1.0/24"), prefix("fd7::2/128")},
         .persistent_keepalive = 25,
         .name = "node-b"}};
    a_ = std::make_unique<Node>(oa);
    Status st = a_->start();
    ASSERT_TRUE(st.isOk()) << st.message();
    pub_a_ = crypto::publicKey(ka);
    pub_b_ = crypto::publicKey(kb);
    // B learns A's endpoint from the keepalive's handshake.
    for (int i = 0; i < 200; ++i) {
      auto info = onLoop(*b_, [&] { return b_->device()->peerInfo(pub_a_); });
      if (info && info->endpoint) break;
      usleep(10000);
    }
  }
  void TearDown() override {
    if (a_) a_->close();
    if (b_) b_->close();
    a_.reset();
    b_.reset();
    loop_.reset();
  }

  std::unique_ptr<LoopThread> loop_;
  std::unique_ptr<Node> a_, b_;
  Key32 pub_a_{}, pub_b_{};
};

}  // namespace gatehouse::wg::testing
