#include "wg/uapi.h"

#include <arpa/inet.h>
#include <sodium.h>

#include <charconv>
#include <cstring>

#include "wg/crypto/x25519.h"

namespace gatehouse::wg {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendHexKey(std::string& out, std::string_view name, const Key32& key) {
  out.append(name);
  out.push_back('=');
  for (uint8_t b : key) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0xf]);
  }
  out.push_back('\n');
}

void appendNumber(std::string& out, std::string_view name, uint64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(name);
  out.push_back('=');
  out.append(buf, end);
  out.push_back('\n');
}

// inet_ntop text of `a` into buf; returns its length.
size_t formatAddr(const IpAddr& a, char (&buf)[INET6_ADDRSTRLEN]) {
  const int af = a.isV4() ? AF_INET : AF_INET6;
  if (!inet_ntop(af, a.bytes.data(), buf, sizeof buf)) return 0;
  return std::strlen(buf);
}

void appendPrefix(std::string& out, const IpPrefix& p) {
  char buf[INET6_ADDRSTRLEN];
  out.append("allowed_ip=");
  out.append(buf, formatAddr(p.addr, buf));
  out.push_back('/');
  char bits[4];
  auto [end, ec] = std::to_chars(bits, bits + sizeof bits, unsigned{p.bits});
  out.append(bits, end);
  out.push_back('\n');
}

void appendEndpoint(std::string& out, const Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN];
  out.append("endpoint=");
  if (ep.addr.isV6()) out.push_back('[');
  out.append(buf, formatAddr(ep.addr, buf));
  if (ep.addr.isV6()) out.push_back(']');
  out.push_back(':');
  char port[8];
  auto [end, ec] = std::to_chars(port, port + sizeof port, unsigned{ep.port});
  out.append(port, end);
  out.push_back('\n');
}

void appendErrno(std::string& out, int err) {
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, err);
  out.append("errno=");
  out.append(buf, end);
  out.append("\n\n");
}

// Go's strconv.ParseUint(s, 10, bits): decimal digits only, no sign, no blanks.
std::optional<uint64_t> parseUint(std::string_view s, uint64_t max) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

// Go's netip.ParsePrefix: the '/' is required and the length has no sign or leading zero.
std::optional<IpPrefix> parseStrictPrefix(std::string_view s) {
  auto slash = s.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto bits = s.substr(slash + 1);
  if (bits.empty() || (bits.size() > 1 && bits[0] == '0')) return std::nullopt;
  for (char c : bits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return IpPrefix::parse(s);
}

// Go's netip.ParseAddrPort: brackets only around IPv6.
std::optional<Endpoint> parseStrictEndpoint(std::string_view s) {
  auto ep = Endpoint::parse(s);
  if (ep && !s.empty() && s.front() == '[' && !ep->addr.isV6()) return std::nullopt;
  return ep;
}

// A drop reason name as a UAPI key: lowercase [a-z0-9_], never '=' or '\n'.
void appendDropKey(std::string& out, DropReason r) {
  out.append("gatehouse_drop_");
  const char* name = dropReasonName(r);
  for (const char* p = name ? name : ""; *p; ++p) {
    char c = *p;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    out.push_back(ok ? c : '_');
  }
}

}  // namespace

std::string keyToHex(const Key32& key) {
  std::string s(64, '0');
  for (size_t i = 0; i < key.size(); ++i) {
    s[2 * i] = kHexDigits[key[i] >> 4];
    s[2 * i + 1] = kHexDigits[key[i] & 0xf];
  }
  return s;
}

