// The quota part of the admin API (role admin, checked by handleAdmin):
//   GET  /api/quotas[?bucket=PREFIX]   every bucket instance with its level refilled to now,
//                                      capacity, rate, unit; and the requests in flight per caller
//   POST /api/quotas/refill    {"bucket": "daily:alice@example.com", "amount": "$5.00"}
//                              adds the amount, capped at capacity (no amount: fill it up)
//   POST /api/quotas/capacity  {"bucket": "team", "capacity": "$500.00"} (null: back to the
//                              config's capacity); the level is capped at the new capacity
// Answers come from the store, asynchronously for Redis; the connection stays busy meanwhile.
#include <nlohmann/json.hpp>

#include "proxy/gateway/connection.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

std::string adminError(int status, const std::string& message) {
  return json{{"error", {{"message", message}, {"status", status}}}}.dump();
}

// The spec a bucket instance belongs to: its own name, else the first template it fits.
const BucketSpec* specForKey(const QuotaConfig& qc, const std::string& key) {
  if (const BucketSpec* s = qc.bucket(key)) return s;
  for (const BucketSpec& s : qc.buckets) {
    std::string pattern = s.name;
    for (std::string_view t : {"<user>", "<tag>", "<node>"}) {
      for (size_t at = pattern.find(t); at != std::string::npos; at = pattern.find(t)) {
        pattern.replace(at, t.size(), "*");
      }
    }
    if (pattern != s.name && globMatch(pattern, key)) return &s;
  }
  return nullptr;
}

std::string_view storeName(QuotaStoreConfig::Kind k) {
  switch (k) {
    case QuotaStoreConfig::Kind::kMemory:
      return "memory";
    case QuotaStoreConfig::Kind::kRedis:
      return "redis";
    default:
      return "sqlite";
  }
}

}  // namespace

void Gateway::Connection::handleQuotaAdmin(const Route& route) {
  auto config = gw_.shared().config;
  const QuotaConfig& qc = config->quotas;
  QuotaStore* store = gw_.quotaStore();
  http::HeaderList h{{"content-type", "application/json"}};
  if (store == nullptr) {
    respond(503, h, adminError(503, "quotas are not configured or their store is not open"));
    return;
  }
  auto alive = alive_;
  auto answer = [this, alive, h](int status, std::string body) {
    if (*alive && !closing_) respond(status, h, std::move(body));
  };
  std::string_view path = route.path;
  if (path == "/api/quotas" && head_.method == "GET") {
    std::string prefix;
    std::string_view query = route.query;
    if (query.rfind("bucket=", 0) == 0) prefix = std::string(query.substr(7));
    int64_t now = gw_.nowMs();
    std::map<std::string, ConcurrencyLimiter::InFlight> in_flight = gw_.concurrency().inFlight();
    store->list([answer, config, prefix, now, in_flight,
                 kind = qc.store.kind](Result<std::vector<BucketRow>> rows) {
      if (!rows) return answer(503, adminError(503, "quota store: " + rows.status().message()));
      json out = {
          {"store", std::string(storeName(kind))}, {"now_ms", now}, {"buckets", json::array()}};
      for (BucketRow& r : rows.value()) {
        if (r.key.rfind(prefix, 0) != 0) continue;
        const BucketSpec* spec = config->quotas.bucket(r.spec);
        json b = {{"bucket", r.key}, {"spec", r.spec}};
        if (spec == nullptr) {
          b["level"] = r.state.level;
          b["note"] = "no longer in the config";
        } else {
          refillBucket(*spec, r.state, now);
          int64_t cap = effectiveCapacity(*spec, r.state);
          b["unit"] = std::string(quotaUnitName(spec->unit));
          b["level"] = r.state.level;
          b["capacity"] = cap;
          b["level_text"] = formatQuotaAmount(spec->unit, r.state.level);
          b["capacity_text"] = formatQuotaAmount(spec->unit, cap);
          b["rate"] = formatQuotaRate(*spec);
          b["on_exceed"] = std::string(onExceedName(spec->on_exceed));
          if (!spec->overdraft_into.empty()) b["overdraft_into"] = spec->overdraft_into;
          if (r.state.capacity_set > 0) b["capacity_set"] = true;
          if (r.state.debt > 0) {
            b["debt"] = r.state.debt;
            b["debt_text"] = formatQuotaAmount(spec->unit, r.state.debt);
          }
        }
        out["buckets"].push_back(std::move(b));
      }
      json flights = json::object();
      for (const auto& [who, f] : in_flight) {
        flights[who] = {{"requests", f.requests}, {"streams", f.streams}};
      }
      out["in_flight"] = std::move(flights);
      // Redis enforces max_requests / max_streams over every replica; this map is this one's.
      out["in_flight_scope"] = kind == QuotaStoreConfig::Kind::kRedis ? "this replica" : "gateway";
      answer(200, out.dump());
    });
    return;
  }
  bool is_refill = path == "/api/quotas/refill";
  bool is_capacity = path == "/api/quotas/capacity";
  if ((!is_refill && !is_capacity) || head_.method != "POST") {
    respond(404, h,
            adminError(404,
                       "quota API: GET /api/quotas, POST /api/quotas/refill, POST "
                       "/api/quotas/capacity"));
    return;
  }
  json req = json::parse(body_, nullptr, false);
  if (!req.is_object() || !req.contains("bucket") || !req["bucket"].is_string()) {
    respond(400, h, adminError(400, "body must be {\"bucket\": \"NAME\", ...}"));
    return;
  }
  std::string key = req["bucket"].get<std::string>();
  const BucketSpec* spec = specForKey(qc, key);
  if (spec == nullptr) {
    respond(404, h, adminError(404, "no bucket in the config matches \"" + key + "\""));
    return;
  }
  const char* field = is_refill ? "amount" : "capacity";
  int64_t value = is_refill ? spec->capacity : 0;
  if (req.contains(field) && !req[field].is_null()) {
    auto amount = req[field].is_string() ? parseQuotaAmount(req[field].get<std::string>())
                                         : Result<QuotaAmount>(Status(EINVAL, "not a string"));
    if (!amount || amount->unit != spec->unit) {
      respond(400, h,
              adminError(400, std::string(field) + " must be an amount in " +
                                  std::string(quotaUnitName(spec->unit)) + ", e.g. \"" +
                                  formatQuotaAmount(spec->unit, spec->capacity) + "\"" +
                                  (amount ? "" : ": " + amount.status().message())));
      return;
    }
    value = amount->value;
  }
  auto done = [answer, key, field, value](Status st) {
    if (!st) return answer(503, adminError(503, "quota store: " + st.message()));
    answer(200, json{{"bucket", key}, {field, value}, {"ok", true}}.dump());
  };
  if (is_refill) {
    store->refill(key, *spec, value, gw_.nowMs(), done);
  } else {
    store->setCapacity(key, *spec, value, gw_.nowMs(), done);
  }
}

}  // namespace gatehouse::proxy
