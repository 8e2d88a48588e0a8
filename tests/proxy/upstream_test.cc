// proxy/upstream over real loopback sockets: UpstreamConnection and UpstreamPool on a libuv loop
// against TestServer (blocking BoringSSL in threads, certificates minted per test). Every test
// ends by draining the loop and closing it: a leaked handle or request fails uv_loop_close.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <optional>

#include "proxy/upstream/connection.h"
#include "proxy/upstream/pool.h"
#include "tests/proxy/tls_test_util.h"

namespace gatehouse::proxy {
namespace {

using testing::KeyCert;
using testing::makeCa;
using testing::makeLeaf;
using testing::ServerConn;
using testing::TestServer;
using State = UpstreamConnection::State;
using AcquireResult = Result<std::unique_ptr<UpstreamConnection>>;

// Records what a connection reports; `on_data` lets a test act from inside the callback.
struct Recorder : UpstreamConnection::Callbacks {
  std::string data;
  std::optional<Status> closed;
  int drained = 0;
  std::function<void()> on_data;

  void onUpstreamData(std::string_view bytes) override {
    data += bytes;
    if (on_data) on_data();
  }
  void onUpstreamClose(const Status& status) override { closed = status; }
  void onUpstreamDrained() override { ++drained; }
};

// A port nobody listens on: bound once, then released.
uint16_t closedPort() {
  uint16_t port = 0;
  ::close(testing::listenLoopback(1, &port));
  return port;
}

class UpstreamLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as the gatehouse binary does: EPIPE is an error value
    uv_loop_init(&loop_);
    ca_ = makeCa("Gatehouse Test CA");
    leaf_ = makeLeaf(ca_);
    ca_file_ = dir_.write("ca.pem", testing::certPem(ca_.cert.get()));
  }

  void TearDown() override {
    runUntil([&] { return !uv_loop_alive(&loop_); }, 3000);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a libuv handle or request outlived its owner";
  }

  // Runs the loop until `done` or `ms` of wall time. Server threads act on their own, so the loop
  // wakes every few milliseconds to re-check.
  bool runUntil(const std::function<bool()>& done, int ms = 5000) {
    uv_timer_t tick;
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 2, 2);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tick));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    bool ok;
    while (!(ok = done()) && std::chrono::steady_clock::now() < deadline) {
      if (uv_run(&loop_, UV_RUN_ONCE) == 0 && !uv_loop_alive(&loop_)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return ok;
  }

  UpstreamTarget target(uint16_t port, const std::string& host = "127.0.0.1") {
    UpstreamTarget t;
    t.host = host;
    t.port = port;
    t.tls_options.ca_bundle_file = "";
    t.tls_options.extra_ca_file = ca_file_;
    return t;
  }

  std::unique_ptr<UpstreamConnection> newConnection(const UpstreamTarget& t,
                                                    ConnectionOptions options = {}) {
    std::shared_ptr<TlsContext> tls;
    if (t.tls) tls = TlsContext::create(t.tls_options).value();
    return std::make_unique<UpstreamConnection>(&loop_, t, tls, options);
  }

  // connect() and wait for its callback.
  Status connect(UpstreamConnection& conn) {
    std::optional<Status> done;
    conn.connect([&](const Status& s) { done = s; });
    EXPECT_FALSE(done.has_value()) << "connect() called back inline";
    EXPECT_TRUE(runUntil([&] { return done.has_value(); }));
    return done.value_or(Status(ETIME, "no callback"));
  }

  Status connectTo(const UpstreamTarget& t, ConnectionOptions options = {},
                   State* failed_in = nullptr) {
    auto conn = newConnection(t, options);
    Status s = connect(*conn);
    if (failed_in) *failed_in = conn->failedIn();
    return s;
  }

  AcquireResult acquire(UpstreamPool& pool, const UpstreamTarget& t,
                        const ConnectionOptions* options = nullptr) {
    std::optional<AcquireResult> got;
    pool.acquire(
        t, [&](AcquireResult r) { got.emplace(std::move(r)); }, options);
    EXPECT_FALSE(got.has_value()) << "acquire() called back inline";
    EXPECT_TRUE(runUntil([&] { return got.has_value(); }));
    return got ? std::move(*got) : AcquireResult(Status(ETIME, "no callback"));
  }

  // A connected connection reporting to `rec`, with `line` written.
  std::unique_ptr<UpstreamConnection> connectAndSend(uint16_t port, const std::string& line,
                                                     Recorder& rec,
                                                     ConnectionOptions options = {}) {
    auto conn = newConnection(target(port), options);
    EXPECT_TRUE(connect(*conn).isOk());
    conn->setCallbacks(&rec);
    EXPECT_TRUE(conn->write(line).isOk());
    return conn;
  }

  // Writes one line and waits for the echo.
  std::string roundTrip(UpstreamConnection& conn, const std::string& line) {
    Recorder rec;
    conn.setCallbacks(&rec);
    EXPECT_TRUE(conn.write(line).isOk());
    runUntil([&] { return rec.data.size() >= line.size() + 5 || rec.closed; });
    conn.setCallbacks(nullptr);
    return rec.data;
  }

  // A new pooled connection: one echo round trip, then released as reusable.
  void firstRequest(UpstreamPool& pool, const UpstreamTarget& t) {
    AcquireResult conn = acquire(pool, t);
    ASSERT_TRUE(conn.isOk()) << conn.status().message();
    EXPECT_FALSE((*conn)->reused());
    EXPECT_EQ(roundTrip(**conn, "one\n"), "echo one\n");
    pool.release(std::move(conn.value()), true);
  }

  uv_loop_t loop_;
  testing::TempDir dir_;
  KeyCert ca_;
  KeyCert leaf_;
  std::string ca_file_;
};

