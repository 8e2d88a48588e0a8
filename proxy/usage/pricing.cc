// Price table parsing, merging and cost arithmetic. See pricing.h and PRICES.md.
//
// Parsing order: each file is parsed into raw rows (prices exactly as written), the override is
// laid over the defaults (whole cache_multipliers block per provider, whole row per model), and
// only then are missing cache prices derived from the multipliers, so an override row with just
// input and output still gets the default file's cache ratios.
#include "proxy/usage/pricing.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>

#include "control/hujson.h"
#include "control/policy.h"
#include "proxy/config/gateway_config.h"  // globMatch

namespace gatehouse::proxy {

// ---- Money.

std::optional<int64_t> parseScaledDecimal(std::string_view text, std::string* why) {
  auto fail = [&](const char* message) -> std::optional<int64_t> {
    if (why) *why = message;
    return std::nullopt;
  };
  if (text.empty()) return fail("empty number: write a decimal such as \"3.00\"");
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  auto digits = [](std::string_view s) {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  if (whole.empty() || !digits(whole) || !digits(frac) ||
      (dot != std::string_view::npos && frac.empty())) {
    return fail(
        "not a plain decimal: use digits with an optional '.', e.g. \"3\", \"0.30\" or "
        "\"0.0375\" (no sign, exponent, spaces or '$')");
  }
  if (frac.size() > 9) return fail("more than 9 decimal places: round to at most 9");
  // Leading zeros are harmless; skip them so the length check below means magnitude.
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  int64_t w = 0;
  if (whole.size() > 15) return fail("too large: prices above 1,000,000 are not accepted");
  for (char c : whole) w = w * 10 + (c - '0');
  if (w > kMaxPrice) return fail("too large: prices above 1,000,000 are not accepted");
  int64_t f = 0;
  for (size_t i = 0; i < 9; ++i) f = f * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  return w * kScale + f;
}

std::string formatScaledDecimal(int64_t scaled) {
  bool negative = scaled < 0;
  // Through uint64 so that INT64_MIN negates without overflow.
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(scaled) : static_cast<uint64_t>(scaled);
  std::string out = std::to_string(magnitude / kScale);
  uint64_t frac = magnitude % kScale;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 9 - digits.size(), '0');
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return negative ? "-" + out : out;
}

std::string formatUsd(int64_t nanos) {
  bool negative = nanos < 0;
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(nanos) : static_cast<uint64_t>(nanos);
  std::string digits = std::to_string(magnitude % kScale);
  digits.insert(0, 9 - digits.size(), '0');
  return std::string(negative ? "-$" : "$") + std::to_string(magnitude / kScale) + "." + digits;
}

std::optional<int64_t> mulDivRound(int64_t a, int64_t b, int64_t d) {
  if (a < 0 || b < 0 || d <= 0) return std::nullopt;
  __int128 product = static_cast<__int128>(a) * b;  // < 2^126: cannot overflow
  __int128 q = (product + d / 2) / d;
  if (q > std::numeric_limits<int64_t>::max()) return std::nullopt;
  return static_cast<int64_t>(q);
}

// ---- Price table.

using control::JsonDoc;
using nlohmann::json;

namespace {

const std::vector<std::string> kTopKeys = {"version", "providers"};
const std::vector<std::string> kProviderKeys = {"cache_multipliers", "models"};
const std::vector<std::string> kCacheKeys = {"cache_read", "cache_write_5m", "cache_write_1h"};
const std::vector<std::string> kRowKeys = {
    "input",          "output",       "cache_read",    "cache_write_5m",
    "cache_write_1h", "long_context", "service_tiers", "web_search_per_request"};
const std::vector<std::string> kTierKeys = {"input",          "output",         "cache_read",
                                            "cache_write_5m", "cache_write_1h", "long_context"};
const std::vector<std::string> kLongContextKeys = {
    "above_input_tokens", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h"};

// Service tiers priced at the row's base rates.
bool standardTier(std::string_view tier) {
  return tier.empty() || tier == "standard" || tier == "default" || tier == "auto";
}

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

size_t literalChars(std::string_view pattern) {
  return static_cast<size_t>(
      std::count_if(pattern.begin(), pattern.end(), [](char c) { return c != '*'; }));
}

// Real price files nest about seven levels deep. Refusing far deeper input up front keeps the
// HuJSON position index (one JSON-pointer string per value) from growing quadratically.
std::optional<control::Diagnostic> tooDeep(std::string_view text) {
  constexpr int kMaxDepth = 32;
  auto standard = control::standardizeHuJson(text);
  if (!standard) return std::nullopt;  // parseHuJson reports it
  int depth = 0, line = 1;
  size_t line_start = 0;
  const std::string& t = standard.value();
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '"') {
      for (++i; i < t.size() && t[i] != '"'; ++i) i += t[i] == '\\';
    } else if (c == '\n') {
      ++line;
      line_start = i + 1;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) {
        return control::Diagnostic{line, static_cast<int>(i - line_start + 1),
                                   "nested more than 32 levels deep: a price file is "
                                   "providers → models → rows, a few levels at most"};
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return std::nullopt;
}

uint64_t fnv1a(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

struct Multipliers {
  std::optional<int64_t> cache_read, cache_write_5m, cache_write_1h;  // factor × 1e9
};

void derive(Rates& r, const Multipliers& m) {
  if (!r.input) return;
  auto fill = [&](std::optional<int64_t>& price, const std::optional<int64_t>& factor) {
    if (!price && factor) price = mulDivRound(*r.input, *factor, kScale);
  };
  fill(r.cache_read, m.cache_read);
  fill(r.cache_write_5m, m.cache_write_5m);
  fill(r.cache_write_1h, m.cache_write_1h);
}

void derive(PriceSet& set, const Multipliers& m) {
  derive(set.rates, m);
  if (set.long_context_above > 0) derive(set.long_context, m);
}

}  // namespace

// Parses files one at a time into raw providers, then merges and builds the table.
class PriceTableParser {
 public:
  struct RawProvider {
    std::optional<Multipliers> multipliers;
    std::map<std::string, ModelPrice, std::less<>> rows;
  };

  // Parses `src` and lays it over what earlier files defined.
  void parseFile(const PriceSource& src) {
    if (auto deep = tooDeep(src.text)) {
      errors_.push_back(deep->format(src.name));
      return;
    }
    auto doc = control::parseHuJson(src.text);
    if (!doc) {
      for (const control::Diagnostic& d : doc.errors()) errors_.push_back(d.format(src.name));
      return;
    }
    src_ = &src;
    doc_ = &doc.value();
    const json& root = doc_->root();
    if (!root.is_object()) {
      error("",
            "a price file must be a JSON object, e.g. {\"version\": \"...\", \"providers\": {}}");
      return;
    }
    checkKeys(root, "", kTopKeys, "the top level");
    std::string version = "unversioned";
    if (const auto it = root.find("version"); it != root.end()) {
      if (it->is_string() && !it->get<std::string>().empty()) {
        version = it->get<std::string>();
      } else {
        error("/version", "\"version\" must be a non-empty string naming this price snapshot");
      }
    }
    versions_.push_back(version);
    hash_ = fnv1a(fnv1a(hash_, src.text), std::string_view("\0", 1));
    const auto providers = root.find("providers");
    if (providers == root.end()) return;
    if (!providers->is_object()) {
      error("/providers",
            "\"providers\" must be an object, e.g. {\"anthropic\": {\"models\": {}}}");
      return;
    }
    // Rows are parsed per file, then laid over earlier files: whole blocks and rows win.
    std::map<std::string, RawProvider, std::less<>> current;
    for (const auto& [name, body] : providers->items()) parseProvider(name, body, current[name]);
    for (auto& [name, provider] : current) {
      RawProvider& into = raw_[name];
      if (provider.multipliers) into.multipliers = provider.multipliers;
      for (auto& [pattern, row] : provider.rows) into.rows[pattern] = std::move(row);
    }
  }

  Result<std::shared_ptr<const PriceTable>> finish() {
    if (!errors_.empty()) {
      std::string message;
      for (const std::string& e : errors_) message += (message.empty() ? "" : "\n") + e;
      return Status(EINVAL, message);
    }
    auto table = std::make_shared<PriceTable>();
    for (auto& [name, raw] : raw_) {
      PriceTable::Provider& provider = table->providers_[name];
      Multipliers m = raw.multipliers.value_or(Multipliers{});
      for (auto& [pattern, row] : raw.rows) {
        derive(row.standard, m);
        for (auto& [tier, set] : row.service_tiers) derive(set, m);
        if (pattern.find('*') == std::string::npos) {
          provider.exact.emplace(pattern, std::move(row));
        } else {
          provider.globs.push_back(std::move(row));
        }
      }
      std::stable_sort(provider.globs.begin(), provider.globs.end(),
                       [](const ModelPrice& a, const ModelPrice& b) {
                         return literalChars(a.pattern) > literalChars(b.pattern);
                       });
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_));
    std::string id;
    for (const std::string& v : versions_) id += (id.empty() ? "" : "+") + v;
    table->snapshot_id_ = id + "@" + hex;
    return std::shared_ptr<const PriceTable>(std::move(table));
  }

 private:
  void error(const std::string& ptr, std::string message) {
    errors_.push_back(doc_->at(ptr, std::move(message)).format(src_->name));
  }
  void errorKey(const std::string& ptr, std::string message) {
    errors_.push_back(doc_->atKey(ptr, std::move(message)).format(src_->name));
  }

  // Reports keys of `obj` not in `allowed`, with a suggestion for typos.
  void checkKeys(const json& obj, const std::string& ptr, const std::vector<std::string>& allowed,
                 const std::string& where) {
    for (const auto& [key, value] : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string best = control::closestName(key, allowed);
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
      errorKey(JsonDoc::child(ptr, key),
               "unknown key " + q(key) + " in " + where +
                   (best.empty() ? "" : " (did you mean " + q(best) + "?)") + "; allowed: " + list);
    }
  }

  const json* objectMember(const json& obj, const std::string& ptr, const char* key,
                           const char* example) {
    auto it = obj.find(key);
    if (it == obj.end()) return nullptr;
    if (!it->is_object()) {
      error(JsonDoc::child(ptr, key), q(key) + " must be an object, e.g. " + example);
      return nullptr;
    }
    return &*it;
  }

  // A decimal string at obj[key], scaled ×1e9. `what` names the unit for the message.
  std::optional<int64_t> decimal(const json& obj, const std::string& ptr, const char* key,
                                 const char* what) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    std::string p = JsonDoc::child(ptr, key);
    if (!it->is_string()) {
      error(p, q(key) + " must be a decimal string (" + what + "), e.g. \"3.00\": strings keep " +
                   "prices exact, JSON numbers would go through floating point");
      return std::nullopt;
    }
    std::string why;
    auto v = parseScaledDecimal(it->get<std::string>(), &why);
    if (!v) error(p, q(key) + ": " + why);
    return v;
  }

