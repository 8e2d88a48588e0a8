#include "proxy/quota/estimate.h"

#include <algorithm>

namespace gatehouse::proxy {

WorstCase worstCase(const PriceTable* prices, ApiKind kind, std::string_view model,
                    size_t body_bytes, std::optional<int64_t> max_output_tokens,
                    const QuotaConfig& config) {
  WorstCase w;
  if (kind == ApiKind::kAnthropicCountTokens) {
    w.amounts = QuotaAmounts{0, 0, 1};
    return w;
  }
  int64_t in =
      static_cast<int64_t>((body_bytes + config.bytes_per_token - 1) / config.bytes_per_token);
  int64_t out = std::clamp<int64_t>(max_output_tokens.value_or(config.default_max_output_tokens), 0,
                                    kMaxTokens);
  w.amounts.tokens = std::min(in + out, kMaxQuotaAmount);
  w.amounts.requests = 1;
  w.price_known = false;
  const ModelPrice* row = prices ? prices->find(providerOf(kind), model) : nullptr;
  if (row == nullptr) return w;
  // The input estimate at each input-side rate the row prices; the dearest known one wins.
  Usage as_input, as_write_5m, as_write_1h;
  as_input.input = in;
  as_write_5m.cache_write_5m = in;
  as_write_1h.cache_write_1h = in;
  for (Usage* u : {&as_input, &as_write_5m, &as_write_1h}) {
    u->output = out;
    u->present = true;
    Cost c = prices->cost(*row, *u, CostDetail::kNanosOnly);
    if (!c.known) continue;
    w.price_known = true;
    w.amounts.nanos = std::max(w.amounts.nanos, std::min(c.nanos, kMaxQuotaAmount));
  }
  return w;
}

QuotaAmounts realAmounts(const TapResult* tap, const Cost& c, const QuotaAmounts& reserved) {
  QuotaAmounts real{0, 0, 1};
  if (tap == nullptr) return real;  // nothing came back: nothing was billed
  real.nanos = c.known ? std::min(c.nanos, kMaxQuotaAmount) : reserved.nanos;
  if (!tap->billable) {
    real.tokens = 0;
  } else if (tap->usage.present) {
    real.tokens = std::min(tap->usage.totalInput() + tap->usage.output, kMaxQuotaAmount);
  } else {
    real.tokens = c.known ? 0 : reserved.tokens;
  }
  return real;
}

std::string concurrencyRefusal(const std::string& who, bool streams, int64_t in_flight,
                               int64_t max) {
  const char* what = streams ? " streams" : " requests";
  return "concurrency limit: " + who + " already has " + std::to_string(in_flight) + what +
         " in flight (max" + (streams ? "_streams " : "_requests ") + std::to_string(max) + ")";
}

std::string ConcurrencyLimiter::tryAcquire(const std::string& who, bool stream,
                                           const QuotaPlan& plan) {
  InFlight& f = in_flight_[who];
  if (plan.max_requests && f.requests >= *plan.max_requests) {
    return concurrencyRefusal(who, false, f.requests, *plan.max_requests);
  }
  if (stream && plan.max_streams && f.streams >= *plan.max_streams) {
    return concurrencyRefusal(who, true, f.streams, *plan.max_streams);
  }
  add(who, stream);
  return "";
}

void ConcurrencyLimiter::add(const std::string& who, bool stream) {
  InFlight& f = in_flight_[who];
  ++f.requests;
  if (stream) ++f.streams;
}

void ConcurrencyLimiter::release(const std::string& who, bool stream) {
  auto it = in_flight_.find(who);
  if (it == in_flight_.end()) return;
  if (it->second.requests > 0) --it->second.requests;
  if (stream && it->second.streams > 0) --it->second.streams;
  if (it->second.requests == 0 && it->second.streams == 0) in_flight_.erase(it);
}

std::string identityKey(const wg::Identity& who) {
  return who.user_login.empty() ? who.name : who.user_login;
}

}  // namespace gatehouse::proxy