using UpstreamConnectionTest = UpstreamLoopTest;
using UpstreamPoolTest = UpstreamLoopTest;

TEST_F(UpstreamConnectionTest, TlsRoundTripByHostName) {
  TestServer server(testing::echoLines, &leaf_);
  auto conn = newConnection(target(server.port(), "localhost"));
  ASSERT_TRUE(connect(*conn).isOk());
  EXPECT_EQ(conn->state(), State::kOpen);
  EXPECT_EQ(conn->alpn(), "http/1.1");
  EXPECT_EQ(conn->peerAddress(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_TRUE(conn->nothingSent());

  Recorder rec;
  conn->setCallbacks(&rec);
  ASSERT_TRUE(conn->write("hello\n").isOk());
  EXPECT_FALSE(conn->nothingSent());
  ASSERT_TRUE(runUntil([&] { return rec.data == "echo hello\n"; }));
  EXPECT_GE(rec.drained, 1);
  EXPECT_EQ(conn->bytesWritten(), 6u);
  EXPECT_EQ(conn->bytesReceived(), 11u);
  EXPECT_FALSE(conn->reused());

  conn.reset();
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1; }));
  EXPECT_EQ(server.lastSni(), "localhost");
  EXPECT_FALSE(rec.closed.has_value());
}

TEST_F(UpstreamConnectionTest, LargeBodiesCrossManyRecordsAndReads) {
  TestServer server(testing::echoLines, &leaf_);
  auto conn = newConnection(target(server.port()));
  ASSERT_TRUE(connect(*conn).isOk());
  std::string body(300 * 1024, 'x');
  for (size_t i = 0; i < body.size(); i += 997) body[i] = static_cast<char>('a' + i % 26);
  body.back() = '\n';
  Recorder rec;
  int chunks = 0;
  rec.on_data = [&] { ++chunks; };
  conn->setCallbacks(&rec);
  ASSERT_TRUE(conn->write(body).isOk());
  ASSERT_TRUE(runUntil([&] { return rec.data.size() == body.size() + 5; }));
  EXPECT_EQ(rec.data, "echo " + body);
  EXPECT_GT(chunks, 1);
  EXPECT_EQ(conn->bufferedBytes(), 0u);
}

