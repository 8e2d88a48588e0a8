// Exchange ↔ quotas: the concurrency slot and the reservation before the upstream is acquired,
// the settlement when the exchange ends (see gateway.h and proxy/quota/QUOTAS.md).
//
// Ordering: reserveQuota() runs after the grant check, once the upstream request is built. The
// store may answer later (Redis); if the client went away meanwhile the Exchange is gone and the
// callback refunds a successful reservation at once. record() calls settleQuota() exactly once
// per exchange, on every ending: complete, client gone, upstream failed.
#include <algorithm>

#include "proxy/gateway/connection.h"

namespace gatehouse::proxy {
namespace {

std::string describeNeed(const BucketSpec* spec, int64_t v) {
  return spec ? formatQuotaAmount(spec->unit, v) : std::to_string(v);
}

const BucketSpec* specOf(const QuotaPlan& plan, const std::string& key) {
  for (const QuotaCharge& c : plan.charges) {
    for (const ChainLink& l : c.chain) {
      if (l.key == key) return l.spec;
    }
  }
  return nullptr;
}

}  // namespace

std::shared_ptr<QuotaPlan> Gateway::Connection::quotaPlan(
    const std::shared_ptr<const GatewayConfig>& config) {
  if (plan_config_ != config || !quota_plan_) {
    quota_plan_ = std::make_shared<QuotaPlan>(planFor(config->quotas, *identity_));
    plan_config_ = config;
  } else if (quota_plan_.use_count() > 1) {
    // An earlier exchange or a store callback still holds it: this request gets its own.
    quota_plan_ = std::make_shared<QuotaPlan>(*quota_plan_);
  }
  quota_plan_->slot.reset();
  return quota_plan_;
}

void Exchange::refuse(const GatewayError& error) {
  done_ = true;
  if (!concurrency_key_.empty()) {
    gw_.concurrency().release(concurrency_key_, model_.stream);
    concurrency_key_.clear();
  }
  client_.respondError(route_.shape, error, request_id_);
  client_.dropExchange();
}

void Exchange::reserveQuota() {
  const QuotaConfig& qc = shared_.config->quotas;
  if (!qc.enabled() || !client_.identity()) return acquire();
  const wg::Identity& who = *client_.identity();
  std::shared_ptr<QuotaPlan> plan = client_.quotaPlan(shared_.config);
  QuotaStore* store = gw_.quotaStore();
  if (plan->max_requests || plan->max_streams) {
    std::string key = identityKey(who);
    if (store != nullptr && store->sharesConcurrency()) {
      // Limited in the store for every replica: the reserve takes the slot. Counted here too,
      // without a limit, for this replica's view in GET /api/quotas.
      plan->slot = QuotaPlan::Slot{key, request_id_, model_.stream};
      gw_.concurrency().add(key, model_.stream);
    } else if (std::string why = gw_.concurrency().tryAcquire(key, model_.stream, *plan);
               !why.empty()) {
      gw_.quotaEvent({"rejected", "", key, request_id_, why});
      return refuse(GatewayError::rateLimited(why, 1));
    }
    concurrency_key_ = std::move(key);
  }
  if (plan->empty() && !plan->slot) return acquire();
  WorstCase w = worstCase(shared_.prices.get(), apiKind(), model_.model, body_.size(),
                          model_.max_output_tokens, qc);
  if (!w.price_known) {
    for (const QuotaCharge& c : plan->charges) {
      if (c.unit() != QuotaUnit::kNanodollars) continue;
      return refuse(GatewayError::permission(
          "model \"" + model_.model + "\" has no price, so the dollar quota bucket \"" +
          c.chain.front().key +
          "\" cannot be enforced; ask the operator to add a price row (proxy/usage/PRICES.md)"));
    }
  }
  setAmounts(*plan, w.amounts);
  quota_plan_ = plan;
  quota_reserved_ = w.amounts;
  if (store == nullptr) {
    return onReserved(Status(EIO, "the quota store is not open (see the gateway's log)"));
  }
  Gateway* gw = &gw_;
  store->reserve(
      *plan, gw_.nowMs(),
      [this, alive = alive_, store, gw, plan, config = shared_.config](Result<ReserveOutcome> r) {
        if (*alive) return onReserved(std::move(r));
        // The client left while the store answered: give the reservation back.
        if (r && r->allowed) store->settle(*plan, r->taken, {0, 0, 0}, gw->nowMs());
      });
}

void Exchange::onReserved(Result<ReserveOutcome> r) {
  if (done_) return;
  // For events only (the admitted path without events builds no string).
  auto who = [this] { return client_.identity() ? identityKey(*client_.identity()) : ""; };
  if (!r) {
    bool open = shared_.config->quotas.store.fail_open;
    std::string what = "quota store unavailable: " + r.status().message();
    gw_.quotaEvent({"store_error", "", who(), request_id_, what});
    if (open) {
      gw_.quotaEvent({"fail_open", "", who(), request_id_, what + " (fail_open: forwarded)"});
      return acquire();
    }
    GatewayError e = GatewayError::internal(what + " (fail_closed)");
    e.status = 503;
    e.type = ErrorType::kOverloaded;
    return refuse(e);
  }
  if (!r->allowed && !r->concurrency.empty()) {
    gw_.quotaEvent({"rejected", "", who(), request_id_, r->concurrency});
    return refuse(GatewayError::rateLimited(r->concurrency, 1));
  }
  if (!r->allowed) {
    const BucketSpec* spec = specOf(*quota_plan_, r->rejected);
    std::string msg = "quota bucket \"" + r->rejected + "\" is exhausted: this request reserves " +
                      describeNeed(spec, r->rejected_need) + " and the bucket holds " +
                      describeNeed(spec, std::max<int64_t>(r->rejected_level, 0));
    uint32_t retry = 60;
    if (r->retry_after_s) {
      retry = static_cast<uint32_t>(std::min<int64_t>(*r->retry_after_s, 30 * 86'400));
      if (spec) msg += " (refills " + formatQuotaRate(*spec) + ")";
    } else if (spec) {
      msg += "; the request needs more than the bucket can ever hold (capacity " +
             formatQuotaAmount(spec->unit, spec->capacity) +
             "): lower max_tokens or ask for a larger bucket";
      retry = static_cast<uint32_t>(std::min<int64_t>(spec->refill_period_ms / 1000, 86'400));
    }
    gw_.quotaEvent({"rejected", r->rejected, who(), request_id_, msg});
    return refuse(GatewayError::rateLimited(msg, std::max<uint32_t>(retry, 1)));
  }
  quota_held_ = true;
  quota_taken_ = std::move(r->taken);
  for (const std::string& b : r->flagged) {
    gw_.quotaEvent({"flagged", b, who(), request_id_, "quota bucket \"" + b + "\" is exhausted"});
  }
  for (const std::string& b : r->overdrawn) {
    gw_.quotaEvent(
        {"overdraft", b, who(), request_id_, "overdraft from quota bucket \"" + b + "\""});
  }
  acquire();
}

void Exchange::settleQuota(const TapResult* tap, const Cost& cost) {
  if (!concurrency_key_.empty()) {
    gw_.concurrency().release(concurrency_key_, model_.stream);
    concurrency_key_.clear();
  }
  if (!quota_held_) return;
  quota_held_ = false;
  QuotaStore* store = gw_.quotaStore();
  if (store == nullptr) return;
  QuotaAmounts real = realAmounts(tap, cost, quota_reserved_);
  store->settle(*quota_plan_, quota_taken_, real, gw_.nowMs());
}

}  // namespace gatehouse::proxy
