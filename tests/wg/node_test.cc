// Two embedded Nodes talking over loopback UDP with no TUN anywhere: TCP through callbacks and
// through file descriptors, half-close, reset, UDP, whoIs, self-dial and API misuse.
#include <sodium.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "tests/wg/node_pair.h"

namespace gatehouse::wg::testing {
namespace {

std::string hashOf(const std::string& data) {
  uint8_t h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const uint8_t*>(data.data()), data.size(),
                     nullptr, 0);
  return std::string(reinterpret_cast<char*>(h), sizeof h);
}

std::string randomBytes(size_t n) {
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

TEST_F(NodePairTest, CallbackEcho) {
  std::promise<std::string> got;
  auto listener = onLoop(*b_, [&] {
    return b_->listenTcp(7, [](std::shared_ptr<TcpConn> c) {
      TcpConn* raw = c.get();
      c->setHandlers({.on_data =
                          [raw](std::span<const uint8_t> d) {
                            auto n = raw->write(d);
                            return n.isOk() ? *n : 0;
                          },
                      .on_eof = [raw] { raw->close(); }});
    });
  });
  ASSERT_TRUE(listener.isOk()) << listener.status().message();
  std::shared_ptr<TcpConn> conn;
  std::string buf;
  onLoop(*a_, [&] {
    auto r = a_->dialTcp("10.7.0.2:7", 5000, [&](const Status& st) {
      ASSERT_TRUE(st.isOk()) << st.message();
      conn->setHandlers({.on_data = [&](std::span<const uint8_t> d) {
        buf.append(d.begin(), d.end());
        if (buf.size() >= 5) got.set_value(buf);
        return d.size();
      }});
      ASSERT_EQ(*conn->write({reinterpret_cast<const uint8_t*>("hello"), 5}), 5u);
    });
    ASSERT_TRUE(r.isOk()) << r.status().message();
    conn = r.value();
  });
  auto fut = got.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(fut.get(), "hello");
  onLoop(*a_, [&] { conn->close(); });
}

// 10 MB each way at once over one fd connection (IPv6), checked by hash on both ends.
TEST_F(NodePairTest, FdTenMegabytesBothWays) {
  const size_t kSize = 10 << 20;
  std::string to_b = randomBytes(kSize), to_a = randomBytes(kSize);
  auto l = b_->listenFd(9000);
  ASSERT_TRUE(l.isOk()) << l.status().message();
  std::string at_b, at_a;
  std::thread server([&] {
    auto c = l.value()->accept(10000);
    ASSERT_TRUE(c.isOk()) << c.status().message();
    std::thread w([&] {
      EXPECT_TRUE(writeAll(c->fd, to_a.data(), to_a.size()));
      shutdown(c->fd, SHUT_WR);
    });
    EXPECT_EQ(readAll(c->fd, &at_b), static_cast<long>(kSize));
    w.join();
    ::close(c->fd);
  });
  auto c = a_->dialFd("[fd7::2]:9000", 5000);
  ASSERT_TRUE(c.isOk()) << c.status().message();
  EXPECT_EQ(c->remote.toString(), "[fd7::2]:9000");
  std::thread w([&] {
    EXPECT_TRUE(writeAll(c->fd, to_b.data(), to_b.size()));
    shutdown(c->fd, SHUT_WR);
  });
  EXPECT_EQ(readAll(c->fd, &at_a), static_cast<long>(kSize));
  w.join();
  server.join();
  ::close(c->fd);
  EXPECT_TRUE(hashOf(at_b) == hashOf(to_b));
  EXPECT_TRUE(hashOf(at_a) == hashOf(to_a));
}

TEST_F(NodePairTest, FdHalfClose) {
  auto l = b_->listenFd(9001);
  ASSERT_TRUE(l.isOk());
  std::thread server([&] {
    auto c = l.value()->accept(10000);
    ASSERT_TRUE(c.isOk());
    std::string req;
    EXPECT_EQ(readAll(c->fd, &req), 4);  // EOF after the client's shutdown(SHUT_WR)
    EXPECT_EQ(req, "ping");
    EXPECT_TRUE(writeAll(c->fd, "pong after eof", 14));  // still allowed: half-close
    ::close(c->fd);
  });
  auto c = a_->dialFd("10.7.0.2:9001");
  ASSERT_TRUE(c.isOk()) << c.status().message();
  ASSERT_TRUE(writeAll(c->fd, "ping", 4));
  shutdown(c->fd, SHUT_WR);
  std::string reply;
  EXPECT_EQ(readAll(c->fd, &reply), 14);
  EXPECT_EQ(reply, "pong after eof");
  server.join();
  ::close(c->fd);
}

TEST_F(NodePairTest, ResetReachesTheFdAsEconnreset) {
  auto l = b_->listenFd(9002);
  ASSERT_TRUE(l.isOk());
  std::thread server([&] {
    auto c = l.value()->accept(10000);
    ASSERT_TRUE(c.isOk());
    char x;
    ASSERT_EQ(::read(c->fd, &x, 1), 1);
    linger lg{1, 0};  // close with RST, like an aborting server
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(c->fd);
  });
  auto c = a_->dialFd("10.7.0.2:9002");
  ASSERT_TRUE(c.isOk());
  ASSERT_TRUE(writeAll(c->fd, "x", 1));
  EXPECT_EQ(readAll(c->fd, nullptr), -ECONNRESET);
  server.join();
  ::close(c->fd);
}

TEST_F(NodePairTest, CallbackAbortIsAnErrorAtThePeer) {
  std::promise<Status> err;
  auto l = onLoop(*b_, [&] {
    return b_->listenTcp(9003, [&](std::shared_ptr<TcpConn> c) {
      c->setHandlers({.on_error = [&](const Status& st) { err.set_value(st); }});
      c->write({reinterpret_cast<const uint8_t*>("x"), 1});
      static std::shared_ptr<TcpConn> keep;
      keep = c;  // held until the error
    });
  });
  ASSERT_TRUE(l.isOk());
  std::shared_ptr<TcpConn> conn;
  onLoop(*a_, [&] {
    conn = a_->dialTcp("10.7.0.2:9003", 5000, [&](const Status& st) {
               conn->setHandlers({.on_data = [&](std::span<const uint8_t> d) {
                 conn->abort();  // abort from inside a callback: lwIP must get ERR_ABRT
                 return d.size();
               }});
             }).value();
  });
  auto f = err.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), ECONNRESET);
}