TEST_F(UpstreamConnectionTest, CertificateProblemsAreClearErrors) {
  KeyCert other_ca = makeCa("Someone Else's CA");
  KeyCert untrusted = makeLeaf(other_ca);
  KeyCert wrong_name = makeLeaf(ca_, {.san = "DNS:elsewhere.example"});
  KeyCert expired = makeLeaf(ca_, {.not_before_s = -2 * 86400, .not_after_s = -86400});
  struct Case {
    const KeyCert* leaf;
    const KeyCert* chain;
    std::string message;
  } cases[] = {
      {&untrusted, &other_ca,
       "certificate verify failed: self signed certificate in certificate chain for host "
       "127.0.0.1"},
      {&wrong_name, nullptr,
       "hostname mismatch: the server's certificate is not valid for host 127.0.0.1"},
      {&expired, nullptr, "certificate verify failed: certificate has expired for host 127.0.0.1"},
  };
  for (const Case& c : cases) {
    TestServer server(testing::echoLines, c.leaf, c.chain);
    State failed_in = State::kNew;
    Status s = connectTo(target(server.port()), {}, &failed_in);
    EXPECT_EQ(s.code(), EPROTO);
    EXPECT_EQ(s.message(), c.message);
    EXPECT_EQ(failed_in, State::kHandshaking);
  }
}

TEST_F(UpstreamConnectionTest, ConnectRefused) {
  uint16_t port = closedPort();
  State failed_in = State::kNew;
  Status s = connectTo(target(port), {}, &failed_in);
  EXPECT_EQ(s.code(), ECONNREFUSED);
  EXPECT_EQ(s.message(),
            "connect to 127.0.0.1:" + std::to_string(port) + " failed: Connection refused");
  EXPECT_EQ(failed_in, State::kConnecting);
}

TEST_F(UpstreamConnectionTest, HandshakeTimeoutWhenServerNeverSpeaksTls) {
  TestServer server([](ServerConn& c) { c.drain(); });  // raw TCP: accepts, reads, says nothing
  Status s = connectTo(target(server.port()), {.connect_timeout_ms = 150});
  EXPECT_EQ(s.code(), ETIMEDOUT);
  EXPECT_EQ(s.message(), "connect to 127.0.0.1:" + std::to_string(server.port()) +
                             " timed out after 150 ms (TLS handshake)");
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1; }));  // we hung up
}

