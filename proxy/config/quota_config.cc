// The "quotas" section of the gateway config. See quota_config.h and CONFIG.md "Quotas".
#include "proxy/config/quota_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "control/hujson.h"
#include "control/policy.h"
#include "proxy/config/section_checks.h"

namespace gatehouse::proxy {
namespace {

using control::JsonDoc;
using nlohmann::json;

const std::vector<std::string> kQuotaKeys = {"store", "buckets", "rules", "bytes_per_token",
                                             "default_max_output_tokens"};
const std::vector<std::string> kStoreKeys = {"kind",     "database",   "address",  "prefix",
                                             "on_error", "timeout_ms", "lease_ms", "allowance_ms"};
const std::vector<std::string> kBucketKeys = {"rate", "capacity", "on_exceed", "overdraft_into"};
const std::vector<std::string> kRuleKeys = {"src", "buckets", "max_requests", "max_streams"};

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

class QuotaLoader : SectionChecks {
 public:
  QuotaLoader(const QuotaParseContext& ctx, QuotaConfig* out)
      : SectionChecks(ctx.problem, "quotas: "), ctx_(ctx), out_(out) {}

  void run(const json& v, const std::string& ptr) {
    if (!v.is_object()) {
      error(ptr, "\"quotas\" must be an object with \"buckets\" and \"rules\"");
      return;
    }
    checkKeys(v, ptr, kQuotaKeys, "quotas key");
    parseStore(v, ptr);
    if (v.contains("buckets")) parseBuckets(v["buckets"], ptr + "/buckets");
    if (v.contains("rules")) parseRules(v["rules"], ptr + "/rules");
    if (v.contains("bytes_per_token")) {
      number(v, ptr, "bytes_per_token", 1, 1000, &out_->bytes_per_token);
    }
    if (v.contains("default_max_output_tokens")) {
      number(v, ptr, "default_max_output_tokens", 1, 10'000'000, &out_->default_max_output_tokens);
    }
    checkChains(ptr + "/buckets");
  }

