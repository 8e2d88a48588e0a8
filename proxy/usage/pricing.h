// Cost model: a price table (per provider, per model name or glob pattern) and the arithmetic
// that turns a normalized Usage into integer nano-dollars.
//
// The file format is specified in proxy/usage/PRICES.md. In short: HuJSON; prices are decimal
// strings in USD per million tokens; each model row has input and output prices, optional
// cache_read / cache_write_5m / cache_write_1h prices (derived from the provider's
// cache_multipliers when absent), an optional long-context tier, optional per-service-tier price
// sets and an optional per-request web-search fee. A shipped default file is overlaid by an
// operator override file: a provider's cache_multipliers and each model row in the override
// replace the default's whole block or row.
//
// Cost rules (llm-wire-formats.md §9):
//   * every usage bucket is priced once at its own rate: uncached input, cache reads, 5m and 1h
//     cache writes, output (reasoning is inside output and is not priced again);
//   * the long-context tier applies to every token of a request whose totalInput() (uncached +
//     cache reads + cache writes) is strictly above the threshold;
//   * a service tier other than standard/default/auto/"" needs its own prices in the row;
//   * tokens in a bucket the row has no price for, or an unknown model, make the cost unknown,
//     never zero;
//   * the exact sum of tokens × price is rounded once to whole nano-dollars, halves up.
//
// PriceTable is an immutable value. Reload without restart is the caller's job: load a new table
// and swap a std::shared_ptr<const PriceTable> (e.g. std::atomic<std::shared_ptr<...>>); requests
// in flight keep the snapshot they started with, and every log row stores snapshotId().
//
// Thread safety: a loaded table is immutable and safe to share between threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/usage/usage.h"
#include "wg/status.h"

namespace gatehouse::proxy {

// ---- Money: exact decimal strings in, integer nano-dollars out, no floating point (§9 #14).
//
// Prices are written as decimal strings ("3.00", "0.30", "0.0375") and held as the value × 1e9
// in an int64 ("scaled"), exact to nine decimal places. A price per million tokens scaled this
// way is numerically "nano-dollars per million tokens", so N tokens cost N × scaled / 1e6
// nano-dollars; cost() sums every product exactly in 128 bits and rounds once.

inline constexpr int64_t kScale = 1'000'000'000;  // nine decimal places

// Largest whole part accepted in a price file: far above any real price, and it keeps
// price × kMaxTokens well inside 128 bits.
inline constexpr int64_t kMaxPrice = 1'000'000;

// Parses a non-negative decimal: digits, optionally '.' and 1–9 more digits, at most kMaxPrice.
// No sign, exponent, spaces, '$' or thousands separators. On failure returns nullopt and, if
// `why` is given, a sentence saying what is wrong.
std::optional<int64_t> parseScaledDecimal(std::string_view text, std::string* why = nullptr);

// The inverse: "3", "0.3", "0.0375" (trailing zeros dropped). Negative values get a '-'.
std::string formatScaledDecimal(int64_t scaled);

// Nano-dollars as dollars: "$0.012345678" (always nine decimals, so amounts line up in logs).
std::string formatUsd(int64_t nanos);

// round(a × b / d), halves rounded up, for a, b ≥ 0 and d > 0; nullopt if the result does not
// fit in an int64 or an argument is out of range.
std::optional<int64_t> mulDivRound(int64_t a, int64_t b, int64_t d);

// ---- Price table.

// Prices of one tier, as USD per million tokens × 1e9 (scaled, above); nullopt = no price.
struct Rates {
  std::optional<int64_t> input;
  std::optional<int64_t> output;
  std::optional<int64_t> cache_read;
  std::optional<int64_t> cache_write_5m;
  std::optional<int64_t> cache_write_1h;
  bool operator==(const Rates&) const = default;
};

// Base rates plus an optional long-context tier.
struct PriceSet {
  Rates rates;
  int64_t long_context_above = 0;  // input-token threshold; 0 = no long-context tier
  Rates long_context;
};

struct ModelPrice {
  std::string provider;  // "anthropic"
  std::string pattern;   // exact model name or glob with '*', e.g. "claude-sonnet-4*"
  PriceSet standard;
  std::map<std::string, PriceSet, std::less<>> service_tiers;  // "priority", "batch", "flex"…
  std::optional<int64_t> web_search_request;                   // USD per request × 1e9
  std::string origin;  // "prices.json:12:5": where the row was defined
};

// What cost() fills in besides known and nanos: kFull adds basis, service_tier and the reason
// texts (for logs and tests); kNanosOnly leaves them empty and allocates nothing (hot paths that
// only need the amount: quota reservations and settlements, the request record).
enum class CostDetail : uint8_t { kFull, kNanosOnly };

struct Cost {
  bool known = false;
  int64_t nanos = 0;         // nano-dollars; meaningful only when known
  std::string basis;         // "anthropic/claude-sonnet-4*": provider and the row that matched
  std::string service_tier;  // the non-standard tier priced, or ""
  bool long_context = false;
  std::string reason;  // why the cost is unknown (or why a known zero), for the log
};

// A file given to PriceTable::parse: `name` is used in error messages.
struct PriceSource {
  std::string name;
  std::string text;
};

class PriceTable {
 public:
  // Reads and parses both files. `override_path` may be empty (no override). Errors are one per
  // line, "FILE:LINE:COL: what is wrong; how to fix it".
  static Result<std::shared_ptr<const PriceTable>> load(const std::string& default_path,
                                                        const std::string& override_path);
  // Same on text already in memory (tests, fuzzing, config pushed over an API).
  static Result<std::shared_ptr<const PriceTable>> parse(const PriceSource& defaults,
                                                         const PriceSource* override_source);

  // The row pricing `model`: an exact name first, then the glob with the most literal
  // characters (ties: the pattern that sorts first). nullptr if none.
  const ModelPrice* find(std::string_view provider, std::string_view model) const;

  // Cost of one response's usage. Unknown (known = false, with a reason) when the model has no
  // row, the usage is absent, or tokens fall in a bucket without a price.
  Cost cost(std::string_view provider, std::string_view model, const Usage& usage,
            CostDetail detail = CostDetail::kFull) const;
  // The same for a row find() returned (pricing several usages of one model looks it up once).
  Cost cost(const ModelPrice& row, const Usage& usage, CostDetail detail = CostDetail::kFull) const;

  // Identifies the exact prices used: the files' "version" strings and a hash of their bytes.
  const std::string& snapshotId() const { return snapshot_id_; }
  size_t size() const;

 private:
  friend class PriceTableParser;
  struct Provider {
    std::map<std::string, ModelPrice, std::less<>> exact;
    std::vector<ModelPrice> globs;  // most literal characters first, then by pattern
  };
  std::map<std::string, Provider, std::less<>> providers_;
  std::string snapshot_id_;
};

// Cost of what a UsageTap saw: known zero for count_tokens (not billed) and for error or failed
// responses that reported no usage; otherwise table.cost() for the model the response reported,
// or `requested_model` when it reported none. `provider` is the price-table provider of the
// route: providerOf(kind) for the native APIs, the route's own name (e.g. "bedrock") otherwise.
Cost costOfResponse(const PriceTable& table, std::string_view provider,
                    std::string_view requested_model, const TapResult& result,
                    CostDetail detail = CostDetail::kFull);

}  // namespace gatehouse::proxy