TEST_F(UpstreamConnectionTest, TcpConnectTimeoutOnFullBacklog) {
  // A listener that never accepts, with its accept queue filled: Linux drops further SYNs, so
  // the connect hangs in SYN-SENT without any traffic leaving loopback.
  uint16_t port = 0;
  int lfd = testing::listenLoopback(0, &port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  State failed_in = State::kNew;
  Status s = connectTo(target(port), {.connect_timeout_ms = 150}, &failed_in);
  EXPECT_EQ(s.code(), ETIMEDOUT);
  EXPECT_NE(s.message().find("timed out after 150 ms (TCP connect)"), std::string::npos)
      << s.message();
  EXPECT_EQ(failed_in, State::kConnecting);
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST_F(UpstreamConnectionTest, ReadTimeoutStartsWithTheRequestAndPausesWithReading) {
  TestServer server(
      [](ServerConn& c) {
        if (c.handshake() && c.readLine()) c.drain();  // reads the request, never answers
      },
      &leaf_);
  const std::string expected =
      "read timeout: no bytes from 127.0.0.1:" + std::to_string(server.port()) + " for 150 ms";

  // The gateway's way: a per-provider timeout set after acquire, before the request.
  auto conn = newConnection(target(server.port()));
  ASSERT_TRUE(connect(*conn).isOk());
  Recorder rec;
  conn->setCallbacks(&rec);
  conn->setReadTimeout(150);
  runUntil([&] { return rec.closed.has_value(); }, 300);
  EXPECT_FALSE(rec.closed.has_value()) << "timed out before anything was asked";
  ASSERT_TRUE(conn->write("anyone?\n").isOk());
  ASSERT_TRUE(runUntil([&] { return rec.closed.has_value(); }, 2000));
  EXPECT_EQ(rec.closed->code(), ETIMEDOUT);
  EXPECT_EQ(rec.closed->message(), expected);
  EXPECT_EQ(conn->state(), State::kClosed);
  EXPECT_FALSE(conn->retryable());  // the server has the request

  // A slow downstream client (reading disabled) is not a silent server.
  Recorder paused;
  auto conn2 = connectAndSend(server.port(), "anyone?\n", paused, {.read_timeout_ms = 150});
  conn2->readDisable(true);
  runUntil([&] { return paused.closed.has_value(); }, 400);
  EXPECT_FALSE(paused.closed.has_value());
  conn2->readDisable(false);
  ASSERT_TRUE(runUntil([&] { return paused.closed.has_value(); }, 2000));
  EXPECT_EQ(paused.closed->message(), expected);
}

TEST_F(UpstreamConnectionTest, ServerCloseIsReportedAndLaterWritesFail) {
  TestServer server(
      [](ServerConn& c) {
        if (c.handshake() && c.readLine()) {
          c.write("bye\n");
          c.close();
        }
      },
      &leaf_);
  Recorder rec;
  auto conn = connectAndSend(server.port(), "hi\n", rec);
  ASSERT_TRUE(runUntil([&] { return rec.closed.has_value(); }));
  EXPECT_EQ(rec.data, "bye\n");
  EXPECT_TRUE(rec.closed->isOk());  // close_notify / FIN: a clean end
  EXPECT_FALSE(conn->retryable());  // fresh connection, response bytes seen

  Status w = conn->write("more\n");
  EXPECT_EQ(w.code(), EPIPE);
  EXPECT_EQ(w.message(), "connection to 127.0.0.1:" + std::to_string(server.port()) + " is closed");
}

TEST_F(UpstreamConnectionTest, PlainTcpForLocalProviders) {
  TestServer server(testing::echoLines);  // no certificate: raw TCP
  UpstreamTarget t = target(server.port());
  t.tls = false;
  auto conn = newConnection(t);
  ASSERT_TRUE(connect(*conn).isOk());
  EXPECT_EQ(conn->alpn(), "");
  EXPECT_EQ(roundTrip(*conn, "plain\n"), "echo plain\n");

  // A TLS target without a context (or the reverse) is a programming error, reported as a value.
  UpstreamConnection wrong(&loop_, target(server.port()), nullptr, {});
  EXPECT_EQ(connect(wrong).code(), EINVAL);
}

TEST_F(UpstreamConnectionTest, CancelDuringResolveAndHandshakeFreesEverything) {
  bool fired = false;
  auto resolving = newConnection(target(closedPort(), "localhost"));
  resolving->connect([&](const Status&) { fired = true; });
  EXPECT_EQ(resolving->state(), State::kResolving);
  resolving->cancel();
  EXPECT_EQ(resolving->state(), State::kClosed);

  TestServer server([](ServerConn& c) { c.drain(); });
  auto handshaking = newConnection(target(server.port()));
  handshaking->connect([&](const Status&) { fired = true; });
  ASSERT_TRUE(runUntil([&] { return handshaking->state() == State::kHandshaking; }));
  handshaking.reset();
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1; }));
  runUntil([&] { return !uv_loop_alive(&loop_); }, 3000);
  resolving.reset();
  EXPECT_FALSE(fired);
}

TEST_F(UpstreamConnectionTest, CancelMidReadFreesEverything) {
  std::atomic<bool> got_request{false};
  TestServer server(
      [&](ServerConn& c) {
        if (c.handshake() && c.readLine()) {
          got_request = true;
          c.drain();
        }
      },
      &leaf_);
  Recorder rec;
  auto conn = connectAndSend(server.port(), "stream please\n", rec);
  ASSERT_TRUE(runUntil([&] { return got_request.load(); }));
  conn->cancel();
  EXPECT_EQ(conn->state(), State::kClosed);
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1; }));
  EXPECT_FALSE(rec.closed.has_value());  // cancel is silent
  conn.reset();
}

TEST_F(UpstreamConnectionTest, DestroyFromInsideDataCallback) {
  TestServer server(testing::echoLines, &leaf_);
  Recorder rec;
  std::unique_ptr<UpstreamConnection> conn;
  rec.on_data = [&] { conn.reset(); };
  conn = connectAndSend(server.port(), "bye\n", rec);
  ASSERT_TRUE(runUntil([&] { return conn == nullptr; }));
  EXPECT_EQ(rec.data, "echo bye\n");
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1; }));
}