  Rates rates(const json& obj, const std::string& ptr, bool require, const std::string& where) {
    const char* unit = "USD per million tokens";
    Rates r;
    r.input = decimal(obj, ptr, "input", unit);
    r.output = decimal(obj, ptr, "output", unit);
    r.cache_read = decimal(obj, ptr, "cache_read", unit);
    r.cache_write_5m = decimal(obj, ptr, "cache_write_5m", unit);
    r.cache_write_1h = decimal(obj, ptr, "cache_write_1h", unit);
    for (const char* key : {"input", "output"}) {
      if (require && !obj.contains(key)) {
        error(ptr, where + " has no " + q(key) + " price: add \"" + key +
                       "\": \"<USD per million tokens>\"");
      }
    }
    return r;
  }

  PriceSet priceSet(const json& obj, const std::string& ptr, const std::string& where) {
    PriceSet set;
    set.rates = rates(obj, ptr, true, where);
    const json* lc = objectMember(obj, ptr, "long_context",
                                  "{\"above_input_tokens\": 200000, \"input\": \"6\", ...}");
    if (!lc) return set;
    std::string lp = JsonDoc::child(ptr, "long_context");
    checkKeys(*lc, lp, kLongContextKeys, "a long_context tier");
    set.long_context = rates(*lc, lp, true, "the long_context tier of " + where);
    auto above = lc->find("above_input_tokens");
    if (above == lc->end()) {
      error(lp,
            "long_context needs \"above_input_tokens\": the prompt size (input + cache "
            "tokens) above which its prices apply, e.g. 200000");
    } else if (!above->is_number_unsigned() || above->get<uint64_t>() == 0 ||
               above->get<uint64_t>() > static_cast<uint64_t>(kMaxTokens)) {
      error(JsonDoc::child(lp, "above_input_tokens"),
            "\"above_input_tokens\" must be a positive whole number of tokens, e.g. 200000");
    } else {
      set.long_context_above = static_cast<int64_t>(above->get<uint64_t>());
    }
    return set;
  }

