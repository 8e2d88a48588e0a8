// `gatehouse admin logs|usage|sessions|quotas` (and the other gateway-side admin commands): the
// gateway's admin API (proxy/gateway/admin_api.h, quota_admin.cc) as tables.
//
// Where the answers come from, in order of preference:
//   --gateway URL   the gateway's HTTP API (default $GATEHOUSE_GATEWAY_URL, else
//                   http://127.0.0.1:8080: what `gatehouse dev` and `gatehouse up --forward
//                   127.0.0.1:8080=ai:80` expose). The gateway knows the caller from the
//                   WireGuard peer, so this works from a node whose identity has role admin.
//   --db PATH       the gateway's log database, read directly on the gateway's host (read-only,
//                   WAL: the running gateway is not disturbed), answered by the same code the
//                   gateway runs.
// Exit status: 0 ok, 1 the gateway refused (its message on stderr), 2 unreachable.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace gatehouse::cmd {

struct GatewayAdminSource {
  std::string url;  // http://host[:port]
  std::string db;   // log database path (read-only); wins over url when set
  bool json_out = false;
};

// Adds --gateway, --db and --json to a subcommand.
void addGatewaySourceOptions(CLI::App* app, GatewayAdminSource* src);

struct GatewayAdminReply {
  int exit_code = 0;  // 0 ok, 1 refused, 2 unreachable
  int status = 0;     // HTTP status (0 when unreachable)
  nlohmann::json body;
  std::string error;  // for exit_code != 0: what to print
};

// One admin API call. `target` is "/api/…?query". POST bodies are JSON.
GatewayAdminReply gatewayAdminCall(const GatewayAdminSource& src, const std::string& method,
                                   const std::string& target, const std::string& body = "");

// Filter flags shared by the list commands (--user --tag --model --status --session --since
// --until), as an /api query string. --since/--until take Unix ms, a date (2026-11-25, UTC), an
// RFC 3339 time, or a duration back from now (30m, 24h, 7d).
struct GatewayFilterFlags {
  std::string user, tag, model, session, since, until;
  int status = 0;
};
void addGatewayFilterOptions(CLI::App* app, GatewayFilterFlags* f);
// "user=…&since=…" (empty when no filter); an unparseable time sets *error.
std::string filterQuery(const GatewayFilterFlags& f, std::string* error);

// Percent-encoding for a query value (letters, digits and -_.~:@ stay).
std::string urlEncode(const std::string& s);

// Dollars from nano-dollars: "$0.012345".
std::string dollars(int64_t nanos);

void registerGatewayAdminCommands(CLI::App* admin);

}  // namespace gatehouse::cmd
