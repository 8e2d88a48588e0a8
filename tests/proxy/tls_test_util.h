// Test helpers for proxy/upstream: certificates minted at test time with BoringSSL's X509 API
// (a CA, leaves with chosen SANs and validity), and a loopback TLS (or raw TCP) server that runs
// blocking BoringSSL in its own threads with a scripted handler per connection.
//
// Thread safety: TestServer's accessors are safe from the test thread while handlers run on
// server threads. Everything else is plain single-threaded test code.
#pragma once

#include <netinet/in.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::proxy::testing {

struct KeyCert {
  bssl::UniquePtr<EVP_PKEY> key;
  bssl::UniquePtr<X509> cert;
};

inline bssl::UniquePtr<EVP_PKEY> newP256Key() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get())) return nullptr;
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) return nullptr;
  return key;
}

inline bool addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1);
}

// Validity is [now + not_before_s, now + not_after_s].
inline bssl::UniquePtr<X509> newCert(const std::string& cn, EVP_PKEY* key, long not_before_s,
                                     long not_after_s) {
  static std::atomic<long> serial{1000};
  bssl::UniquePtr<X509> x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), not_after_s);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const uint8_t*>(cn.c_str()), -1, -1, 0);
  X509_set_pubkey(x.get(), key);
  return x;
}

