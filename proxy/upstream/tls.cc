#include "proxy/upstream/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>

namespace gatehouse::proxy {
namespace {

// ALPN wire format: length-prefixed protocol names.
constexpr uint8_t kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// The first queued BoringSSL error as "REASON (library)", or `fallback` when the queue is empty.
std::string errorQueueText(const char* fallback) {
  uint32_t e = ERR_get_error();
  if (e == 0) return fallback;
  const char* reason = ERR_reason_error_string(e);
  const char* lib = ERR_lib_error_string(e);
  std::string text = reason ? reason : "unknown error";
  if (lib) text += std::string(" (") + lib + ")";
  ERR_clear_error();
  return text;
}

Status loadTrust(SSL_CTX* ctx, const std::string& file, const char* what) {
  // stat first: BoringSSL's "no such file" arrives as a bare system-library code.
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    return Status::fromErrno(errno, std::string("cannot read ") + what + " " + file);
  }
  if (SSL_CTX_load_verify_locations(ctx, file.c_str(), nullptr) != 1) {
    return {EINVAL, std::string("cannot load ") + what + " " + file +
                        ": not a PEM file of certificates (" + errorQueueText("no certificate") +
                        ")"};
  }
  return Status::ok();
}

}  // namespace

bool isIpLiteral(std::string_view host) {
  std::string h(host);
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, h.c_str(), &a4) == 1 || inet_pton(AF_INET6, h.c_str(), &a6) == 1;
}

// --- TlsContext ----------------------------------------------------------------------------------

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsOptions& options) {
  ERR_clear_error();
  if (options.ca_bundle_file.empty() && options.extra_ca_file.empty()) {
    return Status(EINVAL,
                  "TLS options trust no certificate authority: set ca_bundle_file or "
                  "extra_ca_file");
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return Status(ENOMEM, "SSL_CTX_new: " + errorQueueText("out of memory"));
  std::shared_ptr<TlsContext> out(new TlsContext(ctx, options));

  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Verification failure aborts the handshake; the verify result names the reason.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Unlike most of BoringSSL, this returns 0 on success.
  if (SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11) != 0) {
    return Status(ENOMEM, "SSL_CTX_set_alpn_protos failed");
  }
  if (!options.ca_bundle_file.empty()) {
    if (Status s = loadTrust(ctx, options.ca_bundle_file, "CA bundle"); !s) return s;
  }
  if (!options.extra_ca_file.empty()) {
    if (Status s = loadTrust(ctx, options.extra_ca_file, "extra CA file"); !s) return s;
  }
  return out;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

// --- TlsSession ----------------------------------------------------------------------------------

Result<std::unique_ptr<TlsSession>> TlsSession::create(std::shared_ptr<TlsContext> context,
                                                       std::string host) {
  ERR_clear_error();
  if (!context) return Status(EINVAL, "TLS session without a context");
  if (host.empty()) return Status(EINVAL, "TLS session without a host to verify");
  std::unique_ptr<TlsSession> s(new TlsSession(std::move(context), std::move(host)));
  s->ssl_ = SSL_new(s->context_->raw());
  if (!s->ssl_) return Status(ENOMEM, "SSL_new: " + errorQueueText("out of memory"));
  SSL_set_connect_state(s->ssl_);

  s->rbio_ = BIO_new(BIO_s_mem());
  s->wbio_ = BIO_new(BIO_s_mem());
  if (!s->rbio_ || !s->wbio_) {
    BIO_free(s->rbio_);
    BIO_free(s->wbio_);
    s->rbio_ = s->wbio_ = nullptr;
    return Status(ENOMEM, "BIO_new failed");
  }
  // An empty input BIO means "wait for more bytes", not end of stream.
  BIO_set_mem_eof_return(s->rbio_, -1);
  SSL_set_bio(s->ssl_, s->rbio_, s->wbio_);

  X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl_);
  if (isIpLiteral(s->host_)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, s->host_.c_str()) != 1) {
      return Status(EINVAL, "cannot verify against IP address " + s->host_);
    }
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, s->host_.data(), s->host_.size()) != 1 ||
        SSL_set_tlsext_host_name(s->ssl_, s->host_.c_str()) != 1) {
      return Status(EINVAL, "invalid TLS host name '" + s->host_ + "'");
    }
  }
  return s;
}

