// TLS for upstream (provider) connections: a client session as a sans-I/O state machine over
// BoringSSL memory BIOs. Ciphertext from the socket goes in with feed(), plaintext comes out with
// takePlaintext(); plaintext to send goes in with write(), ciphertext for the socket comes out
// with takeCiphertext(). No socket, no loop, no thread inside: connection.cc drives it from libuv
// and the tests drive it against an in-memory server.
//
// What a session enforces (none of it is optional; there is no "insecure" switch):
//   - TLS 1.2 or newer, ALPN "http/1.1" offered (the gateway speaks HTTP/1.1 upstream).
//   - The chain verifies against the trust anchors of its TlsContext: the system CA bundle
//     and/or an extra CA file (private providers, tests).
//   - The leaf matches the host: DNS names through X509_VERIFY_PARAM_set1_host (SNI is sent),
//     IP literals against IP SANs (no SNI: RFC 6066 forbids IP addresses in SNI).
// Failures are Status values with messages an operator can act on, e.g.
//   "certificate verify failed: self signed certificate in certificate chain for host X"
//   "hostname mismatch: the certificate of 127.0.0.1 is not valid for host X"
// Certificate validity is checked against the system wall clock (BoringSSL reads it); that is
// the only ambient input.
//
// Thread safety: a TlsContext is immutable after create() and may be shared by sessions on any
// thread (SSL_CTX is reference-counted and internally locked). A TlsSession belongs to one
// thread. BoringSSL's error queue is thread-local; each call clears it first.
#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "wg/status.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "proxy/upstream must build against BoringSSL (/usr/include/android), not system OpenSSL"
#endif

namespace gatehouse::proxy {

// Trust configuration of one upstream. Equal options may share one TlsContext.
struct TlsOptions {
  // PEM bundle of trust anchors; empty = none (only extra_ca_file is trusted).
  std::string ca_bundle_file = "/etc/ssl/certs/ca-certificates.crt";
  // Optional extra PEM file of trust anchors (a private CA; the tests' CA).
  std::string extra_ca_file;

  bool operator==(const TlsOptions&) const = default;
};

// An SSL_CTX configured from TlsOptions. Loading a CA bundle costs milliseconds, so build one per
// distinct TlsOptions and share it (UpstreamPool caches them).
class TlsContext {
 public:
  // Fails with a message naming the unreadable or malformed CA file.
  static Result<std::shared_ptr<TlsContext>> create(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* raw() const { return ctx_; }
  const TlsOptions& options() const { return options_; }

 private:
  TlsContext(SSL_CTX* ctx, TlsOptions options) : ctx_(ctx), options_(std::move(options)) {}
  SSL_CTX* ctx_;
  TlsOptions options_;
};

// One client TLS connection's protocol state. Typical drive:
//   session->start();  send(takeCiphertext());
//   on socket bytes: status = feed(bytes); send(takeCiphertext()); deliver(takePlaintext());
//   once open(): write(request); send(takeCiphertext());
// Always send takeCiphertext() after start(), feed() and write(): reading can produce output
// too (alerts, key updates, close_notify replies).
class TlsSession {
 public:
  enum class State {
    kHandshaking,  // start() called, handshake in flight
    kOpen,         // handshake done, chain and host verified
    kPeerClosed,   // the server sent close_notify; no more plaintext will arrive
    kFailed,       // a fatal error was returned; the session is unusable
  };

  // `host` is what the certificate must match and, unless it is an IP literal, the SNI name.
  static Result<std::unique_ptr<TlsSession>> create(std::shared_ptr<TlsContext> context,
                                                    std::string host);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Produces the ClientHello (in takeCiphertext()).
  Status start();
  // Ciphertext received from the server. Advances the handshake, decrypts what it can.
  // A non-ok Status is fatal (state() becomes kFailed); the message names the host and cause.
  Status feed(std::span<const uint8_t> ciphertext);
  // Encrypts plaintext for the server. Only in kOpen; otherwise EPIPE/ENOTCONN.
  Status write(std::span<const uint8_t> plaintext);
  // Queues a close_notify alert (best effort; we never wait for the server's).
  void shutdown();

  std::string takeCiphertext();
  std::string takePlaintext();
  bool hasCiphertext() const;

  State state() const { return state_; }
  bool open() const { return state_ == State::kOpen; }
  const std::string& host() const { return host_; }
  // The negotiated ALPN protocol ("http/1.1"), or empty if the server chose none.
  std::string alpn() const;
  // "TLSv1.3" etc., for logs.
  std::string version() const;

 private:
  TlsSession(std::shared_ptr<TlsContext> context, std::string host)
      : context_(std::move(context)), host_(std::move(host)) {}
  Status drive();
  Status handshakeError(int ret);
  Status fail(Status status);

  std::shared_ptr<TlsContext> context_;  // keeps SSL_CTX alive for the SSL
  std::string host_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext in (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext out (owned by ssl_)
  std::string plaintext_;
  State state_ = State::kHandshaking;
  bool started_ = false;
};

// True if `host` is an IPv4 or IPv6 literal (without brackets).
bool isIpLiteral(std::string_view host);

}  // namespace gatehouse::proxy