TEST_F(NodePairTest, Udp) {
  std::promise<std::string> got;
  auto echo = onLoop(*b_, [&] {
    auto s = b_->listenUdp(53);
    if (s.isOk()) {
      UdpSocket* raw = s.value().get();
      raw->setOnMessage(
          [raw](const Endpoint& from, std::span<const uint8_t> d) { raw->sendTo(from, d); });
    }
    return s;
  });
  ASSERT_TRUE(echo.isOk());
  auto client = onLoop(*a_, [&] { return a_->listenUdp(0); });
  ASSERT_TRUE(client.isOk());
  onLoop(*a_, [&] {
    client.value()->setOnMessage([&](const Endpoint& from, std::span<const uint8_t> d) {
      got.set_value(from.toString() + " " + std::string(d.begin(), d.end()));
    });
    EXPECT_TRUE(client.value()
                    ->sendTo(*Endpoint::parse("10.7.0.2:53"),
                             {reinterpret_cast<const uint8_t*>("dgram"), 5})
                    .isOk());
  });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(f.get(), "10.7.0.2:53 dgram");
}

TEST_F(NodePairTest, WhoIs) {
  auto id = b_->whoIs(ip("10.7.0.1"));
  ASSERT_TRUE(id.isOk());
  EXPECT_EQ(id->node_public_key, pub_a_);
  EXPECT_EQ(id->name, "node-a");
  EXPECT_FALSE(id->is_self);
  ASSERT_EQ(id->allowed_ips.size(), 2u);
  auto v6 = a_->whoIs(ip("fd7::2"));
  ASSERT_TRUE(v6.isOk());
  EXPECT_EQ(v6->node_public_key, pub_b_);
  auto self = b_->whoIs(ip("10.7.0.2"));
  ASSERT_TRUE(self.isOk());
  EXPECT_TRUE(self->is_self);
  EXPECT_EQ(self->name, "node-b");
  EXPECT_EQ(b_->whoIs(ip("10.9.9.9")).status().code(), ENOENT);
}

