// The C ABI (include/gatehouse.h) over the C++ Node (wg/node.h). Each gatehouse_node owns a
// Node plus the C-side state: its listeners by handle and the per-thread last error message.
// Every entry point catches C++ exceptions (std::bad_alloc) and turns them into codes: nothing
// may unwind through a C caller.
#include <errno.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gatehouse.h"
#include "wg/node.h"
#include "wg/uapi.h"

using gatehouse::Result;
using gatehouse::Status;
using namespace gatehouse::wg;

struct gatehouse_node {
  NodeOptions options;
  std::unique_ptr<Node> node;
  std::string config_error;          // from gatehouse_node_new, reported by start
  std::shared_ptr<LoopThread> loop;  // shared by every node of the process (lwIP is global)
  std::atomic<bool> started{false};
  std::mutex mu;                                         // guards the members below
  std::map<int, std::shared_ptr<FdListener>> listeners;  // by FdListener::readyFd()
  std::map<std::thread::id, std::string> errors;
};

namespace {

constexpr const char* kVersionString = "gatehouse 0.1.0 (api 1)";

// The process's loop thread: created by the first started node, joined when the last releases
// it. Forced by lwIP's process-global state (netstack.h), not a convenience.
std::mutex g_loop_mu;
std::weak_ptr<LoopThread> g_loop;

std::shared_ptr<LoopThread> sharedLoop() {
  std::lock_guard<std::mutex> lock(g_loop_mu);
  auto loop = g_loop.lock();
  if (!loop) {
    loop = std::make_shared<LoopThread>();
    g_loop = loop;
  }
  return loop;
}

int fail(gatehouse_node* n, int code, const std::string& message) {
  if (n != nullptr) {
    std::lock_guard<std::mutex> lock(n->mu);
    n->errors[std::this_thread::get_id()] = message;
  }
  return code > 0 ? -code : (code < 0 ? code : GATEHOUSE_EIO);
}

int fail(gatehouse_node* n, const Status& st) { return fail(n, st.code(), st.message()); }

// Runs `fn`, turning an escaping exception into a code: no C++ exception crosses the ABI.
template <typename F>
int guarded(gatehouse_node* n, F fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return fail(n, ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(n, EIO, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(n, EIO, "internal error");
  }
}

// Copies `s` into dst[cap], cut at a UTF-8 boundary; false when it had to cut.
bool copyString(char* dst, size_t cap, std::string_view s) {
  if (cap == 0) return s.empty();
  size_t n = s.size();
  bool cut = n >= cap;
  if (cut) {
    n = cap - 1;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // continuation
  }
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
  return !cut;
}

std::vector<std::string_view> splitCommas(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t c = s.find(',');
    std::string_view item = s.substr(0, c);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.push_back(item);
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

// Struct versioning: a caller's struct may be smaller (older header: fields are appended only)
// or larger (newer header) as long as the bytes we do not know are zero.
bool structOk(const void* s, uint32_t caller_size, size_t our_size) {
  if (caller_size < 2 * sizeof(uint32_t)) return false;
  const auto* bytes = static_cast<const unsigned char*>(s);
  for (size_t i = our_size; i < caller_size; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

// The node is started and not closed; else fills the error.
int checkRunning(gatehouse_node* n, const char* what) {
  if (n == nullptr) return GATEHOUSE_EINVAL;
  if (!n->started) return fail(n, EBADF, std::string(what) + ": node not started");
  return GATEHOUSE_OK;
}

std::optional<IpAddr> parseRemote(std::string_view text) {
  if (auto a = IpAddr::parse(text)) return a;
  if (auto e = Endpoint::parse(text)) return e->addr;
  return std::nullopt;
}

}  // namespace

extern "C" {

int gatehouse_version(void) { return GATEHOUSE_API_VERSION; }

const char* gatehouse_version_string(void) { return kVersionString; }

const char* gatehouse_strerror(int code) {
  switch (code) {
    case GATEHOUSE_OK:
      return "ok";
    case GATEHOUSE_EBADF:
      return "node or listener not running";
    case GATEHOUSE_EINVAL:
      return "invalid argument";
    case GATEHOUSE_ENOENT:
      return "no peer owns this address";
    case GATEHOUSE_ENOTSUP:
      return "not supported";
    case GATEHOUSE_EDEADLK:
      return "blocking call on the node's own thread";
    default:
      break;
  }
  if (code < 0 && code > -4096) return strerrordesc_np(-code) ? strerrordesc_np(-code) : "error";
  return "unknown error";
}

const char* gatehouse_errmsg(const gatehouse_node* node) {
  if (node == nullptr) return "";
  auto* n = const_cast<gatehouse_node*>(node);
  std::lock_guard<std::mutex> lock(n->mu);
  auto it = n->errors.find(std::this_thread::get_id());
  return it == n->errors.end() ? "" : it->second.c_str();
}

void gatehouse_options_init(gatehouse_options* o) {
  if (o == nullptr) return;
  std::memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->api_version = GATEHOUSE_API_VERSION;
  o->log_level = GATEHOUSE_LOG_INFO;
}

void gatehouse_peer_init(gatehouse_peer* p) {
  if (p == nullptr) return;
  std::memset(p, 0, sizeof *p);
  p->struct_size = sizeof *p;
}

void gatehouse_identity_init(gatehouse_identity* id) {
  if (id == nullptr) return;
  std::memset(id, 0, sizeof *id);
  id->struct_size = sizeof *id;
}

int gatehouse_node_new(const gatehouse_options* o, gatehouse_node** out) {
  if (out == nullptr) return GATEHOUSE_EINVAL;
  *out = nullptr;
  if (o == nullptr || !structOk(o, o->struct_size, sizeof *o)) return GATEHOUSE_EINVAL;
  if (o->api_version == 0 || o->api_version > GATEHOUSE_API_VERSION) return GATEHOUSE_EINVAL;
  return guarded(nullptr, [&] {
    // Copy only the fields the caller's struct has.
    gatehouse_options opt;
    gatehouse_options_init(&opt);
    std::memcpy(&opt, o, std::min<size_t>(o->struct_size, sizeof opt));
    auto n = std::make_unique<gatehouse_node>();
    NodeOptions& no = n->options;
    // Bad values are reported by start, which can carry a message (new has no node yet).
    if (opt.private_key != nullptr) {
      auto k = keyFromBase64(opt.private_key);
      if (k) no.private_key = *k;
      if (!k) {
        n->config_error =
            "options.private_key is not a base64 WireGuard key (as `wg genkey` prints)";
      }
    } else if (opt.state_dir != nullptr) {
      no.state_dir = opt.state_dir;
    }
    if (opt.hostname != nullptr) no.hostname = opt.hostname;
    no.listen_port = opt.listen_port;
    if (opt.mtu != 0) no.mtu = opt.mtu;
    if (opt.addresses != nullptr) {
      for (std::string_view a : splitCommas(opt.addresses)) {
        auto ip = IpAddr::parse(a);
        if (ip) no.addresses.push_back(*ip);
        if (!ip && n->config_error.empty()) {
          n->config_error = "options.addresses: '" + std::string(a) +
                            "' is not an IP address (want e.g. \"10.7.0.2,fd7::2\")";
        }
      }
    }
    if (opt.log != nullptr) {
      auto fn = opt.log;
      void* ctx = opt.log_ctx;
      uint32_t least = opt.log_level;
      no.log = [fn, ctx, least](LogLevel level, const std::string& msg) {
        if (static_cast<uint32_t>(level) >= least) fn(ctx, static_cast<int>(level), msg.c_str());
      };
    }
    *out = n.release();
    return GATEHOUSE_OK;
  });
}

int gatehouse_node_add_peer(gatehouse_node* n, const gatehouse_peer* p) {
  if (n == nullptr) return GATEHOUSE_EINVAL;
  if (p == nullptr || !structOk(p, p->struct_size, sizeof *p)) {
    return fail(n, EINVAL, "add_peer: NULL peer or bad struct_size (use gatehouse_peer_init)");
  }
  if (n->started)
    return fail(n, EINVAL, "add_peer: peers are static configuration: add before start");
  return guarded(n, [&] {
    gatehouse_peer peer;
    gatehouse_peer_init(&peer);
    std::memcpy(&peer, p, std::min<size_t>(p->struct_size, sizeof peer));
    NodePeer np;
    auto key = peer.public_key ? keyFromBase64(peer.public_key) : std::nullopt;
    if (!key) {
      return fail(n, EINVAL,
                  std::string("add_peer: public_key '") + (peer.public_key ? peer.public_key : "") +
                      "' is not a base64 WireGuard key (as `wg pubkey` prints)");
    }
    np.public_key = *key;
    if (peer.endpoint != nullptr && peer.endpoint[0] != '\0') {
      auto ep = Endpoint::parse(peer.endpoint);
      if (!ep || ep->port == 0) {
        return fail(n, EINVAL,
                    std::string("add_peer: endpoint '") + peer.endpoint +
                        "' is not ip:port or [ip6]:port (host names are not resolved)");
      }
      np.endpoint = *ep;
    }
    if (peer.allowed_ips != nullptr) {
      for (std::string_view s : splitCommas(peer.allowed_ips)) {
        auto pre = IpPrefix::parse(s);
        if (!pre) {
          return fail(n, EINVAL,
                      "add_peer: allowed IP '" + std::string(s) +
                          "' is not a prefix like 10.7.0.1/32 or fd7::1/128");
        }
        np.allowed_ips.push_back(pre->normalized());
      }
    }
    if (peer.preshared_key != nullptr) {
      auto psk = keyFromBase64(peer.preshared_key);
      if (!psk) return fail(n, EINVAL, "add_peer: preshared_key is not base64 (`wg genpsk`)");
      np.preshared_key = *psk;
    }
    if (peer.persistent_keepalive > 65535) {
      return fail(n, EINVAL, "add_peer: persistent_keepalive above 65535 s");
    }
    np.persistent_keepalive = static_cast<uint16_t>(peer.persistent_keepalive);
    if (peer.name != nullptr) np.name = peer.name;
    n->options.peers.push_back(std::move(np));
    return GATEHOUSE_OK;
  });
}

int gatehouse_node_start(gatehouse_node* n) {
  if (n == nullptr) return GATEHOUSE_EINVAL;
  if (n->started || n->node) return fail(n, EINVAL, "start: called twice");
  return guarded(n, [&] {
    if (!n->config_error.empty()) return fail(n, EINVAL, n->config_error);
    if (n->options.addresses.empty()) {
      return fail(n, EINVAL, "options.addresses: at least one tunnel address is required");
    }
    n->loop = sharedLoop();
    n->options.loop_thread = n->loop.get();
    n->node = std::make_unique<Node>(n->options);
    Status st = n->node->start();
    if (!st) {
      n->node.reset();
      n->loop.reset();
      return fail(n, st);
    }
    n->started = true;
    return GATEHOUSE_OK;
  });
}

int gatehouse_node_close(gatehouse_node* n) {
  if (n == nullptr) return GATEHOUSE_EINVAL;
  return guarded(n, [&] {
    std::map<int, std::shared_ptr<FdListener>> listeners;
    {
      std::lock_guard<std::mutex> lock(n->mu);
      listeners.swap(n->listeners);
    }
    for (auto& [fd, l] : listeners) l->close();
    if (n->node) n->node->close();
    return GATEHOUSE_OK;
  });
}

void gatehouse_node_free(gatehouse_node* n) {
  if (n == nullptr) return;
  gatehouse_node_close(n);
  n->listeners.clear();
  n->node.reset();
  n->loop.reset();  // the last node joins the loop thread here
  delete n;
}

int gatehouse_node_listen_port(gatehouse_node* n) {
  if (int rc = checkRunning(n, "listen_port"); rc < 0) return rc;
  return n->node->listenPort();
}

int gatehouse_node_public_key(gatehouse_node* n, char* out, size_t out_len) {
  if (int rc = checkRunning(n, "public_key"); rc < 0) return rc;
  if (out == nullptr || out_len < GATEHOUSE_KEY_STRLEN) {
    return fail(n, EINVAL, "public_key: out must hold GATEHOUSE_KEY_STRLEN bytes");
  }
  return guarded(n, [&] {
    auto k = n->node->publicKey();
    if (!k) return fail(n, k.status());
    copyString(out, out_len, keyToBase64(*k));
    return GATEHOUSE_OK;
  });
}

int gatehouse_listen(gatehouse_node* n, const char* network, int port) {
  if (int rc = checkRunning(n, "listen"); rc < 0) return rc;
  if (network == nullptr || std::strcmp(network, "tcp") != 0) {
    return fail(n, ENOTSUP,
                std::string("listen: network '") + (network ? network : "(null)") +
                    "' not supported (only \"tcp\")");
  }
  if (port < 0 || port > 65535) return fail(n, EINVAL, "listen: port out of range 0..65535");
  return guarded(n, [&] {
    auto l = n->node->listenFd(static_cast<uint16_t>(port));
    if (!l) return fail(n, l.status());
    int handle = l.value()->readyFd();
    std::lock_guard<std::mutex> lock(n->mu);
    n->listeners[handle] = l.value();
    return handle;
  });
}

namespace {
std::shared_ptr<FdListener> findListener(gatehouse_node* n, int handle) {
  std::lock_guard<std::mutex> lock(n->mu);
  auto it = n->listeners.find(handle);
  return it == n->listeners.end() ? nullptr : it->second;
}
}  // namespace

int gatehouse_accept(gatehouse_node* n, int listener, int timeout_ms, char* remote,
                     size_t remote_len) {
  if (int rc = checkRunning(n, "accept"); rc < 0) return rc;
  return guarded(n, [&] {
    auto l = findListener(n, listener);
    if (!l) {
      return fail(n, EBADF,
                  "accept: " + std::to_string(listener) + " is not an open listener of this node");
    }
    auto c = l->accept(timeout_ms < 0 ? -1 : timeout_ms);
    if (!c) return fail(n, c.status());
    if (remote != nullptr) copyString(remote, remote_len, c->remote.toString());
    return c->fd;
  });
}

int gatehouse_listener_close(gatehouse_node* n, int listener) {
  if (n == nullptr) return GATEHOUSE_EINVAL;
  return guarded(n, [&] {
    std::shared_ptr<FdListener> l;
    {
      std::lock_guard<std::mutex> lock(n->mu);
      auto it = n->listeners.find(listener);
      if (it != n->listeners.end()) {
        l = it->second;
        n->listeners.erase(it);
      }
    }
    if (!l) {
      return fail(n, EBADF,
                  "listener_close: " + std::to_string(listener) + " is not an open listener");
    }
    l->close();  // the eventfd itself closes when the last accept() lets go of `l`
    return GATEHOUSE_OK;
  });
}

int gatehouse_dial(gatehouse_node* n, const char* address, int timeout_ms) {
  if (int rc = checkRunning(n, "dial"); rc < 0) return rc;
  if (address == nullptr) return fail(n, EINVAL, "dial: NULL address");
  return guarded(n, [&] {
    auto c = n->node->dialFd(address, timeout_ms > 0 ? timeout_ms : Node::kDefaultDialTimeoutMs);
    if (!c) return fail(n, c.status());
    return c->fd;
  });
}

int gatehouse_whois(gatehouse_node* n, const char* remote_addr, gatehouse_identity* out) {
  if (int rc = checkRunning(n, "whois"); rc < 0) return rc;
  if (out == nullptr || out->struct_size < 2 * sizeof(uint32_t)) {
    return fail(n, EINVAL, "whois: out must be initialised with gatehouse_identity_init");
  }
  auto addr = remote_addr ? parseRemote(remote_addr) : std::nullopt;
  if (!addr) {
    return fail(n, EINVAL,
                std::string("whois: '") + (remote_addr ? remote_addr : "(null)") +
                    "' is not ip, ip:port or [ip6]:port");
  }
  return guarded(n, [&] {
    auto id = n->node->whoIs(*addr);
    if (!id) return fail(n, id.status());
    auto full = std::make_unique<gatehouse_identity>();
    gatehouse_identity_init(full.get());
    bool ok = true;
    if (id->is_self) full->flags |= GATEHOUSE_IDENTITY_SELF;
    ok &= copyString(full->public_key, sizeof full->public_key, keyToBase64(id->node_public_key));
    ok &= copyString(full->name, sizeof full->name, id->name);
    if (id->endpoint) {
      ok &= copyString(full->endpoint, sizeof full->endpoint, id->endpoint->toString());
    }
    full->allowed_ip_count = static_cast<uint32_t>(id->allowed_ips.size());
    for (size_t i = 0; i < id->allowed_ips.size(); ++i) {
      if (i >= GATEHOUSE_MAX_ALLOWED_IPS) {
        ok = false;
        break;
      }
      ok &=
          copyString(full->allowed_ips[i], GATEHOUSE_PREFIX_STRLEN, id->allowed_ips[i].toString());
    }
    ok &= copyString(full->node_id, sizeof full->node_id, id->node_id);
    ok &= copyString(full->user_login, sizeof full->user_login, id->user_login);
    ok &=
        copyString(full->user_display_name, sizeof full->user_display_name, id->user_display_name);
    ok &= copyString(full->groups, sizeof full->groups, join(id->groups));
    ok &= copyString(full->tags, sizeof full->tags, join(id->tags));
    if (!ok) full->flags |= GATEHOUSE_IDENTITY_TRUNCATED;
    // Only as many bytes as the caller's struct has (an older, smaller struct stays valid).
    uint32_t size = out->struct_size;
    std::memcpy(out, full.get(), std::min<size_t>(size, sizeof *full));
    out->struct_size = size;
    return GATEHOUSE_OK;
  });
}

}  // extern "C"
