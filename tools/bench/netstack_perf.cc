// netstack_perf: the measuring half of tools/bench/netstack_bench.sh (a benchmark tool, not a
// test: it asserts nothing). One binary, one mode per run; every mode prints one line
// "RESULT key=value ..." for the script to collect.
//
// Node modes (a netstack node configured like the examples: --key-file, --address,
// --listen-port, --peer PUBKEY,ENDPOINT|-,ALLOWEDIP[,...]); all connections use the Node callback
// API on the node's loop (the in-process fast path):
//   sink --port P                      accept, consume everything, close on EOF (runs until TERM)
//   source --to IP:PORT --seconds S    one stream as fast as the window allows, then FIN and wait
//                                      for the receiver's close: RESULT bytes seconds gbps
//   cps-server --port P                accept, write 1 byte, close after the client's FIN
//   cps-client --to IP:PORT --seconds S --parallel N   dial/read 1 byte/close loops:
//                                      RESULT conns errors cps
// The client closes first, so TIME_WAIT stays on the client: lwIP has no TCP timestamps, and a
// SYN reusing a port that an lwIP server holds in TIME_WAIT (2 min) is not accepted.
// Kernel modes (plain sockets, for the peer side: wireguard-go + kernel TCP, or TUN mode):
//   ksink --port P, ksource --to IP:PORT --seconds S, kcps-server --port P,
//   kcps-client --to IP:PORT --seconds S --parallel N
// In-process memory modes (no network):
//   peers --count N     RSS and heap of a started Node with N configured peers
//   idle --count N      N idle TCP connections between two nodes of this process (callback API;
//                       --fd: the fd API): heap and RSS per connection end
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "wg/crypto/x25519.h"
#include "wg/node.h"
#include "wg/uapi.h"

using namespace gatehouse;
using namespace gatehouse::wg;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string mode, key_file, to;
  std::vector<std::string> addresses, peers;
  int listen_port = 0, port = 5001, seconds = 5, parallel = 8, count = 1000;
  bool fd = false;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "netstack_perf: %s\n", msg.c_str());
  std::exit(1);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

long rssKb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

size_t heapBytes() { return mallinfo2().uordblks; }

template <typename F>
auto onLoop(Node& node, F fn) -> decltype(fn()) {
  auto p = std::make_shared<std::promise<decltype(fn())>>();
  auto fut = p->get_future();
  node.post([p, fn]() mutable {
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      p->set_value();
    } else {
      p->set_value(fn());
    }
  });
  return fut.get();
}

NodeOptions nodeOptions(const Args& a) {
  NodeOptions o;
  std::ifstream kf(a.key_file);
  std::string text;
  kf >> text;
  o.private_key = keyFromBase64(text);
  if (!o.private_key) die("--key-file " + a.key_file + ": no base64 key");
  for (const std::string& s : a.addresses) {
    for (const std::string& x : split(s)) {
      auto ip = IpAddr::parse(x);
      if (!ip) die("bad --address " + x);
      o.addresses.push_back(*ip);
    }
  }
  for (const std::string& spec : a.peers) {
    auto f = split(spec);
    if (f.size() < 3) die("bad --peer " + spec);
    NodePeer p;
    auto k = keyFromBase64(f[0]);
    if (!k) die("bad peer key " + f[0]);
    p.public_key = *k;
    if (f[1] != "-") p.endpoint = Endpoint::parse(f[1]);
    for (size_t i = 2; i < f.size(); ++i) {
      auto pre = IpPrefix::parse(f[i]);
      if (!pre) die("bad allowed IP " + f[i]);
      p.allowed_ips.push_back(pre->normalized());
    }
    p.persistent_keepalive = 25;  // both ends learn each other's endpoint at once
    o.peers.push_back(p);
  }
  o.listen_port = static_cast<uint16_t>(a.listen_port);
  return o;
}

void waitForSignal() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  int sig;
  sigwait(&s, &sig);
}

void blockSignals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// ---- netstack modes ----

void listenOrDie(Node& node, uint16_t port, AcceptFn fn) {
  auto l = onLoop(node, [&] { return node.listenTcp(port, fn); });
  if (!l) die(l.status().message());
  static std::shared_ptr<TcpListener> keep;
  keep = l.value();
}

// Keeps accepted connections alive until they close.
struct Live {
  std::set<std::shared_ptr<TcpConn>> conns;
  void drop(TcpConn* c) {
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      if (it->get() == c) {
        auto keep = *it;
        conns.erase(it);
        node_post_release(keep);
        return;
      }
    }
  }
  // The handler that called drop() is still running: release the last reference later.
  std::function<void(std::shared_ptr<TcpConn>)> node_post_release;
};

