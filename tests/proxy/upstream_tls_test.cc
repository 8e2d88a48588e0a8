// proxy/upstream without sockets: TlsSession driven against an in-memory BoringSSL server
// (certificates minted per test), TlsContext configuration errors, and base URL parsing.
#include <gtest/gtest.h>

#include "proxy/upstream/target.h"
#include "proxy/upstream/tls.h"
#include "tests/proxy/tls_test_util.h"

namespace gatehouse::proxy {
namespace {

using testing::KeyCert;
using testing::LeafSpec;
using testing::makeCa;
using testing::makeLeaf;
using testing::MemServer;

#ifndef OPENSSL_IS_BORINGSSL
#error "built against system OpenSSL headers, not BoringSSL"
#endif

class UpstreamTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = makeCa("Gatehouse Test CA");
    ca_file_ = dir_.write("ca.pem", testing::certPem(ca_.cert.get()));
  }

  std::shared_ptr<TlsContext> context(const std::string& ca_file) {
    TlsOptions o;
    o.ca_bundle_file = "";
    o.extra_ca_file = ca_file;
    auto ctx = TlsContext::create(o);
    EXPECT_TRUE(ctx.isOk()) << ctx.status().message();
    return ctx.isOk() ? ctx.value() : nullptr;
  }

  // Runs the handshake to completion or failure; returns the client's last status.
  Status handshake(TlsSession& client, MemServer& server) {
    Status s = client.start();
    for (int i = 0; s && i < 10 && !(client.open() && server.handshakeDone()); ++i) {
      s = client.feed(bytes(server.exchange(client.takeCiphertext())));
    }
    return s;
  }

  static std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  Status handshakeWith(const KeyCert& leaf, const std::string& host, const KeyCert* chain) {
    MemServer server(leaf, chain);
    auto client = TlsSession::create(context(ca_file_), host);
    EXPECT_TRUE(client.isOk());
    return handshake(**client, server);
  }

  testing::TempDir dir_;
  KeyCert ca_;
  std::string ca_file_;
};