 private:
  void parseStore(const json& v, const std::string& parent) {
    QuotaStoreConfig& s = out_->store;
    s.database = ctx_.resolve_path("gateway-quotas.db");
    if (!v.contains("store")) return;
    const std::string ptr = parent + "/store";
    const json& st = v["store"];
    if (!st.is_object()) {
      error(ptr,
            "\"store\" must be an object, e.g. {\"kind\": \"sqlite\", \"database\": "
            "\"quotas.db\"} or {\"kind\": \"redis\", \"address\": \"127.0.0.1:6379\"}");
      return;
    }
    checkKeys(st, ptr, kStoreKeys, "store key");
    std::string kind = "sqlite";
    if (st.contains("kind")) string(st, ptr, "kind", &kind);
    if (kind == "sqlite") {
      s.kind = QuotaStoreConfig::Kind::kSqlite;
    } else if (kind == "redis") {
      s.kind = QuotaStoreConfig::Kind::kRedis;
    } else if (kind == "memory") {
      s.kind = QuotaStoreConfig::Kind::kMemory;
    } else {
      error(ptr + "/kind", "store kind " + q(kind) + " is not one of sqlite, redis, memory");
    }
    if (st.contains("database") && string(st, ptr, "database", &s.database)) {
      s.database = ctx_.resolve_path(s.database);
      std::string dir = s.database.substr(0, s.database.rfind('/'));
      struct stat sb {};
      if (ctx_.resolve_files && !dir.empty() &&
          (::stat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        error(ptr + "/database", "the directory " + dir +
                                     " of the database does not exist: create it or change "
                                     "the path");
      }
    }
    std::string address;
    if (st.contains("address") && string(st, ptr, "address", &address)) {
      auto ep = wg::Endpoint::parse(address);
      if (!ep || ep->port == 0) {
        error(ptr + "/address", "address must be IP:PORT, e.g. \"127.0.0.1:6379\"");
      } else {
        s.redis_host = ep->addr.toString();
        s.redis_port = ep->port;
      }
    } else if (s.kind == QuotaStoreConfig::Kind::kRedis && !st.contains("address")) {
      ctx_.problem(ptr, "quotas: a redis store needs \"address\": \"IP:PORT\"", true);
    }
    if (st.contains("prefix")) string(st, ptr, "prefix", &s.redis_prefix);
    if (st.contains("on_error")) {
      std::string e;
      if (string(st, ptr, "on_error", &e)) {
        if (e == "fail_open" || e == "fail_closed") {
          s.fail_open = e == "fail_open";
        } else {
          error(ptr + "/on_error", "on_error must be \"fail_open\" or \"fail_closed\"");
        }
      }
    }
    if (st.contains("timeout_ms")) number(st, ptr, "timeout_ms", 1, 60'000, &s.timeout_ms);
    if (st.contains("lease_ms")) number(st, ptr, "lease_ms", 300, 3'600'000, &s.lease_ms);
    if (st.contains("allowance_ms")) {
      number(st, ptr, "allowance_ms", 0, 60'000, &s.allowance_ms);
    }
  }

  void parseBuckets(const json& v, const std::string& ptr) {
    if (!v.is_object()) {
      error(ptr, "\"buckets\" must be an object: {\"daily:<user>\": {\"rate\": \"$5.00/day\"}}");
      return;
    }
    for (const auto& [name, b] : v.items()) {
      std::string bp = JsonDoc::child(ptr, name);
      declared_.insert(name);  // a rule naming a bucket whose spec is wrong gets no second error
      if (!validName(name)) {
        ctx_.problem(bp,
                     "quotas: bucket name " + q(name) +
                         " may hold only the templates <user>, <tag> and <node>, no spaces or "
                         "other '<' '>'",
                     true);
        continue;
      }
      if (!b.is_object()) {
        error(bp, "bucket " + q(name) + " must be an object, e.g. {\"rate\": \"$5.00/day\"}");
        continue;
      }
      checkKeys(b, bp, kBucketKeys, "bucket key");
      BucketSpec s;
      s.name = name;
      s.origin = ctx_.origin(bp);
      if (!b.contains("rate")) {
        ctx_.problem(bp, "quotas: bucket " + q(name) + " needs \"rate\", e.g. \"$5.00/day\"", true);
        continue;
      }
      std::string text;
      if (!string(b, bp, "rate", &text)) continue;
      auto rate = parseQuotaRate(text);
      if (!rate) {
        error(bp + "/rate", "bucket " + q(name) + ": rate " + rate.status().message());
        continue;
      }
      s.unit = rate->amount.unit;
      s.refill_amount = rate->amount.value;
      s.refill_period_ms = rate->period_ms;
      s.capacity = rate->amount.value;
      if (b.contains("capacity") && string(b, bp, "capacity", &text)) {
        auto cap = parseQuotaAmount(text);
        if (!cap) {
          error(bp + "/capacity", "bucket " + q(name) + ": capacity " + cap.status().message());
        } else if (cap->unit != s.unit) {
          error(bp + "/capacity", "bucket " + q(name) + ": capacity is in " +
                                      std::string(quotaUnitName(cap->unit)) + " but the rate in " +
                                      std::string(quotaUnitName(s.unit)) + ": use one unit");
        } else if (cap->value == 0) {
          error(bp + "/capacity", "bucket " + q(name) + ": a capacity of zero refuses everything");
        } else {
          s.capacity = cap->value;
        }
      }
      if (b.contains("on_exceed") && string(b, bp, "on_exceed", &text)) {
        if (text == "reject") {
          s.on_exceed = OnExceed::kReject;
        } else if (text == "overdraft") {
          s.on_exceed = OnExceed::kOverdraft;
        } else if (text == "flag") {
          s.on_exceed = OnExceed::kFlag;
        } else {
          error(bp + "/on_exceed", "on_exceed must be \"reject\", \"overdraft\" or \"flag\"");
        }
      }
      if (b.contains("overdraft_into")) string(b, bp, "overdraft_into", &s.overdraft_into);
      if (s.on_exceed == OnExceed::kOverdraft && s.overdraft_into.empty()) {
        ctx_.problem(bp,
                     "quotas: bucket " + q(name) +
                         " overdrafts: name the bucket it borrows from in \"overdraft_into\"",
                     true);
      } else if (s.on_exceed != OnExceed::kOverdraft && !s.overdraft_into.empty()) {
        error(bp + "/overdraft_into", "bucket " + q(name) +
                                          ": \"overdraft_into\" needs \"on_exceed\": "
                                          "\"overdraft\"");
      }
      pointers_[name] = bp;
      out_->buckets.push_back(std::move(s));
    }
  }

  static bool validName(const std::string& name) {
    if (name.empty() || name.size() > 200) return false;
    std::string rest = name;
    for (std::string_view t : {"<user>", "<tag>", "<node>"}) {
      for (size_t at = rest.find(t); at != std::string::npos; at = rest.find(t)) {
        rest.replace(at, t.size(), "x");
      }
    }
    return std::none_of(rest.begin(), rest.end(), [](char c) {
      return c == '<' || c == '>' || c == ' ' || static_cast<unsigned char>(c) < 0x21;
    });
  }

  void checkChains(const std::string& ptr) {
    for (const BucketSpec& b : out_->buckets) {
      if (b.on_exceed != OnExceed::kOverdraft || b.overdraft_into.empty()) continue;
      std::string bp = pointers_[b.name] + "/overdraft_into";
      const BucketSpec* next = out_->bucket(b.overdraft_into);
      if (next == nullptr) {
        error(bp, "bucket " + q(b.name) + " overdrafts into " + q(b.overdraft_into) +
                      ", which is not a bucket here");
        continue;
      }
      if (next->unit != b.unit) {
        error(bp, "bucket " + q(b.name) + " overdrafts into " + q(b.overdraft_into) +
                      ", which counts " + std::string(quotaUnitName(next->unit)) + ", not " +
                      std::string(quotaUnitName(b.unit)));
      }
      std::set<std::string> seen{b.name};
      for (const BucketSpec* at = next; at != nullptr; at = at->on_exceed == OnExceed::kOverdraft
                                                                ? out_->bucket(at->overdraft_into)
                                                                : nullptr) {
        if (!seen.insert(at->name).second) {
          error(bp, "bucket " + q(b.name) + ": the overdraft chain loops back to " + q(at->name) +
                        "; end it with a bucket whose on_exceed is reject or flag");
          break;
        }
      }
    }
  }

  void parseRules(const json& v, const std::string& ptr) {
    if (!v.is_array()) {
      error(ptr,
            "\"rules\" must be a list: [{\"src\": [\"group:eng\"], \"buckets\": "
            "[\"daily:<user>\"]}]");
      return;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      std::string rp = JsonDoc::child(ptr, i);
      const json& r = v[i];
      if (!r.is_object()) {
        error(rp, "a rule must be an object with \"src\" and \"buckets\"");
        continue;
      }
      checkKeys(r, rp, kRuleKeys, "rule key");
      QuotaRule rule;
      rule.origin = ctx_.origin(rp);
      rule.src = strings(r, rp, "src");
      rule.buckets = strings(r, rp, "buckets", true);
      for (size_t k = 0; k < rule.buckets.size(); ++k) {
        if (declared_.count(rule.buckets[k]) == 0) {
          error(JsonDoc::child(rp + "/buckets", k),
                "rule names bucket " + q(rule.buckets[k]) + ", which is not in \"buckets\"");
        }
      }
      uint32_t n = 0;
      if (r.contains("max_requests") && number(r, rp, "max_requests", 1, 1'000'000, &n)) {
        rule.max_requests = n;
      }
      if (r.contains("max_streams") && number(r, rp, "max_streams", 1, 1'000'000, &n)) {
        rule.max_streams = n;
      }
      out_->rules.push_back(std::move(rule));
    }
  }

  std::vector<std::string> strings(const json& r, const std::string& rp, const char* key,
                                   bool allow_empty = false) {
    std::vector<std::string> out;
    const std::string kp = JsonDoc::child(rp, key);
    if (!r.contains(key)) {
      if (!allow_empty) ctx_.problem(rp, "quotas: a rule needs " + q(key), true);
      return out;
    }
    const json& a = r[key];
    if (!a.is_array() || (a.empty() && !allow_empty)) {
      error(kp, q(key) + " must be a non-empty list of strings");
      return out;
    }
    for (size_t k = 0; k < a.size(); ++k) {
      if (!a[k].is_string() || a[k].get_ref<const std::string&>().empty()) {
        error(JsonDoc::child(kp, k), q(key) + " entries must be non-empty strings");
        continue;
      }
      out.push_back(a[k].get<std::string>());
    }
    return out;
  }

  const QuotaParseContext& ctx_;
  QuotaConfig* out_;
  std::map<std::string, std::string> pointers_;
  std::set<std::string> declared_;
};

}  // namespace

void parseQuotaSection(const nlohmann::json& value, const std::string& ptr,
                       const QuotaParseContext& ctx, QuotaConfig* out) {
  QuotaLoader(ctx, out).run(value, ptr);
}

}  // namespace gatehouse::proxy
