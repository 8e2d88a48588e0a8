// UdpTransport on loopback: batching, local-address reporting (E2), rebinding, EADDRINUSE.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wg/transport/udp.h"

namespace gatehouse::wg {
namespace {

Endpoint loopback4(uint16_t port) { return *Endpoint::parse("127.0.0.1:" + std::to_string(port)); }

// Receives until `want` datagrams arrived or 1 s passed.
size_t receiveAll(UdpTransport& t, int fd, size_t want, std::vector<InDatagram>* got,
                  std::vector<std::vector<uint8_t>>* bodies, RecvBatch& batch) {
  for (int i = 0; i < 100 && got->size() < want; ++i) {
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, 10);
    int n = t.receive(fd, batch);
    EXPECT_GE(n, 0);
    for (const auto& d : batch.datagrams()) {
      got->push_back(d);
      bodies->emplace_back(d.data.begin(), d.data.end());
    }
  }
  return got->size();
}

TEST(UdpTransport, AnyPortBindsBothFamiliesOnOnePort) {
  UdpTransport t;
  ASSERT_EQ(t.open(0), 0);
  EXPECT_NE(t.port(), 0);
  EXPECT_GE(t.fd4(), 0);
  if (t.fd6() >= 0) {
    sockaddr_in6 a{};
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(t.fd6(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    EXPECT_EQ(ntohs(a.sin6_port), t.port());
  }
}

TEST(UdpTransport, BatchRoundTripReportsLocalAddress) {
  UdpTransport a, b;
  ASSERT_EQ(a.open(0), 0);
  ASSERT_EQ(b.open(0), 0);
  std::vector<std::vector<uint8_t>> payloads;
  for (int i = 0; i < 100; ++i) payloads.push_back(std::vector<uint8_t>(10 + i, uint8_t(i)));
  std::vector<OutDatagram> out;
  for (const auto& p : payloads) out.push_back({loopback4(b.port()), {}, p});
  a.send(out);
  EXPECT_EQ(a.counters().send_errors, 0u);

  RecvBatch batch;
  std::vector<InDatagram> got;
  std::vector<std::vector<uint8_t>> bodies;
  ASSERT_EQ(receiveAll(b, b.fd4(), payloads.size(), &got, &bodies, batch), payloads.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(bodies[i], payloads[i]);
    EXPECT_EQ(got[i].from, loopback4(a.port()));
    EXPECT_EQ(got[i].local.addr, *IpAddr::parse("127.0.0.1"));
  }
}

TEST(UdpTransport, SendsFromRequestedSourceAndFallsBackWhenItIsNotLocal) {
  UdpTransport a, b;
  ASSERT_EQ(a.open(0), 0);
  ASSERT_EQ(b.open(0), 0);
  std::vector<uint8_t> msg = {1, 2, 3};
  LocalAddr src{*IpAddr::parse("127.0.0.2"), 0};  // all of 127/8 is local on Linux
  LocalAddr bogus{*IpAddr::parse("192.0.2.77"), 0};
  std::vector<OutDatagram> out = {{loopback4(b.port()), src, msg},
                                  {loopback4(b.port()), bogus, msg}};
  a.send(out);
  RecvBatch batch;
  std::vector<InDatagram> got;
  std::vector<std::vector<uint8_t>> bodies;
  ASSERT_EQ(receiveAll(b, b.fd4(), 2, &got, &bodies, batch), 2u);
  EXPECT_EQ(got[0].from.addr, *IpAddr::parse("127.0.0.2"));
  EXPECT_EQ(got[1].from.addr, *IpAddr::parse("127.0.0.1"));
  EXPECT_EQ(a.counters().source_fallbacks, 1u);
  EXPECT_EQ(a.counters().send_errors, 0u);
}

TEST(UdpTransport, RebindAndPortInUse) {
  UdpTransport a, b;
  ASSERT_EQ(a.open(0), 0);
  ASSERT_EQ(b.open(0), 0);
  uint16_t old_port = a.port();
  int old_fd = a.fd4();
  EXPECT_EQ(a.open(b.port()), EADDRINUSE);
  EXPECT_EQ(a.port(), old_port);  // still bound where it was
  EXPECT_EQ(a.fd4(), old_fd);
  EXPECT_EQ(a.open(old_port), 0);  // same port: no-op
  EXPECT_EQ(a.fd4(), old_fd);

  // Find a free port, then move to it.
  UdpTransport probe;
  ASSERT_EQ(probe.open(0), 0);
  uint16_t free_port = probe.port();
  probe.close();
  ASSERT_EQ(a.open(free_port), 0);
  EXPECT_EQ(a.port(), free_port);
  UdpTransport c;
  EXPECT_EQ(c.open(old_port), 0);  // the old port was released
}

// Same-size runs leave as UDP GSO sends and arrive (GRO'd or not) as the same datagrams, in
// order, with the short last one and interleaved destinations intact.
void checkGsoRoundTrip(bool offload_receiver) {
  UdpTransport a;
  UdpTransport b(UdpTransport::Options{.offload = offload_receiver});
  UdpTransport c;
  ASSERT_EQ(a.open(0), 0);
  ASSERT_EQ(b.open(0), 0);
  ASSERT_EQ(c.open(0), 0);
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<OutDatagram> out;
  for (int i = 0; i < 150; ++i) payloads.push_back(std::vector<uint8_t>(i == 99 ? 300 : 1200, i));
  for (int i = 0; i < 150; ++i) out.push_back({loopback4(b.port()), {}, payloads[i]});
  std::vector<uint8_t> other = {1, 2, 3};
  out.insert(out.begin() + 120, {loopback4(c.port()), {}, other});
  a.send(out);
  EXPECT_EQ(a.counters().send_errors, 0u);
  EXPECT_GT(a.counters().gso_sends, 0u);

  RecvBatch batch;
  std::vector<InDatagram> got;
  std::vector<std::vector<uint8_t>> bodies;
  ASSERT_EQ(receiveAll(b, b.fd4(), payloads.size(), &got, &bodies, batch), payloads.size());
  EXPECT_EQ(bodies, payloads);
  EXPECT_EQ(got[0].from.port, a.port());
  EXPECT_EQ(b.counters().gro_receives > 0, offload_receiver);
  got.clear();
  bodies.clear();
  ASSERT_EQ(receiveAll(c, c.fd4(), 1, &got, &bodies, batch), 1u);
  EXPECT_EQ(bodies[0], other);
}

TEST(UdpTransport, GsoSendGroReceive) { checkGsoRoundTrip(true); }
TEST(UdpTransport, GsoSendPlainReceive) { checkGsoRoundTrip(false); }

TEST(FakePacketSink, RecordsBatches) {
  FakePacketSink sink;
  std::vector<uint8_t> msg = {9};
  std::vector<OutDatagram> out = {{loopback4(1), {}, msg}, {loopback4(2), {}, msg}};
  sink.send(out);
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.calls, 1u);
  EXPECT_EQ(sink.sent[1].to.port, 2);
}

}  // namespace
}  // namespace gatehouse::wg