TEST_F(UpstreamTlsTest, HandshakeAndRoundTripInMemory) {
  KeyCert leaf = makeLeaf(ca_);
  MemServer server(leaf, nullptr);
  auto client = TlsSession::create(context(ca_file_), "localhost");
  ASSERT_TRUE(client.isOk());
  TlsSession& c = **client;
  ASSERT_TRUE(handshake(c, server).isOk());
  EXPECT_TRUE(c.open());
  EXPECT_EQ(c.alpn(), "http/1.1");
  EXPECT_EQ(c.version(), "TLSv1.3");
  EXPECT_EQ(server.sni(), "localhost");

  ASSERT_TRUE(c.write(bytes("GET / HTTP/1.1\r\n\r\n")).isOk());
  server.exchange(c.takeCiphertext());
  EXPECT_EQ(server.received(), "GET / HTTP/1.1\r\n\r\n");

  ASSERT_TRUE(c.feed(bytes(server.send("HTTP/1.1 200 OK\r\n"))).isOk());
  EXPECT_EQ(c.takePlaintext(), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(c.takePlaintext(), "");

  ASSERT_TRUE(c.feed(bytes(server.closeNotify())).isOk());
  EXPECT_EQ(c.state(), TlsSession::State::kPeerClosed);
  EXPECT_EQ(c.write(bytes("x")).code(), EPIPE);
}

TEST_F(UpstreamTlsTest, ByteAtATimeDelivery) {
  // TCP may split records anywhere; the session must reassemble.
  KeyCert leaf = makeLeaf(ca_);
  MemServer server(leaf, nullptr);
  auto client = TlsSession::create(context(ca_file_), "localhost");
  TlsSession& c = **client;
  ASSERT_TRUE(c.start().isOk());
  for (int i = 0; i < 10 && !c.open(); ++i) {
    std::string flight = server.exchange(c.takeCiphertext());
    for (char b : flight) ASSERT_TRUE(c.feed(bytes(std::string(1, b))).isOk());
  }
  ASSERT_TRUE(c.open());
  server.exchange(c.takeCiphertext());  // client Finished
  std::string record = server.send("split me");
  for (char b : record) ASSERT_TRUE(c.feed(bytes(std::string(1, b))).isOk());
  EXPECT_EQ(c.takePlaintext(), "split me");
}

TEST_F(UpstreamTlsTest, UntrustedCaIsAClearError) {
  KeyCert other_ca = makeCa("Someone Else's CA");
  KeyCert leaf = makeLeaf(other_ca);
  Status s = handshakeWith(leaf, "localhost", &other_ca);
  EXPECT_EQ(s.code(), EPROTO);
  EXPECT_EQ(s.message(),
            "certificate verify failed: self signed certificate in certificate chain for host "
            "localhost");

  // Without the CA in the chain the verifier cannot even find an issuer.
  s = handshakeWith(leaf, "localhost", nullptr);
  EXPECT_EQ(s.message(),
            "certificate verify failed: unable to get local issuer certificate for host localhost");
}

TEST_F(UpstreamTlsTest, HostnameMismatchIsAClearError) {
  KeyCert leaf = makeLeaf(ca_, {.san = "DNS:api.example.com"});
  Status s = handshakeWith(leaf, "api.other.com", nullptr);
  EXPECT_EQ(s.message(),
            "hostname mismatch: the server's certificate is not valid for host api.other.com");
  EXPECT_TRUE(handshakeWith(leaf, "api.example.com", nullptr).isOk());
  // No partial wildcards, and no suffix games.
  EXPECT_FALSE(handshakeWith(leaf, "example.com", nullptr).isOk());
}

TEST_F(UpstreamTlsTest, IpLiteralVerifiedAgainstIpSanWithoutSni) {
  KeyCert dns_only = makeLeaf(ca_, {.san = "DNS:localhost"});
  Status s = handshakeWith(dns_only, "127.0.0.1", nullptr);
  EXPECT_EQ(s.message(),
            "hostname mismatch: the server's certificate is not valid for host 127.0.0.1");

  KeyCert with_ip = makeLeaf(ca_, {.san = "IP:127.0.0.1,IP:::1"});
  MemServer server(with_ip, nullptr);
  auto client = TlsSession::create(context(ca_file_), "127.0.0.1");
  ASSERT_TRUE(handshake(**client, server).isOk());
  EXPECT_EQ(server.sni(), "");  // RFC 6066: no IP literals in SNI
  EXPECT_TRUE(handshakeWith(with_ip, "::1", nullptr).isOk());
  EXPECT_FALSE(handshakeWith(with_ip, "127.0.0.2", nullptr).isOk());
}

TEST_F(UpstreamTlsTest, ExpiredAndNotYetValidCertificates) {
  KeyCert expired = makeLeaf(ca_, {.not_before_s = -2 * 86400, .not_after_s = -86400});
  EXPECT_EQ(handshakeWith(expired, "localhost", nullptr).message(),
            "certificate verify failed: certificate has expired for host localhost");
  KeyCert future = makeLeaf(ca_, {.not_before_s = 86400, .not_after_s = 2 * 86400});
  EXPECT_EQ(handshakeWith(future, "localhost", nullptr).message(),
            "certificate verify failed: certificate is not yet valid for host localhost");
}

TEST_F(UpstreamTlsTest, GarbageFromServerFailsTheHandshake) {
  auto client = TlsSession::create(context(ca_file_), "localhost");
  TlsSession& c = **client;
  ASSERT_TRUE(c.start().isOk());
  Status s = c.feed(bytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
  EXPECT_EQ(s.code(), EPROTO);
  EXPECT_NE(s.message().find("TLS handshake with host localhost failed"), std::string::npos)
      << s.message();
  EXPECT_EQ(c.state(), TlsSession::State::kFailed);
  EXPECT_FALSE(c.feed(bytes("more")).isOk());
  EXPECT_EQ(c.write(bytes("x")).code(), EPROTO);
}

TEST_F(UpstreamTlsTest, WriteBeforeHandshakeIsRefused) {
  auto client = TlsSession::create(context(ca_file_), "localhost");
  ASSERT_TRUE((*client)->start().isOk());
  EXPECT_EQ((*client)->write(bytes("early")).code(), ENOTCONN);
}

TEST_F(UpstreamTlsTest, ContextConfigurationErrorsNameTheFile) {
  TlsOptions missing;
  missing.extra_ca_file = dir_.write("unused", "") + ".nope";
  auto r = TlsContext::create(missing);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), ENOENT);
  EXPECT_NE(r.status().message().find("cannot read extra CA file " + missing.extra_ca_file),
            std::string::npos)
      << r.status().message();

  TlsOptions garbage;
  garbage.ca_bundle_file = "";
  garbage.extra_ca_file = dir_.write("garbage.pem", "not a certificate\n");
  r = TlsContext::create(garbage);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("not a PEM file of certificates"), std::string::npos);

  TlsOptions none;
  none.ca_bundle_file = "";
  EXPECT_EQ(TlsContext::create(none).status().code(), EINVAL);
  EXPECT_EQ(TlsSession::create(context(ca_file_), "").status().code(), EINVAL);
}