// --- pool ------------------------------------------------------------------------------------

TEST_F(UpstreamPoolTest, SecondRequestReusesTheConnection) {
  TestServer server(testing::echoLines, &leaf_);
  UpstreamPool pool(&loop_);
  UpstreamTarget t = target(server.port());

  firstRequest(pool, t);
  EXPECT_EQ(pool.idleCount(t), 1u);

  AcquireResult second = acquire(pool, t);
  ASSERT_TRUE(second.isOk());
  UpstreamConnection* conn = second->get();
  EXPECT_TRUE(conn->reused());
  EXPECT_EQ(conn->bytesWritten(), 0u);
  // The gateway's way: the response parser finishes inside the data callback and releases there.
  Recorder rec;
  rec.on_data = [&] {
    if (rec.data == "echo two\n") pool.release(std::move(second.value()), true);
  };
  conn->setCallbacks(&rec);
  ASSERT_TRUE(conn->write("two\n").isOk());
  ASSERT_TRUE(runUntil([&] { return pool.idleCount(t) == 1; }));

  PoolStats st = pool.stats(t);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.reuses, 1u);
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(UpstreamPoolTest, IdleConnectionClosedByServerIsDropped) {
  std::atomic<bool> close_now{false};
  TestServer server(
      [&](ServerConn& c) {
        if (!c.handshake() || !c.readLine()) return;
        c.write("echo one\n");
        // Bounded, so a failed assertion cannot hang ~TestServer.
        for (int i = 0; !close_now && i < 5000; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        c.close();
      },
      &leaf_);
  UpstreamPool pool(&loop_);
  UpstreamTarget t = target(server.port());
  firstRequest(pool, t);
  ASSERT_EQ(pool.idleCount(t), 1u);

  close_now = true;
  ASSERT_TRUE(runUntil([&] { return pool.idleCount(t) == 0; }));
  EXPECT_EQ(pool.stats(t).idle_closed, 1u);

  AcquireResult fresh = acquire(pool, t);
  ASSERT_TRUE(fresh.isOk());
  EXPECT_FALSE((*fresh)->reused());
  EXPECT_EQ(pool.stats(t).connects, 2u);
  EXPECT_EQ(pool.stats(t).reuses, 0u);
}

TEST_F(UpstreamPoolTest, IdleConnectionsExpireAndIdleListIsBounded) {
  TestServer server(testing::echoLines, &leaf_);
  UpstreamPool pool(&loop_, {.max_idle_per_upstream = 1, .idle_timeout_ms = 100, .connection = {}});
  UpstreamTarget t = target(server.port());
  std::vector<AcquireResult> got;
  for (int i = 0; i < 2; ++i)
    pool.acquire(t, [&](AcquireResult r) { got.push_back(std::move(r)); });
  ASSERT_TRUE(runUntil([&] { return got.size() == 2; }));
  ASSERT_TRUE(got[0].isOk() && got[1].isOk());
  pool.release(std::move(got[0].value()), true);
  pool.release(std::move(got[1].value()), true);
  EXPECT_EQ(pool.idleCount(t), 1u);
  EXPECT_EQ(pool.stats(t).idle_evicted, 1u);

  ASSERT_TRUE(runUntil([&] { return pool.idleCount(t) == 0; }));
  EXPECT_EQ(pool.stats(t).idle_expired, 1u);
  ASSERT_TRUE(runUntil([&] { return server.finished() == 2; }));
}

TEST_F(UpstreamPoolTest, KeepAliveRaceIsRetryable) {
  // The server answers one request, then closes as the second arrives: from the client's side,
  // a reused connection that ended before any response byte.
  TestServer server(
      [](ServerConn& c) {
        if (!c.handshake() || !c.readLine()) return;
        c.write("echo one\n");
        if (c.readLine()) c.close();
      },
      &leaf_);
  UpstreamPool pool(&loop_);
  UpstreamTarget t = target(server.port());
  firstRequest(pool, t);

  AcquireResult again = acquire(pool, t);
  ASSERT_TRUE(again.isOk());
  Recorder rec;
  (*again)->setCallbacks(&rec);
  ASSERT_TRUE((*again)->write("two\n").isOk());
  ASSERT_TRUE(runUntil([&] { return rec.closed.has_value(); }));
  EXPECT_EQ(rec.data, "");
  EXPECT_TRUE((*again)->reused());
  EXPECT_FALSE((*again)->nothingSent());
  EXPECT_TRUE((*again)->retryable());
  pool.release(std::move(again.value()), true);  // closed: not kept
  EXPECT_EQ(pool.idleCount(t), 0u);
  EXPECT_EQ(pool.stats(t).released_closed, 1u);
}

TEST_F(UpstreamPoolTest, FailuresAreCountedAndExplained) {
  KeyCert other_ca = makeCa("Someone Else's CA");
  KeyCert untrusted = makeLeaf(other_ca);
  TestServer server(testing::echoLines, &untrusted);
  UpstreamPool pool(&loop_);

  UpstreamTarget t = target(server.port());
  AcquireResult r = acquire(pool, t);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string::npos);
  EXPECT_EQ(pool.stats(t).handshake_failures, 1u);

  UpstreamTarget refused = target(closedPort());
  EXPECT_EQ(acquire(pool, refused).status().code(), ECONNREFUSED);
  EXPECT_EQ(pool.stats(refused).connect_failures, 1u);

  UpstreamTarget bad_ca = target(server.port());
  bad_ca.tls_options.extra_ca_file = "/nonexistent/ca.pem";
  EXPECT_NE(acquire(pool, bad_ca)
                .status()
                .message()
                .find("cannot read extra CA file /nonexistent/ca.pem"),
            std::string::npos);

  TestServer silent([](ServerConn& c) { c.drain(); });
  ConnectionOptions impatient{.connect_timeout_ms = 100, .read_timeout_ms = 1000};
  Status timeout = acquire(pool, target(silent.port()), &impatient).status();
  EXPECT_EQ(timeout.code(), ETIMEDOUT);
  EXPECT_NE(timeout.message().find("timed out after 100 ms (TLS handshake)"), std::string::npos);

  EXPECT_EQ(pool.stats().handshake_failures, 2u);
  EXPECT_EQ(pool.stats().connects, 0u);
}

