// `gatehouse gateway --config FILE`: the LLM gateway as a node of the mesh. It joins through the
// control server like `gatehouse up` (hostname "ai" by default), serves HTTP on port 80 of its
// tunnel address, and knows each caller from the WireGuard peer (whoIs). Agents use
// ANTHROPIC_BASE_URL=http://ai (or OPENAI_BASE_URL=http://ai/v1) with the API key "-".
//
//   gatehouse gateway --config gateway.hujson --control HOST:PORT --control-key KEY
//       --authkey KEY --state-dir /var/lib/gatehouse-gateway
//
// The config's loopback_listen (with loopback_identity) adds a plain local listener, an
// operator/test option. SIGHUP reloads the config and the price table; a bad file is rejected
// and the running one stays. Runs until SIGINT/SIGTERM.
#include "proxy/gateway/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "cmd/commands.h"
#include "cmd/forward.h"
#include "control/joined_node.h"
#include "control/local_api.h"
#include "wg/uapi.h"

namespace gatehouse::cmd {

Result<wg::Endpoint> resolveHostPort(const std::string& text);  // cmd/up.cc

namespace {

struct GwArgs {
  std::string config, control, control_key, authkey, authkey_file, state_dir, prices_default;
  std::string hostname;
  std::vector<std::string> tags, advertise;
  uint16_t port = 0;
  bool no_mesh = false, verbose = false;
};

void say(const std::string& msg) { std::fprintf(stderr, "gateway: %s\n", msg.c_str()); }

std::string defaultPricesPath() {
#ifdef GATEHOUSE_SOURCE_DIR
  return std::string(GATEHOUSE_SOURCE_DIR) + "/proxy/usage/default_prices.json";
#else
  return "/usr/share/gatehouse/default_prices.json";
#endif
}

Result<std::shared_ptr<const proxy::PriceTable>> loadPrices(const GwArgs& a,
                                                            const proxy::GatewayConfig& cfg) {
  std::string def = a.prices_default.empty() ? defaultPricesPath() : a.prices_default;
  return proxy::PriceTable::load(def, cfg.prices);
}

int runGateway(GwArgs a) {
  auto cfg = proxy::loadGatewayConfig(a.config);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.status().message().c_str());
    return 2;
  }
  auto config = std::make_shared<const proxy::GatewayConfig>(std::move(cfg.value()));
  auto prices = loadPrices(a, *config);
  if (!prices) {
    std::fprintf(stderr, "%s\n", prices.status().message().c_str());
    return 2;
  }
  sigset_t sigs = blockTermSignals();
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::unique_ptr<proxy::LogWriter> writer;
  std::unique_ptr<proxy::LogReader> reader;
  if (!config->logging.database.empty()) {
    auto store = proxy::LogStore::open(config->logging.database);
    if (!store) {
      say("log database: " + store.status().message());
      return 1;
    }
    proxy::LogWriterOptions wo;
    wo.retention_days = static_cast<int>(config->logging.retention_days);
    wo.capacity = config->logging.queue_size;
    wo.hard_capacity = std::max<size_t>(wo.capacity * 4, wo.capacity);
    writer = std::make_unique<proxy::LogWriter>(std::move(store.value()), wo);
    auto r = proxy::LogReader::open(config->logging.database);
    if (r) reader = std::move(r.value());
  }