void runSink(Node& node, const Args& a) {
  Live live;
  live.node_post_release = [&node](std::shared_ptr<TcpConn> c) { node.post([c] {}); };
  listenOrDie(node, static_cast<uint16_t>(a.port), [&](std::shared_ptr<TcpConn> c) {
    TcpConn* raw = c.get();
    live.conns.insert(c);
    c->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); },
                    .on_eof =
                        [&live, raw] {
                          // close() moves this closure away: copy what we use after it first.
                          Live* l = &live;
                          TcpConn* r = raw;
                          r->close();
                          l->drop(r);
                        },
                    .on_error = [&live, raw](const Status&) { live.drop(raw); }});
  });
  std::printf("READY\n");
  std::fflush(stdout);
  waitForSignal();
}

void runSource(Node& node, const Args& a) {
  static const std::vector<uint8_t> chunk(65536, 0x5A);
  std::shared_ptr<TcpConn> conn;
  std::promise<void> done;
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> stop{false};
  Clock::time_point t0;
  bool shut = false;
  std::function<void()> pump = [&] {
    if (shut) return;
    if (stop) {
      shut = true;
      conn->shutdownWrite();
      return;
    }
    for (;;) {
      auto n = conn->write(chunk);
      if (!n || *n == 0) return;
      bytes += *n;
    }
  };
  onLoop(node, [&] {
    auto r = node.dialTcp(a.to, 10000, [&](const Status& st) {
      if (!st) die("dial " + a.to + ": " + st.message());
      t0 = Clock::now();
      conn->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); },
                         .on_eof = [&] { done.set_value(); },
                         .on_writable = pump,
                         .on_error = [&](const Status& e) { die("stream: " + e.message()); }});
      pump();
    });
    if (!r) die(r.status().message());
    conn = r.value();
  });
  std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
  stop = true;
  node.post([&] { pump(); });
  if (done.get_future().wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    die("receiver never closed");
  }
  double secs = since(t0);
  std::printf("RESULT bytes=%llu seconds=%.3f gbps=%.3f\n",
              static_cast<unsigned long long>(bytes.load()), secs, bytes * 8 / secs / 1e9);
  onLoop(node, [&] { conn->close(); });
}

void runCpsServer(Node& node, const Args& a) {
  listenOrDie(node, static_cast<uint16_t>(a.port), [&](std::shared_ptr<TcpConn> c) {
    c->write({reinterpret_cast<const uint8_t*>("x"), 1});
    TcpConn* raw = c.get();  // the netstack holds the connection until it closes
    c->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); },
                    .on_eof = [raw] { raw->close(); }});
  });
  std::printf("READY\n");
  std::fflush(stdout);
  waitForSignal();
}

// `parallel` dial → read 1 byte → close loops on the node's loop.
void runCpsClient(Node& node, const Args& a) {
  // Static: tasks already posted to the loop may still run after this function returns.
  static struct State {
    std::atomic<uint64_t> ok{0}, errors{0};
    std::atomic<bool> stop{false};
    std::set<std::shared_ptr<TcpConn>> live;
  } st;
  static std::function<void()> one;
  one = [&node, &a] {
    if (st.stop) return;
    auto holder = std::make_shared<std::shared_ptr<TcpConn>>();
    auto r = node.dialTcp(a.to, 5000, [&, holder](const Status& s) {
      std::shared_ptr<TcpConn> c = *holder;
      if (!s) {
        ++st.errors;
        st.live.erase(c);
        node.post(one);
        return;
      }
      TcpConn* raw = c.get();
      c->setHandlers({.on_data =
                          [&node, raw, holder](std::span<const uint8_t> d) {
                            ++st.ok;
                            Node* n = &node;  // close() moves this closure away: copy first
                            auto h = holder;
                            raw->close();
                            n->post([h] {
                              st.live.erase(*h);
                              h->reset();
                              one();
                            });
                            return d.size();
                          },
                      .on_error =
                          [&, holder](const Status&) {
                            ++st.errors;
                            node.post([&, holder] {
                              st.live.erase(*holder);
                              holder->reset();
                              one();
                            });
                          }});
    });
    if (!r) {
      ++st.errors;
      return;
    }
    *holder = r.value();
    st.live.insert(r.value());
  };
  auto t0 = Clock::now();
  onLoop(node, [&] {
    for (int i = 0; i < a.parallel; ++i) one();
  });
  std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
  st.stop = true;
  double secs = since(t0);
  uint64_t ok = st.ok;
  std::printf("RESULT conns=%llu errors=%llu seconds=%.3f cps=%.0f\n",
              static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(st.errors.load()), secs, ok / secs);
  onLoop(node, [&] {
    for (auto& c : st.live) c->abort();
    st.live.clear();
  });
}

// ---- kernel modes ----