TEST_F(UpstreamPoolTest, CancelledAcquiresNeverCallBack) {
  TestServer silent([](ServerConn& c) { c.drain(); });  // never completes a handshake
  UpstreamPool pool(&loop_);
  UpstreamTarget t = target(silent.port());
  bool fired = false;

  Cancellable* queued = pool.acquire(t, [&](AcquireResult) { fired = true; });
  queued->cancel();  // before dispatch

  Cancellable* connecting = pool.acquire(t, [&](AcquireResult) { fired = true; });
  ASSERT_TRUE(runUntil([&] { return silent.accepted() == 1; }));
  connecting->cancel();  // mid-handshake
  ASSERT_TRUE(runUntil([&] { return silent.finished() == 1; }));
  EXPECT_FALSE(fired);
  EXPECT_EQ(pool.stats(t).connects + pool.stats(t).connect_failures, 0u);
}

TEST_F(UpstreamPoolTest, DestroyingThePoolClosesIdleAndPending) {
  TestServer server(testing::echoLines, &leaf_);
  TestServer silent([](ServerConn& c) { c.drain(); });
  auto pool = std::make_unique<UpstreamPool>(&loop_);
  firstRequest(*pool, target(server.port()));
  ASSERT_EQ(pool->idleCount(), 1u);
  bool fired = false;
  pool->acquire(target(silent.port()), [&](AcquireResult) { fired = true; });
  ASSERT_TRUE(runUntil([&] { return silent.accepted() == 1; }));
  pool.reset();
  ASSERT_TRUE(runUntil([&] { return server.finished() == 1 && silent.finished() == 1; }));
  EXPECT_FALSE(fired);
}

}  // namespace
}  // namespace gatehouse::proxy