TEST_F(NodePairTest, SelfDialIsServedInProcess) {
  auto l = a_->listenFd(8080);
  ASSERT_TRUE(l.isOk());
  std::thread server([&] {
    auto c = l.value()->accept(10000);
    ASSERT_TRUE(c.isOk());
    std::string req;
    readAll(c->fd, &req);
    writeAll(c->fd, req.data(), req.size());
    ::close(c->fd);
  });
  std::string payload = randomBytes(300000);  // several pipe windows
  for (const char* addr : {"10.7.0.1:8080"}) {
    auto c = a_->dialFd(addr);
    ASSERT_TRUE(c.isOk()) << c.status().message();
    std::thread w([&] {
      writeAll(c->fd, payload.data(), payload.size());
      shutdown(c->fd, SHUT_WR);
    });
    std::string back;
    EXPECT_EQ(readAll(c->fd, &back), static_cast<long>(payload.size()));
    EXPECT_TRUE(back == payload);
    w.join();
    ::close(c->fd);
  }
  server.join();
  // Nothing listening on the own address: refused, and lwIP never saw it (P1).
  EXPECT_EQ(a_->dialFd("10.7.0.1:8081").status().code(), ECONNREFUSED);
}

TEST_F(NodePairTest, MisuseReturnsErrors) {
  auto l = b_->listenFd(9100);
  ASSERT_TRUE(l.isOk());
  auto again = b_->listenFd(9100);
  EXPECT_EQ(again.status().code(), EADDRINUSE) << again.status().message();
  EXPECT_EQ(a_->dialFd("10.99.0.1:80").status().code(), EHOSTUNREACH);
  EXPECT_EQ(a_->dialFd("not an address").status().code(), EINVAL);
  EXPECT_EQ(a_->dialFd("10.7.0.2:9999").status().code(), ECONNREFUSED);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(a_->dialFd("10.7.1.9:80", 500).status().code(), ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(l.value()->accept(50).status().code(), ETIMEDOUT);
  // Blocking calls on the loop thread would deadlock: refused.
  EXPECT_EQ(onLoop(*a_, [&] { return a_->dialFd("10.7.0.2:1").status().code(); }), EDEADLK);
  EXPECT_EQ(b_->start().code(), EINVAL);
  b_->close();
  EXPECT_EQ(b_->listenFd(9101).status().code(), EBADF);
  EXPECT_EQ(b_->whoIs(ip("10.7.0.1")).status().code(), EBADF);
  EXPECT_EQ(l.value()->accept(50).status().code(), EBADF);
  b_->close();  // idempotent
}

// A fast writer and a reader that takes 1 KB per 5 ms: the writer is held back by the TCP
// window, and neither side buffers more than one window.
TEST_F(NodePairTest, SlowReaderBoundsMemory) {
  std::shared_ptr<TcpConn> server, client;
  std::atomic<size_t> max_rx{0}, max_tx{0}, accepted{0};
  auto l = onLoop(*b_, [&] {
    return b_->listenTcp(9200, [&](std::shared_ptr<TcpConn> c) {
      server = c;
      c->setHandlers({.on_data = [&](std::span<const uint8_t> d) {
        max_rx = std::max<size_t>(max_rx, server->bufferedReceive());
        return std::min<size_t>(d.size(), 1024);  // pauses delivery
      }});
    });
  });
  ASSERT_TRUE(l.isOk());
  std::string chunk(65536, 'x');
  std::function<void()> pump = [&] {
    while (client && client->open()) {
      auto n = client->write({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()});
      if (!n.isOk() || *n == 0) break;
      accepted += *n;
      max_tx = std::max<size_t>(max_tx, client->bufferedSend());
    }
  };
  onLoop(*a_, [&] {
    client = a_->dialTcp("10.7.0.2:9200", 5000, [&](const Status& st) {
                 client->setHandlers({.on_writable = pump});
                 pump();
               }).value();
  });
  for (int i = 0; i < 300; ++i) {  // 1.5 s of a slow reader
    usleep(5000);
    onLoop(*b_, [&] {
      if (server) server->resumeReading();
    });
  }
  size_t rx_now = onLoop(*b_, [&] { return server ? server->bufferedReceive() : 0; });
  EXPECT_GT(accepted.load(), 65536u);    // it did move data
  EXPECT_LT(accepted.load(), 4u << 20);  // but only as fast as the reader took it
  EXPECT_LE(max_tx.load(), 65536u);
  EXPECT_LE(rx_now, 65536u + 1460u);
  EXPECT_LE(max_rx.load(), 65536u + 1460u);
  onLoop(*a_, [&] { client->abort(); });
  onLoop(*b_, [&] {
    if (server) server->abort();
  });
}

// ASan's quarantine keeps freed blocks resident, so RSS says nothing about buffering there.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kRssSlackKb = 256 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr long kRssSlackKb = 256 * 1024;
#else
constexpr long kRssSlackKb = 16 * 1024;
#endif
#else
constexpr long kRssSlackKb = 16 * 1024;
#endif

long rssKb() {
  long pages = 0, resident = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// The same through file descriptors, measured as RSS: a writer pushing as fast as blocking
// writes go, a reader taking 4 KB per 5 ms for 1.5 s. What piles up sits in kernel socket
// buffers and the TCP window, not in the process.
TEST_F(NodePairTest, SlowFdReaderKeepsRssFlat) {
  auto l = b_->listenFd(9201);
  ASSERT_TRUE(l.isOk());
  auto c = a_->dialFd("10.7.0.2:9201");
  ASSERT_TRUE(c.isOk());
  auto s = l.value()->accept(5000);
  ASSERT_TRUE(s.isOk());
  long rss_before = rssKb();
  std::atomic<bool> stop{false};
  std::atomic<size_t> written{0};
  std::thread writer([&] {
    std::string chunk(65536, 'y');
    while (!stop && writeAll(c->fd, chunk.data(), chunk.size())) written += chunk.size();
  });
  size_t read_total = 0;
  char buf[4096];
  for (int i = 0; i < 300; ++i) {
    ssize_t n = ::read(s->fd, buf, sizeof buf);
    if (n > 0) read_total += static_cast<size_t>(n);
    usleep(5000);
  }
  long rss_after = rssKb();
  stop = true;
  shutdown(c->fd, SHUT_RDWR);  // unblocks the writer
  writer.join();
  ::close(c->fd);
  ::close(s->fd);
  EXPECT_GT(read_total, 100000u);
  EXPECT_LT(written.load(), 64u << 20);  // held back, not buffered without bound
  EXPECT_LT(rss_after - rss_before, kRssSlackKb)
      << "RSS grew by " << rss_after - rss_before << " KB; wrote " << written << " B";
  std::printf("slow fd reader: read %zu B, writer got %zu B into sockets, RSS %+ld KB\n",
              read_total, written.load(), rss_after - rss_before);
}

}  // namespace
}  // namespace gatehouse::wg::testing