  void parseProvider(const std::string& name, const json& body, RawProvider& raw) {
    std::string ptr = JsonDoc::child("/providers", name);
    if (!body.is_object()) {
      error(ptr, "provider " + q(name) + " must be an object with \"models\"");
      return;
    }
    checkKeys(body, ptr, kProviderKeys, "provider " + q(name));
    if (const json* m = objectMember(body, ptr, "cache_multipliers",
                                     "{\"cache_read\": \"0.1\", \"cache_write_5m\": \"1.25\"}")) {
      std::string mp = JsonDoc::child(ptr, "cache_multipliers");
      checkKeys(*m, mp, kCacheKeys, "cache_multipliers");
      const char* unit = "a multiple of the input price";
      raw.multipliers =
          Multipliers{decimal(*m, mp, "cache_read", unit), decimal(*m, mp, "cache_write_5m", unit),
                      decimal(*m, mp, "cache_write_1h", unit)};
    }
    const json* models = objectMember(body, ptr, "models", "{\"claude-sonnet-4*\": {...}}");
    if (!models) return;
    for (const auto& [pattern, row] : models->items()) {
      std::string rp = JsonDoc::child(JsonDoc::child(ptr, "models"), pattern);
      if (pattern.empty() || pattern.size() > 200 ||
          pattern.find_first_of(" \t\r\n") != std::string::npos) {
        errorKey(rp, "model name " + q(pattern) +
                         " must be 1-200 characters without spaces; '*' matches any run");
        continue;
      }
      if (!row.is_object()) {
        error(rp, "model " + q(pattern) + " must be an object, e.g. {\"input\": \"3\", " +
                      "\"output\": \"15\"}");
        continue;
      }
      raw.rows[pattern] = parseRow(name, pattern, row, rp);
    }
  }

