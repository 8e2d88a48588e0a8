// `gatehouse mock-provider --listen 127.0.0.1:PORT`: the built-in mock LLM provider
// (proxy/mock/mock_provider.h) served standalone over plain HTTP. Prints
// "mock-provider: listening on http://HOST:PORT" once it accepts connections (PORT 0 picks a
// free port; --port-file also writes the port there). Runs until SIGINT/SIGTERM, then prints the
// number of requests served.
#include "proxy/mock/mock_provider.h"

#include <uv.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cmd/commands.h"
#include "cmd/stop_signals.h"

namespace gatehouse::cmd {
namespace {

struct MockFlags {
  std::string listen = "127.0.0.1:0";
  std::string port_file;
};

int runMock(const MockFlags& f) {
  size_t colon = f.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "mock-provider: --listen wants HOST:PORT, got '%s'\n", f.listen.c_str());
    return 2;
  }
  proxy::mock::MockProvider::Options o;
  o.host = f.listen.substr(0, colon);
  if (o.host.size() > 1 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
  try {
    int p = std::stoi(f.listen.substr(colon + 1));
    if (p < 0 || p > 65535) throw std::out_of_range("port");
    o.port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    std::fprintf(stderr, "mock-provider: bad port in '%s'\n", f.listen.c_str());
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto p = proxy::mock::MockProvider::start(&loop, o);
  if (!p) {
    std::fprintf(stderr, "%s\n", p.status().message().c_str());
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    return 1;
  }
  std::unique_ptr<proxy::mock::MockProvider> provider = std::move(p.value());
  if (!f.port_file.empty()) {
    std::string tmp = f.port_file + ".tmp";
    std::ofstream(tmp) << provider->port() << "\n";
    std::rename(tmp.c_str(), f.port_file.c_str());
  }
  std::printf("mock-provider: listening on http://%s:%u\n", o.host.c_str(), provider->port());
  std::fflush(stdout);

  StopSignals stop(&loop, [p = provider.get()](int) { p->close(); });
  uv_run(&loop, UV_RUN_DEFAULT);
  std::fprintf(stderr, "mock-provider: stopped after %llu requests\n",
               static_cast<unsigned long long>(provider->requests()));
  provider.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}

}  // namespace

void registerMockProvider(CLI::App& app) {
  auto f = std::make_shared<MockFlags>();
  CLI::App* sub = app.add_subcommand("mock-provider", "serve the built-in mock LLM provider");
  sub->add_option("--listen", f->listen, "HOST:PORT (PORT 0: any free port)")
      ->capture_default_str();
  sub->add_option("--port-file", f->port_file, "write the bound port to this file");
  sub->callback([f] { setExitCode(runMock(*f)); });
}

}  // namespace gatehouse::cmd
