// HttpCall (proxy/hooks) against a real TLS server: an https hook or webhook on a private CA
// (the endpoint's ca_file) is verified and answered; without that CA the certificate is refused.
// Plain-HTTP calls are covered through the gateway (hooks_gateway_test.cc).
#include "proxy/hooks/http_call.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <optional>

#include "tests/proxy/tls_test_util.h"

namespace gatehouse::proxy {
namespace {

// Runs `loop` until `done` holds (the call's own deadline bounds the wait).
void runUntil(uv_loop_t* loop, const std::function<bool()>& done) {
  while (!done()) uv_run(loop, UV_RUN_ONCE);
}

TEST(HttpCallTest, PostsOverTlsVerifiedByTheEndpointsCa) {
  testing::TempDir dir;
  testing::KeyCert ca = testing::makeCa("Gatehouse Hooks Test CA");
  testing::KeyCert leaf = testing::makeLeaf(ca);
  std::string ca_file = dir.write("ca.pem", testing::certPem(ca.cert.get()));
  std::string seen_head, seen_body;
  std::mutex mu;
  testing::TestServer server(
      [&](testing::ServerConn& c) {
        if (!c.handshake()) return;
        std::string head;
        while (auto line = c.readLine()) {
          if (*line == "\r\n") break;
          head += *line;
        }
        auto body = c.readLine();  // the test's body ends in '\n'
        {
          std::lock_guard<std::mutex> lock(mu);
          seen_head = head;
          seen_body = body.value_or("");
        }
        c.write("HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"action\":\"allow\"}");
        c.close();
      },
      &leaf);

  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    UpstreamPool pool(&loop);
    HookEndpoint ep;
    ep.target.tls = true;
    ep.target.host = "127.0.0.1";
    ep.target.port = server.port();
    ep.target.tls_options.extra_ca_file = ca_file;
    ep.path = "/check";
    ep.host = "127.0.0.1:" + std::to_string(server.port());
    std::optional<Result<HttpReply>> got;
    auto call = HttpCall::post(&loop, pool, ep, {{"X-Hook-Token", "t1"}}, "{\"x\":1}\n", 5000, 1024,
                               [&](Result<HttpReply> r) { got = std::move(r); });
    runUntil(&loop, [&] { return got.has_value(); });
    ASSERT_TRUE(*got) << got->status().message();
    EXPECT_EQ((*got)->status, 200);
    EXPECT_EQ((*got)->body, R"({"action":"allow"})");
    {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(seen_head.rfind("POST /check HTTP/1.1\r\n", 0), 0u) << seen_head;
      EXPECT_NE(seen_head.find("X-Hook-Token: t1\r\n"), std::string::npos) << seen_head;
      EXPECT_NE(seen_head.find("Content-Type: application/json\r\n"), std::string::npos);
      EXPECT_EQ(seen_body, "{\"x\":1}\n");
    }

    // The system roots alone do not know the private CA.
    ep.target.tls_options.extra_ca_file = "";
    got.reset();
    call = HttpCall::post(&loop, pool, ep, {}, "{}\n", 5000, 1024,
                          [&](Result<HttpReply> r) { got = std::move(r); });
    runUntil(&loop, [&] { return got.has_value(); });
    EXPECT_FALSE(*got);
    call.reset();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace gatehouse::proxy