  ModelPrice parseRow(const std::string& provider, const std::string& pattern, const json& row,
                      const std::string& ptr) {
    ModelPrice price;
    price.provider = provider;
    price.pattern = pattern;
    control::SourcePos pos = doc_->keyPos(ptr);
    price.origin = src_->name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    std::string where = "model " + q(pattern);
    checkKeys(row, ptr, kRowKeys, where);
    price.standard = priceSet(row, ptr, where);
    price.web_search_request =
        decimal(row, ptr, "web_search_per_request", "USD per web search request");
    const json* tiers = objectMember(row, ptr, "service_tiers",
                                     "{\"batch\": {\"input\": \"1.5\", \"output\": \"7.5\"}}");
    if (!tiers) return price;
    std::string tp = JsonDoc::child(ptr, "service_tiers");
    for (const auto& [tier, body] : tiers->items()) {
      std::string p = JsonDoc::child(tp, tier);
      if (standardTier(tier)) {
        errorKey(p, "service tier " + q(tier) + " is the row's own base price; move its " +
                        "prices to the model row");
      } else if (!body.is_object()) {
        error(p, "service tier " + q(tier) + " must be an object with input and output prices");
      } else {
        checkKeys(body, p, kTierKeys, "service tier " + q(tier));
        price.service_tiers[tier] = priceSet(body, p, "service tier " + q(tier) + " of " + where);
      }
    }
    return price;
  }

  const PriceSource* src_ = nullptr;
  const JsonDoc* doc_ = nullptr;
  std::map<std::string, RawProvider, std::less<>> raw_;
  std::vector<std::string> errors_;
  std::vector<std::string> versions_;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

namespace {

Result<std::string> readFile(const std::string& path, const char* role) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    return Status::fromErrno(errno, std::string("cannot open the ") + role + " price file " + path +
                                        " (check the path in the gateway config)");
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0)
    return Status::fromErrno(err, std::string("cannot read ") + role + " price file " + path);
  return text;
}

}  // namespace

Result<std::shared_ptr<const PriceTable>> PriceTable::parse(const PriceSource& defaults,
                                                            const PriceSource* override_source) {
  PriceTableParser parser;
  parser.parseFile(defaults);
  if (override_source) parser.parseFile(*override_source);
  return parser.finish();
}

Result<std::shared_ptr<const PriceTable>> PriceTable::load(const std::string& default_path,
                                                           const std::string& override_path) {
  auto defaults = readFile(default_path, "default");
  if (!defaults) return defaults.status();
  PriceSource base{default_path, std::move(defaults.value())};
  if (override_path.empty()) return parse(base, nullptr);
  auto override_text = readFile(override_path, "override");
  if (!override_text) return override_text.status();
  PriceSource top{override_path, std::move(override_text.value())};
  return parse(base, &top);
}

size_t PriceTable::size() const {
  size_t n = 0;
  for (const auto& [name, p] : providers_) n += p.exact.size() + p.globs.size();
  return n;
}

const ModelPrice* PriceTable::find(std::string_view provider, std::string_view model) const {
  auto p = providers_.find(provider);
  if (p == providers_.end() || model.empty()) return nullptr;
  if (auto it = p->second.exact.find(model); it != p->second.exact.end()) return &it->second;
  for (const ModelPrice& row : p->second.globs) {
    if (globMatch(row.pattern, model)) return &row;
  }
  return nullptr;
}

