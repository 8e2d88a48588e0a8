// Two Netstacks wired back to back on one libuv loop, no WireGuard: packets one emits are queued
// and fed to the other from the test's pump (never re-entering lwIP from its own output).
// Regression tests for handler lifetime during close() and for the TIME_WAIT cap.
#include "wg/netstack/netstack.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <deque>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "lwip/priv/tcp_priv.h"
}

namespace gatehouse::wg {
namespace {

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

size_t allTimeWaitPcbs() {  // every Netstack's, and lwIP's leftovers from earlier tests
  size_t n = 0;
  for (struct tcp_pcb* pcb = tcp_tw_pcbs; pcb != nullptr; pcb = pcb->next) ++n;
  return n;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class NetstackPairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    auto b = Netstack::create(&loop_, {.addresses = {ip("10.9.0.2")}, .max_timewait = kCap},
                              [this](std::span<const uint8_t> p) { queue(&a_, p); });
    ASSERT_TRUE(b.isOk()) << b.status().message();
    b_ = std::move(b.value());
    auto a = Netstack::create(&loop_, {.addresses = {ip("10.9.0.1")}},
                              [this](std::span<const uint8_t> p) { queue(&b_, p); });
    ASSERT_TRUE(a.isOk()) << a.status().message();
    a_ = std::move(a.value());
  }
  void TearDown() override {
    if (a_) a_->close();
    if (b_) b_->close();
    wire_.clear();
    a_.reset();
    b_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  void queue(std::unique_ptr<Netstack>* to, std::span<const uint8_t> p) {
    wire_.emplace_back(to, std::vector<uint8_t>(p.begin(), p.end()));
  }
  // Delivers queued packets and runs the loop until done() or 10 s.
  bool pumpUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      while (!wire_.empty()) {
        auto [to, packet] = std::move(wire_.front());
        wire_.pop_front();
        if (*to) (*to)->input(packet);
      }
      uv_run(&loop_, wire_.empty() ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    }
    return true;
  }

  static constexpr size_t kCap = 8;
  uv_loop_t loop_{};
  std::unique_ptr<Netstack> a_, b_;
  std::deque<std::pair<std::unique_ptr<Netstack>*, std::vector<uint8_t>>> wire_;
};

// A handler that closes (or aborts) its own connection and then uses its captures. Two pointers
// fit std::function's inline storage, which markClosed used to move out and zero while the
// handler was still running: `hits` became null.
TEST_F(NetstackPairTest, HandlerMayCloseItsConnectionThenUseItsCaptures) {
  int hits = 0;
  auto l = b_->listenTcp(80, [&hits](std::shared_ptr<TcpConn> c) {
    TcpConn* raw = c.get();
    c->setHandlers({.on_data = [raw, hits = &hits](std::span<const uint8_t> d) {
      raw->close();
      ++*hits;
      raw->write(bytes("late")).status();  // EBADF, not a crash
      return d.size();
    }});
  });
  ASSERT_TRUE(l.isOk());
  auto l2 = b_->listenTcp(81, [&hits](std::shared_ptr<TcpConn> c) {
    std::string tag = "captured-string-" + std::to_string(c->remoteEndpoint().port);
    TcpConn* raw = c.get();
    c->setHandlers({.on_data = [raw, tag, hits = &hits](std::span<const uint8_t> d) {
      raw->abort();
      *hits += tag.rfind("captured-string-", 0) == 0 ? 1 : 100;
      return d.size();
    }});
  });
  ASSERT_TRUE(l2.isOk());
  std::vector<std::shared_ptr<TcpConn>> conns;
  for (uint16_t port : {80, 81}) {
    std::shared_ptr<TcpConn> c;
    auto r = a_->dialTcp({ip("10.9.0.2"), port}, 5000, [&c](const Status& st) {
      ASSERT_TRUE(st.isOk()) << st.message();
      c->write(bytes("hello"));
    });
    ASSERT_TRUE(r.isOk()) << r.status().message();
    c = r.value();
    conns.push_back(c);
    ASSERT_TRUE(pumpUntil([&] { return hits >= (port == 80 ? 1 : 2); }));
  }
  EXPECT_EQ(hits, 2);
  for (auto& c : conns) c->abort();
}

// Server-closed connections leave TIME_WAIT pcbs at the server; the node keeps at most kCap.
TEST_F(NetstackPairTest, TimeWaitIsCapped) {
  auto l = b_->listenTcp(80, [](std::shared_ptr<TcpConn> c) {
    c->write(bytes("bye"));
    c->close();  // the server closes first: its pcb ends in TIME_WAIT
  });
  ASSERT_TRUE(l.isOk());
  constexpr int kConns = 40;
  int done = 0;
  size_t max_seen = 0;
  for (int i = 0; i < kConns; ++i) {
    std::shared_ptr<TcpConn> c;
    auto r = a_->dialTcp({ip("10.9.0.2"), 80}, 5000, [&](const Status& st) {
      ASSERT_TRUE(st.isOk()) << st.message();
      TcpConn* raw = c.get();
      c->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); },
                      .on_eof =
                          [raw, &done] {
                            raw->close();
                            ++done;
                          }});
    });
    ASSERT_TRUE(r.isOk()) << r.status().message();
    c = r.value();
    ASSERT_TRUE(pumpUntil([&] { return done == i + 1 && wire_.empty(); })) << i;
    max_seen = std::max(max_seen, b_->timeWaitCount());
  }
  EXPECT_EQ(b_->timeWaitCount(), kCap);
  EXPECT_LE(max_seen, kCap);
  EXPECT_EQ(b_->counters().timewait_evicted, uint64_t{kConns} - kCap);
  EXPECT_EQ(a_->timeWaitCount(), 0u);  // the client closed second: LAST_ACK, no TIME_WAIT
  EXPECT_EQ(a_->counters().timewait_evicted, 0u);

  // Still serving afterwards.
  std::string got;
  std::shared_ptr<TcpConn> c;
  auto r = a_->dialTcp({ip("10.9.0.2"), 80}, 5000, [&](const Status& st) {
    ASSERT_TRUE(st.isOk()) << st.message();
    c->setHandlers({.on_data = [&got](std::span<const uint8_t> d) {
      got.append(d.begin(), d.end());
      return d.size();
    }});
  });
  ASSERT_TRUE(r.isOk());
  c = r.value();
  ASSERT_TRUE(pumpUntil([&] { return got == "bye"; }));
  c->close();

  // Closing the node drops its TIME_WAIT pcbs (they would outlive its netif).
  size_t before = allTimeWaitPcbs();
  b_->close();
  EXPECT_EQ(allTimeWaitPcbs(), before - kCap);
}

}  // namespace
}  // namespace gatehouse::wg