TEST_F(UpstreamTlsTest, SystemBundleLoads) {
  if (access(TlsOptions{}.ca_bundle_file.c_str(), R_OK) != 0) GTEST_SKIP() << "no CA bundle";
  auto r = TlsContext::create(TlsOptions{});
  EXPECT_TRUE(r.isOk()) << r.status().message();
}

TEST(UpstreamBaseUrl, ParsesBaseUrls) {
  auto u = parseUpstreamUrl("https://api.anthropic.com", false);
  ASSERT_TRUE(u.isOk());
  EXPECT_TRUE(u->target.tls);
  EXPECT_EQ(u->target.host, "api.anthropic.com");
  EXPECT_EQ(u->target.port, 443);
  EXPECT_EQ(u->path_prefix, "");
  EXPECT_EQ(u->target.authority(), "api.anthropic.com:443");

  u = parseUpstreamUrl("https://API.OpenAI.com:8443/v1/", false);
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->target.host, "api.openai.com");  // DNS names pool case-insensitively
  EXPECT_EQ(u->target.port, 8443);
  EXPECT_EQ(u->path_prefix, "/v1");

  u = parseUpstreamUrl("http://[::1]:11434/v1", true);
  ASSERT_TRUE(u.isOk());
  EXPECT_FALSE(u->target.tls);
  EXPECT_EQ(u->target.host, "::1");
  EXPECT_EQ(u->target.authority(), "[::1]:11434");

  u = parseUpstreamUrl("http://localhost", true);
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->target.port, 80);
}

TEST(UpstreamBaseUrl, RejectsWithAFix) {
  auto u = parseUpstreamUrl("http://api.example.com", false);
  ASSERT_FALSE(u.isOk());
  EXPECT_EQ(u.status().message(),
            "base URL http://api.example.com uses plain http: only providers marked local may; "
            "use https:// or mark the provider local");
  EXPECT_FALSE(parseUpstreamUrl("ftp://x", true).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://h:0", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://h:99999", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://h:12a", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://user:pw@h", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://h/v1?key=secret", false).isOk());
  EXPECT_FALSE(parseUpstreamUrl("https://[::1", false).isOk());
}

TEST(UpstreamBaseUrl, PoolKeySeparatesTrust) {
  TlsOptions a, b;
  b.extra_ca_file = "/etc/private-ca.pem";
  auto x = parseUpstreamUrl("https://h", false, a);
  auto y = parseUpstreamUrl("https://h", false, b);
  auto z = parseUpstreamUrl("http://h:443", true, b);
  EXPECT_NE(x->target.poolKey(), y->target.poolKey());
  EXPECT_NE(y->target.poolKey(), z->target.poolKey());
  EXPECT_EQ(z->target.tls_options, TlsOptions{});  // plain targets carry no trust config
}

}  // namespace
}  // namespace gatehouse::proxy