Cost PriceTable::cost(std::string_view provider, std::string_view model, const Usage& usage,
                      CostDetail detail) const {
  Cost c;
  const ModelPrice* row = find(provider, model);
  if (row) return cost(*row, usage, detail);
  if (detail == CostDetail::kFull) {
    c.reason = "no price for " + std::string(provider) + "/" + std::string(model) +
               " in price snapshot " + snapshot_id_ +
               ": add the model to the price override file (proxy/usage/PRICES.md)";
  }
  return c;
}

Cost PriceTable::cost(const ModelPrice& row, const Usage& usage, CostDetail detail) const {
  Cost c;
  const bool full = detail == CostDetail::kFull;
  auto unknown = [&](auto&& why) {
    if (full) c.reason = why();
    return c;
  };
  if (full) c.basis = row.provider + "/" + row.pattern;
  if (!usage.present) return unknown([] { return std::string("the response reported no usage"); });
  const PriceSet* set = &row.standard;
  if (!standardTier(usage.service_tier)) {
    auto tier = row.service_tiers.find(usage.service_tier);
    if (tier == row.service_tiers.end()) {
      return unknown([&] {
        return "service tier " + q(usage.service_tier) + " has no prices in " + row.origin +
               ": add service_tiers." + usage.service_tier + " to the row";
      });
    }
    set = &tier->second;
    if (full) c.service_tier = usage.service_tier;
  }
  const Rates* r = &set->rates;
  if (set->long_context_above > 0 && usage.totalInput() > set->long_context_above) {
    r = &set->long_context;
    c.long_context = true;
  }
  struct Bucket {
    const char* name;
    int64_t count;
    const std::optional<int64_t>& price;
  };
  // Every bucket once, at its own rate. Reasoning is inside output: never added again.
  const Bucket buckets[] = {
      {"input", usage.input, r->input},
      {"output", usage.output, r->output},
      {"cache_read", usage.cache_read, r->cache_read},
      {"cache_write_5m", usage.cache_write_5m, r->cache_write_5m},
      {"cache_write_1h", usage.cache_write_1h, r->cache_write_1h},
  };
  // tokens × (USD/MTok × 1e9) = nano-USD × 1e6; every term < 2^50 × 2^50, the sum fits easily.
  __int128 micro_nanos = 0;
  for (const Bucket& b : buckets) {
    if (b.count < 0 || b.count > kMaxTokens) {
      return unknown([&] {
        return std::string("invalid ") + b.name + " token count " + std::to_string(b.count);
      });
    }
    if (b.count == 0) continue;
    if (!b.price) {
      return unknown([&] {
        return std::to_string(b.count) + " " + b.name + " tokens have no price in " + row.origin +
               ": add \"" + b.name + "\" (or the provider's cache_multipliers)";
      });
    }
    micro_nanos += static_cast<__int128>(b.count) * *b.price;
  }
  if (usage.web_search_requests < 0 || usage.web_search_requests > kMaxTokens) {
    return unknown([] { return std::string("invalid web search request count"); });
  }
  if (usage.web_search_requests > 0) {
    if (!row.web_search_request) {
      return unknown([&] {
        return std::to_string(usage.web_search_requests) +
               " web search requests have no price in " + row.origin +
               ": add \"web_search_per_request\"";
      });
    }
    micro_nanos +=
        static_cast<__int128>(usage.web_search_requests) * *row.web_search_request * 1'000'000;
  }
  __int128 nanos = (micro_nanos + 500'000) / 1'000'000;
  if (nanos > std::numeric_limits<int64_t>::max()) {
    return unknown([] { return std::string("cost overflows int64 nano-dollars"); });
  }
  c.known = true;
  c.nanos = static_cast<int64_t>(nanos);
  return c;
}

Cost costOfResponse(const PriceTable& table, std::string_view provider,
                    std::string_view requested_model, const TapResult& result, CostDetail detail) {
  const bool full = detail == CostDetail::kFull;
  if (!result.billable) {
    Cost c;
    c.known = true;
    if (full) c.reason = "not billed (count_tokens)";
    return c;
  }
  // Failed requests that report no usage are not billed by the provider.
  if ((result.end == TapEnd::kError || result.end == TapEnd::kFailed) && !result.usage.present) {
    Cost c;
    c.known = true;
    if (full) c.reason = "error response without usage (" + result.error_type + ")";
    return c;
  }
  std::string_view model = result.model.empty() ? requested_model : result.model;
  return table.cost(provider, model, result.usage, detail);
}

}  // namespace gatehouse::proxy