std::optional<Key32> keyFromHex(std::string_view hex) {
  Key32 key{};
  if (hex.size() != 2 * key.size()) return std::nullopt;
  for (size_t i = 0; i < key.size(); ++i) {
    int hi = hexValue(hex[2 * i]), lo = hexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    key[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return key;
}

std::string keyToBase64(const Key32& key) {
  char buf[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(buf, sizeof buf, key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return std::string(buf);
}

std::optional<Key32> keyFromBase64(std::string_view b64) {
  Key32 key{};
  if (b64.size() != sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL) - 1) {
    return std::nullopt;
  }
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(key.data(), key.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != key.size() || end != b64.data() + b64.size()) {
    return std::nullopt;
  }
  return key;
}

void appendUapiGetReply(const Device& device, const UapiHost& host, std::string& out) {
  // Device section, in wireguard-go's order.
  if (auto sk = device.privateKey()) appendHexKey(out, "private_key", *sk);
  if (uint16_t port = host.listenPort()) appendNumber(out, "listen_port", port);
  if (uint32_t mark = host.fwmark()) appendNumber(out, "fwmark", mark);
  for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i) {
    auto r = static_cast<DropReason>(i);
    if (uint64_t n = device.drops(r)) {
      appendDropKey(out, r);
      appendNumber(out, "", n);
    }
  }

  for (const Key32& pk : device.peerKeys()) {
    auto info = device.peerInfo(pk);
    if (!info) continue;
    // Each allowed-IP line is at most ~57 bytes; reserve once so a 130k-prefix peer does not
    // reallocate line by line.
    out.reserve(out.size() + 512 + info->allowed_ips.size() * 32);
    appendHexKey(out, "public_key", info->public_key);
    appendHexKey(out, "preshared_key", info->preshared_key.value_or(Key32{}));
    out.append("protocol_version=1\n");
    if (info->endpoint && info->endpoint->valid()) appendEndpoint(out, *info->endpoint);
    int64_t ns = info->stats.last_handshake_wall_ns > 0 ? info->stats.last_handshake_wall_ns : 0;
    appendNumber(out, "last_handshake_time_sec", static_cast<uint64_t>(ns / kSec));
    appendNumber(out, "last_handshake_time_nsec", static_cast<uint64_t>(ns % kSec));
    appendNumber(out, "tx_bytes", info->stats.tx_bytes);
    appendNumber(out, "rx_bytes", info->stats.rx_bytes);
    appendNumber(out, "persistent_keepalive_interval", info->persistent_keepalive);
    for (const IpPrefix& p : info->allowed_ips) appendPrefix(out, p);
  }
  appendErrno(out, 0);
}

UapiConnection::UapiConnection(Device& device, UapiHost& host, DeviceOutput& output,
                               UapiOptions options)
    : device_(device), host_(host), output_(output), options_(options) {}

void UapiConnection::feed(std::span<const uint8_t> bytes, const Now& now, std::string& out) {
  const char* p = reinterpret_cast<const char*>(bytes.data());
  const char* end = p + bytes.size();
  while (p < end && state_ != State::kClosed) {
    if (state_ == State::kGetTerminator) {
      // wireguard-go reads exactly one byte after "get=1\n" and wants the blank line.
      if (*p++ == '\n') {
        appendUapiGetReply(device_, host_, out);
        state_ = State::kOperation;
      } else {
        appendErrno(out, kUapiErrInvalid);
        state_ = State::kClosed;
      }
      continue;
    }
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    const size_t chunk = static_cast<size_t>((nl ? nl : end) - p);
    if (partial_.size() + chunk > options_.max_line_bytes) {
      onOverlongLine(out);
      return;
    }
    if (!nl) {
      partial_.append(p, chunk);
      return;
    }
    if (partial_.empty()) {
      onLine(std::string_view(p, chunk), now, out);
    } else {
      partial_.append(p, chunk);
      onLine(partial_, now, out);
      partial_.clear();
    }
    p = nl + 1;
  }
}

void UapiConnection::onOverlongLine(std::string& out) {
  partial_.clear();
  partial_.shrink_to_fit();
  // An operation line that long is no operation: close silently, as wireguard-go does for an
  // unknown one. Inside a set, bufio.Scanner's ErrTooLong becomes EIO.
  if (state_ == State::kSet) appendErrno(out, kUapiErrIo);
  state_ = State::kClosed;
}

void UapiConnection::onLine(std::string_view line, const Now& now, std::string& out) {
  if (state_ == State::kOperation) {
    if (line == "get=1") {
      state_ = State::kGetTerminator;
    } else if (line == "set=1") {
      state_ = State::kSet;
      device_section_ = true;
      section_ = Section{};
    } else {
      state_ = State::kClosed;
    }
    return;
  }
  // Set body. bufio.ScanLines drops one '\r' before the '\n'.
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) {
    finishSet(0, now, out);
    return;
  }
  if (int err = onSetLine(line, now)) finishSet(err, now, out);
}

void UapiConnection::finishSet(int err, const Now& now, std::string& out) {
  endSection(now);
  appendErrno(out, err);
  state_ = err == 0 ? State::kOperation : State::kClosed;
}

int UapiConnection::onSetLine(std::string_view line, const Now& now) {
  auto eq = line.find('=');
  if (eq == std::string_view::npos) return kUapiErrProtocol;
  std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
  if (key == "public_key") {
    device_section_ = false;
    endSection(now);
    return onPublicKey(value, now);
  }
  return device_section_ ? onDeviceKey(key, value, now) : onPeerKey(key, value);
}

int UapiConnection::onDeviceKey(std::string_view key, std::string_view value, const Now& now) {
  if (key == "private_key") {
    auto sk = keyFromHex(value);
    if (!sk) return kUapiErrInvalid;
    // wireguard-go clamps on parse (FromMaybeZeroHex), so `get` shows the clamped key.
    if (*sk != Key32{}) crypto::clampPrivateKey(*sk);
    device_.setPrivateKey(*sk, now);
    sodium_memzero(sk->data(), sk->size());
    return 0;
  }
  if (key == "listen_port") {
    auto port = parseUint(value, 0xffff);
    if (!port) return kUapiErrInvalid;
    int err = host_.setListenPort(static_cast<uint16_t>(*port));
    return err > 0 ? -err : err;
  }
  if (key == "fwmark") {
    auto mark = parseUint(value, 0xffffffff);
    if (!mark) return kUapiErrInvalid;
    int err = host_.setFwmark(static_cast<uint32_t>(*mark));
    return err > 0 ? -err : err;
  }
  if (key == "replace_peers") {
    if (value != "true") return kUapiErrInvalid;
    device_.removeAllPeers();
    return 0;
  }
  return kUapiErrInvalid;
}

int UapiConnection::onPublicKey(std::string_view value, const Now& now) {
  auto pk = keyFromHex(value);
  if (!pk) return kUapiErrInvalid;
  Section s;
  s.open = true;
  s.public_key = *pk;
  auto own = device_.publicKey();
  s.dummy = own && *own == *pk;
  if (!s.dummy && !device_.hasPeer(*pk)) {
    // wireguard-go creates the peer now and deletes it again on update_only.
    if (device_.peerCount() >= options_.max_peers) return kUapiErrInvalid;
    s.created = device_.addPeer(*pk, now);
    s.dummy = !s.created;
  }
  section_ = s;
  return 0;
}

int UapiConnection::onPeerKey(std::string_view key, std::string_view value) {
  Section& s = section_;
  const Key32& pk = s.public_key;
  if (key == "update_only") {
    if (value != "true") return kUapiErrInvalid;
    if (s.created && !s.dummy) {
      device_.removePeer(pk);
      s.dummy = true;
    }
    return 0;
  }
  if (key == "remove") {
    if (value != "true") return kUapiErrInvalid;
    if (!s.dummy) device_.removePeer(pk);
    s.dummy = true;
    s.keepalive.reset();
    return 0;
  }
  if (key == "preshared_key") {
    auto psk = keyFromHex(value);
    if (!psk) return kUapiErrInvalid;
    if (!s.dummy) device_.setPresharedKey(pk, *psk);
    sodium_memzero(psk->data(), psk->size());
    return 0;
  }
  if (key == "endpoint") {
    auto ep = parseStrictEndpoint(value);
    if (!ep) return kUapiErrInvalid;
    if (!s.dummy) device_.setEndpoint(pk, *ep);
    return 0;
  }
  if (key == "persistent_keepalive_interval") {
    auto secs = parseUint(value, 0xffff);
    if (!secs) return kUapiErrInvalid;
    if (!s.dummy) s.keepalive = static_cast<uint16_t>(*secs);
    return 0;
  }
  if (key == "replace_allowed_ips") {
    if (value != "true") return kUapiErrInvalid;
    if (!s.dummy) device_.clearAllowedIps(pk);
    return 0;
  }
  if (key == "allowed_ip") {
    const bool remove = !value.empty() && value.front() == '-';
    if (remove) value.remove_prefix(1);
    auto prefix = parseStrictPrefix(value);
    if (!prefix) return kUapiErrInvalid;
    if (s.dummy) return 0;
    if (remove) {
      device_.removeAllowedIp(pk, *prefix);
    } else {
      device_.addAllowedIp(pk, *prefix);
    }
    return 0;
  }
  if (key == "protocol_version") return value == "1" ? 0 : kUapiErrInvalid;
  return kUapiErrInvalid;
}

void UapiConnection::endSection(const Now& now) {
  Section& s = section_;
  if (s.open && !s.dummy && s.keepalive) {
    device_.setPersistentKeepalive(s.public_key, *s.keepalive, now, output_);
  }
  section_ = Section{};
}

}  // namespace gatehouse::wg
