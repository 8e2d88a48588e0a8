// What a request reserves before it is forwarded and what it settles to afterwards
// (proxy/quota/QUOTAS.md "Reservation"), and the per-identity concurrency counters.
//
// Worst case of one request:
//   input tokens   ceil(body bytes / bytes_per_token)        (an estimate, not a bound)
//   output tokens  max_tokens | max_output_tokens | max_completion_tokens from the body, else
//                  default_max_output_tokens
//   dollars        the input estimate at the dearest input-side rate of the model's price row
//                  (uncached input or a cache write) + the output tokens at the output rate
//   tokens         input estimate + output tokens;  requests  1
// count_tokens calls are not billed: they reserve only the request.
//
// Real amounts: the response's cost and usage (input + cache reads + cache writes + output
// tokens). When a response reported no usage the provider still billed something, so the
// reservation is kept as the charge (never zero), except where costOfResponse knows the charge is
// zero (failed responses without usage, count_tokens).
//
// Sans-I/O; ConcurrencyLimiter is not thread-safe (the gateway's loop owns it).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "proxy/quota/ledger.h"
#include "proxy/usage/pricing.h"
#include "proxy/usage/usage.h"

namespace gatehouse::proxy {

struct WorstCase {
  QuotaAmounts amounts;
  bool price_known = true;  // false: no price row; dollar buckets cannot be enforced
};

WorstCase worstCase(const PriceTable* prices, ApiKind kind, std::string_view model,
                    size_t body_bytes, std::optional<int64_t> max_output_tokens,
                    const QuotaConfig& config);

// `tap` is null when no response arrived (connect failure, client gone before the head);
// `cost` is costOfResponse() of it (unknown when there is no price table).
QuotaAmounts realAmounts(const TapResult* tap, const Cost& cost, const QuotaAmounts& reserved);

// The 429 message for a concurrency limit: "concurrency limit: WHO already has N requests in
// flight (max_requests M)" (or streams / max_streams).
std::string concurrencyRefusal(const std::string& who, bool streams, int64_t in_flight,
                               int64_t max);

// Requests and streams in flight per identity in this process (stores that do not count them
// for every replica; see QuotaPlan::slot).
class ConcurrencyLimiter {
 public:
  // "" when admitted (and counted), else a message naming the limit.
  std::string tryAcquire(const std::string& who, bool stream, const QuotaPlan& plan);
  // Counts a request without a limit (the limit is enforced elsewhere, e.g. in Redis).
  void add(const std::string& who, bool stream);
  void release(const std::string& who, bool stream);
  struct InFlight {
    uint32_t requests = 0;
    uint32_t streams = 0;
  };
  const std::map<std::string, InFlight>& inFlight() const { return in_flight_; }

 private:
  std::map<std::string, InFlight> in_flight_;
};

// The key concurrency is counted under: the login, else the node name.
std::string identityKey(const wg::Identity& who);

}  // namespace gatehouse::proxy