inline KeyCert makeCa(const std::string& cn) {
  KeyCert ca{newP256Key(), nullptr};
  ca.cert = newCert(cn, ca.key.get(), -3600, 30L * 86400);
  X509_set_issuer_name(ca.cert.get(), X509_get_subject_name(ca.cert.get()));
  addExtension(ca.cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  addExtension(ca.cert.get(), ca.cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  addExtension(ca.cert.get(), ca.cert.get(), NID_subject_key_identifier, "hash");
  X509_sign(ca.cert.get(), ca.key.get(), EVP_sha256());
  return ca;
}

struct LeafSpec {
  std::string san = "DNS:localhost,IP:127.0.0.1";  // X509v3 config syntax
  long not_before_s = -3600;
  long not_after_s = 7L * 86400;
};

inline KeyCert makeLeaf(const KeyCert& ca, const LeafSpec& spec = {}) {
  KeyCert leaf{newP256Key(), nullptr};
  leaf.cert = newCert("gatehouse test leaf", leaf.key.get(), spec.not_before_s, spec.not_after_s);
  X509_set_issuer_name(leaf.cert.get(), X509_get_subject_name(ca.cert.get()));
  addExtension(leaf.cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExtension(leaf.cert.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth");
  addExtension(leaf.cert.get(), ca.cert.get(), NID_authority_key_identifier, "keyid:always");
  if (!spec.san.empty()) {
    addExtension(leaf.cert.get(), ca.cert.get(), NID_subject_alt_name, spec.san.c_str());
  }
  X509_sign(leaf.cert.get(), ca.key.get(), EVP_sha256());
  return leaf;
}

inline std::string certPem(X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

// A private temp directory, removed with its files on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gatehouse-upstream-XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "/tmp";
  }
  ~TempDir() {
    for (auto& f : files_) std::remove(f.c_str());
    ::rmdir(path_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    files_.push_back(p);
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// A server SSL_CTX presenting `leaf` (plus `chain_ca` as the chain, if given) and selecting ALPN
// http/1.1 when offered.
inline bssl::UniquePtr<SSL_CTX> newServerCtx(const KeyCert& leaf, const KeyCert* chain_ca) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  SSL_CTX_use_certificate(ctx.get(), leaf.cert.get());
  SSL_CTX_use_PrivateKey(ctx.get(), leaf.key.get());
  if (chain_ca) SSL_CTX_add1_chain_cert(ctx.get(), chain_ca->cert.get());
  SSL_CTX_set_alpn_select_cb(
      ctx.get(),
      [](SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len, void*) {
        static const uint8_t kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
        for (unsigned i = 0; i < in_len; i += 1u + in[i]) {
          if (in[i] == 8 && i + 9 <= in_len && std::equal(kHttp11, kHttp11 + 8, in + i + 1)) {
            *out = in + i + 1;
            *out_len = 8;
            return SSL_TLSEXT_ERR_OK;
          }
        }
        return SSL_TLSEXT_ERR_NOACK;
      },
      nullptr);
  return ctx;
}

// The server half of an in-memory TLS pair, for driving TlsSession without sockets.
class MemServer {
 public:
  MemServer(const KeyCert& leaf, const KeyCert* chain_ca) : ctx_(newServerCtx(leaf, chain_ca)) {
    ssl_.reset(SSL_new(ctx_.get()));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_.get(), in_, out_);
    SSL_set_accept_state(ssl_.get());
  }
  // Feeds client bytes and advances; returns what the server has to send back.
  std::string exchange(const std::string& from_client) {
    BIO_write(in_, from_client.data(), static_cast<int>(from_client.size()));
    if (!SSL_is_init_finished(ssl_.get())) SSL_do_handshake(ssl_.get());
    char buf[4096];
    int n;
    while (SSL_is_init_finished(ssl_.get()) && (n = SSL_read(ssl_.get(), buf, sizeof buf)) > 0) {
      received_.append(buf, static_cast<size_t>(n));
    }
    return take();
  }
  std::string send(const std::string& plaintext) {
    SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
    return take();
  }
  std::string closeNotify() {
    SSL_shutdown(ssl_.get());
    return take();
  }
  std::string take() {
    std::string out(BIO_pending(out_), '\0');
    if (!out.empty()) BIO_read(out_, out.data(), static_cast<int>(out.size()));
    return out;
  }
  std::string received() const { return received_; }
  std::string sni() const {
    const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
    return name ? name : "";
  }
  bool handshakeDone() const { return SSL_is_init_finished(ssl_.get()); }

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  bssl::UniquePtr<SSL> ssl_;
  BIO* in_;
  BIO* out_;
  std::string received_;
};

// One accepted connection, seen from a server handler thread.
class ServerConn {
 public:
  ServerConn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~ServerConn() {
    if (ssl_) SSL_free(ssl_);
    ::close(fd_);
  }
  // Runs the server handshake (a no-op on a raw TCP server). False if the client aborted it.
  bool handshake() { return !ssl_ || SSL_accept(ssl_) == 1; }
  // Bytes up to and including '\n'; nullopt on EOF or error.
  std::optional<std::string> readLine() {
    std::string line;
    char c;
    while (true) {
      int n = ssl_ ? SSL_read(ssl_, &c, 1) : static_cast<int>(::read(fd_, &c, 1));
      if (n <= 0) return std::nullopt;
      line.push_back(c);
      if (c == '\n') return line;
    }
  }
  bool write(const std::string& data) {
    int n = ssl_ ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                 : static_cast<int>(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL));
    return n == static_cast<int>(data.size());
  }
  // Blocks until the client goes away (or the server stops).
  void drain() {
    char buf[4096];
    while ((ssl_ ? SSL_read(ssl_, buf, sizeof buf) : ::read(fd_, buf, sizeof buf)) > 0) {
    }
  }
  // Clean TLS close (close_notify) and TCP FIN.
  void close() {
    if (ssl_) SSL_shutdown(ssl_);
    ::shutdown(fd_, SHUT_RDWR);
  }
  std::string sni() const {
    const char* name = ssl_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
    return name ? name : "";
  }

 private:
  int fd_;
  SSL* ssl_;
};

// A TCP socket listening on 127.0.0.1 at an ephemeral port (written to *port).
inline int listenLoopback(int backlog, uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(fd, backlog);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A loopback server on 127.0.0.1 with an ephemeral port. With a certificate it speaks TLS
// (leaf + chain); without one it hands raw TCP connections to the handler.
class TestServer {
 public:
  using Handler = std::function<void(ServerConn&)>;

  TestServer(Handler handler, const KeyCert* leaf = nullptr, const KeyCert* chain_ca = nullptr)
      : handler_(std::move(handler)) {
    if (leaf) ctx_ = newServerCtx(*leaf, chain_ca);
    listen_fd_ = listenLoopback(16, &port_);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }

  ~TestServer() {
    stop_ = true;
    acceptor_.join();
    {
      // Unblocks handlers sitting in read().
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : handlers_) t.join();
    ::close(listen_fd_);
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int finished() const { return finished_; }
  std::string lastSni() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_sni_;
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++accepted_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        open_fds_.push_back(fd);
      }
      handlers_.emplace_back([this, fd] {
        SSL* ssl = nullptr;
        if (ctx_) {
          ssl = SSL_new(ctx_.get());
          SSL_set_fd(ssl, fd);
        }
        {
          ServerConn conn(fd, ssl);
          handler_(conn);
          // Forget the fd before ~ServerConn closes it, so ~TestServer never shuts down a
          // recycled descriptor.
          std::lock_guard<std::mutex> lock(mu_);
          if (ssl) last_sni_ = conn.sni();
          std::erase(open_fds_, fd);
        }  // closed here: the client sees EOF
        ++finished_;
      });
    }
  }

  Handler handler_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> finished_{0};
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
  std::mutex mu_;
  std::vector<int> open_fds_;
  std::string last_sni_;
};

// Handlers.
inline void echoLines(ServerConn& c) {
  if (!c.handshake()) return;
  while (auto line = c.readLine()) {
    if (!c.write("echo " + *line)) return;
  }
}

}  // namespace gatehouse::proxy::testing