int kernelListen(int port) {
  int s = socket(AF_INET6, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(static_cast<uint16_t>(port));
  if (bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(s, 4096) != 0) {
    die("listen: " + std::string(strerror(errno)));
  }
  return s;
}

int kernelDial(const std::string& to) {
  auto ep = Endpoint::parse(to);
  if (!ep) die("bad --to " + to);
  sockaddr_storage ss;
  socklen_t len = ep->toSockaddr(&ss);
  int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};  // a lost connection becomes an error, not a hang
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

void runKernelSink(const Args& a, bool cps) {
  int l = kernelListen(a.port);
  std::printf("READY\n");
  std::fflush(stdout);
  for (;;) {
    int c = accept(l, nullptr, nullptr);
    if (c < 0) continue;
    if (cps) {
      (void)!write(c, "x", 1);
      ::close(c);
      continue;
    }
    std::thread([c] {
      std::vector<char> buf(1 << 18);
      while (read(c, buf.data(), buf.size()) > 0) {
      }
      ::close(c);
    }).detach();
  }
}

void runKernelSource(const Args& a) {
  int s = kernelDial(a.to);
  if (s < 0) die("connect " + a.to + ": " + strerror(errno));
  std::vector<char> buf(1 << 18, 'k');
  uint64_t bytes = 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::seconds(a.seconds);
  while (Clock::now() < end) {
    ssize_t n = write(s, buf.data(), buf.size());
    if (n <= 0) die("write: " + std::string(strerror(errno)));
    bytes += static_cast<uint64_t>(n);
  }
  shutdown(s, SHUT_WR);
  while (read(s, buf.data(), buf.size()) > 0) {
  }
  double secs = since(t0);
  std::printf("RESULT bytes=%llu seconds=%.3f gbps=%.3f\n", static_cast<unsigned long long>(bytes),
              secs, bytes * 8 / secs / 1e9);
}

void runKernelCpsClient(const Args& a) {
  std::atomic<uint64_t> ok{0}, errors{0};
  std::atomic<bool> stop{false};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < a.parallel; ++i) {
    threads.emplace_back([&] {
      char b[16];
      while (!stop) {
        int s = kernelDial(a.to);
        if (s < 0) {
          ++errors;
          continue;
        }
        bool got = read(s, b, 1) == 1;
        ::close(s);
        ++(got ? ok : errors);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
  stop = true;
  double secs = since(t0);
  uint64_t n = ok;
  for (auto& t : threads) t.join();
  std::printf("RESULT conns=%llu errors=%llu seconds=%.3f cps=%.0f\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(errors.load()),
              secs, n / secs);
}

// ---- memory modes ----

Key32 randomKey() {
  Key32 seed;
  randombytes_buf(seed.data(), seed.size());
  return crypto::privateKeyFromRandom(seed);
}

void runPeers(const Args& a) {
  long rss0 = rssKb();
  size_t heap0 = heapBytes();
  NodeOptions o;
  o.private_key = randomKey();
  o.addresses = {*IpAddr::parse("10.128.0.1")};
  for (int i = 0; i < a.count; ++i) {
    NodePeer p;
    randombytes_buf(p.public_key.data(), p.public_key.size());  // any 32 bytes will do
    uint8_t ip[4] = {10, 129, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    uint8_t ip_hi[4] = {10, 130, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    p.allowed_ips = {{IpAddr::v4(ip), 32}, {IpAddr::v4(ip_hi), 32}};
    p.endpoint = Endpoint{*IpAddr::parse("127.0.0.1"), static_cast<uint16_t>(20000 + i % 30000)};
    p.name = "peer-" + std::to_string(i);
    o.peers.push_back(std::move(p));
  }
  long rss_cfg = rssKb();
  Node node(o);
  if (Status st = node.start(); !st) die(st.message());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  long rss1 = rssKb();
  size_t heap1 = heapBytes();
  std::printf(
      "RESULT peers=%d rss_total_kb=%ld rss_delta_kb=%ld rss_options_kb=%ld heap_delta_kb=%zu "
      "bytes_per_peer=%.0f\n",
      a.count, rss1, rss1 - rss0, rss_cfg - rss0, (heap1 - heap0) / 1024,
      (rss1 - rss0) * 1024.0 / a.count);
  node.close();
}

void runIdle(const Args& a) {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  LoopThread loop;
  Key32 ka = randomKey(), kb = randomKey();
  NodeOptions ob;
  ob.private_key = kb;
  ob.addresses = {*IpAddr::parse("10.77.0.2")};
  ob.loop_thread = &loop;
  ob.peers = {
      {.public_key = crypto::publicKey(ka), .allowed_ips = {*IpPrefix::parse("10.77.0.1/32")}}};
  Node b(ob);
  if (Status st = b.start(); !st) die(st.message());
  NodeOptions oa;
  oa.private_key = ka;
  oa.addresses = {*IpAddr::parse("10.77.0.1")};
  oa.loop_thread = &loop;
  oa.peers = {{.public_key = crypto::publicKey(kb),
               .endpoint = Endpoint{*IpAddr::parse("127.0.0.1"), b.listenPort()},
               .allowed_ips = {*IpPrefix::parse("10.77.0.2/32")},
               .persistent_keepalive = 25}};
  Node na(oa);
  if (Status st = na.start(); !st) die(st.message());
  std::vector<std::shared_ptr<TcpConn>> conns;  // loop thread
  std::vector<int> fds;
  std::shared_ptr<FdListener> fl;
  if (a.fd) {
    auto l = b.listenFd(6000);
    if (!l) die(l.status().message());
    fl = l.value();
  } else {
    listenOrDie(b, 6000, [&](std::shared_ptr<TcpConn> c) {
      c->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); }});
      conns.push_back(std::move(c));
    });
  }
  // Warm up (handshake, allocator pools) with one connection, then measure N more.
  auto dialOne = [&]() -> bool {
    if (a.fd) {
      auto c = na.dialFd("10.77.0.2:6000", 5000);
      if (!c) return false;
      auto s = fl->accept(5000);
      if (!s) return false;
      fds.push_back(c->fd);
      fds.push_back(s->fd);
      return true;
    }
    std::promise<Status> p;
    onLoop(na, [&] {
      auto holder = std::make_shared<std::shared_ptr<TcpConn>>();
      auto r = na.dialTcp("10.77.0.2:6000", 5000, [&p, holder](const Status& s) {
        (*holder)->setHandlers({.on_data = [](std::span<const uint8_t> d) { return d.size(); }});
        p.set_value(s);
      });
      if (!r) {
        p.set_value(r.status());
        return;
      }
      *holder = r.value();
      conns.push_back(r.value());
    });
    return p.get_future().get().isOk();
  };
  if (!dialOne()) die("warm-up connection failed");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  malloc_trim(0);
  long rss0 = rssKb();
  size_t heap0 = heapBytes();
  auto t0 = Clock::now();
  int made = 0;
  for (int i = 0; i < a.count; ++i) made += dialOne() ? 1 : 0;
  double secs = since(t0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // ACKs settle; idle from here
  long rss1 = rssKb();
  size_t heap1 = heapBytes();
  double ends = 2.0 * made;
  std::printf(
      "RESULT api=%s connections=%d seconds=%.2f heap_delta_kb=%zu rss_delta_kb=%ld "
      "heap_per_end=%.0f rss_per_end=%.0f heap_per_conn=%.0f\n",
      a.fd ? "fd" : "callback", made, secs, (heap1 - heap0) / 1024, rss1 - rss0,
      (heap1 - heap0) / ends, (rss1 - rss0) * 1024.0 / ends, (heap1 - heap0) / (ends / 2));
  for (int fd : fds) ::close(fd);
  onLoop(na, [&] {
    for (auto& c : conns) c->abort();
    conns.clear();
  });
  na.close();
  b.close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: netstack_perf MODE [options] (see the top of netstack_perf.cc)");
  if (sodium_init() < 0) die("sodium_init");
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(f + " needs a value");
      return argv[++i];
    };
    if (f == "--key-file")
      a.key_file = next();
    else if (f == "--address")
      a.addresses.push_back(next());
    else if (f == "--peer")
      a.peers.push_back(next());
    else if (f == "--listen-port")
      a.listen_port = std::stoi(next());
    else if (f == "--port")
      a.port = std::stoi(next());
    else if (f == "--to")
      a.to = next();
    else if (f == "--seconds")
      a.seconds = std::stoi(next());
    else if (f == "--parallel")
      a.parallel = std::stoi(next());
    else if (f == "--count")
      a.count = std::stoi(next());
    else if (f == "--fd")
      a.fd = true;
    else
      die("unknown option " + f);
  }
  signal(SIGPIPE, SIG_IGN);
  if (a.mode == "ksink") runKernelSink(a, false);
  if (a.mode == "kcps-server") runKernelSink(a, true);
  if (a.mode == "ksource") return runKernelSource(a), 0;
  if (a.mode == "kcps-client") return runKernelCpsClient(a), 0;
  if (a.mode == "peers") return runPeers(a), 0;
  if (a.mode == "idle") return runIdle(a), 0;
  blockSignals();  // before the node's thread exists: only sigwait() sees TERM
  Node node(nodeOptions(a));
  if (Status st = node.start(); !st) die(st.message());
  if (a.mode == "sink")
    runSink(node, a);
  else if (a.mode == "source")
    runSource(node, a);
  else if (a.mode == "cps-server")
    runCpsServer(node, a);
  else if (a.mode == "cps-client")
    runCpsClient(node, a);
  else
    die("unknown mode " + a.mode);
  node.close();
  return 0;
}