  // The gateway's own loop thread.
  uv_loop_t loop;
  uv_loop_init(&loop);
  proxy::GatewayOptions go;
  go.config = config;
  go.prices = prices.value();
  go.log = writer.get();
  go.reader = reader.get();
  if (config->quotas.enabled()) {
    auto qs = proxy::openQuotaStore(&loop, config->quotas.store);
    if (!qs) {
      say("quota store: " + qs.status().message());
      return 1;
    }
    go.quota_store = std::move(qs.value());
    const proxy::QuotaStoreConfig& st = config->quotas.store;
    say("quotas: " + std::to_string(config->quotas.buckets.size()) + " buckets, " +
        std::to_string(config->quotas.rules.size()) + " rules, store " +
        (st.kind == proxy::QuotaStoreConfig::Kind::kRedis
             ? "redis " + st.redis_host + ":" + std::to_string(st.redis_port) +
                   (st.fail_open ? " (fail_open)" : " (fail_closed)")
         : st.kind == proxy::QuotaStoreConfig::Kind::kMemory ? std::string("memory")
                                                             : "sqlite " + st.database));
  }
  // The quota hook point: a log line per event (counted in the gateway's counters too).
  go.on_quota_event = [](const proxy::QuotaEvent& e) {
    say("quota " + e.kind + (e.bucket.empty() ? "" : " bucket=" + e.bucket) + " who=" + e.identity +
        " request=" + e.request_id + ": " + e.message);
  };
  // Webhooks: read at start (a reload keeps the running dispatcher). Declared before the gateway
  // so it outlives it.
  std::unique_ptr<proxy::WebhookDispatcher> webhooks;
  if (!config->hooks.webhooks.empty()) {
    auto d = proxy::WebhookDispatcher::start(proxy::WebhookOptions::fromConfig(config->hooks));
    if (!d) {
      say("webhooks: " + d.status().message());
      return 1;
    }
    webhooks = std::move(d.value());
    go.webhooks = webhooks.get();
    say("webhooks: " + std::to_string(config->hooks.webhooks.size()) + " endpoints, outbox " +
        config->hooks.outbox);
  }
  if (config->hooks.pre_request) {
    say("pre_request hook: " + config->hooks.pre_request->endpoint.url +
        (config->hooks.pre_request->fail_open ? " (fail_open)" : " (fail_closed)"));
  }
  auto gateway = std::make_unique<proxy::Gateway>(&loop, go);
  if (config->loopback_listen) {
    auto port = gateway->listenLoopback(*config->loopback_listen, *config->loopback_identity);
    if (!port) {
      say(port.status().message());
      return 1;
    }
    say("loopback listener on 127.0.0.1:" + std::to_string(*port) + " (identity " +
        config->loopback_identity->user_login + ")");
    if (!a.state_dir.empty()) {
      std::ofstream(a.state_dir + "/loopback.port") << *port << "\n";
    }
  }
  uv_async_t stop;
  uv_async_init(&loop, &stop, [](uv_async_t* s) {
    static_cast<proxy::Gateway*>(s->data)->close();
    uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
  });
  stop.data = gateway.get();
  std::thread loop_thread([&] { uv_run(&loop, UV_RUN_DEFAULT); });