TlsSession::~TlsSession() { SSL_free(ssl_); }  // frees both BIOs

Status TlsSession::start() {
  if (started_) return Status(EALREADY, "TLS session already started");
  started_ = true;
  return drive();
}

Status TlsSession::feed(std::span<const uint8_t> ciphertext) {
  if (state_ == State::kFailed) return Status(EPROTO, "TLS session with " + host_ + " failed");
  if (!started_) return Status(ENOTCONN, "TLS session fed before start()");
  // After close_notify the record layer is finished; trailing bytes are ignored.
  if (state_ == State::kPeerClosed || ciphertext.empty()) return Status::ok();
  if (BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size())) !=
      static_cast<int>(ciphertext.size())) {
    return fail(Status(ENOMEM, "TLS input buffer write failed"));
  }
  return drive();
}

Status TlsSession::drive() {
  ERR_clear_error();
  if (state_ == State::kHandshaking) {
    int ret = SSL_do_handshake(ssl_);
    if (ret != 1) {
      int err = SSL_get_error(ssl_, ret);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::ok();
      return fail(handshakeError(ret));
    }
    state_ = State::kOpen;
  }
  // Decrypt everything buffered. Post-handshake messages (TLS 1.3 tickets) are consumed here.
  char buf[16 * 1024];
  while (state_ == State::kOpen) {
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plaintext_.append(buf, static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      state_ = State::kPeerClosed;
      break;
    }
    return fail(Status(
        EPROTO, "TLS error from host " + host_ + ": " + errorQueueText("record layer failure")));
  }
  return Status::ok();
}

Status TlsSession::handshakeError(int ret) {
  uint32_t e = ERR_peek_error();
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    long v = SSL_get_verify_result(ssl_);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      return {EPROTO, "hostname mismatch: the server's certificate is not valid for host " + host_};
    }
    return {EPROTO, std::string("certificate verify failed: ") + X509_verify_cert_error_string(v) +
                        " for host " + host_};
  }
  return {EPROTO, "TLS handshake with host " + host_ +
                      " failed: " + errorQueueText("the server closed or sent garbage")};
}

Status TlsSession::fail(Status status) {
  state_ = State::kFailed;
  return status;
}

Status TlsSession::write(std::span<const uint8_t> plaintext) {
  if (state_ == State::kFailed) return Status(EPROTO, "TLS session with " + host_ + " failed");
  if (state_ == State::kHandshaking) return Status(ENOTCONN, "TLS handshake not finished");
  if (state_ == State::kPeerClosed) {
    return Status(EPIPE, "TLS session closed by host " + host_);
  }
  ERR_clear_error();
  size_t off = 0;
  while (off < plaintext.size()) {
    // Memory BIOs grow, so SSL_write never wants to wait; it may still stop at a record edge.
    size_t chunk = std::min<size_t>(plaintext.size() - off, 1 << 30);
    int n = SSL_write(ssl_, plaintext.data() + off, static_cast<int>(chunk));
    if (n <= 0) {
      return fail(Status(EPROTO, "TLS write to host " + host_ +
                                     " failed: " + errorQueueText("record layer failure")));
    }
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

void TlsSession::shutdown() {
  if (state_ != State::kOpen && state_ != State::kPeerClosed) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

bool TlsSession::hasCiphertext() const { return BIO_pending(wbio_) > 0; }

std::string TlsSession::takeCiphertext() {
  std::string out(BIO_pending(wbio_), '\0');
  if (out.empty()) return out;
  int n = BIO_read(wbio_, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string TlsSession::takePlaintext() { return std::exchange(plaintext_, {}); }

std::string TlsSession::alpn() const {
  const uint8_t* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

std::string TlsSession::version() const { return SSL_get_version(ssl_); }

}  // namespace gatehouse::proxy