  std::unique_ptr<control::JoinedNode> joined;
  std::unique_ptr<control::LocalApiServer> api;
  std::shared_ptr<wg::FdListener> listener;
  std::thread accept_thread;
  if (!a.no_mesh) {
    auto server = resolveHostPort(a.control);
    auto key = wg::keyFromBase64(a.control_key);
    if (!server || !key) {
      say(!server ? "--control: " + server.status().message()
                  : "--control-key: not a base64 public key");
      uv_async_send(&stop);
      loop_thread.join();
      return 2;
    }
    if (a.authkey.empty() && !a.authkey_file.empty()) std::ifstream(a.authkey_file) >> a.authkey;
    if (a.authkey.empty()) {
      if (const char* env = getenv("GATEHOUSE_AUTHKEY")) a.authkey = env;
    }
    control::JoinOptions o;
    o.state_dir = a.state_dir;
    o.control = *server;
    o.control_key = *key;
    o.auth_key = a.authkey;
    o.hostname = a.hostname.empty() ? config->hostname : a.hostname;
    o.tags = a.tags;
    o.listen_port = a.port;
    o.advertise = a.advertise;
    o.log = [v = a.verbose](wg::LogLevel level, const std::string& msg) {
      if (v || level >= wg::LogLevel::kInfo) say(msg);
    };
    joined = std::make_unique<control::JoinedNode>(o);
    if (Status st = joined->start(); !st) {
      say(st.message());
      uv_async_send(&stop);
      loop_thread.join();
      return 1;
    }
    api = std::make_unique<control::LocalApiServer>(*joined);
    if (Status st = api->start(a.state_dir + "/gatehouse.sock"); !st) say(st.message());
    auto l = joined->node()->listenFd(config->listen);
    if (!l) {
      say("listen on the tunnel port " + std::to_string(config->listen) + ": " +
          l.status().message());
      return 1;
    }
    listener = l.value();
    wg::Node* node = joined->node();
    accept_thread = std::thread([listener, node, gw = gateway.get()] {
      for (;;) {
        auto c = listener->accept();
        if (!c) return;  // closed
        auto who = node->whoIs(c->remote.addr);
        std::optional<wg::Identity> id;
        if (who) id = who.value();
        gw->adoptFromAnyThread(c->fd, std::move(id), c->remote.toString());
      }
    });
    control::ControlInfo info = joined->info();
    std::string addrs;
    for (const auto& ad : info.addresses) addrs += " " + ad;
    say("serving http://" + info.name + ":" + std::to_string(config->listen) + " on" + addrs);
  }
  say("ready");
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != SIGHUP) {
      say(std::string("shutting down: ") + strsignal(sig));
      break;
    }
    auto fresh = proxy::loadGatewayConfig(a.config);
    if (!fresh) {
      say("reload refused, keeping the running config:\n" + fresh.status().message());
      continue;
    }
    auto fresh_config = std::make_shared<const proxy::GatewayConfig>(std::move(fresh.value()));
    auto fresh_prices = loadPrices(a, *fresh_config);
    if (!fresh_prices) {
      say("reload refused, keeping the running prices:\n" + fresh_prices.status().message());
      continue;
    }
    // Applied on the gateway's loop through a one-shot async.
    struct Reload {
      uv_async_t async;
      proxy::Gateway* gw;
      std::shared_ptr<const proxy::GatewayConfig> config;
      std::shared_ptr<const proxy::PriceTable> prices;
    };
    auto* r = new Reload{{}, gateway.get(), fresh_config, fresh_prices.value()};
    uv_async_init(&loop, &r->async, [](uv_async_t* as) {
      auto* r = reinterpret_cast<Reload*>(as);
      r->gw->reload(r->config, r->prices);
      uv_close(reinterpret_cast<uv_handle_t*>(as),
               [](uv_handle_t* h) { delete reinterpret_cast<Reload*>(h); });
    });
    uv_async_send(&r->async);
    say("config and prices reloaded");
  }
  if (listener) listener->close();
  if (accept_thread.joinable()) accept_thread.join();
  if (api) api->stop();
  uv_async_send(&stop);
  loop_thread.join();
  gateway.reset();
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  if (joined) joined->close();
  if (writer) writer->flush(std::chrono::seconds(10));
  return 0;
}

}  // namespace

void registerGateway(CLI::App& app) {
  auto* sub = app.add_subcommand("gateway", "the LLM gateway, as a node of the mesh");
  auto a = std::make_shared<GwArgs>();
  sub->add_option("--config", a->config, "gateway config (HuJSON, proxy/config/CONFIG.md)")
      ->required();
  sub->add_option("--control", a->control, "control server HOST:PORT");
  sub->add_option("--control-key", a->control_key, "the control server's public key");
  sub->add_option("--authkey", a->authkey, "pre-auth key (or --authkey-file, $GATEHOUSE_AUTHKEY)");
  sub->add_option("--authkey-file", a->authkey_file, "file holding the pre-auth key");
  sub->add_option("--state-dir", a->state_dir, "keys, last map, local API socket")
      ->capture_default_str();
  sub->add_option("--hostname", a->hostname, "name in the mesh (default: the config's, \"ai\")");
  sub->add_option("--advertise-tags", a->tags, "request tags, e.g. tag:ai (repeat)");
  sub->add_option("--port", a->port, "WireGuard UDP port");
  sub->add_option("--advertise", a->advertise, "address peers reach this node at (repeat)");
  sub->add_option("--prices", a->prices_default, "the default price table (shipped file)");
  sub->add_flag("--no-mesh", a->no_mesh,
                "do not join the mesh: serve only the config's loopback listener (tests, bench)");
  sub->add_flag("-v,--verbose", a->verbose, "debug logs");
  sub->callback([a] {
    if (!a->no_mesh && (a->control.empty() || a->control_key.empty() || a->state_dir.empty())) {
      std::fprintf(stderr,
                   "gateway: give --control, --control-key and --state-dir (or --no-mesh)\n");
      setExitCode(2);
      return;
    }
    setExitCode(runGateway(*a));
  });
}

}  // namespace gatehouse::cmd
